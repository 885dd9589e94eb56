"""virtualservice.ConflictingMeshGatewayHostsAnalyzer: two mesh VirtualServices, one host."""

from __future__ import annotations

from ...estate.hosts import export_scopes, host_overlaps, to_fqdn
from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._routes import applies_to_mesh, string_list


class ConflictingMeshGatewayHostsAnalyzer(Analyzer):
    """Several VirtualServices bound to the mesh (no ``gateways``, or ``mesh`` among them)
    that define the same host where they are visible: which one a sidecar uses is
    undefined. Merge them into one VirtualService. A VirtualService exported to some
    namespaces also conflicts with an overlapping host exported to all.

    Fails with IST0109::

        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http: [{route: [{destination: {host: reviews, subset: v1}}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews-canary, namespace: bookinfo}
        spec:
          hosts: [reviews.bookinfo.svc.cluster.local]
          http: [{route: [{destination: {host: reviews, subset: v2}}]}]

    Passes::

        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http: [{route: [{destination: {host: reviews, subset: v1}, weight: 90},
                          {destination: {host: reviews, subset: v2}, weight: 10}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews-ingress, namespace: bookinfo}
        spec:
          hosts: [reviews]
          gateways: [istio-system/ingress]
          http: [{route: [{destination: {host: reviews, subset: v1}}]}]
    """

    name = "virtualservice.ConflictingMeshGatewayHostsAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0109": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        by_host: dict[tuple[str, str], list[Resource]] = {}
        for virtual_service in index.istio("VirtualService"):
            if not applies_to_mesh(virtual_service):
                continue
            export_to = string_list(virtual_service.spec.get("exportTo"))
            scopes = export_scopes(export_to, virtual_service.namespace) or ["*"]
            if not export_to or "*" in scopes:
                scopes = ["*"]
            for scope in dict.fromkeys(scopes):
                for host in string_list(virtual_service.spec.get("hosts")):
                    key = (scope, to_fqdn(virtual_service.namespace, host))
                    by_host.setdefault(key, []).append(virtual_service)
        exact = {host: owners for (scope, host), owners in by_host.items()
                 if scope == "*" and not host.startswith("*")}
        wildcards = [(host, owners) for (scope, host), owners in by_host.items()
                     if scope == "*" and host.startswith("*")]
        reported: set[Resource] = set()
        for (scope, host), owners in by_host.items():
            group = list(owners)
            if scope != "*":
                # a host exported to some namespaces meets every overlapping host exported
                # to all: one lookup for an exact host, a walk only for wildcard hosts
                candidates = (list(exact.items()) if host.startswith("*")
                              else [(host, exact.get(host, []))]) + wildcards
                for other, others in candidates:
                    if host_overlaps(host, other):
                        group += others
            if len(group) < 2:
                continue
            names = ",".join(f"{r.namespace}/{r.name}" for r in group)
            for virtual_service in group:
                if virtual_service in reported:
                    continue
                reported.add(virtual_service)
                yield self.finding(virtual_service, "IST0109", f"The VirtualServices {names} "
                                   f"bound to the mesh define the same host {host!r} "
                                   f"({'all namespaces' if scope == '*' else scope}), which "
                                   "leads to undefined behaviour; merge them into one.",
                                   "spec.hosts")
