"""The service registry's hosts: a Service's or a ServiceEntry's fully qualified names, the
namespaces they are visible in (``exportTo``), and how hosts overlap."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .objects import (
    DEFAULT_DOMAIN,
    Resource,
    as_list,
)


@dataclass(frozen=True, eq=False)
class HostEntry:
    """A host of the service registry: a Kubernetes Service or a ServiceEntry host."""

    resource: Resource
    fqdn: str
    ports: tuple[Mapping[str, Any], ...]   # {"number", "name", "protocol", "targetPort"}
    selector: Mapping[str, str]              # pods behind it (Service selector, SE labels)

    @property
    def is_service(self) -> bool:
        return self.resource.kind == "Service"


def to_fqdn(namespace: str, host: str) -> str:
    """A short host (``reviews``) as the FQDN of its namespace; FQDNs and wildcards as is."""
    if host.startswith("*") or "." in host:
        return host
    return f"{host}.{namespace}.{DEFAULT_DOMAIN}"


def service_of_fqdn(fqdn: str) -> tuple[str, str] | None:
    """(namespace, name) of ``name.namespace.svc.cluster.local``; None for other hosts."""
    suffix = "." + DEFAULT_DOMAIN
    if not fqdn.endswith(suffix):
        return None
    name, _, namespace = fqdn[: -len(suffix)].rpartition(".")
    return (namespace, name) if name and namespace and "." not in name else None


def host_overlaps(first: str, second: str) -> bool:
    """True when two hostnames (``*.foo.com`` wildcards allowed) can name the same host."""
    first_wild, second_wild = first.startswith("*"), second.startswith("*")
    if not first_wild and not second_wild:
        return first == second
    if first_wild and second_wild:
        a, b = first[1:], second[1:]
        return a.endswith(b) or b.endswith(a)
    wild, plain = (first, second) if first_wild else (second, first)
    return plain.endswith(wild[1:])


def export_scopes(export_to: Iterable[str], namespace: str) -> list[str]:
    """The namespaces an exportTo list makes a host visible in; ``*`` means all."""
    scopes = []
    for entry in export_to:
        entry = entry.strip()
        if entry == ".":
            scopes.append(namespace)
        elif entry and entry != "~":
            scopes.append(entry)
    return scopes


def service_scopes(resource: Resource) -> list[str]:
    annotation = resource.annotations.get("networking.istio.io/exportTo")
    if not annotation:
        return ["*"]
    return export_scopes(annotation.split(","), resource.namespace)


def entry_scopes(resource: Resource) -> list[str]:
    export_to = [str(e) for e in as_list(resource.spec.get("exportTo"))]
    if not export_to:
        return ["*"]
    scopes = export_scopes(export_to, resource.namespace)
    return ["*"] if "*" in scopes else scopes


# A host in free text: an optional scheme and user, the name, an optional port.
_HOST_IN_TEXT = re.compile(
    r"(?<![A-Za-z0-9_.@/-])(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?:[^@/\s]*@)?)?"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*"
    r"[A-Za-z0-9])?)*)(?::(?P<port>[0-9]{1,5}))?(?![A-Za-z0-9_-])")


@dataclass(frozen=True)
class NamedHost:
    """A host written in a value (an environment variable, an argument): ``name`` and
    ``namespace`` of the Service it names when the text is a cluster DNS name (``web``,
    ``web.shop``, ``web.shop.svc``, ``web.shop.svc.cluster.local``; namespace None for a
    bare name), with the port and scheme written beside it."""

    name: str
    namespace: str | None
    port: int | None
    scheme: str | None
    text: str


def hosts_in_text(text: str, domain: str = "cluster.local") -> list[NamedHost]:
    """The cluster DNS names ``text`` holds (https://kubernetes.io/docs/concepts/services-
    networking/dns-pod-service/#services: ``<service>.<namespace>.svc.<domain>``, and the
    shorter forms the pod's DNS search path completes)."""
    found = []
    for match in _HOST_IN_TEXT.finditer(text):
        parts = match.group("host").lower().split(".")
        if parts[-len(domain.split(".")):] == domain.split(".") and len(parts) > 2:
            parts = parts[: -len(domain.split("."))]
        if len(parts) == 3 and parts[2] == "svc":
            parts = parts[:2]
        if len(parts) > 2:
            continue
        port = match.group("port")
        found.append(NamedHost(parts[0], parts[1] if len(parts) == 2 else None,
                               int(port) if port else None, match.group("scheme"),
                               match.group(0)))
    return found
