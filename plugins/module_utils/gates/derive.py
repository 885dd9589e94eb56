"""Least-privilege ALLOW rules, as intent, from the callers Prometheus observed.

``derive_authorization(intent, calls)`` turns observed (caller, callee) pairs (``Call``,
from ``observe.py``) into ``mesh_authorization`` entries: per called service, one ALLOW rule
naming exactly the callers observed (``from`` for catalogue services, ``principals`` for
other identities, such as the ingress gateway). An entry the inventory already has keeps its
DENY rules and ``deny_other_callers``; its ALLOW rules are replaced, and the methods, paths
and ports they named are listed in a comment, because neither Istio's standard metrics nor
the host sidecars' client stats carry a method or a path: a derived rule admits a caller,
not an operation. ``derived_yaml`` prints the entries for the user to review and paste.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..intent.model import AuthorizationRule, Intent
from ..yaml_io import dump_plain
from .gate import Call, count


def _rule_dict(rule: AuthorizationRule) -> dict[str, Any]:
    """An intent rule back in the inventory's words."""
    fields = {"from": list(rule.source.services), "principals": list(rule.source.principals),
              "namespaces": list(rule.source.namespaces), "methods": list(rule.methods),
              "paths": list(rule.paths), "ports": list(rule.ports)}
    return {key: value for key, value in fields.items() if value}


def derive_authorization(intent: Intent, calls: Iterable[Call],
                         services: Sequence[str] = ()) -> tuple[list[dict[str, Any]],
                                                                 list[str]]:
    """The ``mesh_authorization`` entries for the services called (or named in
    ``services``), and comment lines saying what each rests on."""
    observed: dict[str, dict[str, float]] = {}
    protocols: dict[str, set[str]] = {}
    notes: list[str] = []
    for call in calls:
        callee = intent.by_name.get(call.callee)
        if callee is None or callee.namespace != call.callee_namespace:
            notes.append(f"{call.callee_namespace}/{call.callee} is not a service in "
                         f"mesh_services: its callers are left out")
            continue
        if services and call.callee not in services:
            continue
        caller = call.caller_service or call.caller
        observed.setdefault(call.callee, {})
        observed[call.callee][caller] = observed[call.callee].get(caller, 0.0) + call.requests
        protocols.setdefault(call.callee, set()).add(call.protocol or "tcp")
    existing = {entry.service: entry for entry in intent.authorization}
    entries = []
    for name in [s.name for s in intent.services if s.name in observed or s.name in services]:
        callers = observed.get(name, {})
        entry: dict[str, Any] = {"service": name}
        rule: dict[str, Any] = {}
        named = sorted(c for c in callers if c in intent.by_name)
        others = sorted(c for c in callers if c not in intent.by_name)
        if named:
            rule["from"] = named
        if others:
            rule["principals"] = others
        entry["allow"] = [rule] if rule else []
        figures = ", ".join(f"{caller} {count(value)}" for caller, value in
                            sorted(callers.items()))
        notes.append(f"{name}: " + (f"{figures} request(s) ({', '.join(sorted(protocols[name]))})"
                                    if callers else "no caller observed: with "
                                    "mesh_default_deny nothing reaches it"))
        before = existing.get(name)
        if before is not None:
            if before.deny:
                entry["deny"] = [_rule_dict(r) for r in before.deny]
            if before.deny_other_callers and rule:
                entry["deny_other_callers"] = True
            narrowed = [r for r in before.allow if r.methods or r.paths or r.ports]
            if narrowed:
                notes.append(f"{name}: the inventory's ALLOW rules also named operations, "
                             "which metrics cannot show; merge them back where they still "
                             "hold: " + "; ".join(str(_rule_dict(r)) for r in narrowed))
        entries.append(entry)
    return entries, list(dict.fromkeys(notes))


def derived_yaml(entries: list[dict[str, Any]], notes: Sequence[str], source: str,
                 window: str) -> str:
    """The entries as inventory YAML, with what they rest on as comments."""
    header = [
        f"Derived by meshstage derive-authz from the callers Prometheus {source} observed",
        f"over the last {window}. Metrics carry no method or path: each rule admits a caller,",
        "not an operation; narrow it with methods and paths where you know them. Review,",
        "then put it in the inventory as mesh_authorization.",
        "",
        *notes,
    ]
    body = dump_plain({"mesh_authorization": entries}, sort_keys=False, flow=None, width=100)
    return "".join(f"# {line}\n".replace("# \n", "#\n") for line in header) + body
