"""telemetry.ProviderAnalyzer: access logging without a provider."""

from __future__ import annotations

from collections.abc import Mapping

from ...estate.index import MeshIndex
from ..analyzer import Analyzer, Results
from ..finding import Level


class TelemetryProviderAnalyzer(Analyzer):
    """A Telemetry ``accessLogging`` entry that names no provider while the mesh config sets
    no default access-log provider: Istio ignores the entry, so no access log is written.
    An entry that only disables access logging (``disabled: true``) needs no provider.

    Fails with IST0157::

        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: mesh-default, namespace: istio-system}
        spec:
          accessLogging:
          - filter: {expression: "response.code >= 400"}

    Passes::

        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: mesh-default, namespace: istio-system}
        spec:
          accessLogging:
          - providers: [{name: envoy}]
            filter: {expression: "response.code >= 400"}
    """

    name = "telemetry.ProviderAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0157": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        if index.mesh.default_access_log_providers:
            return
        for telemetry in index.istio("Telemetry"):
            entries = telemetry.spec.get("accessLogging")
            for number, entry in enumerate(entries if isinstance(entries, list) else []):
                if not isinstance(entry, Mapping) or entry.get("disabled") is True:
                    continue
                if not entry.get("providers"):
                    yield self.finding(
                        telemetry, "IST0157", f"The Telemetry {telemetry.name} in namespace "
                        f"{telemetry.namespace} has an access-logging entry without providers, "
                        "and no default provider is set: it is ignored.",
                        f"spec.accessLogging[{number}]")
