"""MST0107: DestinationRules for one host whose settings Istio cannot merge."""

from __future__ import annotations

from ...estate.hosts import to_fqdn
from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._selectors import workload_selector


class DestinationRuleConflictAnalyzer(Analyzer):
    """Several DestinationRules for the same host in one namespace (without workload
    selectors): Istio merges them, but when both set a traffic policy, or define a subset of
    the same name, only the oldest counts and the rest is silently dropped.

    Fails with MST0107::

        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          host: reviews
          subsets: [{name: v1, labels: {version: v1}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews-mtls, namespace: bookinfo}
        spec:
          host: reviews.bookinfo.svc.cluster.local
          subsets: [{name: v1, labels: {version: v1}}]
          trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}

    Passes::

        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          host: reviews
          subsets: [{name: v1, labels: {version: v1}}]
          trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
    """

    name = "meshstage.DestinationRuleConflictAnalyzer"
    provider = "istio"
    codes = {"MST0107": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        by_host: dict[tuple[str, str], list[Resource]] = {}
        for rule in index.istio("DestinationRule"):
            if workload_selector(rule):
                continue
            host = to_fqdn(rule.namespace, str(rule.spec.get("host") or ""))
            by_host.setdefault((rule.namespace, host), []).append(rule)
        for (_namespace, host), rules in by_host.items():
            if len(rules) < 2:
                continue
            first = rules[0]
            seen_subsets = {s.get("name") for s in first.spec.get("subsets") or []
                            if isinstance(s, dict)}
            has_policy = bool(first.spec.get("trafficPolicy"))
            for rule in rules[1:]:
                subsets = {s.get("name") for s in rule.spec.get("subsets") or []
                           if isinstance(s, dict)}
                clashes = sorted(str(s) for s in subsets & seen_subsets)
                problems = []
                if has_policy and rule.spec.get("trafficPolicy"):
                    problems.append("trafficPolicy")
                if clashes:
                    problems.append("subset " + ", ".join(clashes))
                if problems:
                    yield self.finding(rule, "MST0107", f"DestinationRule {first.name} already "
                                       f"configures host {host}, so Istio ignores this one's "
                                       f"{' and '.join(problems)}; merge them into one.")
                seen_subsets |= subsets
                has_policy = has_policy or bool(rule.spec.get("trafficPolicy"))
