"""Istio's view of a mesh state, prepared once per state: its security and networking objects
grouped where the rules look them up, and the per-workload answers memoized.

Ordering follows Istio's: among PeerAuthentications of one scope, the oldest
(``metadata.creationTimestamp``) wins, and objects without a timestamp keep their input
order (``pilot/pkg/security/authn/policy_applier.go``, ``ComposePeerAuthentication``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ....estate.callers import is_gateway
from ....estate.index import MeshIndex
from ....estate.objects import Resource, Workload, as_list, as_mapping, as_strings
from ....flows.evaluate import MeshState
from ....flows.model import Destination, Peer
from ....kube import LabelPostings, selector_matches
from ..ports import port_protocol
from .policies import CompiledPolicy, compile_policy

DRY_RUN = "istio.io/dry-run"
GATEWAY_NAME = "gateway.networking.k8s.io/gateway-name"
OLD_GATEWAY_NAME = "istio.io/gateway-name"
DOMAIN = "svc.cluster.local"


def _age(resource: Resource) -> str:
    return str(resource.metadata.get("creationTimestamp") or "")


def _by_namespace(resources: list[Resource]) -> dict[str, list[Resource]]:
    grouped: dict[str, list[Resource]] = {}
    for resource in resources:
        grouped.setdefault(resource.namespace, []).append(resource)
    for items in grouped.values():
        items.sort(key=_age)  # stable: no timestamp keeps the input order
    return grouped


class IstioView:
    def __init__(self, state: MeshState) -> None:
        index: MeshIndex = state.index
        self.index = index
        self.root = state.settings.root_namespace
        self.trust_domain = state.settings.trust_domain
        self.peer_authentications = _by_namespace(index.istio("PeerAuthentication"))
        self.destination_rules = _by_namespace(index.istio("DestinationRule"))
        self.sidecars = _by_namespace(index.istio("Sidecar"))
        self.policies = _by_namespace(index.istio("AuthorizationPolicy"))
        # VirtualServices by the (namespace, name) of each host they route
        self.virtual_services: dict[tuple[str, str], list[Resource]] = {}
        for resource in index.istio("VirtualService"):
            for host in as_list(resource.spec.get("hosts")):
                parts = str(host).split(".")
                key = (parts[1] if len(parts) > 1 else resource.namespace, parts[0])
                self.virtual_services.setdefault(key, []).append(resource)
        # HTTPRoutes and GRPCRoutes whose parent is a Service, by that Service
        self.service_routes: dict[tuple[str, str], list[Resource]] = {}
        for route in index.of_kind("HTTPRoute", "GRPCRoute"):
            for parent in as_list(route.spec.get("parentRefs")):
                parent = as_mapping(parent)
                if str(parent.get("kind")) == "Service":
                    key = (str(parent.get("namespace") or route.namespace),
                           str(parent.get("name")))
                    self.service_routes.setdefault(key, []).append(route)
        # istiod's neverInjectSelector, from the rendered values of its chart
        injector = as_mapping(as_mapping(state.install_values.get("istiod")).get(
            "sidecarInjectorWebhook"))
        self.never_inject = [as_mapping(s) for s in as_list(injector.get("neverInjectSelector"))]
        self._sidecar: dict[int, bool] = {}
        self._applied: dict[tuple[int, str], list[Resource]] = {}
        self._postings: dict[str, LabelPostings[tuple[Resource, Attachment]]] = {}
        self._compiled: dict[int, CompiledPolicy] = {}
        self._by_policies: dict[tuple[int, str], list[CompiledPolicy]] = {}
        self._policy_sets: dict[tuple[int, ...], list[CompiledPolicy]] = {}
        self.memo: dict[tuple[Any, ...], Any] = {}  # the rules' own look-ups

    # ---- proxies

    def has_sidecar(self, workload: Workload | None) -> bool:
        """The workload's pods run an Istio proxy (a sidecar, or a gateway's own Envoy)."""
        if workload is None:
            return False
        known = self._sidecar.get(id(workload))
        if known is None:
            known = self._sidecar[id(workload)] = is_gateway(workload.labels) \
                or (self.index.has_sidecar(workload) and not self._never_injected(workload))
        return known

    def _never_injected(self, workload: Workload) -> bool:
        """A pod without a marker of its own that ``neverInjectSelector`` selects is left
        out (https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/
        #more-control-adding-exceptions)."""
        return not workload.has_istio_proxy and workload.injection_override is None and any(
            selector_matches(selector, workload.labels) for selector in self.never_inject)

    def peer_proxy(self, peer: Peer) -> bool:
        if peer.proxy is not None:
            return peer.proxy
        if peer.workload is None:  # a gateway the estate shows no pod of, by its labels
            return is_gateway(dict(peer.labels))
        return self.has_sidecar(peer.workload)

    def destination_labels(self, destination: Destination) -> Mapping[str, str]:
        return destination.workload.labels if destination.workload is not None else {}

    def principal(self, namespace: str, account: str) -> str:
        return f"{self.trust_domain}/ns/{namespace}/sa/{account}"

    # ---- policies of a workload

    def authorization_policies(self, labels: Mapping[str, str], namespace: str,
                               key: int) -> list[Resource]:
        """The AuthorizationPolicies that apply to a workload's proxy, dry-run ones left
        out (``pilot/pkg/model/policyattachment.go``, ``ListAuthorizationPolicies``)."""
        found = self._applied.get((key, namespace))
        if found is None:
            found = [policy for ns in dict.fromkeys((self.root, namespace))
                     for policy, attachment in self._candidates(ns, labels)
                     if applies(policy, labels, namespace, self.root, attachment)]
            self._applied[(key, namespace)] = found
        return found

    def _candidates(self, namespace: str, labels: Mapping[str, str],
                    ) -> list[tuple[Resource, Attachment]]:
        """The enforced policies of a namespace that may select these labels, in the
        namespace's order, each with what it attaches to: those without a selector (or with
        targetRefs), and those one of whose labels the pod has."""
        postings = self._postings.get(namespace)
        if postings is None:
            postings = self._postings[namespace] = LabelPostings()
            for policy in self.policies.get(namespace, ()):
                if policy.annotations.get(DRY_RUN, "").lower() == "true":
                    continue
                attachment = attachment_of(policy)
                postings.add(attachment[1], (policy, attachment))
        return postings.candidates(labels)

    def compiled_policies(self, labels: Mapping[str, str], namespace: str,
                          key: int) -> list[CompiledPolicy]:
        """The same policies, each read once (``policies.compile_policy``). Workloads under
        the same policies get the same list, so its identity names the set."""
        found = self._by_policies.get((key, namespace))
        if found is None:
            found = []
            for policy in self.authorization_policies(labels, namespace, key):
                compiled = self._compiled.get(id(policy))
                if compiled is None:
                    compiled = self._compiled[id(policy)] = compile_policy(policy)
                found.append(compiled)
            found = self._policy_sets.setdefault(tuple(id(p) for p in found), found)
            self._by_policies[(key, namespace)] = found
        return found

    def destination_fqdn(self, destination: Destination) -> str:
        service = destination.service or destination.name
        return f"{service}.{destination.namespace}.{DOMAIN}"

    def inbound_tcp(self, destination: Destination) -> str | None:
        """The Service port that makes the destination's workload port TCP on its sidecar's
        inbound side (named, or ``appProtocol``, as a protocol that is not HTTP's), when
        every port of the Services selecting the workload that sends to it does; None when
        one of them is HTTP, or leaves the protocol to be sniffed, or none sends to it
        (sniffed too). There the HTTP fields of an AuthorizationPolicy rule do not apply."""
        if destination.workload is None:
            return None
        key = ("inbound tcp", id(destination.workload), destination.port)
        if key in self.memo:
            return self.memo[key]
        # the state's own workload of the flow's (the estate's) object, and the Services
        # selecting it there: the rendered ones too, such as a StatefulSet's -peers Service
        workload = self.index.workload_for(destination.workload.resource)
        found: str | None = None
        self.memo[key] = None
        if workload is None:
            return None
        for entry in self.index.services_selecting(workload):
            for port in entry.ports:
                target = port.get("targetPort")
                number = workload.port_number(target if target is not None
                                              else port.get("number"))
                if number != destination.port:
                    continue
                protocol = port_protocol(port)
                if protocol is None or protocol in _INBOUND_HTTP:
                    return None
                found = found or (f"{entry.resource.display} port "
                                  f"{port.get('name') or port.get('number')} ({protocol})")
        self.memo[key] = found
        return found


# what a sidecar's inbound side handles as HTTP (``ports.port_protocol``'s names)
_INBOUND_HTTP = frozenset({"http", "http2", "grpc", "grpc-web", "http_proxy"})


# An AuthorizationPolicy's targetRefs and its selector's labels, read once
Attachment = tuple[list[Mapping[str, Any]], dict[str, str]]


def attachment_of(policy: Resource) -> Attachment:
    refs = [as_mapping(r) for r in as_list(policy.spec.get("targetRefs"))]
    if policy.spec.get("targetRef"):
        refs.append(as_mapping(policy.spec.get("targetRef")))
    return refs, as_strings(as_mapping(policy.spec.get("selector")).get("matchLabels"))


def applies(policy: Resource, labels: Mapping[str, str], namespace: str, root: str,
            attachment: Attachment) -> bool:
    """Whether an AuthorizationPolicy attaches to a proxy with these labels (``attachment``:
    the policy's, ``attachment_of``).

    A policy with ``targetRef(s)`` attaches to a Gateway API gateway it names only (sidecars
    ignore it); otherwise its selector decides, and a selector-less policy selects every
    workload of its namespace, every workload of the mesh in the root namespace, and
    Gateway API gateways too (``ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY``, on by
    default)."""
    if policy.namespace not in (namespace, root):
        return False
    refs, selector = attachment
    if refs:
        gateway = labels.get(GATEWAY_NAME) or labels.get(OLD_GATEWAY_NAME)
        return gateway is not None and policy.namespace == namespace and any(
            str(r.get("kind")) == "Gateway" and str(r.get("name")) == gateway
            for r in refs)
    return all(labels.get(k) == v for k, v in selector.items())


def workload_selected(resource: Resource, labels: Mapping[str, str],
                      field: str = "selector") -> bool | None:
    """None without a selector (a namespace- or mesh-wide object); else whether it selects
    the labels (an empty ``matchLabels`` selects nothing of its own: it is namespace-wide)."""
    selector = as_strings(as_mapping(resource.spec.get(field)).get(
        "matchLabels" if field == "selector" else "labels"))
    if not selector:
        return None
    return all(labels.get(k) == v for k, v in selector.items())


def spec_list(resource: Resource, field: str) -> list[Mapping[str, Any]]:
    return [as_mapping(item) for item in as_list(resource.spec.get(field))]
