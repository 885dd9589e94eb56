"""Whether a traffic split of the destination service shapes the flow."""

from __future__ import annotations

from ....estate.objects import as_list, as_mapping
from ....flows.evaluate import FlowRule, Step
from ....flows.model import Verdict


class Splits(FlowRule):
    """An HTTPRoute whose parent is a Service (its weighted backends: a canary) is applied
    by the outbound proxy of a meshed client that calls the Service; an SMI TrafficSplit
    likewise. A client without a proxy (an uninjected ingress controller, a gateway outside
    the mesh) is not shaped by it: its requests reach the Service's own endpoints. A split
    never refuses a flow; the proof says when one does not shape it.

    Follows https://linkerd.io/2-edge/features/httproute/ ("HTTPRoutes with a Service as
    their parent resource configure policies for outbound proxies in pods which are clients
    of that Service") and https://linkerd.io/2-edge/tasks/using-ingress/ ("Linkerd needs
    the ingress controller to connect to the IP/port of the destination Kubernetes
    Service").
    """

    name = "linkerd.Splits"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        destination = flow.destination
        if flow.origin not in ("calls", "ingress", "observed") or not destination.service \
                or facts.source_proxy:
            return None
        key = (destination.namespace, destination.service)
        splits = [r.display for r in view.service_routes.get(key, [])
                  if sum(len(as_list(as_mapping(rule).get("backendRefs")))
                         for rule in as_list(r.spec.get("rules"))) > 1]
        splits += [r.display for r in view.index.of_kind("TrafficSplit")
                   if r.namespace == destination.namespace
                   and str(r.spec.get("service")) == destination.service]
        if splits:
            facts.extra["routing"] = (f"{flow.source} has no Linkerd proxy: "
                                      f"{', '.join(splits)} does not shape its requests")
        return None
