"""The record of the plain hosts' Envoy sidecars: not a ``mesh_provider``, it plans beside the
cluster's mesh for the services the environment's hosts carry."""

from __future__ import annotations

from ..provider import CanaryQueries, Provider
from .flows.registry import HOST_FLOWS
from .plan import plan_envoy

QUANTILE = 0.99

ENVOY_HOSTS = Provider(
    name="envoy",
    plan=plan_envoy,
    canary_queries=CanaryQueries(
        source="the callers' host sidecars, per version cluster",
        selector='mesh_environment="{environment}",envoy_cluster_name="{cluster}"',
        # final and retried responses: a caller's retries must not hide the canary's failures
        requests='sum(increase({{__name__=~"envoy_cluster_(retry_)?upstream_rq_xx",'
                 "{selector}}}[{window}]))",
        errors='sum(increase({{__name__=~"envoy_cluster_(retry_)?upstream_rq_xx",{selector},'
               'envoy_response_code_class="5"}}[{window}]))',
        latency_p99=f"histogram_quantile({QUANTILE}, sum by (le) (rate("
                    "envoy_cluster_upstream_rq_time_bucket{{{selector}}}[{window}])))",
    ),
    flows=HOST_FLOWS,
)
