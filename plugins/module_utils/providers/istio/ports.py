"""Istio's port conventions: the protocol a Service port's ``appProtocol`` or name tells it
(``<protocol>[-<suffix>]``), the ports it takes as TCP without one, and the name prefix that
declares a protocol. https://istio.io/latest/docs/ops/configuration/traffic-management/
protocol-selection/, ``ConvertProtocol`` and ``wellKnownPorts`` in istio/istio
pkg/config/kube/conversion.go."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Protocols Istio knows by name (case does not matter).
PROTOCOLS: frozenset[str] = frozenset({
    "tcp", "udp", "grpc", "grpc-web", "http", "http_proxy", "http2", "https", "tls",
    "mongo", "redis", "mysql",
})
_APP_PROTOCOL_ALIASES = {"kubernetes.io/h2c": "http2", "kubernetes.io/ws": "http",
                         "kubernetes.io/wss": "https"}


def port_protocol(port: Mapping[str, Any]) -> str | None:
    """The protocol Istio sees on a Service port: from ``appProtocol``, then the name's
    ``<protocol>[-<suffix>]`` prefix, then UDP/SCTP; None when it cannot tell."""
    transport = str(port.get("protocol") or "TCP").upper()
    if transport in ("UDP", "SCTP"):
        return transport.lower()
    app = port.get("appProtocol")
    if isinstance(app, str) and app:
        app = _APP_PROTOCOL_ALIASES.get(app, app).lower()
        if app in PROTOCOLS:
            return app
    name = str(port.get("name") or "").lower()
    if name.startswith("grpc-web"):
        return "grpc-web"
    prefix = name.partition("-")[0]
    return prefix if prefix in PROTOCOLS else None


# Istio reads a Service port's protocol from its name's prefix: https://istio.io/latest/docs/
# ops/configuration/traffic-management/protocol-selection/; mysql, mongo and redis are TCP
# proxied (their filters are off by default), and protocols Istio does not know are declared
# as TCP so that they are not sniffed.
PORT_PREFIX = {"HTTP": "http", "HTTP2": "http2", "GRPC": "grpc", "TCP": "tcp", "TLS": "tls",
               "HTTPS": "https", "MONGO": "mongo", "REDIS": "redis", "MYSQL": "mysql"}


# Service ports Istio treats as TCP without a declaration (``wellKnownPorts`` in istio/istio
# pkg/config/kube/conversion.go): 25 SMTP, 53 DNS, 3306 MySQL, 27017 MongoDB
WELL_KNOWN_TCP: frozenset[int] = frozenset({25, 53, 3306, 27017})


def port_prefix(protocol: str) -> str:
    """The port-name prefix that tells Istio a protocol (``tcp`` for those it does not
    know)."""
    return PORT_PREFIX.get(protocol, "tcp")


INCLUDE_INBOUND = "traffic.sidecar.istio.io/includeInboundPorts"
EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"


def uncaptured_inbound(annotations: Mapping[str, Any], port: int) -> str | None:
    """Why a pod's sidecar leaves inbound connections to ``port`` alone (its annotations say
    so), else None: they then reach the application directly, and PeerAuthentication and
    AuthorizationPolicy never see them.

    ``includeInboundPorts`` lists the ports redirected to Envoy: ``*`` (the injector's
    default, ``global.proxy.includeInboundPorts``) all of them, an empty list none;
    ``excludeInboundPorts`` takes ports out of ``*`` only. A client's sidecar still sends
    Istio mTLS to such a port (auto mTLS goes by the pod's sidecar, not by its ports).
    https://istio.io/latest/docs/reference/config/annotations/ (both annotations: "An empty
    list will disable all inbound redirection"; "Only applies when all inbound traffic (i.e.
    '*') is being redirected"), https://github.com/istio/istio/issues/30311 and the istio.io
    FAQ "Does Auto mTLS work with the excludeInboundPorts annotations?" ("No").
    """
    included, excluded = annotations.get(INCLUDE_INBOUND), annotations.get(EXCLUDE_INBOUND)
    if included is None and not excluded:  # most pods: every port (a flow proof's hot path)
        return None
    include = "*" if included is None else str(included).strip()
    if include != "*":
        if port in _port_list(include):
            return None
        return f"{INCLUDE_INBOUND}: \"{include}\""
    if port in _port_list(str(excluded or "")):
        return f"{EXCLUDE_INBOUND}: \"{excluded}\""
    return None


def _port_list(text: str) -> set[int]:
    return {int(part) for part in (p.strip() for p in text.split(",")) if part.isdigit()}
