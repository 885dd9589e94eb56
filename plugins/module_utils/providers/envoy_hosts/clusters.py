"""A host sidecar's clusters: the local application, and per callee and version a cluster with
the mesh's mTLS, pool limits and outlier detection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...intent.model import Intent, MeshHost, Service
from ...stages import Stage
from .config import (
    HTTP_OPTIONS,
    IDENTITY_SECRET,
    LB,
    TRUST_SECRET,
    UPSTREAM_TLS,
    cluster_name,
    envoy_duration,
    exception_mode,
    socket_address,
    spiffe_of,
)


def host_callees(intent: Intent, service: Service) -> list[Service]:
    on_hosts = intent.host_services
    return [intent.service(name) for name in service.calls if name in on_hosts]


def outbound_clusters(intent: Intent, client: MeshHost,
                       callee: Service) -> list[dict[str, Any]]:
    hosts = intent.hosts_of(callee.name)
    clusters = [_mesh_cluster(intent, client, callee, None, hosts)]
    if intent.stage.reached(Stage.TRAFFIC) and (callee.traffic.split
                                                 or callee.traffic.header_routes):
        for version in callee.versions:
            clusters.append(_mesh_cluster(intent, client, callee, version.name,
                                          [h for h in hosts if h.version == version.name]))
    return clusters


def _mesh_cluster(intent: Intent, client: MeshHost, callee: Service, version: str | None,
                  hosts: list[MeshHost] | tuple[MeshHost, ...]) -> dict[str, Any]:
    name = cluster_name(callee, version)
    traffic = callee.traffic if intent.stage.reached(Stage.TRAFFIC) else None
    pool = traffic.connection_pool if traffic else None
    outlier = traffic.outlier_detection if traffic else None
    injected = {h.name for h in intent.injected_hosts()}
    mtls = exception_mode(intent, callee) != "DISABLE"
    # HTTP/2 between sidecars (a drained connection says GOAWAY, so no request is lost);
    # HTTP/1.1 when an endpoint is a host without a sidecar yet, or plaintext only
    http2 = mtls and all(h.name in injected for h in hosts)
    return {
        "name": name, "type": "STATIC",
        "connect_timeout": envoy_duration(pool.connect_timeout) if pool and pool.connect_timeout
        else "1s",
        "lb_policy": LB[traffic.load_balancer] if traffic and traffic.load_balancer
        else "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{
            "endpoint": {"address": socket_address(h.address, h.inbound_port)},
            # endpoints whose host runs a sidecar get mTLS; others plaintext
            "metadata": {"filter_metadata": {"envoy.transport_socket_match": {
                "mesh": mtls and h.name in injected}}},
        } for h in hosts]}]},
        "transport_socket_matches": [{
            "name": "mesh", "match": {"mesh": True},
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": UPSTREAM_TLS, "sni": callee.name,
                "common_tls_context": tls_context(
                    client, {"exact": spiffe_of(intent, callee)},
                    ["h2"] if http2 else ["http/1.1"]),
            }},
        }],
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_OPTIONS,
                "explicit_http_config": {"http2_protocol_options": {}} if http2
                else {"http_protocol_options": {}},
                "common_http_protocol_options": {
                    "max_requests_per_connection": pool.max_requests_per_connection}
                if pool and pool.max_requests_per_connection else None,
            }},
        "circuit_breakers": {"thresholds": [{
            "max_connections": pool.max_connections,
            "max_pending_requests": pool.http1_max_pending_requests,
            "max_requests": pool.http2_max_requests,
            "max_retries": pool.max_retries,
        }]} if pool else None,
        "outlier_detection": {
            "consecutive_5xx": outlier.consecutive_5xx_errors,
            "consecutive_gateway_failure": outlier.consecutive_gateway_errors,
            "interval": envoy_duration(outlier.interval) if outlier.interval else None,
            "base_ejection_time": envoy_duration(outlier.base_ejection_time)
            if outlier.base_ejection_time else None,
            "max_ejection_percent": outlier.max_ejection_percent,
        } if outlier else None,
    }


def static_cluster(name: str, address: str, port: int) -> dict[str, Any]:
    return {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": socket_address(address, port)}}]}]},
    }


def tls_context(host: MeshHost, san: Mapping[str, str], alpn: list[str]) -> dict[str, Any]:
    """Certificates from SDS files (watched, so renewal needs no restart), peer SAN checked."""
    return {
        "alpn_protocols": alpn,
        "tls_certificate_sds_secret_configs": [_sds(host, IDENTITY_SECRET, "sds-identity.yaml")],
        "combined_validation_context": {
            "default_validation_context": {"match_typed_subject_alt_names": [
                {"san_type": "URI", "matcher": dict(san)}]},
            "validation_context_sds_secret_config": _sds(host, TRUST_SECRET, "sds-trust.yaml"),
        },
    }


def _sds(host: MeshHost, name: str, filename: str) -> dict[str, Any]:
    return {"name": name, "sds_config": {
        "path_config_source": {"path": f"{host.config_dir}/{filename}"},
        "resource_api_version": "V3"}}
