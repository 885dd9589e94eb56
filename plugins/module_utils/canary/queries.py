"""What a canary run measures, per provider, as data: the PromQL for one version of a service.

Each step of a canary run (``playbooks/canary.yml``) is judged on three numbers about the
canary version, over the analysis window: how many requests it answered, how many of them
failed (5xx), and its p99 latency in milliseconds. Where they come from depends on who proxies
the canary's traffic:

    istio    the canary's own sidecars (reporter="destination"): istio_requests_total with
             response_code, istio_request_duration_milliseconds_bucket; the version by the
             standard labels destination_workload_namespace, destination_app and
             destination_version (the pods' app and version labels)
    linkerd  the callers' proxies, per route backend (direction="outbound"): response_total
             with classification, response_latency_ms_bucket; the version by its backend
             Service (dst_service: <service>-<version>, or the version's own Service)
    envoy    host sidecars: the callers' per-version clusters (envoy_cluster_name=
             "outbound_<service>_<version>", and mesh_environment from the scrape job): every
             response the canary gave, envoy_cluster_upstream_rq_xx for the final ones and
             envoy_cluster_retry_upstream_rq_xx for those the caller retried (Envoy counts a
             retried 503 only there), and envoy_cluster_upstream_rq_time_bucket

A service that the environment's plain hosts carry is measured on the host sidecars; any other
on the environment's mesh. ``measure`` asks Prometheus through ``PrometheusClient``; no data
for the requests or the failures means none happened, no data for the latency is ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..intent.model import Intent, Service
from ..prometheus import PrometheusClient
from ..providers.provider import CanaryQueries
from ..providers.registry import HOSTS, mesh


@dataclass(frozen=True)
class Figures:
    """What one analysis measured about the canary version over ``window_s`` seconds: its
    responses (each attempt of a retried request counts), the 5xx among them, and the p99."""

    requests: float
    errors: float
    latency_p99_ms: float | None
    window_s: float

    @property
    def success_rate(self) -> float | None:
        """Percent of requests that did not fail; None without requests."""
        if self.requests <= 0:
            return None
        return max(0.0, 100.0 * (self.requests - self.errors) / self.requests)


@dataclass(frozen=True)
class VersionQueries:
    """The three queries that measure one version, their window still a placeholder."""

    provider: str
    source: str
    requests: str
    errors: str
    latency_p99: str

    def at_window(self, seconds: float) -> dict[str, str]:
        """The queries with the window filled in (``30s``, ``1500ms``)."""
        window = prometheus_duration(seconds)
        return {name: getattr(self, name).replace("{window}", window)
                for name in ("requests", "errors", "latency_p99")}


def measured_on(intent: Intent, service: Service) -> str:
    """Who proxies the service's traffic: ``envoy`` on the environment's hosts, or the mesh."""
    return HOSTS.name if service.name in intent.host_services else intent.provider


def version_queries(intent: Intent, service: Service, version: str) -> VersionQueries:
    """The PromQL that measures ``version`` of ``service`` in the intent's environment."""
    provider = measured_on(intent, service)
    queries = _provider_queries(provider)
    found = next((v for v in service.versions if v.name == version), None)
    values = {
        "namespace": service.namespace, "service": service.name,
        "version_label": (found.labels.get("version", version) if found else version),
        "backend": (found.service if found and found.service else f"{service.name}-{version}"),
        "environment": intent.environment,
        "cluster": f"outbound_{service.name}_{version}",
    }
    selector = queries.selector.format(**{k: _label_value(v) for k, v in values.items()})

    def query(template: str) -> str:
        return template.format(selector=selector, window="{window}")

    return VersionQueries(provider, queries.source, query(queries.requests),
                          query(queries.errors), query(queries.latency_p99))


def measure(client: PrometheusClient, queries: VersionQueries, window_s: float,
            at: float | None = None) -> Figures:
    """The canary's figures over the ``window_s`` seconds before ``at`` (or now)."""
    promql = queries.at_window(window_s)
    requests = client.scalar(promql["requests"], at, default=0.0)
    errors = client.scalar(promql["errors"], at, default=0.0)
    latency = client.scalar(promql["latency_p99"], at, default=math.nan)
    return Figures(requests=_finite(requests) or 0.0, errors=_finite(errors) or 0.0,
                   latency_p99_ms=_finite(latency), window_s=window_s)


def prometheus_duration(seconds: float) -> str:
    """A PromQL range duration: whole seconds as ``30s``, anything else in milliseconds."""
    milliseconds = round(seconds * 1000)
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value


def _label_value(text: str) -> str:
    """A value inside a PromQL label matcher's double quotes."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _provider_queries(provider: str) -> CanaryQueries:
    found = (HOSTS if provider == HOSTS.name else mesh(provider)).canary_queries
    assert found is not None, f"{provider} has no canary queries"
    return found


def count_text(value: float) -> str:
    return str(round(value))


def percent_text(value: float) -> str:
    return f"{value:.2f}%"


def ms_text(value: float) -> str:
    return f"{value:.1f}ms"


def seconds_text(value: float) -> str:
    return f"{value:g}s"
