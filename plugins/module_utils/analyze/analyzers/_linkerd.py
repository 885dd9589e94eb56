"""Private helpers for the Linkerd analyzers: policy references, Servers and their pods."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import Resource, Workload

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


def server_workloads(index: MeshIndex, server: Resource) -> list[Workload]:
    selector = server.spec.get("podSelector")
    if not isinstance(selector, Mapping):
        return []
    return index.workloads_selected(server.namespace, selector)


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
