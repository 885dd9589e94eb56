"""Istio's AuthorizationPolicies for a service: its explicit ALLOW and DENY rules, the ALLOW
derived from its declared callers, and the principals a rule names.

A request that reaches the workload in plaintext carries no principal and no namespace, so
``principals`` and ``namespaces`` never match it
(https://istio.io/latest/docs/concepts/security/#dependency-on-mutual-tls). The derived ALLOW
therefore admits its plaintext callers by what Istio can see of them: the workload ports they
reach (``to.operation.ports``), or the caller's address where the intent knows it
(``source.ipBlocks``, the connection's source address:
https://istio.io/latest/docs/reference/config/security/authorization-policy/#Source).
Plaintext callers are the callers without a sidecar (``plan/callers.py``), and every caller of
a port under a DISABLE exception: its DestinationRule makes meshed clients send it plaintext.
Explicit rules that name such a caller by identity can never match it: the run refuses them
with the fix (``plan/callers.identity_refusals``).
"""

from __future__ import annotations

from typing import Any

from ...intent.model import AuthorizationRule, Intent, Service, ServiceAuthorization
from ...plan.callers import disabled_ports, has_sidecar, plaintext_callers
from ...plan.model import PlannedObject
from ...plan.model import template_meta as _meta
from ..gatewayapi.routes import ROUTABLE_PROTOCOLS
from .api import DRY_RUN, SECURITY

# Prometheus scraping a pod IP through its Istio sidecar sends plaintext: its scrapes carry
# no identity unless Prometheus itself presents Istio certificates.
# https://istio.io/latest/docs/ops/integrations/prometheus/#tls-settings
SCRAPES_IDENTITY = False


def allowed_principals(intent: Intent, rules: tuple[AuthorizationRule, ...]) -> list[str]:
    principals: list[str] = []
    for rule in rules:
        for name in rule.source.services:
            principals.append(intent.principal(intent.service(name)))
        principals.extend(rule.source.principals)
    return list(dict.fromkeys(principals))


def policy_rule(intent: Intent, rule: AuthorizationRule) -> dict[str, Any]:
    source = rule.source
    principals = [intent.principal(intent.service(n)) for n in source.services]
    principals += list(source.principals)
    from_ = None
    if principals or source.namespaces:
        from_ = [{"source": {"principals": principals or None,
                             "namespaces": list(source.namespaces) or None}}]
    to = None
    if rule.methods or rule.paths or rule.ports:
        to = [{"operation": {"ports": [str(port) for port in rule.ports] or None,
                             "methods": list(rule.methods) or None,
                             "paths": list(rule.paths) or None}}]
    return {"from": from_, "to": to}


def _ports(ports: list[int]) -> list[dict[str, Any]]:
    return [{"operation": {"ports": [str(port) for port in ports]}}]


def derived_allow(intent: Intent, service: Service, callers: list[Service],
                  gateways: list[str] | None = None) -> list[dict[str, Any]]:
    """The ALLOW rules for the declared callers (and ingress ``gateways``, their principals):
    by principal for the callers whose sidecar originates mTLS to the service, by port for
    the plaintext ones (by address, for hosts)."""
    principals = [intent.principal(caller) for caller in callers
                  if has_sidecar(intent, caller)]
    principals += gateways if gateways is not None else []
    plaintext = plaintext_callers(intent, service)
    # a service without Service ports is called on its pod ports
    ports = list(service.workload_ports()) or [p.port for p in service.pod_ports]
    disabled = disabled_ports(intent, service)
    rules: list[dict[str, Any]] = []
    mtls_ports = [port for port in ports if port not in disabled]
    # the callers reach the service's ports; its peer ports are its own pods' business, its
    # pod ports the callers' outside the catalogue that name them
    scoped = bool(disabled) or bool(service.pod_only_ports())
    if principals and mtls_ports:
        rules.append({"from": [{"source": {"principals": sorted(set(principals))}}],
                      "to": _ports(mtls_ports) if scoped else None})
    anonymous = [caller for caller in plaintext if caller.address is None]
    addresses = sorted({caller.address for caller in plaintext if caller.address})
    open_ports = ports if anonymous else (disabled if principals or addresses else [])
    if open_ports:
        rules.append({"from": None, "to": _ports(open_ports)})
    if addresses and set(open_ports) != set(ports):
        rules.append({"from": [{"source": {"ipBlocks": addresses}}], "to": None})
    return rules


def deny_other_callers(intent: Intent, service: Service,
                       rules: ServiceAuthorization) -> dict[str, Any]:
    """``deny_other_callers``: DENY every principal the ALLOW rules do not name; limited to
    the ports where callers have identities (plaintext ports under DISABLE have none)."""
    disabled = disabled_ports(intent, service)
    ports = [port for port in service.workload_ports() if port not in disabled]
    return {"from": [{"source": {"notPrincipals": allowed_principals(intent, rules.allow)}}],
            "to": _ports(ports) if disabled else None}


def on_own_ports(intent: Intent, service: Service, rule: dict[str, Any]) -> dict[str, Any]:
    """A DENY rule of ``service`` kept to its own ports where services over the same pods
    (``Intent.same_pods``) have ports of their own: an AuthorizationPolicy selects pods, so
    a DENY without ports would deny the other services' callers too. A rule that names
    ports stays as written."""
    own = [*service.workload_ports(), *(p.port for p in service.pod_ports)]
    others = {port for each in intent.same_pods(service) if each is not service
              for port in (*each.workload_ports(), *(p.port for p in each.pod_ports))}
    if not own or not others - set(own):
        return rule
    to = rule.get("to")
    if to is None:
        return {**rule, "to": _ports(own)}
    if any(entry["operation"].get("ports") for entry in to):
        return rule
    return {**rule, "to": [{"operation": {**entry["operation"],
                                          "ports": [str(port) for port in own]}}
                           for entry in to]}


def inbound_rules(intent: Intent, service: Service) -> list[dict[str, Any]]:
    """ALLOW rules for the callers no ``calls`` names (``Intent.inbound_callers``): by
    principal, or, for callers without a mesh identity, by port alone (their plaintext
    requests carry no principal: https://istio.io/latest/docs/concepts/security/
    #dependency-on-mutual-tls)."""
    rules: list[dict[str, Any]] = []
    tcp = tcp_ports(service)
    for caller in intent.inbound_callers(service, scrapes_identity=SCRAPES_IDENTITY):
        from_ = None
        if caller.identity:
            from_ = [{"source": {"principals": [
                f"{intent.trust_domain}/ns/{caller.namespace}/sa/{caller.account}"]}}]
        if not caller.ports:
            rules.append({"from": from_, "to": None})
            continue
        # a scrape's method and path on the HTTP ports; on a TCP port Istio drops a rule
        # with any HTTP field (every operation of it), so a rule of its own admits those
        # by port
        http = [p for p in caller.ports if not caller.paths or p not in tcp]
        if http:
            operation: dict[str, list[str] | None] = {
                "ports": [str(p) for p in http], "methods": ["GET"] if caller.paths else None,
                "paths": list(caller.paths) or None}
            rules.append({"from": from_, "to": [{"operation": operation}]})
        others = [str(p) for p in caller.ports if caller.paths and p in tcp]
        if others:
            rules.append({"from": from_, "to": [{"operation": {"ports": others}}]})
    return rules


def tcp_ports(service: Service) -> frozenset[int]:
    """The service's workload ports its sidecar serves as TCP: every port of the service
    (and of its ``-peers`` Service, ``traffic.py``; a pod port as the intent says it) that
    sends there names a protocol that is not HTTP's (``ROUTABLE_PROTOCOLS``, as Linkerd's
    policy reads them). An AuthorizationPolicy rule with HTTP fields (methods, paths) does
    not apply there: https://istio.io/latest/docs/tasks/security/authorization/authz-tcp/."""
    protocols: dict[int, set[str]] = {}
    for port in service.ports:
        protocols.setdefault(port.target_port or port.port, set()).add(port.protocol.upper())
    for port in (*service.peer_ports, *service.pod_ports):
        protocols.setdefault(port.port, set()).add(port.protocol.upper())
    return frozenset(number for number, found in protocols.items()
                     if not found & set(ROUTABLE_PROTOCOLS))


def exempt_inbound(intent: Intent, service: Service, rule: dict[str, Any]) -> dict[str, Any]:
    """The DENY rule of ``deny_other_callers`` (``notPrincipals``), leaving the callers no
    ``calls`` names alone: their principals join ``notPrincipals``; the ports of callers
    without identity leave its scope (``notPorts``), as a plaintext request has no
    principal and ``notPrincipals`` matches it."""
    callers = intent.inbound_callers(service, scrapes_identity=SCRAPES_IDENTITY)
    principals = [f"{intent.trust_domain}/ns/{c.namespace}/sa/{c.account}"
                  for c in callers if c.identity]
    plaintext = sorted({p for c in callers if not c.identity and not c.paths for p in c.ports})
    paths: dict[int, set[str]] = {}
    for caller in callers:
        if not caller.identity and caller.paths:
            for port in caller.ports:
                if port not in plaintext:
                    paths.setdefault(port, set()).update(caller.paths)
    froms = rule.get("from") or []
    if not (froms and froms[0]["source"].get("notPrincipals")):
        return rule  # the team's own DENY rules stay as written
    # the ports the rule is kept to already (DISABLE ports left out, services over the same
    # pods): the operations below say "and not these"
    limit = [port for entry in rule.get("to") or ()
             for port in entry["operation"].get("ports") or ()]
    rule = dict(rule)
    if principals:
        source = dict(froms[0]["source"])
        source["notPrincipals"] = list(dict.fromkeys([*source["notPrincipals"], *principals]))
        rule["from"] = [{"source": source}, *froms[1:]]
    if plaintext or paths:
        # deny unless the port is a plaintext caller's, or the path its scrape's: the
        # operations are ORed, the fields of one ANDed
        first: dict[str, list[str]] = {
            "notPorts": [str(p) for p in [*plaintext, *sorted(paths)]]}
        if limit:
            first = {"ports": limit, **first}
        scoped = [{"operation": first}]
        scoped += [{"operation": {"ports": [str(port)], "notPaths": sorted(found)}}
                   for port, found in sorted(paths.items()) if not limit or str(port) in limit]
        rule["to"] = scoped
    return rule


def authorization_policy(intent: Intent, service: Service, suffix: str, action: str,
                         rules: list[dict[str, Any]], dry_run: bool = False) -> PlannedObject:
    return workload_policy(intent, f"{service.name}-{suffix}", service.namespace,
                           service.selector, action, rules, dry_run)


def workload_policy(intent: Intent, name: str, namespace: str, match_labels: dict[str, str],
                    action: str, rules: list[dict[str, Any]],
                    dry_run: bool = False) -> PlannedObject:
    """An AuthorizationPolicy selecting the pods with ``match_labels``."""
    return PlannedObject(
        api_version=SECURITY, kind="AuthorizationPolicy", name=name,
        namespace=namespace, template="istio/authorization_policy.yaml.j2",
        context={**_meta(name, namespace, intent,
                         annotations=DRY_RUN if dry_run else None),
                 "match_labels": match_labels, "action": action, "rules": rules},
    )
