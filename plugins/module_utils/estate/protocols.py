"""Ports that carry a protocol the proxies must not wait on.

Protocol detection reads a connection's first bytes. A server-speaks-first protocol
(MySQL, SMTP, NATS) sends nothing from the client, so the proxy waits: Istio stalls the
connection, Linkerd delays it 10 seconds. PostgreSQL and memcached clients speak first but
open pooled connections and send nothing for a while; Linkerd lists their ports as opaque by
default, and Istio wants them declared TCP. A port is taken to carry such a protocol when its
name or ``appProtocol`` says so, or by its well-known number.
https://istio.io/latest/docs/ops/deployment/application-requirements/#server-first-protocols,
https://linkerd.io/2-edge/features/protocol-detection/
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Detected:
    protocol: str          # MYSQL, SMTP, ...
    server_first: bool     # the server speaks first (a sniffing proxy waits forever)
    why: str               # "its name 'postgres'", "port 4222 (NATS)"


# protocol: (server speaks first, well-known ports, words its port names use)
_KNOWN: dict[str, tuple[bool, frozenset[int], frozenset[str]]] = {
    "MYSQL": (True, frozenset({3306}), frozenset({"mysql", "mariadb"})),
    "SMTP": (True, frozenset({25, 465, 587, 2525}), frozenset({"smtp", "smtps", "submission"})),
    "NATS": (True, frozenset({4222, 6222}), frozenset({"nats"})),
    "POSTGRESQL": (False, frozenset({5432}), frozenset({"postgres", "postgresql", "pgsql"})),
    "MEMCACHED": (False, frozenset({11211}), frozenset({"memcache", "memcached"})),
}
_WORD = re.compile(r"[a-z0-9]+")


def detect(name: Any, number: Any, app_protocol: Any = None) -> Detected | None:
    """The protocol a port's name, ``appProtocol`` or number shows, when it is one of
    these."""
    words = set(_WORD.findall(f"{name or ''} {app_protocol or ''}".lower()))
    for protocol, (server_first, _, names) in _KNOWN.items():
        found = words & names
        if found:
            return Detected(protocol, server_first, f"its name {sorted(found)[0]!r}")
    for protocol, (server_first, ports, _) in _KNOWN.items():
        if number in ports:
            return Detected(protocol, server_first, f"port {number} ({protocol})")
    return None


def service_ports(resource_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    ports = resource_spec.get("ports")
    return [p for p in ports if isinstance(p, Mapping)] if isinstance(ports, list) else []


def placeholder_port(spec: Mapping[str, Any], name: Any, number: Any) -> bool:
    """kompose's port for a compose service that publishes none: a headless Service with
    the port ``headless`` 55555, so that the name resolves (kubernetes/kompose#823). Nothing
    serves it."""
    return spec.get("clusterIP") == "None" and name == "headless" and number == 55555
