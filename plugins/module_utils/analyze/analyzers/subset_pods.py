"""destinationrule.SubsetSelectPodAnalyzer: DestinationRule hosts and subsets without pods."""

from __future__ import annotations

from collections.abc import Mapping

from ...estate.hosts import HostEntry, to_fqdn
from ...estate.index import MeshIndex
from ...estate.objects import Workload
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
        nodes = {node.name: node.labels for node in index.of_kind("Node")}
        endpoints: dict[Workload, dict[str, str]] = {}
        unchecked = False
        unknown: set[str] = set()
        for rule in rules:
            host = str(rule.spec.get("host") or "")
            entry = index.resolve_host(rule.namespace, host,
                                       string_list(rule.spec.get("exportTo")))
            if entry is None and not index.knows_host(rule.namespace, host):
                unknown.add(to_fqdn(rule.namespace, host))
                continue
            if entry is None:
                yield self.finding(rule, "IST0174", f"The host {host} of this DestinationRule "
                                   "matches no service in the mesh.", "spec.host")
                continue
            subsets = rule.spec.get("subsets")
            if not isinstance(subsets, list) or not subsets:
                continue
            static = [] if entry.is_service or entry.selector else _static_endpoints(entry)
            if not static and not entry.is_service and not entry.selector:
                continue  # a ServiceEntry without endpoints or selector: nothing to match
            if not static and not index.knows_workloads():
                unchecked = True
                continue
            candidates = index.workloads_matching(entry.resource.namespace, entry.selector)
            for number, subset in enumerate(subsets):
                if not isinstance(subset, Mapping):
                    continue
                wanted = {**entry.selector, **{str(k): str(v) for k, v in
                                               (subset.get("labels") or {}).items()}}
                selected = any(all(labels.get(k) == v for k, v in wanted.items())
                               for labels in static)
                for workload in [] if static else candidates:
                    labels = endpoints.get(workload)
                    if labels is None:
                        labels = endpoints[workload] = _endpoint_labels(workload, nodes)
                    if all(labels.get(k) == v for k, v in wanted.items()):
                        selected = True
                        break
                if not selected:
                    yield self.finding(rule, "IST0173", f"The subset {subset.get('name')} of "
                                       "this DestinationRule selects no pod: requests routed "
                                       "to it fail with 503 (no healthy upstream).",
                                       f"spec.subsets[{number}]")
        if unknown:
            yield self.unchecked("DestinationRule hosts", "no Service or ServiceEntry in the "
                                 "input for " + some(unknown))
        if unchecked:
            yield self.unchecked("DestinationRule subsets", "no pod or workload in the input")
