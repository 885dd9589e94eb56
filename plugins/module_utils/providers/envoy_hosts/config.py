"""The pieces every host sidecar file shares: Envoy's type URLs, the file and secret names,
the access log format, and small helpers (addresses, durations, SPIFFE IDs, cluster names)."""

from __future__ import annotations

from typing import Any

from ...intent.checker import duration_seconds
from ...intent.model import Intent, Service
from ...stages import Stage

TYPE = "type.googleapis.com/"


HCM = TYPE + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


ROUTER = TYPE + "envoy.extensions.filters.http.router.v3.Router"


RBAC = TYPE + "envoy.extensions.filters.http.rbac.v3.RBAC"


TLS_INSPECTOR = TYPE + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"


DOWNSTREAM_TLS = TYPE + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"


UPSTREAM_TLS = TYPE + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


HTTP_OPTIONS = TYPE + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


FILE_LOG = TYPE + "envoy.extensions.access_loggers.file.v3.FileAccessLog"


CEL_FILTER = TYPE + "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"


HOST_FILES = ("bootstrap.yaml", "lds.yaml", "cds.yaml", "sds-identity.yaml", "sds-trust.yaml")


IDENTITY_SECRET = "identity"


TRUST_SECRET = "mesh_ca"


# Retries that are safe for any request: it never reached the upstream.
SAFE_RETRY_ON = "connect-failure,refused-stream,reset-before-request"


LB = {"ROUND_ROBIN": "ROUND_ROBIN", "LEAST_REQUEST": "LEAST_REQUEST", "RANDOM": "RANDOM",
       "PASSTHROUGH": "ROUND_ROBIN"}


ACCESS_LOG_FORMAT = {
    "start_time": "%START_TIME%", "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%",
    "duration_ms": "%DURATION%", "request_id": "%REQ(X-REQUEST-ID)%",
    "traceparent": "%REQ(TRACEPARENT)%", "b3_trace_id": "%REQ(X-B3-TRACEID)%",
    "authority": "%REQ(:AUTHORITY)%", "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%", "peer_identity": "%DOWNSTREAM_PEER_URI_SAN%",
    "filter_chain": "%FILTER_CHAIN_NAME%", "downstream_remote": "%DOWNSTREAM_REMOTE_ADDRESS%",
}


def exception_mode(intent: Intent, service: Service) -> str | None:
    """DISABLE or PERMISSIVE when an mTLS exception keeps the service off strict mTLS."""
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return None
    return next((e.mode for e in intent.exceptions_for(service.name)), None)


def cluster_name(service: Service, version: str | None) -> str:
    # no dots: Envoy's default tag extraction reads the cluster name up to the first dot
    return f"outbound_{service.name}" + (f"_{version}" if version else "")


def spiffe_of(intent: Intent, service: Service) -> str:
    return f"spiffe://{intent.principal(service)}"


def socket_address(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def string_match(kind: str, value: str) -> dict[str, Any]:
    if kind == "regex":
        return {"safe_regex": {"regex": value}}
    return {kind: value}


def envoy_duration(text: str) -> str:
    """A Go-style duration (``1m30s``, ``250ms``) as Envoy's JSON duration (``90s``)."""
    seconds = duration_seconds(text)
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
