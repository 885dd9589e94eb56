"""Which ends of a flow have an Istio proxy."""

from __future__ import annotations

from ....flows.evaluate import FlowRule, Step
from ....flows.model import Verdict


class Sidecars(FlowRule):
    """Whether the source and the destination run an Istio proxy.

    A pod has a sidecar when it already shows one (an ``istio-proxy`` container), else when
    its own ``sidecar.istio.io/inject`` says so, else when its namespace is labelled
    ``istio-injection=enabled`` or ``istio.io/rev`` (and not ``istio-injection=disabled``);
    the namespace labels are the rendered Namespace's when meshstage renders it. Gateways
    (``istio: ingressgateway``, Gateway API's generated deployments) run their own Envoy.
    The kubelet, the API server and clients outside the cluster never have one.

    Follows https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/
    #controlling-the-injection-policy ("If either label is disabled, the pod is not
    injected"; a pod with no marker that istiod's ``neverInjectSelector`` selects is left out;
    "If the istio-injection label and the istio.io/rev label are both present
    ... the istio-injection label will take precedence") and
    https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/
    #automated-deployment (generated gateways carry ``gateway.networking.k8s.io/
    gateway-name``).
    """

    name = "istio.Sidecars"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        facts.source_proxy = view.peer_proxy(flow.source)
        destination = flow.destination
        facts.destination_proxy = destination.kind == "gateway" or view.has_sidecar(
            destination.workload)
        return None
