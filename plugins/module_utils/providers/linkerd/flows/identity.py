"""What reaches the destination's proxy: mTLS with an identity, or plaintext without one."""

from __future__ import annotations

from ....flows.evaluate import FlowRule, Step
from ....flows.model import Verdict, allowed


class ClientIdentity(FlowRule):
    """A connection from a meshed pod's proxy to a meshed pod is mTLS, with the client's
    identity ``<account>.<namespace>.serviceaccount.identity.<control plane namespace>.
    <trust domain>``; any other connection to a meshed pod (an unmeshed client, the
    kubelet, the API server, a skipped port, a client outside the cluster) arrives in
    plaintext with no identity. A destination without a proxy enforces nothing.

    Follows https://linkerd.io/2-edge/features/automatic-mtls/ ("By default, Linkerd
    automatically enables mutually-authenticated Transport Layer Security (mTLS) for all
    TCP traffic between meshed pods"; "by default Linkerd will accept plaintext traffic
    from non-meshed sources") and ``policy-controller/k8s/index/src/cluster_info.rs``
    (``service_account_identity``).
    """

    name = "linkerd.ClientIdentity"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        destination, source = flow.destination, flow.source
        if not facts.destination_proxy:
            return allowed(f"{destination} has no Linkerd proxy: nothing is enforced there")
        if facts.source_proxy and not facts.extra.get("skipped_outbound") \
                and source.service_account:
            facts.sends = "mtls"
            facts.identity = view.identity(source.namespace, source.service_account)
        else:
            facts.sends, facts.identity = "plaintext", None
        if source.kind == "external":
            facts.extra["address"] = "outside"
        else:
            facts.extra["address"] = source.address or "cluster"
        return None
