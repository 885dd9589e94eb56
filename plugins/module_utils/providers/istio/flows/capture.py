"""Ports the destination's sidecar does not capture."""

from __future__ import annotations

from ....flows.evaluate import FlowRule, Step
from ....flows.model import RESET, Verdict, allowed, refused
from ..ports import uncaptured_inbound


class InboundCapture(FlowRule):
    """A pod with a sidecar whose annotations leave a port out of the inbound redirection
    (``traffic.sidecar.istio.io/includeInboundPorts`` without it, an empty list, or
    ``excludeInboundPorts`` with it): connections to that port reach the application
    directly, so no PeerAuthentication or AuthorizationPolicy applies and plaintext gets
    through. A client's sidecar still sends it Istio mTLS when auto mTLS (or
    ``ISTIO_MUTUAL``) says so, since auto mTLS goes by the pod's sidecar and not by the
    port: the application cannot read that, and the connection fails.

    Follows https://istio.io/latest/docs/reference/config/annotations/ (the two
    annotations), https://github.com/istio/istio/issues/30311 ("When we are disabling
    iptables for some ports, auto mtls is not aware") and the istio.io FAQ "Does Auto mTLS
    work with the excludeInboundPorts annotations?" ("No ... you need to configure a
    Destination Rule with mutual TLS mode DISABLE").
    """

    name = "istio.InboundCapture"

    def apply(self, step: Step) -> Verdict | None:
        flow, facts = step.flow, step.facts
        destination = flow.destination
        workload = destination.workload
        if not facts.destination_proxy or destination.kind != "workload" or workload is None:
            return None
        why = uncaptured_inbound(workload.annotations, destination.port)
        if why is None:
            return None
        if facts.sends == "mtls":
            rule = facts.extra.get("destination_rule") or "auto mTLS"
            return refused(RESET, f"port {destination.port} of {destination.name} is not "
                           f"captured by its sidecar ({why}), and {flow.source}'s sidecar "
                           f"sends it Istio mTLS ({rule}), which the application cannot read",
                           str(rule), f"a DestinationRule with tls mode DISABLE for port "
                           f"{destination.port} of {destination.service or destination.name}"
                           " (portLevelSettings), or let the sidecar capture the port")
        return allowed(f"port {destination.port} is not captured by the sidecar ({why}): the "
                       "request reaches the application directly, outside PeerAuthentication "
                       "and AuthorizationPolicy", why)
