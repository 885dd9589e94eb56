"""virtualservice.DestinationRuleAnalyzer: routes to subsets no DestinationRule defines."""

from __future__ import annotations

from ...estate.hosts import to_fqdn
from ...estate.index import MeshIndex
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._routes import route_destinations


class DestinationRuleAnalyzer(Analyzer):
    """VirtualService destinations (routes and mirrors) that name a subset no DestinationRule
    for that host defines: requests to it fail with 503 (NR). The host of each side is
    resolved in its own namespace.

    Fails with IST0101::

        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http: [{route: [{destination: {host: reviews, subset: v3}}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          host: reviews
          subsets: [{name: v1, labels: {version: v1}}]

    Passes::

        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http: [{route: [{destination: {host: reviews.bookinfo.svc.cluster.local,
                                         subset: v1}}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          host: reviews
          subsets: [{name: v1, labels: {version: v1}}]
    """

    name = "virtualservice.DestinationRuleAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0101": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        services = index.istio("VirtualService")
        if not services:
            return
        subsets: set[tuple[str, str]] = set()
        for rule in index.istio("DestinationRule"):
            host = to_fqdn(rule.namespace, str(rule.spec.get("host") or ""))
            for subset in rule.spec.get("subsets") or []:
                if isinstance(subset, dict):
                    subsets.add((host, str(subset.get("name"))))
        checked = False
        for virtual_service in services:
            for destination in route_destinations(virtual_service):
                if not destination.subset:
                    continue
                if not index.knows("DestinationRule"):
                    checked = True
                    continue
                host = to_fqdn(virtual_service.namespace, destination.host)
                if (host, destination.subset) not in subsets:
                    what = "mirror+subset" if destination.mirror else "host+subset"
                    yield self.finding(virtual_service, "IST0101", f"Referenced {what} in "
                                       "destinationrule not found: "
                                       f"'{destination.host}+{destination.subset}'.",
                                       destination.path + ".subset")
        if checked:
            yield self.unchecked("VirtualService destination subsets",
                                 "no DestinationRule in the input")
