"""destinationrule.SubsetSelectPodAnalyzer: DestinationRule hosts and subsets without pods."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...estate.hosts import HostEntry, to_fqdn
from ...estate.index import MeshIndex
from ...estate.objects import Resource, Workload
from ..analyzer import Analyzer, Results, some
from ..finding import Level
from ._routes import string_list

_TOPOLOGY = ("topology.kubernetes.io/region", "topology.kubernetes.io/zone",
             "topology.istio.io/subzone")


def _endpoint_labels(workload: Workload, nodes: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """A pod's labels as Istio's registry sees them: with its node's locality labels and
    hostname added (empty locality labels are not)."""
    labels = dict(workload.labels)
    node_name = workload.pod_spec.get("nodeName")
    node = nodes.get(str(node_name)) if node_name else None
    if node is not None:
        for key in _TOPOLOGY:
            if node.get(key):
                labels[key] = node[key]
        labels["kubernetes.io/hostname"] = str(node_name)
    return labels


def _static_endpoints(entry: HostEntry) -> list[dict[str, str]]:
    """The labels of a ServiceEntry's own ``endpoints``."""
    endpoints = entry.resource.spec.get("endpoints")
    return [{str(k): str(v) for k, v in (e.get("labels") or {}).items()}
            for e in (endpoints if isinstance(endpoints, list) else [])
            if isinstance(e, Mapping)]


class _EndpointLabels:
    """Pods' labels as Istio's registry sees them (``_endpoint_labels``), computed once per
    pod."""

    def __init__(self, nodes: Mapping[str, Mapping[str, str]]) -> None:
        self._nodes = nodes
        self._labels: dict[Workload, dict[str, str]] = {}

    def of(self, workload: Workload) -> dict[str, str]:
        labels = self._labels.get(workload)
        if labels is None:
            labels = self._labels[workload] = _endpoint_labels(workload, self._nodes)
        return labels


def _subsets(rule: Resource) -> list[Any]:
    subsets = rule.spec.get("subsets")
    return subsets if isinstance(subsets, list) else []


def _selects_pods(entry: HostEntry) -> bool:
    """True when the host's endpoints are pods (a Service, or a ServiceEntry with a
    workloadSelector), not a ServiceEntry's own ``endpoints``."""
    return entry.is_service or bool(entry.selector)


def _any_has_labels(label_sets: Iterable[Mapping[str, str]], wanted: Mapping[str, str]) -> bool:
    return any(all(labels.get(k) == v for k, v in wanted.items()) for labels in label_sets)


class SubsetSelectPodAnalyzer(Analyzer):
    """DestinationRules whose host is no Service or ServiceEntry in the mesh (Warning), and
    subsets whose labels, added to the Service's selector, select no pod: requests routed to
    such a subset fail with 503 (no healthy upstream). A pod's node locality labels count as
    its labels, as in Istio's registry.

    Fails with IST0173::

        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          host: reviews
          subsets: [{name: v3, labels: {version: v3}}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews, version: v1}}
        spec: {containers: [{name: reviews, image: reviews}]}

    Fails with IST0174::

        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviewz, namespace: bookinfo}
        spec: {host: reviewz, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}

    Passes::

        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          host: reviews
          subsets: [{name: v1, labels: {version: v1}}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews, version: v1}}
        spec: {containers: [{name: reviews, image: reviews}]}
    """

    name = "destinationrule.SubsetSelectPodAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0173": Level.ERROR, "IST0174": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        rules = index.istio("DestinationRule")
        if not rules:
            return
        pods = _EndpointLabels({node.name: node.labels for node in index.of_kind("Node")})
        unchecked = False
        unknown: set[str] = set()
        for rule in rules:
            host = str(rule.spec.get("host") or "")
            entry = index.resolve_host(rule.namespace, host,
                                       string_list(rule.spec.get("exportTo")))
            if entry is None and not index.knows_host(rule.namespace, host):
                unknown.add(to_fqdn(rule.namespace, host))
            elif entry is None:
                yield self.finding(rule, "IST0174", f"The host {host} of this DestinationRule "
                                   "matches no service in the mesh.", "spec.host")
            elif _subsets(rule) and _selects_pods(entry) and not index.knows_workloads():
                unchecked = True
            else:
                yield from self._empty_subsets(index, rule, entry, pods)
        if unknown:
            yield self.unchecked("DestinationRule hosts", "no Service or ServiceEntry in the "
                                 "input for " + some(unknown))
        if unchecked:
            yield self.unchecked("DestinationRule subsets", "no pod or workload in the input")

    def _empty_subsets(self, index: MeshIndex, rule: Resource, entry: HostEntry,
                       pods: _EndpointLabels) -> Results:
        """The subsets of a DestinationRule whose labels, added to the host's selector, match
        none of its endpoints: the pods the host selects, else a ServiceEntry's own endpoints."""
        subsets = _subsets(rule)
        if not subsets:
            return
        if _selects_pods(entry):
            static: list[dict[str, str]] = []
            candidates = index.workloads_matching(entry.resource.namespace, entry.selector)
        else:
            static, candidates = _static_endpoints(entry), []
            if not static:
                return  # a ServiceEntry without endpoints or selector: nothing to match
        for number, subset in enumerate(subsets):
            if not isinstance(subset, Mapping):
                continue
            wanted = {**entry.selector, **{str(k): str(v) for k, v in
                                           (subset.get("labels") or {}).items()}}
            if not _any_has_labels(static or map(pods.of, candidates), wanted):
                yield self.finding(rule, "IST0173", f"The subset {subset.get('name')} of "
                                   "this DestinationRule selects no pod: requests routed "
                                   "to it fail with 503 (no healthy upstream).",
                                   f"spec.subsets[{number}]")
