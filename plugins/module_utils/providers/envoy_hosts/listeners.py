"""A host sidecar's listeners: inbound (mTLS and plaintext told apart by TLS inspection, the
RBAC filters), outbound (routes per callee and version) and the stats listener."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...intent.model import Intent, MeshHost, Service
from ...stages import Stage
from .clusters import tls_context
from .config import (
    ACCESS_LOG_FORMAT,
    CEL_FILTER,
    DOWNSTREAM_TLS,
    FILE_LOG,
    HCM,
    ROUTER,
    SAFE_RETRY_ON,
    TLS_INSPECTOR,
    cluster_name,
    envoy_duration,
    exception_mode,
    socket_address,
    string_match,
)
from .rbac import authorization_filters, workload_port


def inbound_listener(intent: Intent, host: MeshHost, service: Service) -> dict[str, Any]:
    exception = exception_mode(intent, service)
    strict = intent.stage.reached(Stage.STRICT_MTLS) and exception is None
    chains = []
    if exception != "DISABLE":
        chains.append({
            "name": "inbound_mtls",
            "filter_chain_match": {"transport_protocol": "tls"},
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": DOWNSTREAM_TLS,
                "require_client_certificate": strict,
                "common_tls_context": tls_context(
                    host, {"prefix": f"spiffe://{intent.trust_domain}/"}, ["h2", "http/1.1"]),
            }},
            "filters": [_hcm(intent, host, "inbound_mtls", _inbound_routes(),
                             authorization_filters(intent, service, workload_port(service, host)),
                             mtls=True)],
        })
    if not intent.stage.reached(Stage.STRICT_MTLS) or exception is not None:
        chains.append({
            "name": "inbound_plaintext",
            "filter_chain_match": {"transport_protocol": "raw_buffer"},
            "filters": [_hcm(intent, host, "inbound_plaintext", _inbound_routes(),
                             authorization_filters(intent, service, workload_port(service, host)),
                             mtls=False)],
        })
    return {
        "name": "inbound", "stat_prefix": "inbound",
        "address": socket_address(host.address, host.inbound_port),
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector",
                              "typed_config": {"@type": TLS_INSPECTOR}}],
        "filter_chains": chains,
    }


def _inbound_routes() -> dict[str, Any]:
    return {"name": "inbound", "virtual_hosts": [{
        "name": "inbound", "domains": ["*"],
        "routes": [{"match": {"prefix": "/"},
                    "route": {"cluster": "inbound_app", "timeout": "0s"}}]}]}


def outbound_listener(intent: Intent, host: MeshHost,
                       callees: list[Service]) -> dict[str, Any]:
    virtual_hosts = [{
        "name": callee.name,
        "domains": sorted({callee.name, f"{callee.name}.{callee.namespace}"}),
        "routes": _outbound_routes(intent, callee),
    } for callee in callees]
    return {
        "name": "outbound", "stat_prefix": "outbound",
        "address": socket_address("127.0.0.1", host.outbound_port),
        "filter_chains": [{"name": "outbound", "filters": [_hcm(
            intent, host, "outbound", {"name": "outbound", "virtual_hosts": virtual_hosts},
            [], mtls=False)]}],
    }


def _outbound_routes(intent: Intent, callee: Service) -> list[dict[str, Any]]:
    traffic = callee.traffic
    shaped = intent.stage.reached(Stage.TRAFFIC)
    retries = traffic.retries if shaped else None
    common: dict[str, Any] = {
        "timeout": envoy_duration(traffic.timeout) if shaped and traffic.timeout else None,
        "retry_policy": {
            "retry_on": ",".join(dict.fromkeys(
                [*(retries.retry_on or "5xx").split(","), "reset-before-request"])),
            "num_retries": retries.attempts,
            "per_try_timeout": envoy_duration(retries.per_try_timeout)
            if retries.per_try_timeout else None,
        } if retries else {"retry_on": SAFE_RETRY_ON, "num_retries": 2},
    }
    routes = []
    if shaped:
        for route in traffic.header_routes:
            routes.append({
                "match": {"prefix": "/", "headers": [
                    {"name": m.header, "string_match": string_match(m.kind, m.value)}
                    for m in route.headers]},
                "route": {"cluster": cluster_name(callee, route.subset), **common},
            })
    if shaped and traffic.split:
        default: dict[str, Any] = {"weighted_clusters": {"clusters": [
            {"name": cluster_name(callee, w.subset), "weight": w.weight}
            for w in traffic.split if w.weight > 0]}}
    elif shaped and traffic.header_routes and callee.versions:
        default = {"cluster": cluster_name(callee, callee.versions[0].name)}
    else:
        default = {"cluster": cluster_name(callee, None)}
    routes.append({"match": {"prefix": "/"}, "route": {**default, **common}})
    return routes


def stats_listener(host: MeshHost) -> dict[str, Any]:
    """Serves only /stats/prometheus from the admin interface, which stays on 127.0.0.1."""
    return {
        "name": "prometheus_stats", "stat_prefix": "prometheus_stats",
        "address": socket_address(host.address, host.stats_port),
        "filter_chains": [{"name": "prometheus_stats", "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM, "stat_prefix": "prometheus_stats", "codec_type": "AUTO",
                "route_config": {"name": "prometheus_stats", "virtual_hosts": [{
                    "name": "prometheus_stats", "domains": ["*"],
                    "routes": [{"match": {"path": "/stats/prometheus"},
                                "route": {"cluster": "prometheus_admin"}}]}]},
                "http_filters": [_router()],
            }}]}],
    }


def _hcm(intent: Intent, host: MeshHost, prefix: str, route_config: Mapping[str, Any],
         http_filters: list[dict[str, Any]], mtls: bool) -> dict[str, Any]:
    observed = intent.stage.reached(Stage.OBSERVABILITY)
    telemetry = intent.telemetry
    access_log = None
    if observed and telemetry.access_log_provider:
        access_log = [{
            "name": "envoy.access_loggers.file",
            "filter": {"extension_filter": {
                "name": "envoy.access_loggers.extension_filters.cel",
                "typed_config": {"@type": CEL_FILTER,
                                 "expression": telemetry.access_log_filter}},
            } if telemetry.access_log_filter else None,
            "typed_config": {"@type": FILE_LOG, "path": f"{host.log_dir}/access.log",
                             "log_format": {"json_format": dict(ACCESS_LOG_FORMAT)}},
        }]
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM, "stat_prefix": prefix, "codec_type": "AUTO",
            "strip_any_host_port": True,
            "generate_request_id": True,
            # a request id that arrives (from the caller's sidecar) is kept across hops
            "preserve_external_request_id": True,
            "forward_client_cert_details": "SANITIZE_SET" if mtls else "SANITIZE",
            "set_current_client_cert_details": {"uri": True} if mtls else None,
            "tracing": {"random_sampling": {"value": telemetry.sampling_percentage}}
            if observed else None,
            "access_log": access_log,
            "route_config": dict(route_config),
            "http_filters": [*http_filters, _router()],
        },
    }


def _router() -> dict[str, Any]:
    return {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}
