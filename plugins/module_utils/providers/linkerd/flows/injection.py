"""Which ends of a flow have a Linkerd proxy."""

from __future__ import annotations

from ....flows.evaluate import FlowRule, Step
from ....flows.model import Verdict


class Injection(FlowRule):
    """Whether the source and the destination run a Linkerd proxy. The injector meshes a pod
    whose own ``linkerd.io/inject`` annotation says ``enabled`` or ``ingress``, or, without
    one, whose namespace's does (``disabled`` on the pod wins); never a pod on the host
    network, nor in ``kube-system`` or ``cert-manager``, nor one its webhook's
    ``objectSelector`` or ``namespaceSelector`` (the rendered Helm values) leaves out. The
    namespace annotations are the rendered Namespace's when meshstage renders it. A pod
    that already shows a ``linkerd-proxy`` container is meshed.

    Follows https://linkerd.io/2-edge/features/proxy-injection/ ("Automatic injection can
    be disabled for a pod or deployment for which it would otherwise be enabled, by adding
    the linkerd.io/inject: disabled annotation"; "Kubernetes is configured to avoid calling
    Linkerd's proxy injector for resources in the kube-system and cert-manager namespaces"),
    ``pkg/inject/report.go`` (``disableByAnnotation``, ``host_network_enabled``) and
    ``charts/linkerd-control-plane/values.yaml`` (``proxyInjector.objectSelector``).
    """

    name = "linkerd.Injection"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        facts.source_proxy = view.peer_meshed(flow.source)
        facts.destination_proxy = view.meshed(flow.destination.workload)
        return None
