"""Which route of the destination's Server a request matches (none: 404)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ....estate.objects import Resource, as_list, as_mapping
from ....flows.evaluate import FlowRule, Step
from ....flows.model import NO_ROUTE, Request, Verdict, refused
from ....flows.requests import candidate_requests, sample_path
from .view import probe_path

DEFAULT, PROBE = "default", "probe"


def _path_matches(path: Mapping[str, Any], value: str) -> tuple[bool, int, int]:
    """(matches, exact, prefix length) of a Gateway API path match."""
    kind = str(path.get("type") or "PathPrefix")
    wanted = str(path.get("value") or "/")
    if kind == "Exact":
        return value == wanted, 1, len(wanted)
    if kind == "RegularExpression":
        return re.fullmatch(wanted, value) is not None, 0, len(wanted)
    prefix = wanted.rstrip("/")
    return (not prefix or value == prefix or value.startswith(prefix + "/")), 0, len(prefix)


def _http_match(match: Mapping[str, Any], request: Request) -> tuple[int, ...] | None:
    """The match's precedence when it matches the request (higher wins), else None."""
    if as_list(match.get("headers")) or as_list(match.get("queryParams")):
        return None  # the proof's requests carry no headers or query parameters
    ok, exact, length = _path_matches(as_mapping(match.get("path")), request.path)
    method = match.get("method")
    if not ok or (method and str(method).upper() != request.method):
        return None
    return (exact, length, 1 if method else 0)


def _grpc_match(match: Mapping[str, Any], request: Request) -> tuple[int, ...] | None:
    method = as_mapping(match.get("method"))
    service, name = str(method.get("service") or ""), str(method.get("method") or "")
    parts = request.path.strip("/").split("/")
    if len(parts) != 2 or (service and parts[0] != service) or (name and parts[1] != name):
        return None
    return (1 if service else 0, 1 if name else 0, 0)


def best_route(routes: list[Resource], request: Request) -> Resource | None:
    """The route a request matches, by Gateway API precedence (exact path, longest prefix,
    method), the oldest route first on a tie."""
    best: tuple[tuple[int, ...], Resource] | None = None
    for route in routes:
        grpc = route.kind == "GRPCRoute"
        for rule in as_list(route.spec.get("rules")):
            matches = [as_mapping(m) for m in as_list(as_mapping(rule).get("matches"))] or [{}]
            for match in matches:
                rank = (_grpc_match if grpc else _http_match)(match, request)
                if rank is not None and (best is None or rank > best[0]):
                    best = (rank, route)
    return best[1] if best is not None else None


def route_samples(routes: list[Resource]) -> tuple[set[str], set[str]]:
    methods: set[str] = set()
    paths: set[str] = set()
    for route in routes:
        for rule in as_list(route.spec.get("rules")):
            for match in as_list(as_mapping(rule).get("matches")):
                match = as_mapping(match)
                if match.get("method") and isinstance(match.get("method"), str):
                    methods.add(str(match["method"]))
                path = as_mapping(match.get("path"))
                if path.get("value"):
                    kind = str(path.get("type") or "PathPrefix")
                    paths.add(str(path["value"]) if kind == "Exact" else
                              sample_path(str(path["value"]),
                                          "regex" if kind == "RegularExpression"
                                          else "prefix"))
    return methods, paths


class Routes(FlowRule):
    """The route of the destination's Server a request matches. The HTTPRoutes (either API
    group; GRPCRoutes for a ``gRPC`` Server) whose parent is the Server: a request matches
    one, by Gateway API precedence, or none and gets 404. A Server without routes has the
    synthesized ``default`` route (every request) and, for HTTP, a ``probe`` route for the
    pod's ``httpGet`` probe paths on that port; attaching any route removes both, so probes
    then need a route of their own. An opaque or TLS Server has no routes.

    Follows https://linkerd.io/2-edge/features/server-policy/#default-authorizations ("If
    any HTTPRoute matches the Server, these automatic authorizations are not created"),
    https://linkerd.io/2-edge/tasks/configuring-per-route-policy/ ("the authors proxy
    rejects those requests with a 404 error"), https://linkerd.io/2-edge/reference/
    httproute/ ("If this field is not specified, a default prefix match on the "/" path is
    provided") and ``policy-controller/k8s/index/src/inbound/index.rs`` (``http_routes``:
    ``if !routes.is_empty() { return routes; }``).
    """

    name = "linkerd.Routes"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        server = facts.extra.get("server")
        if server is None or facts.server_protocol == "tcp":
            return None
        kind = "GRPCRoute" if facts.server_protocol == "grpc" else "HTTPRoute"
        routes = [r for r in view.routes.get((server.namespace, server.name), [])
                  if r.kind == kind]
        if flow.request is not None:
            requests = [flow.request]
        else:
            methods, paths = route_samples(routes)
            requests = candidate_requests(methods, paths)
        routed: list[tuple[Request, Any]] = []
        for request in requests:
            if routes:
                routed.append((request, best_route(routes, request)))
            elif kind == "HTTPRoute" and probe_path(flow, request):
                routed.append((request, PROBE))
            else:
                routed.append((request, DEFAULT))
        facts.extra["routed"] = routed
        if all(route is None for _, route in routed):
            return refused(NO_ROUTE, f"no {kind} of {server.display} matches it",
                           server.display, f"a route of {server.display} for these requests"
                           + (" (with an AuthorizationPolicy of the kubelet's networks)"
                              if flow.origin == "probe" else ""))
        return None
