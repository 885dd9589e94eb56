"""Whether the intent's authorization stage admits a caller, by its principal.

The caller-level reading of what ``plan_istio._authorization`` and ``plan_envoy._policies``
render: a DENY rule with no operation refuses its sources, ``deny_other_callers`` refuses
every principal its ALLOW rules do not name, an ALLOW rule admits its sources (its methods,
paths and ports only narrow what they may do), and a service without rules of its own admits
the services whose ``calls`` name it (and the ingress gateway for ``ingress: true``). Where
an ALLOW applies, or ``mesh_default_deny`` holds, whoever no rule admits is refused.
"""

from __future__ import annotations

from ..intent.model import Intent, Service, Source


def _matches(pattern: str, value: str) -> bool:
    """Istio's string match: exact, ``*`` alone, a ``*`` prefix or a ``*`` suffix."""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return pattern == value


def namespace_of(principal: str) -> str | None:
    """``<trust domain>/ns/<namespace>/sa/<account>`` -> namespace."""
    parts = principal.split("/")
    return parts[2] if len(parts) == 5 and parts[1] == "ns" and parts[3] == "sa" else None


def _source_admits(intent: Intent, source: Source, principal: str) -> bool:
    """A rule's source, as Istio reads it: its principals AND its namespaces."""
    named = [intent.principal(intent.service(name)) for name in source.services]
    if (named or source.principals) and not (
            principal in named or any(_matches(p, principal) for p in source.principals)):
        return False
    return not source.namespaces or namespace_of(principal) in source.namespaces


def gateway_principal(intent: Intent) -> str:
    gateway = intent.ingress_gateway
    return f"{intent.trust_domain}/ns/{gateway.namespace}/sa/{gateway.service_account}"


def admits(intent: Intent, service: Service, principal: str) -> bool:
    """True when some request of ``principal`` can reach ``service`` at the authorization
    stage of ``intent``."""
    if not service.inject:
        return True  # no sidecar enforces anything (and meshstage renders no policy)
    rules = intent.authorization_for(service.name)
    if rules is None:
        callers = {intent.principal(s) for s in intent.callers_of(service.name)[0]}
        if service.ingress:
            callers.add(gateway_principal(intent))
        return principal in callers if callers else not intent.default_deny
    for rule in rules.deny:
        if not (rule.methods or rule.paths or rule.ports) and \
                _source_admits(intent, rule.source, principal):
            return False
    if rules.deny_other_callers:
        named = [intent.principal(intent.service(n)) for r in rules.allow
                 for n in r.source.services]
        named += [p for r in rules.allow for p in r.source.principals]
        if not any(_matches(p, principal) for p in named):
            return False
    if not rules.allow:
        return not intent.default_deny
    return any(_source_admits(intent, rule.source, principal) for rule in rules.allow)
