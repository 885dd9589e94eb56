"""Linkerd's flow rules, in the order they judge a flow, and the evaluator they make."""

from __future__ import annotations

from collections.abc import Mapping

from ....flows.evaluate import FlowEvaluator, FlowRule, FlowSettings, Scrape
from ....flows.model import Peer
from .authorization import Authorizations
from .identity import ClientIdentity
from .injection import Injection
from .probes import Probes, Scrapes, SkipPorts
from .routes import Routes
from .servers import DefaultPolicy, Servers
from .splits import Splits
from .view import LinkerdView

RULES: Mapping[str, FlowRule] = {rule.name: rule for rule in (
    Injection(), Probes(), Scrapes(), SkipPorts(), Splits(), ClientIdentity(), Servers(),
    DefaultPolicy(), Routes(), Authorizations())}


def _prometheus(settings: FlowSettings) -> Peer:
    """linkerd-viz's Prometheus: meshed (its namespace is injected), account prometheus."""
    return Peer("prometheus", settings.viz_namespace, "prometheus", "prometheus", proxy=True)


LINKERD_FLOWS = FlowEvaluator(
    name="linkerd", rules=RULES, prepare=LinkerdView,
    scrape=Scrape(_prometheus, 4191, "/metrics", "the proxy's metrics (linkerd-admin)"))
