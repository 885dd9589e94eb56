"""A host sidecar's RBAC filters: Istio's authorization semantics (DENY first, then ALLOW;
principals and namespaces both required), enforced or in shadow before the authorization
stage."""

from __future__ import annotations

from typing import Any

from ...intent.model import AuthorizationRule, Intent, MeshHost, Service
from ...stages import Stage
from .config import (
    RBAC,
)


def workload_port(service: Service, host: MeshHost) -> int | None:
    """The workload port (``target_port``, else ``port``) of the service port a host serves
    on its ``inbound_port``; the service's first port when none is that number."""
    served = [p for p in service.ports if p.port == host.inbound_port] or list(service.ports)
    return (served[0].target_port or served[0].port) if served else None


def authorization_filters(intent: Intent, service: Service,
                           port: int | None) -> list[dict[str, Any]]:
    """RBAC filters: enforced at authorization, in shadow (dry-run) at strict_mtls."""
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return []
    enforce = intent.stage.reached(Stage.AUTHORIZATION)
    deny, allow = _policies(intent, service, port)
    filters = []
    for action, policies, name in (("DENY", deny, "deny"), ("ALLOW", allow, "allow")):
        if policies is None:
            continue
        rules = {"action": action, "policies": policies}
        filters.append({"name": "envoy.filters.http.rbac", "typed_config": {
            "@type": RBAC,
            "rules": rules if enforce else None,
            "rules_stat_prefix": f"authz_{name}_" if enforce else None,
            "shadow_rules": None if enforce else rules,
            "shadow_rules_stat_prefix": None if enforce else f"authz_dry_run_{name}_",
        }})
    return filters


def _policies(intent: Intent, service: Service, port: int | None
              ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """DENY policies and ALLOW policies (None: no filter; {} under ALLOW: deny all).

    A host sidecar serves one workload port of its service (``port`` here, see
    ``workload_port``): a rule limited to other ``ports`` matches nothing there and is
    left out (an ALLOW policy whose every rule is left out still denies all, as an Istio
    ALLOW policy that matches nothing)."""
    explicit = intent.authorization_for(service.name)
    deny: dict[str, Any] = {}
    allow: dict[str, Any] = {}
    if explicit is not None:
        for index, rule in enumerate(explicit.deny):
            if _on_port(rule, port):
                deny[f"deny-{index}"] = _policy(intent, rule)
        if explicit.deny_other_callers:
            allowed = _principals(intent, _allowed_sources(explicit.allow))
            deny["deny-other-callers"] = {
                "principals": [{"not_id": {"or_ids": {"ids": allowed}}}],
                "permissions": [{"any": True}]}
        for index, rule in enumerate(explicit.allow):
            if _on_port(rule, port):
                allow[f"allow-{index}"] = _policy(intent, rule)
        if explicit.allow:
            return (deny or None), allow
    else:
        callers = sorted({intent.principal(s) for s in intent.services
                          if service.name in s.calls})
        if service.ingress:
            gateway = intent.ingress_gateway
            callers.append(f"{intent.trust_domain}/ns/{gateway.namespace}/sa/"
                           f"{gateway.service_account}")
        if callers:
            allow["allow-callers"] = {
                "principals": [_principal(p) for p in sorted(set(callers))],
                "permissions": [{"any": True}]}
    return (deny or None), (allow if allow or intent.default_deny else None)


def _allowed_sources(rules: tuple[AuthorizationRule, ...]) -> list[AuthorizationRule]:
    return [rule for rule in rules if rule.source.services or rule.source.principals]


def _principals(intent: Intent, rules: list[AuthorizationRule]) -> list[dict[str, Any]]:
    principals: list[str] = []
    for rule in rules:
        principals += [intent.principal(intent.service(n)) for n in rule.source.services]
        principals += list(rule.source.principals)
    return [_principal(p) for p in dict.fromkeys(principals)]


def _on_port(rule: AuthorizationRule, port: int | None) -> bool:
    return not rule.ports or port in rule.ports


def _policy(intent: Intent, rule: AuthorizationRule) -> dict[str, Any]:
    """One rule: its principals OR-ed, its namespaces OR-ed, the two AND-ed (as an Istio
    ``source`` with both ``principals`` and ``namespaces``); methods AND paths."""
    source = rule.source
    named = _principals(intent, [rule])
    namespaces = [{"authenticated": {"principal_name": {
        "prefix": f"spiffe://{intent.trust_domain}/ns/{ns}/sa/"}}} for ns in source.namespaces]
    principals: list[dict[str, Any]]
    if named and namespaces:
        principals = [{"and_ids": {"ids": [_any_of(named), _any_of(namespaces)]}}]
    else:
        principals = named or namespaces
    conditions: list[dict[str, Any]] = []
    if rule.methods:
        conditions.append({"or_rules": {"rules": [
            {"header": {"name": ":method", "string_match": {"exact": m}}}
            for m in rule.methods]}})
    if rule.paths:
        conditions.append({"or_rules": {"rules": [
            {"url_path": {"path": _path_match(p)}} for p in rule.paths]}})
    permission = ({"and_rules": {"rules": conditions}} if len(conditions) > 1
                  else conditions[0] if conditions else {"any": True})
    return {"principals": principals or [{"any": True}], "permissions": [permission]}


def _any_of(ids: list[dict[str, Any]]) -> dict[str, Any]:
    return ids[0] if len(ids) == 1 else {"or_ids": {"ids": ids}}


def _principal(principal: str) -> dict[str, Any]:
    """An Istio-style principal (``<td>/ns/<ns>/sa/<sa>``, ``*`` as prefix or suffix)."""
    if principal == "*":
        return {"authenticated": {"principal_name": {"safe_regex": {"regex": ".+"}}}}
    if principal.endswith("*"):
        match = {"prefix": "spiffe://" + principal[:-1]}
    elif principal.startswith("*"):
        match = {"suffix": principal[1:]}
    else:
        match = {"exact": "spiffe://" + principal}
    return {"authenticated": {"principal_name": match}}


def _path_match(path: str) -> dict[str, Any]:
    if path == "*":
        return {"safe_regex": {"regex": ".*"}}
    if path.endswith("*"):
        return {"prefix": path[:-1]}
    if path.startswith("*"):
        return {"suffix": path[1:]}
    return {"exact": path}
