"""virtualservice.DestinationHostAnalyzer: routes to hosts or ports that do not exist."""

from __future__ import annotations

from ...estate.hosts import to_fqdn
from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ..analyzer import Analyzer, Results, some
from ..finding import Level
from ._routes import Destination, gateways, route_destinations, string_list


class DestinationHostAnalyzer(Analyzer):
    """VirtualService destinations (routes and mirrors) whose host is no Service or
    ServiceEntry visible from the VirtualService's namespace (short names are resolved in
    that namespace; ``exportTo`` of Services, ServiceEntries and the VirtualService itself is
    honoured), whose port the host does not expose, or that give no port for a host with
    several. Also, on a gateway's VirtualService, a destination without a subset while the
    mesh's VirtualService for that host routes by subset: the ingress traffic skips the
    subsets (IST0140).

    Fails with IST0101::

        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http: [{route: [{destination: {host: reviewz}}]}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}

    Fails with IST0112::

        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http: [{route: [{destination: {host: reviews}}]}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          selector: {app: reviews}
          ports: [{name: http, port: 9080}, {name: http-admin, port: 9090}]

    Fails with IST0140::

        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews-ingress, namespace: bookinfo}
        spec:
          hosts: [reviews.example.com]
          gateways: [istio-system/ingress]
          http: [{route: [{destination: {host: reviews}}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http: [{route: [{destination: {host: reviews, subset: v1}}]}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}

    Passes::

        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http: [{route: [{destination: {host: reviews.bookinfo.svc.cluster.local}}]}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
    """

    name = "virtualservice.DestinationHostAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0101": Level.ERROR, "IST0112": Level.ERROR, "IST0140": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        services = index.istio("VirtualService")
        if not services:
            return
        unknown: set[str] = set()
        for virtual_service in services:
            yield from self._hosts(index, virtual_service, unknown)
        if unknown:
            yield self.unchecked("VirtualService destination hosts", "no Service or "
                                 "ServiceEntry in the input for " + some(unknown))
        yield from self._ingress_subsets(services)

    def _hosts(self, index: MeshIndex, virtual_service: Resource, unknown: set[str]) -> Results:
        export_to = string_list(virtual_service.spec.get("exportTo"))
        for destination in route_destinations(virtual_service):
            entry = index.resolve_host(virtual_service.namespace, destination.host, export_to)
            what = "mirror host" if destination.mirror else "host"
            if entry is None and not index.knows_host(virtual_service.namespace,
                                                      destination.host):
                unknown.add(to_fqdn(virtual_service.namespace, destination.host))
                continue
            if entry is None:
                yield self.finding(virtual_service, "IST0101", f"Referenced {what} not found: "
                                   f"{destination.host!r}.", destination.path + ".host")
                continue
            numbers = [p.get("number") for p in entry.ports]
            if destination.port is None:
                if len(numbers) > 1:
                    yield self.finding(
                        virtual_service, "IST0112", f"This VirtualService routes to "
                        f"{destination.host!r}, which exposes several ports "
                        f"{sorted(n for n in numbers if isinstance(n, int))}: name the port "
                        "in the destination.", destination.path)
            elif destination.port not in numbers:
                yield self.finding(virtual_service, "IST0101", f"Referenced {what}:port not "
                                   f"found: '{destination.host}:{destination.port}'.",
                                   destination.path + ".port.number")

    def _ingress_subsets(self, services: list[Resource]) -> Results:
        by_subset_host: dict[str, list[Resource]] = {}
        for virtual_service in services:
            hosts = set(string_list(virtual_service.spec.get("hosts")))
            for destination in route_destinations(virtual_service):
                if (destination.route_kind == "http" and not destination.mirror
                        and destination.subset and destination.host in hosts):
                    by_subset_host.setdefault(destination.host, []).append(virtual_service)
        for virtual_service in services:
            if not gateways(virtual_service):
                continue
            for destination in route_destinations(virtual_service):
                if not self._skips_subsets(destination):
                    continue
                for owner in by_subset_host.get(destination.host, []):
                    yield self.finding(
                        virtual_service, "IST0140", f"The subsets of VirtualService "
                        f"{owner.namespace}/{owner.name} for {destination.host!r} have no "
                        "effect on requests through this gateway's VirtualService "
                        f"{virtual_service.namespace}/{virtual_service.name}: route to a "
                        "subset here too.", destination.path)

    @staticmethod
    def _skips_subsets(destination: Destination) -> bool:
        return destination.route_kind == "http" and not destination.mirror \
            and not destination.subset and bool(destination.host)
