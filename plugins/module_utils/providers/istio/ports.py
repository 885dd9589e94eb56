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
