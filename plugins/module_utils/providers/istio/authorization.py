"""Istio's AuthorizationPolicies for a service: its explicit ALLOW and DENY rules, the ALLOW
derived from its declared callers, and the principals a rule names."""

from __future__ import annotations

from typing import Any

from ...intent.model import AuthorizationRule, Intent, Service
from ...plan.model import PlannedObject
from ...plan.model import template_meta as _meta
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


def derived_allow(intent: Intent, service: Service,
                   callers: list[Service]) -> list[dict[str, Any]]:
    principals = [intent.principal(caller) for caller in callers]
    if service.ingress:
        gateway = intent.ingress_gateway
        principals.append(f"{intent.trust_domain}/ns/{gateway.namespace}/sa/"
                          f"{gateway.service_account}")
    if not principals:
        return []
    # the callers reach the service's ports; its peer ports are its own pods' business
    ports = service.workload_ports() if service.undeclared_peer_ports() else ()
    to = [{"operation": {"ports": [str(p) for p in ports]}}] if ports else None
    return [{"from": [{"source": {"principals": sorted(set(principals))}}], "to": to}]


def inbound_rules(intent: Intent, service: Service) -> list[dict[str, Any]]:
    """ALLOW rules for the callers no ``calls`` names (``Intent.inbound_callers``): by
    principal, or, for callers without a mesh identity, by port alone (their plaintext
    requests carry no principal: https://istio.io/latest/docs/concepts/security/
    #dependency-on-mutual-tls)."""
    rules = []
    for caller in intent.inbound_callers(service, scrapes_identity=SCRAPES_IDENTITY):
        to = [{"operation": {"ports": [str(p) for p in caller.ports],
                             "methods": ["GET"] if caller.paths else None,
                             "paths": list(caller.paths) or None}}] if caller.ports else None
        from_ = None
        if caller.identity:
            from_ = [{"source": {"principals": [
                f"{intent.trust_domain}/ns/{caller.namespace}/sa/{caller.account}"]}}]
        rules.append({"from": from_, "to": to})
    return rules


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
    rule = dict(rule)
    if principals:
        source = dict(froms[0]["source"])
        source["notPrincipals"] = list(dict.fromkeys([*source["notPrincipals"], *principals]))
        rule["from"] = [{"source": source}, *froms[1:]]
    if plaintext or paths:
        # deny unless the port is a plaintext caller's, or the path its scrape's: the
        # operations are ORed, the fields of one ANDed
        scoped = [{"operation": {"notPorts": [str(p) for p in [*plaintext, *sorted(paths)]]}}]
        scoped += [{"operation": {"ports": [str(port)], "notPaths": sorted(found)}}
                   for port, found in sorted(paths.items())]
        rule["to"] = scoped
    return rule


def authorization_policy(intent: Intent, service: Service, suffix: str, action: str,
                          rules: list[dict[str, Any]], dry_run: bool = False) -> PlannedObject:
    name = f"{service.name}-{suffix}"
    return PlannedObject(
        api_version=SECURITY, kind="AuthorizationPolicy", name=name,
        namespace=service.namespace, template="istio/authorization_policy.yaml.j2",
        context={**_meta(name, service.namespace, intent,
                         annotations=DRY_RUN if dry_run else None),
                 "match_labels": service.selector, "action": action, "rules": rules},
    )
