"""The peer identity the destination's sidecar sees."""

from __future__ import annotations

from ....flows.evaluate import FlowRule, Step
from ....flows.model import Verdict


class PeerIdentity(FlowRule):
    """A request has a principal (``<trust domain>/ns/<namespace>/sa/<account>``) and a
    source namespace only when it arrives over Istio mTLS: they come from the peer
    certificate. A plaintext request, or TLS that is not Istio's, has neither, so
    ``principals``, ``namespaces`` (and ``"*"``) never match it while ``notPrincipals`` and
    ``notNamespaces`` do.

    Follows https://istio.io/latest/docs/concepts/security/#dependency-on-mutual-tls
    ("Mutual TLS must be enabled before using any of the following fields ... the
    principals and notPrincipals field ... the namespaces and notNamespaces field") and the
    Source fields of https://istio.io/latest/docs/reference/config/security/
    authorization-policy/ ("Presence match: "*" will match when value is not empty").
    """

    name = "istio.PeerIdentity"

    def apply(self, step: Step) -> Verdict | None:
        flow, facts = step.flow, step.facts
        source = flow.source
        if facts.sends == "mtls" and source.service_account:
            facts.identity = step.view.principal(source.namespace, source.service_account)
            facts.source_namespace = source.namespace
        else:
            facts.identity = facts.source_namespace = None
        return None
