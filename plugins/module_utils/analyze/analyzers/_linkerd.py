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
