"""Who calls a service, and whether each call can carry an identity.

A caller without a proxy of the mesh sends plaintext: a service with ``inject: false``, a
service whose namespace is in a wave not injected yet, and a plain host (its sidecar has no
route into the cluster, so its calls to Kubernetes services are not meshed). A plaintext
request has no principal and no namespace, so an ALLOW rule that names them never matches it
(Istio: https://istio.io/latest/docs/concepts/security/#dependency-on-mutual-tls; Linkerd's
MeshTLSAuthentication "clients must be in the mesh",
https://linkerd.io/2-edge/reference/authorization-policy/#meshtlsauthentication), and STRICT
mTLS refuses it before any policy is read
(https://istio.io/latest/docs/concepts/security/#peer-authentication). The fixes are on the
callee's side: an exception that accepts plaintext on its ports, and ALLOW rules that admit
the caller by port, or by its address where the intent knows it (a host's).

``with_plaintext_exceptions`` gives every meshed callee of a caller that can never be meshed
(``inject: false``, a host) a PERMISSIVE exception, unless the intent has one for it: the
callee-side fix, rendered by default. The strict_mtls gate reads the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ..errors import IntentError
from ..intent.model import Intent, MtlsExemption, Service, ServiceAuthorization
from ..stages import Stage

RELAXED = ("PERMISSIVE", "DISABLE")


@dataclass(frozen=True)
class PlaintextCaller:
    """A caller whose requests reach its callee in plaintext, with no identity."""

    name: str                 # "service payments/batch", "host ledger-1"
    reason: str               # why it has no proxy: "inject: false", ...
    address: str | None       # its address, where the intent knows it (a host's)
    permanent: bool           # it can never be meshed (inject: false, a host)
    service: str              # the catalogue service it runs


def has_sidecar(intent: Intent, service: Service) -> bool:
    """True when the service's pods run the mesh's proxy at the environment's stage: its
    namespace is injected and its own wave is not held back (waves that name services)."""
    return (service.inject and intent.stage.reached(Stage.INJECTION)
            and intent.is_injected(service.namespace) and not intent.is_held(service.name))


def services_calling(intent: Intent, service: Service) -> list[Service]:
    """The cluster services whose ``calls`` name ``service`` (hosts' services left out)."""
    on_hosts = intent.host_services
    return [caller for caller in intent.callers_of(service.name)[0]
            if caller.name not in on_hosts]


def plaintext_callers(intent: Intent, service: Service) -> list[PlaintextCaller]:
    """The declared callers of ``service`` that reach it without a proxy of the mesh."""
    found: list[PlaintextCaller] = []
    for caller in services_calling(intent, service):
        if has_sidecar(intent, caller):
            continue
        if not caller.inject:
            reason, permanent = "inject: false", True
        else:
            reason, permanent = f"namespace {caller.namespace} is not injected yet", False
        found.append(PlaintextCaller(f"service {caller.namespace}/{caller.name}", reason,
                                     None, permanent, caller.name))
    if service.name not in intent.host_services:
        for host in intent.callers_of(service.name)[1]:
            found.append(PlaintextCaller(
                f"host {host.name} ({host.service})", "a plain host: its sidecar has no "
                "route into the cluster", host.address, True, host.service))
    return found


def exception_of(intent: Intent, service: Service) -> MtlsExemption | None:
    return next(iter(intent.exceptions_for(service.name)), None)


def _union(modes: Iterable[str]) -> str:
    """The mode that accepts what each of ``modes`` accepts: UNSET (no wish of its own) adds
    nothing; two that differ give PERMISSIVE, which takes both mTLS and plaintext."""
    found = set(modes) - {"UNSET"}
    if not found:
        return "UNSET"
    return found.pop() if len(found) == 1 else "PERMISSIVE"


def merge_exemptions(group: Sequence[MtlsExemption]) -> MtlsExemption:
    """The exceptions of services over the same pods as one, for the workload they share:
    its mode, and each port's, accept what every exception accepts there (a port takes an
    exception's own mode where it does not name the port). Named after the first."""
    if len(group) == 1:
        return group[0]
    ports: dict[int, str] = {}
    for port in sorted({port for each in group for port in each.ports}):
        mode = _union(each.ports.get(port, each.mode) for each in group)
        if mode != "UNSET":
            ports[port] = mode
    reasons = list(dict.fromkeys(each.reason for each in group))
    reason = reasons[0] if len(reasons) == 1 else "; ".join(
        f"{each.service}: {each.reason}" for each in group)
    return MtlsExemption(group[0].service, _union(each.mode for each in group), ports,
                         reason, tuple(dict.fromkeys(
                             name for each in group for name in each.derived_from)))


def plaintext_ports(exception: MtlsExemption | None, service: Service) -> list[int]:
    """The service's workload ports an exception opens to plaintext."""
    if exception is None:
        return []
    return [port for port in service.workload_ports()
            if exception.ports.get(port, exception.mode) in RELAXED]


def disabled_ports(intent: Intent, service: Service) -> list[int]:
    """Workload ports whose exception is DISABLE once strict: meshed Istio clients send them
    plaintext too (their DestinationRule says DISABLE)."""
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return []
    exception = exception_of(intent, service)
    if exception is None:
        return []
    return [port for port in service.workload_ports()
            if exception.ports.get(port, exception.mode) == "DISABLE"]


def derived_exceptions(intent: Intent) -> list[MtlsExemption]:
    """PERMISSIVE exceptions for the meshed callees of callers that can never be meshed,
    where the intent has no exception for the callee."""
    derived = []
    for service in intent.services:
        if service.name in intent.host_services or exception_of(intent, service) is not None \
                or not service.inject:
            continue
        callers = [c for c in plaintext_callers(intent, service) if c.permanent]
        if callers:
            names = ", ".join(f"{c.name} ({c.reason})" for c in callers)
            derived.append(MtlsExemption(
                service=service.name, mode="PERMISSIVE", ports={},
                reason=f"called in plaintext by {names}",
                derived_from=tuple(c.name for c in callers)))
    return derived


def with_plaintext_exceptions(intent: Intent) -> Intent:
    """The intent with the derived exceptions (see the module docstring) once strict."""
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return intent
    derived = derived_exceptions(intent)
    if not derived:
        return intent
    return replace(intent, mtls_exceptions=intent.mtls_exceptions + tuple(derived))


def identity_refusals(intent: Intent, service: Service, rules: ServiceAuthorization,
                      plaintext_ports: list[int], base: str) -> list[IntentError]:
    """Explicit rules that can never match: they name by identity a caller that reaches the
    service in plaintext, or cover only ports whose callers all send plaintext
    (``plaintext_ports``: Istio's DISABLE ports; none under Linkerd, whose meshed clients
    always send mTLS). A service without a sidecar enforces no rule: nothing to refuse.
    ``base`` is where the rules are written (``mesh_authorization[<index>]``)."""
    refusals: list[IntentError] = []
    if not has_sidecar(intent, service):
        return refusals
    plaintext = {caller.service: caller for caller in plaintext_callers(intent, service)}
    ports = list(service.workload_ports())
    where = f"{service.namespace}/{service.name}"
    for number, rule in enumerate(rules.allow):
        source = rule.source
        if not (source.services or source.principals or source.namespaces):
            continue
        path = f"{base}.allow[{number}]"
        covered = list(rule.ports) or ports
        if plaintext_ports and all(port in plaintext_ports for port in covered):
            field = "from" if source.services else "principals" if source.principals \
                else "namespaces"
            refusals.append(IntentError(
                f"{path}.{field}", list(source.services + source.principals + source.namespaces),
                f"can never match: port(s) {', '.join(map(str, covered))} of {where} are under "
                "a DISABLE mTLS exception, so every caller reaches them in plaintext, with no "
                "identity; admit them by port (a rule with ports and no from, principals or "
                "namespaces), or make the exception PERMISSIVE"))
            continue
        for index, name in enumerate(source.services):
            caller = plaintext.get(name)
            if caller is not None:
                refusals.append(IntentError(
                    f"{path}.from[{index}]", name,
                    f"can never match: {caller.name} reaches {where} without a proxy "
                    f"({caller.reason}), so its requests carry no identity; admit it by port "
                    "(a rule with ports and no from), or bring it into the mesh"))
    if rules.deny_other_callers:
        if plaintext_ports and all(port in plaintext_ports for port in ports):
            refusals.append(IntentError(
                f"{base}.deny_other_callers", True,
                f"would deny every request to {where}: all its ports are under a DISABLE mTLS "
                "exception, so no request carries a principal; drop deny_other_callers, or "
                "make the exception PERMISSIVE"))
    return refusals
