"""telemetry.DefaultSelectorAnalyzer: several selector-less Telemetries in one namespace."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._selectors import match_labels, without_selector


class TelemetryDefaultSelectorAnalyzer(Analyzer):
    """More than one Telemetry without a selector in one namespace: each claims every
    workload of the namespace (the whole mesh in the root namespace), and which one wins is
    undefined.

    Fails with IST0160::

        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: mesh-default, namespace: istio-system}
        spec: {tracing: [{randomSamplingPercentage: 1}]}
        ---
        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: access-logs, namespace: istio-system}
        spec: {accessLogging: [{providers: [{name: envoy}]}]}

    Passes::

        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: mesh-default, namespace: istio-system}
        spec:
          tracing: [{randomSamplingPercentage: 1}]
          accessLogging: [{providers: [{name: envoy}]}]
    """

    name = "telemetry.DefaultSelectorAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0160": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        yield from without_selector(self, index.istio("Telemetry"), match_labels, "IST0160",
                                    "Telemetries")
