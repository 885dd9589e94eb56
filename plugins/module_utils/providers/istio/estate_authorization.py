"""An estate's Istio AuthorizationPolicies as the intent's authorization
(https://istio.io/latest/docs/reference/config/security/authorization-policy/).

- ``allow-nothing`` (an ALLOW policy with an empty spec) in a namespace is default deny.
- A service's policies (selector: the labels of exactly that service's pods) whose rules the
  intent can say become ``mesh_authorization`` rules: one ``from`` source of ``principals``
  (a principal that is one catalogue service's identity becomes ``from``) and
  ``namespaces``, one ``to`` operation of ``methods``, ``paths`` and ``ports``. A DENY rule
  of ``notPrincipals`` that are exactly the principals the ALLOW rules name is
  ``deny_other_callers``.
- One ALLOW rule of principals only, every one a catalogue service's or the ingress
  gateway's, is the shape meshstage derives from ``calls``: its callers become calls, and
  the importer keeps it derived when the calls found give back the same principals.
- A policy of the ``istio.io/dry-run`` annotation is the strict_mtls stage's dry run.

A service with a policy the intent cannot say keeps all its policies as they are and gets no
rules of meshstage's; what it cannot say is listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...estate.objects import Resource, as_list, as_mapping, as_strings
from ...intent.model import HTTP_METHODS
from ...inventory.draft import Draft, ServiceDraft
from ...stages import Stage

DRY_RUN = "istio.io/dry-run"
_SOURCE_KEYS = {"principals", "namespaces"}
_OPERATION_KEYS = {"methods", "paths", "ports"}


def import_authorization(draft: Draft) -> None:
    by_service: dict[str, list[Resource]] = {}
    for policy in draft.index.istio("AuthorizationPolicy"):
        dry = policy.annotations.get(DRY_RUN) == "true"
        draft.hint_stage(Stage.STRICT_MTLS if dry else Stage.AUTHORIZATION,
                         f"{policy.display} {'is a dry run' if dry else 'is enforced'}")
        spec = policy.spec
        if not spec or (set(spec) == {"action"} and spec["action"] == "ALLOW"):
            draft.default_deny.append(f"{policy.display} allows nothing")
            draft.became(policy, "mesh_default_deny: true")
            continue
        labels = as_strings(as_mapping(spec.get("selector")).get("matchLabels"))
        services = draft.services_with_label(policy.namespace, labels) if labels else []
        if len(services) != 1 or set(spec) - {"selector", "action", "rules"}:
            draft.keep(policy, "the intent's rules are a service's own: this policy selects "
                       + ("other workloads" if len(services) != 1 else
                          ", ".join(sorted(set(spec) - {"selector", "action", "rules"}))))
            continue
        by_service.setdefault(services[0].name, []).append(policy)
    for name, policies in by_service.items():
        _service_policies(draft, draft.services[name], policies)


def _service_policies(draft: Draft, service: ServiceDraft, policies: list[Resource]) -> None:
    """A service's policies as the callers its calls derive, as its mesh_authorization entry,
    or kept as they are when the intent cannot say one of them."""
    allow, deny, raw_deny, problems = _intent_rules(draft, policies)
    if problems:
        _keep(draft, service, policies, f"{', '.join(problems)} says more than the intent's "
              "rules can")
        return
    allowed = _principals(draft, allow)
    if any(set(_not_principals(rule) or ()) != set(allowed) for rule in raw_deny):
        _keep(draft, service, policies, "a DENY of notPrincipals other than the principals "
              "the ALLOW rules name")
        return
    names = ", ".join(p.display for p in policies)
    for policy in policies:
        draft.became(policy, f"{service.name}: authorization")
    derived = len(allow) == 1 and not deny and not raw_deny and set(allow[0]) <= {
        "from", "principals"} and all(_identity(draft, p) for p in allowed)
    if derived:
        draft.admit(service, allowed, names)
        return
    entry: dict[str, Any] = {"service": service.name}
    if allow:
        entry["allow"] = allow
    if deny:
        entry["deny"] = deny
    if raw_deny:
        entry["deny_other_callers"] = True
    draft.authorization[service.name] = entry
    draft.note(f"mesh_authorization.{service.name}", f"from {names}")
    for caller in _named(draft, allow):
        draft.call(caller, service, f"{names} admits it")


def _intent_rules(draft: Draft, policies: list[Resource]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Mapping[str, Any]],
                             list[str]]:
    """The policies' rules as intent rules: (ALLOW rules, DENY rules, DENY rules of
    ``notPrincipals`` only, what the intent cannot say)."""
    allow: list[dict[str, Any]] = []
    deny: list[dict[str, Any]] = []
    raw_deny: list[Mapping[str, Any]] = []
    problems = []
    for policy in policies:
        action = str(policy.spec.get("action") or "ALLOW")
        if action not in ("ALLOW", "DENY"):
            problems.append(f"{policy.display} is {action}")
            continue
        for number, rule in enumerate(as_list(policy.spec.get("rules"))):
            converted = _rule(draft, as_mapping(rule))
            if converted is None and action == "DENY" and _not_principals(rule) is not None:
                raw_deny.append(as_mapping(rule))
            elif converted is None:
                problems.append(f"{policy.display} spec.rules[{number}]")
            else:
                (allow if action == "ALLOW" else deny).append(converted)
    return allow, deny, raw_deny, problems


def _keep(draft: Draft, service: ServiceDraft, policies: list[Resource], why: str) -> None:
    """The service keeps all its policies as they are, and gets no rules of meshstage's."""
    service.keeps_own_policies = True
    for policy in policies:
        draft.keep(policy, f"{service.name} keeps its policies ({why})")


def _identity(draft: Draft, principal: str) -> bool:
    """True when the principal is a catalogue service's or the ingress gateway's."""
    parts = principal.split("/")
    if len(parts) != 5 or parts[0] != draft.trust_domain:
        return False
    return bool(draft.services_running_as(parts[2], parts[4])) or \
        (parts[2], parts[4]) == draft.ingress_gateway()


def _principals(draft: Draft, rules: list[dict[str, Any]]) -> list[str]:
    """The principals the rules name, in their order, as rendering lists them."""
    found = []
    for rule in rules:
        for name in rule.get("from", []):
            service = draft.services[name]
            account = service.fields.get("service_account", service.name)
            found.append(f"{draft.trust_domain}/ns/{service.namespace}/sa/{account}")
        found += rule.get("principals", [])
    return list(dict.fromkeys(found))


def _named(draft: Draft, rules: list[dict[str, Any]]) -> list[ServiceDraft]:
    return [draft.services[name] for rule in rules for name in rule.get("from", [])]


def _not_principals(rule: Any) -> list[str] | None:
    rule = as_mapping(rule)
    froms = as_list(rule.get("from"))
    if set(rule) != {"from"} or len(froms) != 1 or set(as_mapping(froms[0])) != {"source"}:
        return None
    source = as_mapping(as_mapping(froms[0]).get("source"))
    if set(source) != {"notPrincipals"}:
        return None
    return [str(p).removeprefix("spiffe://") for p in as_list(source["notPrincipals"])]


def _rule(draft: Draft, rule: Mapping[str, Any]) -> dict[str, Any] | None:
    """One policy rule as an intent rule, or None when the intent cannot say it."""
    froms, tos = as_list(rule.get("from")), as_list(rule.get("to"))
    if set(rule) - {"from", "to"} or len(froms) > 1 or len(tos) > 1:
        return None
    found: dict[str, Any] = {}
    if froms:
        source = as_mapping(as_mapping(froms[0]).get("source"))
        if set(as_mapping(froms[0])) != {"source"} or set(source) - _SOURCE_KEYS:
            return None
        services, principals = draft.named_callers(
            str(p).removeprefix("spiffe://") for p in as_list(source.get("principals")))
        if services:
            found["from"] = services
        if principals:
            found["principals"] = principals
        if source.get("namespaces"):
            found["namespaces"] = [str(n) for n in as_list(source["namespaces"])]
    if tos:
        operation = as_mapping(as_mapping(tos[0]).get("operation"))
        if set(as_mapping(tos[0])) != {"operation"} or set(operation) - _OPERATION_KEYS:
            return None
        methods = [str(m) for m in as_list(operation.get("methods"))]
        paths = [str(p) for p in as_list(operation.get("paths"))]
        ports = [str(p) for p in as_list(operation.get("ports"))]
        if any(m not in HTTP_METHODS for m in methods) or any(
                not (p.startswith(("/", "*")) and "*" not in p.strip("*")) for p in paths) \
                or any(not p.isdigit() for p in ports):
            return None
        if methods:
            found["methods"] = methods
        if paths:
            found["paths"] = paths
        if ports:
            found["ports"] = [int(p) for p in ports]
    return found
