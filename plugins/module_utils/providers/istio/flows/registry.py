"""Istio's flow rules, in the order they judge a flow, and the evaluator they make."""

from __future__ import annotations

from collections.abc import Mapping

from ....flows.evaluate import FlowEvaluator, FlowRule, FlowSettings, Scrape
from ....flows.model import Peer
from .authorization import AuthorizationPolicies
from .capture import InboundCapture
from .client_tls import ClientTls
from .identity import PeerIdentity
from .injection import Sidecars
from .peer_authentication import PeerAuthentication
from .pod_addresses import PodAddresses
from .probes import Probes, Scrapes
from .routes import Routes
from .server_first import ServerFirst
from .sidecar_egress import SidecarEgress
from .view import IstioView

RULES: Mapping[str, FlowRule] = {rule.name: rule for rule in (
    Sidecars(), Probes(), Scrapes(), ServerFirst(), Routes(), PodAddresses(), SidecarEgress(),
    ClientTls(), InboundCapture(), PeerAuthentication(), PeerIdentity(), AuthorizationPolicies())}


def _prometheus(settings: FlowSettings) -> Peer:
    return Peer("prometheus", settings.prometheus_namespace, "prometheus", "prometheus",
                proxy=False)


ISTIO_FLOWS = FlowEvaluator(
    name="istio", rules=RULES, prepare=IstioView,
    scrape=Scrape(_prometheus, 15020, "/stats/prometheus", "the merged metrics (15020)"))
