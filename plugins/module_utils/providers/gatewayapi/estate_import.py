"""An estate's Gateway API routes as the intent's routing (``meshstage import``), for either
mesh: an HTTPRoute whose parent is a Service (the mesh profile,
https://gateway-api.sigs.k8s.io/mesh/) routes that service; its rules of header matches to
one backend are header routes, its rule without matches the default route (weights to the
version backends: a canary or a split), its ``timeouts.request`` the timeout. A backend is a
version when its Service selects that version's pods (meshstage's ``<service>-<version>``,
or the team's own, ``versions[].service``). A route attached to a Gateway marks its backends
``ingress: true`` and stays as it is. Routes attached to a Linkerd Server are inbound policy
(``providers/linkerd/estate_policy.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...estate.objects import Resource, as_list, as_mapping
from ...inventory.draft import Draft, ServiceDraft
from ...stages import Stage
from .routes import regex_literal

GATEWAY_GROUP = "gateway.networking.k8s.io"


def service_routes(draft: Draft) -> dict[str, list[Resource]]:
    """The HTTPRoutes whose parent is a catalogue service, by the service's name."""
    found: dict[str, list[Resource]] = {}
    for route in draft.index.of_kind("HTTPRoute"):
        for parent in (as_mapping(p) for p in as_list(route.spec.get("parentRefs"))):
            if parent.get("kind") == "Service" and str(parent.get("group") or "") in ("", "core"):
                service = draft.service_at(str(parent.get("namespace") or route.namespace),
                                           str(parent.get("name") or ""))
                if service is not None and route not in found.get(service.name, []):
                    found.setdefault(service.name, []).append(route)
    return found


def import_gateway_routes(draft: Draft) -> None:
    for route in draft.index.of_kind("HTTPRoute"):
        parents = [as_mapping(p) for p in as_list(route.spec.get("parentRefs"))]
        gateways = [str(p.get("name")) for p in parents if p.get("kind", "Gateway") == "Gateway"]
        if gateways:
            draft.routed_from_gateway(route, gateways, _backends(route))
    for name, routes in service_routes(draft).items():
        service = draft.services[name]
        draft.hint_stage(Stage.TRAFFIC, f"{routes[0].display} routes {name}")
        found, why = _route(draft, service, routes[0])
        if found is None:
            for route in routes:
                draft.keep(route, f"{why}: the intent cannot say it, so {name} keeps it and "
                           "gets no routes of meshstage's")
            continue
        service.set_routes(found, routes[0].display)
        draft.shared.setdefault("mesh_traffic_api", "gateway-api")
        for route in routes:
            draft.became(route, f"{name}: routes")


def _backends(route: Resource) -> list[str]:
    return [str(as_mapping(b).get("name")) for rule in as_list(route.spec.get("rules"))
            for b in as_list(as_mapping(rule).get("backendRefs")) if as_mapping(b).get("name")]


def _route(draft: Draft, service: ServiceDraft,
           route: Resource) -> tuple[dict[str, Any] | None, str]:
    found: dict[str, Any] = {}
    headers = []
    default = None
    timeouts = set()
    for number, rule in enumerate(as_mapping(r) for r in as_list(route.spec.get("rules"))):
        extra = sorted(set(rule) - {"matches", "backendRefs", "timeouts", "name"})
        if extra:
            return None, f"rules[{number}] has {', '.join(extra)}"
        timeouts.add(str(as_mapping(rule.get("timeouts")).get("request") or ""))
        backends = []
        for backend in (as_mapping(b) for b in as_list(rule.get("backendRefs"))):
            name = str(backend.get("name") or "")
            if str(backend.get("kind") or "Service") != "Service" or set(backend) - {
                    "name", "port", "weight", "kind", "group"}:
                return None, f"rules[{number}] has a backend the intent cannot say"
            version = None if name == service.name else draft.version_of_backend(
                service.namespace, name)
            if name != service.name and version is None:
                return None, f"rules[{number}] sends to {name}, no version of {service.name}"
            backends.append((version, backend.get("weight")))
        matches = [as_mapping(m) for m in as_list(rule.get("matches"))]
        if not matches:
            default = backends
            continue
        header = _header_match(matches)
        if header is None or len(backends) != 1 or backends[0][0] is None:
            return None, f"rules[{number}] matches more than headers, or splits"
        headers.append({"headers": header, "subset": backends[0][0]})
    if len(timeouts) > 1:
        return None, "its rules have different timeouts"
    timeout = timeouts.pop() if timeouts else ""
    if headers:
        found["header_routes"] = headers
    if timeout:
        found["timeout"] = timeout
    if default:
        split = _split(default)
        if split is None:
            return None, "its default rule mixes backends with and without weights"
        found.update(split)
    return found, ""


def _header_match(matches: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One match of headers only, each exact or a regular expression (meshstage writes a
    prefix as ``^<escaped prefix>.*``)."""
    if len(matches) != 1 or set(matches[0]) != {"headers"}:
        return None
    found = {}
    for header in (as_mapping(h) for h in as_list(matches[0]["headers"])):
        name, value = str(header.get("name") or "").lower(), str(header.get("value") or "")
        kind = str(header.get("type") or "Exact")
        if not name or not value:
            return None
        if kind == "Exact":
            found[name] = {"exact": value}
        elif kind == "RegularExpression":
            prefix = _escaped_prefix(value)
            found[name] = {"prefix": prefix} if prefix is not None else {"regex": value}
        else:
            return None
    return found or None


def _escaped_prefix(value: str) -> str | None:
    """The literal prefix of ``^<escaped>.*``, or None for any other expression."""
    if not (value.startswith("^") and value.endswith(".*")):
        return None
    return regex_literal(value[1:-2])


def _split(default: list[tuple[str | None, Any]]) -> dict[str, Any] | None:
    if len(default) == 1 and default[0][0] is None:
        return {}
    if any(version is None for version, _ in default):
        return None
    if len(default) == 1:
        return {"split": {default[0][0]: 100}}
    weights = [int(w) if isinstance(w, int) else 1 for _, w in default]
    total = sum(weights)
    if total != 100:
        return None
    if len(default) == 2:
        return {"canary": {"stable": default[0][0], "subset": default[1][0],
                           "weight": weights[1]}}
    return {"split": {version: weight for (version, _), weight in
                      zip(default, weights, strict=True)}}
