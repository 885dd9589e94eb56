"""telemetry.SelectorAnalyzer: Telemetry selectors that select nothing or overlap."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._selectors import match_labels, selected_workloads


class TelemetrySelectorAnalyzer(Analyzer):
    """Telemetry resources whose ``selector`` selects no pod of their namespace, or that
    select the same pod as another Telemetry (which one applies is then undefined).

    Fails with IST0101::

        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          selector: {matchLabels: {app: reviewz}}
          tracing: [{randomSamplingPercentage: 10}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews}}
        spec: {containers: [{name: reviews, image: reviews}]}

    Fails with IST0159::

        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          selector: {matchLabels: {app: reviews}}
          tracing: [{randomSamplingPercentage: 10}]
        ---
        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: reviews-debug, namespace: bookinfo}
        spec:
          selector: {matchLabels: {app: reviews}}
          tracing: [{randomSamplingPercentage: 100}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews}}
        spec: {containers: [{name: reviews, image: reviews}]}

    Passes::

        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          selector: {matchLabels: {app: reviews}}
          tracing: [{randomSamplingPercentage: 10}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews}}
        spec: {containers: [{name: reviews, image: reviews}]}
    """

    name = "telemetry.SelectorAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0101": Level.ERROR, "IST0159": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        telemetries = index.istio("Telemetry")
        if not any(match_labels(t) for t in telemetries):
            return
        if not index.knows_workloads():
            yield self.unchecked("Telemetry selectors", "no pod or workload in the input")
            return
        for item in selected_workloads(self, index, telemetries, match_labels,
                                       "spec.selector.matchLabels", "IST0159", "Telemetries"):
            if not isinstance(item, tuple):
                yield item
