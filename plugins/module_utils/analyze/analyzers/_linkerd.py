"""Private helpers for the Linkerd analyzers: policy references, Servers and their pods."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import Resource, Workload
from ...kube import selector_matches

POLICY_GROUP = "policy.linkerd.io"
GATEWAY_GROUP = "gateway.networking.k8s.io"
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute")
# Ports every injected pod has: the proxy's admin (probes, metrics) and inbound ports.
PROXY_PORTS = {"linkerd-admin": 4191, "linkerd-proxy": 4143}


def linkerd_objects(index: MeshIndex, kind: str) -> list[Resource]:
    """Objects of a kind in Linkerd's policy API group."""
    return [r for r in index.of_kind(kind) if r.group == POLICY_GROUP]


def routes(index: MeshIndex) -> list[Resource]:
    """HTTPRoutes, GRPCRoutes, TCPRoutes and TLSRoutes, Linkerd's and Gateway API's."""
    return [r for r in index.of_kind(*ROUTE_KINDS) if r.group in (POLICY_GROUP, GATEWAY_GROUP)]


@dataclass(frozen=True)
class Ref:
    """A reference (targetRef, parentRef, backendRef, authentication ref) made absolute."""

    group: str
    kind: str
    name: str
    namespace: str
    port: Any
    path: str

    @property
    def text(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def ref(raw: Any, owner: Resource, path: str, default_kind: str = "",
        default_group: str = "") -> Ref | None:
    if not isinstance(raw, Mapping) or not raw.get("name"):
        return None
    group = raw.get("group", default_group)
    group = "" if group in (None, "core") else str(group)
    return Ref(group=group, kind=str(raw.get("kind") or default_kind), name=str(raw["name"]),
               namespace=str(raw.get("namespace") or owner.namespace), port=raw.get("port"),
               path=path)


def refs(owner: Resource, field: str, default_kind: str = "",
         default_group: str = "") -> Iterator[Ref]:
    """The references of a list field of ``spec`` (``parentRefs``, ...)."""
    values = owner.spec.get(field)
    for number, raw in enumerate(values if isinstance(values, list) else []):
        found = ref(raw, owner, f"spec.{field}[{number}]", default_kind, default_group)
        if found is not None:
            yield found


def backend_refs(route: Resource) -> Iterator[Ref]:
    """Every ``rules[].backendRefs[]`` of a route (kind Service unless named)."""
    rules = route.spec.get("rules")
    for number, rule in enumerate(rules if isinstance(rules, list) else []):
        backends = rule.get("backendRefs") if isinstance(rule, Mapping) else None
        for position, raw in enumerate(backends if isinstance(backends, list) else []):
            found = ref(raw, route, f"spec.rules[{number}].backendRefs[{position}]", "Service")
            if found is not None:
                yield found


# Labels Linkerd's proxy injector adds to every pod it injects (linkerd2
# ``pkg/inject/inject.go``; ``linkerd viz allow-scrapes`` selects meshed pods by the first).
INJECTOR_LABELS = ("linkerd.io/control-plane-ns", "linkerd.io/workload-ns")
INJECT = "linkerd.io/inject"


def will_be_injected(index: MeshIndex, workload: Workload) -> bool:
    """True when Linkerd's injector meshes the workload's pods: its pod annotation, else its
    namespace's (https://linkerd.io/2-edge/features/proxy-injection/), or a proxy already
    there."""
    if any(c.get("name") == "linkerd-proxy" for c in workload.containers):
        return True
    own = workload.annotations.get(INJECT)
    if own is not None:
        return own in ("enabled", "ingress")
    namespace = index.namespace(workload.namespace)
    return namespace is not None and namespace.annotations.get(INJECT) in ("enabled", "ingress")


def server_workloads(index: MeshIndex, server: Resource,
                     injected: bool = False) -> list[Workload]:
    """The workloads a Server's podSelector selects; with ``injected``, also those it will
    select once the injector has labelled their pods."""
    selector = server.spec.get("podSelector")
    if not isinstance(selector, Mapping):
        return []
    found = index.workloads_selected(server.namespace, selector)
    if found or not injected:
        return found
    match_labels = selector.get("matchLabels")
    wanted: Mapping[str, Any] = match_labels if isinstance(match_labels, Mapping) else {}
    return [w for w in index.workloads_in(server.namespace) if will_be_injected(index, w)
            and selector_matches(selector, {**w.labels, **{
                key: str(wanted.get(key, "injected")) for key in INJECTOR_LABELS}})]


def server_port_numbers(server: Resource, workloads: list[Workload]) -> set[int]:
    """The pod port numbers a Server's ``port`` (number or name) stands for."""
    port = server.spec.get("port")
    if isinstance(port, int):
        return {port}
    if isinstance(port, str) and port.isdigit():
        return {int(port)}
    numbers = {n for w in workloads for name, n in w.container_ports() if name == port}
    if port in PROXY_PORTS:
        numbers.add(PROXY_PORTS[str(port)])
    return numbers


# --------------------------------------------------------------------------- injection

INJECT = "linkerd.io/inject"
PROXY = "linkerd-proxy"
NATIVE_SIDECAR = ("config.beta.linkerd.io/proxy-enable-native-sidecar",
                  "config.alpha.linkerd.io/proxy-enable-native-sidecar")
# Namespaces the proxy injector is never called for (its webhook's namespaceSelector)
NEVER_INJECTED = frozenset({"kube-system", "cert-manager"})


def _injects(value: str | None) -> bool | None:
    if value in ("enabled", "ingress"):
        return True
    return False if value == "disabled" else None


def linkerd_injected(index: MeshIndex, workload: Workload) -> tuple[bool, bool]:
    """(meshed, by its own template): the pod runs Linkerd's proxy, or the proxy injector
    adds it (the pod template's ``linkerd.io/inject``, else its namespace's).
    https://linkerd.io/2-edge/features/proxy-injection/ (``disableByAnnotation`` in
    linkerd/linkerd2 pkg/inject/report.go)"""
    if any(c.get("name") == PROXY for c in (*workload.containers, *workload.init_containers)):
        return True, True
    if workload.namespace in NEVER_INJECTED or workload.host_network:
        return False, False
    # the proxy injector's objectSelector (meshstage renders inject: false into it) keeps the
    # webhook from seeing the pod at all, whatever it is annotated
    # (https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/
    # #matching-requests-objectselector)
    if any(selector_matches(selector, workload.labels) for selector in index.mesh.never_inject):
        return False, False
    own = _injects(workload.annotations.get(INJECT))
    if own is not None:
        return own, True
    namespace = index.namespace(workload.namespace)
    return bool(namespace and _injects(namespace.annotations.get(INJECT))), False


def linkerd_native(index: MeshIndex, workload: Workload) -> bool | None:
    """Whether the pod's proxy runs as a native sidecar (None: cannot be told)."""
    if any(c.get("name") == PROXY for c in workload.init_containers):
        return True
    if any(c.get("name") == PROXY for c in workload.containers):
        return False
    namespace = index.namespace(workload.namespace)
    for written in (workload.annotations, namespace.annotations if namespace else {}):
        for key in NATIVE_SIDECAR:
            value = written.get(key, "").lower()
            if value in ("true", "false"):
                return value == "true"
    return index.mesh.native_sidecars


# --------------------------------------------------------------------------- inbound policy

INBOUND_POLICY = "config.linkerd.io/default-inbound-policy"
SKIP_INBOUND = "config.linkerd.io/skip-inbound-ports"
# what each default (or Server accessPolicy) admits: (without identity, with identity);
# cluster-unauthenticated admits plaintext from the cluster networks only, which the API
# server's address may not be in (None: cannot be told)
POLICY_ADMITS: dict[str, tuple[bool | None, bool]] = {
    "all-unauthenticated": (True, True), "audit": (True, True),
    "cluster-unauthenticated": (None, True), "all-authenticated": (False, True),
    "cluster-authenticated": (False, True), "deny": (False, False),
}


def identity_of(index: MeshIndex, workload: Workload) -> str:
    """The Linkerd identity of a meshed workload's pods (control plane in ``linkerd``)."""
    return (f"{workload.service_account}.{workload.namespace}.serviceaccount.identity."
            f"linkerd.{index.mesh.trust_domain}")


def default_policy(index: MeshIndex, workload: Workload) -> tuple[str | None, Resource | None]:
    """The default inbound policy of the workload's pods and the object that sets it (the
    pod template's annotation, else its namespace's; None: the cluster's, not in the input)."""
    own = workload.annotations.get(INBOUND_POLICY)
    if own:
        return own, workload.resource
    namespace = index.namespace(workload.namespace)
    if namespace is not None and namespace.annotations.get(INBOUND_POLICY):
        return namespace.annotations[INBOUND_POLICY], namespace
    return None, None


def server_of(index: MeshIndex, workload: Workload, port: int) -> Resource | None:
    """The Server that selects the workload's port, if any."""
    for server in linkerd_objects(index, "Server"):
        if server.namespace != workload.namespace:
            continue
        selected = server_workloads(index, server)
        if workload in selected and port in server_port_numbers(server, selected):
            return server
    return None


def _identity_matches(patterns: list[str], identity: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == identity or (
                pattern.startswith("*.") and identity.endswith(pattern[1:])):
            return True
    return False


def _authentication_admits(index: MeshIndex, policy: Resource,
                           identity: str | None) -> bool | None:
    """Whether every authentication an AuthorizationPolicy requires admits the caller."""
    results: list[bool | None] = []
    td = index.mesh.trust_domain
    for needed in refs(policy, "requiredAuthenticationRefs"):
        if needed.kind == "NetworkAuthentication":
            results.append(True if index.get("NetworkAuthentication", needed.namespace,
                                              needed.name) else False)
        elif needed.kind == "ServiceAccount":
            results.append(identity == f"{needed.name}.{needed.namespace}.serviceaccount."
                                       f"identity.linkerd.{td}")
        elif needed.kind == "MeshTLSAuthentication":
            authn = index.get("MeshTLSAuthentication", needed.namespace, needed.name)
            if authn is None or identity is None:
                results.append(False)
                continue
            patterns = [str(i) for i in authn.spec.get("identities") or []]
            for item in authn.spec.get("identityRefs") or []:
                if not isinstance(item, Mapping):
                    continue
                namespace = str(item.get("namespace") or authn.namespace)
                if item.get("kind") == "Namespace":
                    patterns.append(f"*.{item.get('name')}.serviceaccount.identity.linkerd.{td}")
                else:
                    patterns.append(f"{item.get('name')}.{namespace}.serviceaccount.identity."
                                    f"linkerd.{td}")
            results.append(_identity_matches(patterns, identity))
        else:
            results.append(None)
    if not results:
        return True
    return False if False in results else (None if None in results else True)


def admits(index: MeshIndex, workload: Workload, port: int, identity: str | None,
           route_admits: Any = None) -> tuple[bool | None, Resource | None]:
    """Whether a caller (``identity`` None: plaintext, no identity) gets through the
    inbound policy of the workload's port, and the object that decides when it does not:
    the Server selecting the port (its accessPolicy and the policies on it, its namespace
    or its routes), else the default inbound policy.
    https://linkerd.io/2-edge/reference/authorization-policy/. ``route_admits(route)``
    tells whether the request can match a route (None: any may)."""
    server = server_of(index, workload, port)
    if server is None:
        policy, source = default_policy(index, workload)
        plain, meshed = POLICY_ADMITS.get(policy or "all-unauthenticated", (None, True))
        verdict = meshed if identity else plain
        return verdict, source if verdict is False else None
    plain, meshed = POLICY_ADMITS.get(str(server.spec.get("accessPolicy") or "deny"),
                                      (False, False))
    if (meshed if identity else plain) is True:
        return True, None
    routes_of = {r.name for r in routes(index) if any(
        p.kind == "Server" and p.name == server.name and p.namespace == server.namespace
        for p in refs(r, "parentRefs"))}
    results: list[bool | None] = []
    for authorization_policy in linkerd_objects(index, "AuthorizationPolicy"):
        target = ref(authorization_policy.spec.get("targetRef"), authorization_policy,
                     "spec.targetRef")
        if target is None or target.namespace != server.namespace:
            continue
        on_server = (target.kind == "Server" and target.name == server.name) or (
            target.kind == "Namespace" and target.name == server.namespace)
        on_route = target.kind in ROUTE_KINDS and target.name in routes_of
        if not (on_server or on_route):
            continue
        found = _authentication_admits(index, authorization_policy, identity)
        if on_route and found is True and route_admits is not None:
            route = index.get(target.kind, target.namespace, target.name)
            found = route_admits(route) if route is not None else None
        results.append(found)
    for authorization in index.of_kind("ServerAuthorization"):
        wanted = authorization.spec.get("server")
        client = authorization.spec.get("client")
        if authorization.namespace != server.namespace or not isinstance(wanted, Mapping) \
                or not isinstance(client, Mapping):
            continue
        if wanted.get("name") not in (None, server.name) or (
                not wanted.get("name") and not wanted.get("selector")):
            continue
        results.append(True if client.get("unauthenticated") is True else
                       (identity is not None) if client.get("meshTLS") is not None else None)
    if True in results:
        return True, None
    return (None, None) if None in results else (False, server)
