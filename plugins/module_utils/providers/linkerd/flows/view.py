"""Linkerd's view of a mesh state: its policy objects grouped where the rules look them up,
the control plane's settings from the rendered Helm values (their chart defaults otherwise),
and each workload's injection memoized.

Defaults are the chart's (``charts/linkerd-control-plane/values.yaml``):
``proxy.defaultInboundPolicy: all-unauthenticated``, ``clusterNetworks`` the private ranges,
``policyController.probeNetworks: [0.0.0.0/0]``, ``proxy.opaquePorts``,
``proxyInit.ignoreInboundPorts: 4567,4568``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from ....estate.objects import Resource, Workload, as_list, as_mapping, as_strings
from ....flows.evaluate import MeshState
from ....flows.model import Flow, Peer, Request
from ....kube import selector_matches

POLICY = "policy.linkerd.io"
GATEWAY = "gateway.networking.k8s.io"
CLUSTER_NETWORKS = ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16")
OPAQUE_PORTS = "25,587,3306,4444,5432,6379,9300,11211"
IGNORED_INBOUND = "4567,4568"
PROXY_PORTS = (("linkerd-proxy", 4143), ("linkerd-admin", 4191))
NEVER_INJECTED = ("kube-system", "cert-manager")


def ports_of(text: str) -> set[int]:
    """``"25,587,4000-4010"``: a Linkerd port list with ranges."""
    found: set[int] = set()
    for part in str(text or "").split(","):
        part = part.strip()
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            found.update(range(int(low), int(high or low) + 1))
    return found


def _networks(value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        return tuple(n.strip() for n in value.split(",") if n.strip())
    if isinstance(value, list) and value:
        return tuple(str(n) for n in value)
    return default


class LinkerdView:
    def __init__(self, state: MeshState) -> None:
        index = state.index
        self.index = index
        values = as_mapping(state.install_values.get("linkerd-control-plane"))
        proxy = as_mapping(values.get("proxy"))
        self.default_policy = str(proxy.get("defaultInboundPolicy") or "all-unauthenticated")
        self.cluster_networks = _networks(values.get("clusterNetworks"), CLUSTER_NETWORKS)
        self.probe_networks = _networks(as_mapping(values.get("policyController"))
                                        .get("probeNetworks"), ("0.0.0.0/0", "::/0"))
        self.opaque_ports = str(proxy.get("opaquePorts") or OPAQUE_PORTS)
        self.ignored_inbound = str(as_mapping(values.get("proxyInit")).get(
            "ignoreInboundPorts") or IGNORED_INBOUND)
        injector = as_mapping(values.get("proxyInjector"))
        self.object_selector = as_mapping(injector.get("objectSelector")) or {
            "matchExpressions": [{"key": "linkerd.io/control-plane-component",
                                  "operator": "DoesNotExist"}]}
        self.namespace_selector = as_mapping(injector.get("namespaceSelector")) or None
        self.control_plane = state.settings.linkerd_namespace
        self.domain = str(values.get("identityTrustDomain") or state.settings.trust_domain)
        policy = [r for r in index.of_kind(
            "Server", "AuthorizationPolicy", "ServerAuthorization", "MeshTLSAuthentication",
            "NetworkAuthentication") if r.group == POLICY]
        self.servers: dict[str, list[Resource]] = {}
        self.policies: dict[str, list[Resource]] = {}
        self.server_authorizations: dict[str, list[Resource]] = {}
        self.authentications: dict[tuple[str, str, str], Resource] = {}
        for resource in policy:
            if resource.kind == "Server":
                self.servers.setdefault(resource.namespace, []).append(resource)
            elif resource.kind == "AuthorizationPolicy":
                self.policies.setdefault(resource.namespace, []).append(resource)
            elif resource.kind == "ServerAuthorization":
                self.server_authorizations.setdefault(resource.namespace, []).append(resource)
            else:
                self.authentications[(resource.kind, resource.namespace, resource.name)] = \
                    resource
        self.routes: dict[tuple[str, str], list[Resource]] = {}
        self.service_routes: dict[tuple[str, str], list[Resource]] = {}
        for route in index.of_kind("HTTPRoute", "GRPCRoute"):
            if route.group not in (POLICY, GATEWAY):
                continue
            for parent in as_list(route.spec.get("parentRefs")):
                parent = as_mapping(parent)
                kind, name = str(parent.get("kind") or ""), str(parent.get("name"))
                namespace = str(parent.get("namespace") or route.namespace)
                if kind == "Server" and namespace == route.namespace:
                    self.routes.setdefault((namespace, name), []).append(route)
                elif kind == "Service":
                    self.service_routes.setdefault((namespace, name), []).append(route)
        self._meshed: dict[int, bool] = {}
        self.memo: dict[tuple[Any, ...], Any] = {}  # the rules' own look-ups

    # ---- injection

    def namespace_annotations(self, namespace: str) -> Mapping[str, str]:
        found = self.index.namespace(namespace)
        return found.annotations if found is not None else {}

    def meshed(self, workload: Workload | None) -> bool:
        if workload is None:
            return False
        known = self._meshed.get(id(workload))
        if known is None:
            known = self._meshed[id(workload)] = self._injected(workload)
        return known

    def _injected(self, workload: Workload) -> bool:
        if any(c.get("name") == "linkerd-proxy" for c in workload.containers) or any(
                c.get("name") == "linkerd-proxy" for c in workload.init_containers):
            return True
        namespace = workload.namespace
        if workload.host_network or namespace in NEVER_INJECTED:
            return False
        found = self.index.namespace(namespace)
        labels = {**(found.labels if found is not None else {}),
                  "kubernetes.io/metadata.name": namespace}
        if self.namespace_selector is not None and not selector_matches(
                self.namespace_selector, labels):
            return False
        if labels.get("config.linkerd.io/admission-webhooks") == "disabled":
            return False
        own = workload.annotations.get("linkerd.io/inject")
        wanted = own if own else self.namespace_annotations(namespace).get("linkerd.io/inject")
        if wanted not in ("enabled", "ingress"):
            return False
        return selector_matches(self.object_selector, workload.labels)

    def peer_meshed(self, peer: Peer) -> bool:
        return peer.proxy if peer.proxy is not None else self.meshed(peer.workload)

    def identity(self, namespace: str, account: str) -> str:
        return f"{account}.{namespace}.serviceaccount.identity.{self.control_plane}.{self.domain}"

    def pod_labels(self, workload: Workload) -> dict[str, str]:
        """A meshed pod's labels, with those the injector adds."""
        return {**workload.labels, "linkerd.io/control-plane-ns": self.control_plane,
                "linkerd.io/workload-ns": workload.namespace}

    def pod_annotation(self, workload: Workload, name: str) -> str | None:
        """A pod's config annotation: its own, else its namespace's (the injector copies
        namespace config annotations onto the pods it injects)."""
        own = workload.annotations.get(name)
        return own if own is not None else self.namespace_annotations(
            workload.namespace).get(name)

    # ---- addresses

    def in_networks(self, address: str | None, networks: Any) -> bool:
        """Whether a source is in one of ``networks`` (``[{cidr, except}]`` or strings). An
        address is known for plain hosts; a pod's, the kubelet's or a gateway's is some
        address of the cluster networks, a client outside the cluster one outside them."""
        entries = [as_mapping(n) if isinstance(n, Mapping) else {"cidr": n}
                   for n in as_list(networks)]
        for entry in entries:
            try:
                cidr = ipaddress.ip_network(str(entry.get("cidr")), strict=False)
            except ValueError:
                continue
            if address == "outside":
                if cidr.prefixlen == 0:
                    return True
                continue
            if address not in (None, "cluster"):
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    ip = None
                if ip is not None:
                    if ip in cidr and not any(ip in ipaddress.ip_network(str(e), strict=False)
                                              for e in as_list(entry.get("except"))):
                        return True
                    continue
            if any(cidr.overlaps(ipaddress.ip_network(c, strict=False))
                   for c in self.cluster_networks
                   if ipaddress.ip_network(c, strict=False).version == cidr.version):
                return True
        return False


def probe_path(flow: Flow, request: Request) -> bool:
    """Whether a request is an httpGet probe of the destination pod on the flow's port: a
    probe the pod declares, or the flow's own (a probe flow is one the pod makes)."""
    if request.method != "GET":
        return False
    if flow.origin == "probe" and flow.protocol == "http" and flow.request == request:
        return True
    workload = flow.destination.workload
    return workload is not None and any(
        p.action == "httpGet" and p.port == flow.destination.port
        and (p.path or "/").split("?")[0] == request.path for p in workload.probes())


def selector_of(resource: Resource, field: str = "podSelector") -> Mapping[str, Any]:
    return as_mapping(resource.spec.get(field))


def server_port_matches(server: Resource, port: int, named: Mapping[str, int]) -> bool:
    wanted = server.spec.get("port")
    if isinstance(wanted, int):
        return wanted == port
    return named.get(str(wanted)) == port


def container_port_names(workload: Workload, meshed: bool) -> dict[str, int]:
    names = {name: number for name, number in workload.container_ports() if name}
    if meshed:
        names.update(dict(PROXY_PORTS))
    return names


def strings(value: Any) -> dict[str, str]:
    return as_strings(value)
