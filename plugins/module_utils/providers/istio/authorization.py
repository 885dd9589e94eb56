"""Istio's AuthorizationPolicies for a service: its explicit ALLOW and DENY rules, the ALLOW
derived from its declared callers, and the principals a rule names."""

from __future__ import annotations

from typing import Any

from ...intent.model import AuthorizationRule, Intent, Service
from ...plan.model import PlannedObject
from ...plan.model import template_meta as _meta
from .api import DRY_RUN, SECURITY


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
    return [{"from": [{"source": {"principals": sorted(set(principals))}}], "to": None}]


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
