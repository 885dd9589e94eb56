"""MST0207: routes whose backends (or parent Services) match no Service."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._linkerd import Ref, backend_refs, refs, routes


class LinkerdRouteBackendsAnalyzer(Analyzer):
    """HTTPRoutes, GRPCRoutes, TCPRoutes and TLSRoutes (Linkerd's ``policy.linkerd.io`` and
    Gateway API's) whose ``backendRefs`` name a Service that does not exist, or a port the
    Service does not expose, and routes attached (``parentRefs``) to such a Service.
    Requests routed to the backend fail; a route on a missing parent never applies.

    Fails with MST0207::

        apiVersion: policy.linkerd.io/v1beta3
        kind: HTTPRoute
        metadata: {name: bb-route, namespace: traffic-shift-demo}
        spec:
          parentRefs: [{name: bb, kind: Service, group: core, port: 8080}]
          rules:
          - backendRefs: [{name: bb, port: 8080, weight: 90}, {name: bb-v3, port: 8080,
                                                               weight: 10}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: bb, namespace: traffic-shift-demo}
        spec: {selector: {app: bb}, ports: [{name: http, port: 8080}]}

    Passes::

        apiVersion: policy.linkerd.io/v1beta3
        kind: HTTPRoute
        metadata: {name: bb-route, namespace: traffic-shift-demo}
        spec:
          parentRefs: [{name: bb, kind: Service, group: core, port: 8080}]
          rules:
          - backendRefs: [{name: bb, port: 8080, weight: 90}, {name: bb-v2, port: 8080,
                                                               weight: 10}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: bb, namespace: traffic-shift-demo}
        spec: {selector: {app: bb}, ports: [{name: http, port: 8080}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: bb-v2, namespace: traffic-shift-demo}
        spec: {selector: {app: bb-v2}, ports: [{name: http, port: 8080}]}
    """

    name = "linkerd.RouteBackendsAnalyzer"
    provider = "linkerd"
    codes = {"MST0207": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        unchecked: set[str] = set()
        for route in routes(index):
            candidates: list[tuple[Ref, str]] = [
                (p, "parent") for p in refs(route, "parentRefs")
                if p.kind == "Service" and p.group == ""]
            candidates += [(b, "backend") for b in backend_refs(route)]
            for target, role in candidates:
                if target.kind == "Service" and target.group == "":
                    problem = self._service_problem(index, target, unchecked)
                elif target.kind == "EgressNetwork":
                    if not index.knows_in(target.namespace, "EgressNetwork"):
                        unchecked.add("EgressNetwork")
                        continue
                    found = index.get("EgressNetwork", target.namespace, target.name)
                    problem = None if found else f"{target.text} does not exist"
                else:
                    continue
                if problem:
                    yield self.finding(route, "MST0207", f"The {role} {target.text} matches no "
                                       f"Service: {problem}.", target.path)
        for kind in sorted(unchecked):
            yield self.unchecked(f"route references to {kind}s", f"no {kind} in the "
                                 "referenced namespace")

    @staticmethod
    def _service_problem(index: MeshIndex, target: Ref, unchecked: set[str]) -> str | None:
        if not index.knows_in(target.namespace, "Service"):
            unchecked.add("Service")
            return None
        service = index.service(target.namespace, target.name)
        if service is None:
            return "it does not exist"
        numbers = [p.get("number") for p in service.ports]
        if target.port is not None and target.port not in numbers:
            return f"it has no port {target.port} (ports: {numbers})"
        return None
