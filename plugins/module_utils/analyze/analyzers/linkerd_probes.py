"""MST0205: Linkerd default deny that refuses the kubelet's health probes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._linkerd import linkerd_objects, ref, refs, routes, server_port_numbers, server_workloads
from ._probes import port_number, probes

_OPEN = {"all-unauthenticated", "cluster-unauthenticated", "audit"}


_Target = tuple[str, str, str]  # (kind, namespace, name) of an authorization's target


def _attached_http_routes(index: MeshIndex) -> dict[Resource, list[Resource]]:
    """Each Server's HTTPRoutes: the routes whose parentRefs name it."""
    attached: dict[Resource, list[Resource]] = {}
    for route in routes(index):
        if route.kind != "HTTPRoute":
            continue
        for parent in refs(route, "parentRefs"):
            server = index.get("Server", parent.namespace, parent.name) \
                if parent.kind == "Server" else None
            if server is not None:
                attached.setdefault(server, []).append(route)
    return attached


def _network_authorized(index: MeshIndex) -> set[_Target]:
    """The targets whose authorization admits unauthenticated network clients, such as the
    kubelet: those of an AuthorizationPolicy requiring a NetworkAuthentication, and the
    Servers of a ServerAuthorization with ``unauthenticated: true``."""
    authorized: set[_Target] = set()
    for policy in linkerd_objects(index, "AuthorizationPolicy"):
        target = ref(policy.spec.get("targetRef"), policy, "spec.targetRef")
        if target is not None and any(a.kind == "NetworkAuthentication"
                                      for a in refs(policy, "requiredAuthenticationRefs")):
            authorized.add((target.kind, target.namespace, target.name))
    for authorization in index.of_kind("ServerAuthorization"):
        client = authorization.spec.get("client")
        server = authorization.spec.get("server")
        if isinstance(client, Mapping) and client.get("unauthenticated") is True \
                and isinstance(server, Mapping) and server.get("name"):
            authorized.add(("Server", authorization.namespace, str(server["name"])))
    return authorized


def _admits_unauthenticated(server: Resource, authorized: set[_Target]) -> bool:
    """True when the whole Server (or its namespace) admits clients from the network: its
    ``accessPolicy`` is open, or a network authorization targets it or its namespace."""
    return server.spec.get("accessPolicy") in _OPEN \
        or ("Server", server.namespace, server.name) in authorized \
        or ("Namespace", server.namespace, server.namespace) in authorized


def _probe_authorized(path: str, server_routes: list[Resource],
                      authorized: set[_Target]) -> bool:
    """True when a route of the Server matching ``GET path`` is authorized from the network."""
    return any(_route_matches(route, path)
               and ("HTTPRoute", route.namespace, route.name) in authorized
               for route in server_routes)


def _route_matches(route: Resource, path: str) -> bool:
    """True when some rule of an HTTPRoute matches ``GET path`` (no matches: every path)."""
    rules = route.spec.get("rules")
    for rule in rules if isinstance(rules, list) else []:
        matches = rule.get("matches") if isinstance(rule, Mapping) else None
        if not matches:
            return True
        for match in matches if isinstance(matches, list) else []:
            if _match(match, path):
                return True
    return False


def _match(match: Any, path: str) -> bool:
    if not isinstance(match, Mapping):
        return False
    if match.get("method") not in (None, "GET") or match.get("headers") or match.get(
            "queryParams"):
        return False
    found = match.get("path")
    wanted: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    value = str(wanted.get("value") or "/")
    kind = wanted.get("type") or "PathPrefix"
    if kind == "Exact":
        return path == value
    if kind == "PathPrefix":
        prefix = value.rstrip("/")
        return path == prefix or path.startswith(prefix + "/") or value == "/"
    return False  # RegularExpression: not judged


class LinkerdProbesAnalyzer(Analyzer):
    """Pods whose health probes Linkerd will refuse: the probe's port has a Server with
    HTTPRoutes, which replace Linkerd's default probe authorization, and no route matching
    ``GET <probe path>`` is authorized by a NetworkAuthentication (nor is the Server
    opened to unauthenticated clients, by its ``accessPolicy``, an AuthorizationPolicy on
    the Server with a NetworkAuthentication, or a ServerAuthorization with
    ``unauthenticated: true``). The kubelet's probes then fail and the pods never become
    ready. Add an HTTPRoute for the probe path and authorize it from the cluster network.

    Fails with MST0205::

        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: authors-server, namespace: booksapp}
        spec: {podSelector: {matchLabels: {app: authors}}, port: service}
        ---
        apiVersion: policy.linkerd.io/v1beta3
        kind: HTTPRoute
        metadata: {name: authors-get-route, namespace: booksapp}
        spec:
          parentRefs: [{name: authors-server, kind: Server, group: policy.linkerd.io}]
          rules: [{matches: [{path: {value: /authors.json}, method: GET}]}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: authors, namespace: booksapp}
        spec:
          selector: {matchLabels: {app: authors}}
          template:
            metadata: {labels: {app: authors}}
            spec:
              containers:
              - name: service
                image: booksapp
                ports: [{name: service, containerPort: 7001}]
                readinessProbe: {httpGet: {path: /ping, port: 7001}}

    Passes::

        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: authors-server, namespace: booksapp}
        spec: {podSelector: {matchLabels: {app: authors}}, port: service}
        ---
        apiVersion: policy.linkerd.io/v1beta3
        kind: HTTPRoute
        metadata: {name: authors-get-route, namespace: booksapp}
        spec:
          parentRefs: [{name: authors-server, kind: Server, group: policy.linkerd.io}]
          rules: [{matches: [{path: {value: /authors.json}, method: GET}]}]
        ---
        apiVersion: policy.linkerd.io/v1beta3
        kind: HTTPRoute
        metadata: {name: authors-probe-route, namespace: booksapp}
        spec:
          parentRefs: [{name: authors-server, kind: Server, group: policy.linkerd.io}]
          rules: [{matches: [{path: {value: /ping}, method: GET}]}]
        ---
        apiVersion: policy.linkerd.io/v1alpha1
        kind: NetworkAuthentication
        metadata: {name: authors-probe-authn, namespace: booksapp}
        spec: {networks: [{cidr: 0.0.0.0/0}, {cidr: "::/0"}]}
        ---
        apiVersion: policy.linkerd.io/v1alpha1
        kind: AuthorizationPolicy
        metadata: {name: authors-probe-policy, namespace: booksapp}
        spec:
          targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: authors-probe-route}
          requiredAuthenticationRefs:
          - {name: authors-probe-authn, kind: NetworkAuthentication, group: policy.linkerd.io}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: authors, namespace: booksapp}
        spec:
          selector: {matchLabels: {app: authors}}
          template:
            metadata: {labels: {app: authors}}
            spec:
              containers:
              - name: service
                image: booksapp
                ports: [{name: service, containerPort: 7001}]
                readinessProbe: {httpGet: {path: /ping, port: 7001}}
    """

    name = "linkerd.ProbesAnalyzer"
    provider = "linkerd"
    codes = {"MST0205": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        servers = linkerd_objects(index, "Server")
        if not servers:
            return
        attached = _attached_http_routes(index)
        authorized = _network_authorized(index)
        for server in servers:
            server_routes = attached.get(server)
            if server_routes and not _admits_unauthenticated(server, authorized):
                yield from self._refused_probes(index, server, server_routes, authorized)

    def _refused_probes(self, index: MeshIndex, server: Resource, server_routes: list[Resource],
                        authorized: set[_Target]) -> Results:
        """One finding per workload of the Server with an HTTP probe on the Server's port
        that no route authorized from the network admits (the first such probe)."""
        workloads = server_workloads(index, server)
        numbers = server_port_numbers(server, workloads)
        for workload in workloads:
            for probe in probes(workload):
                if probe.handler != "httpGet" or port_number(workload,
                                                             probe.port) not in numbers:
                    continue
                if _probe_authorized(probe.path, server_routes, authorized):
                    continue
                yield self.finding(
                    server, "MST0205", f"The {probe.kind} of {workload.resource.display} "
                    f"(GET {probe.path} on port {probe.port}) will be refused: this "
                    "Server has HTTPRoutes, so Linkerd no longer authorizes probes by "
                    "default; add an HTTPRoute for the path, authorized by a "
                    "NetworkAuthentication.")
                break
