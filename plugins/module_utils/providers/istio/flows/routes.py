"""Which route rules shape a flow: those of the mesh for sidecars, a gateway's for it."""

from __future__ import annotations

from ....estate.objects import Resource, as_list, as_mapping
from ....flows.evaluate import FlowRule, Step
from ....flows.model import Verdict
from .view import IstioView


def _shapes(virtual_service: Resource, service: str, namespace: str) -> bool:
    """The VirtualService splits or picks versions of the service (weights, subsets)."""
    for route in as_list(virtual_service.spec.get("http")):
        targets = [as_mapping(as_mapping(d).get("destination"))
                   for d in as_list(as_mapping(route).get("route"))]
        named = [t for t in targets
                 if str(t.get("host", "")).split(".")[0] == service]
        if len(named) > 1 or any(t.get("subset") for t in named):
            return True
    return False


def _bound(virtual_service: Resource) -> tuple[bool, bool]:
    """(applies to sidecars, applies to gateways)."""
    gateways = [str(g) for g in as_list(virtual_service.spec.get("gateways"))] or ["mesh"]
    return "mesh" in gateways, any(g != "mesh" for g in gateways)


def _service_routes(view: IstioView, service: str, namespace: str) -> list[Resource]:
    """The Service-parent routes of the service that split it (several backends)."""
    return [route for route in view.service_routes.get((namespace, service), [])
            if len([b for rule in as_list(route.spec.get("rules"))
                    for b in as_list(as_mapping(rule).get("backendRefs"))]) > 1]


class Routes(FlowRule):
    """Whether the destination service's route rules (a canary's weights, header routes,
    subsets) shape the flow. A VirtualService without ``gateways`` applies to sidecars only
    (``mesh``); one that lists gateways and not ``mesh`` applies to those gateways only; an
    HTTPRoute whose parent is the Service applies to sidecar traffic, one whose parent is a
    Gateway to that gateway's. A client without a proxy is shaped by none. A split that
    does not shape a flow never refuses it: the requests spread over every version's pods,
    and the proof says so (a canary judged on traffic its split does not reach).

    Follows https://istio.io/latest/docs/reference/config/networking/virtual-service/
    #VirtualService ("When this field is omitted, the default gateway (mesh) will be used,
    which would apply the rule to all sidecars in the mesh. If a list of gateway names is
    provided, the rules will apply only to the gateways"), https://istio.io/latest/docs/
    ops/common-problems/network-issues/#route-rules-have-no-effect-on-ingress-gateway-
    requests and https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/
    #mesh-traffic.
    """

    name = "istio.Routes"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        destination = flow.destination
        if flow.origin not in ("calls", "ingress", "observed") or destination.kind != \
                "workload" or not destination.service:
            return None
        service, namespace = destination.service, destination.namespace
        key = ("routes", namespace, service)
        found = view.memo.get(key)
        if found is None:
            found = view.memo[key] = (
                [vs for vs in view.virtual_services.get((namespace, service), [])
                 if _shapes(vs, service, namespace)],
                _service_routes(view, service, namespace))
        splits, routes = found
        if not splits and not routes:
            return None
        source = flow.source
        if source.kind == "gateway":
            missed = [vs.display for vs in splits if not _bound(vs)[1]] + \
                [r.display for r in routes]
            if missed and not any(_bound(vs)[1] for vs in splits):
                facts.extra["routing"] = (f"{', '.join(missed)} shape(s) {service} for "
                                          f"sidecars only: requests through {source} reach "
                                          "every version")
        elif not facts.source_proxy:
            named = ", ".join([vs.display for vs in splits] + [r.display for r in routes])
            facts.extra["routing"] = (f"{source} has no sidecar: the routes of {named} do "
                                      "not shape its requests")
        elif splits and not any(_bound(vs)[0] for vs in splits) and not routes:
            facts.extra["routing"] = (f"{', '.join(vs.display for vs in splits)} bind(s) "
                                      "gateways only: sidecar requests reach every version")
        return None
