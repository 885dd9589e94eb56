"""The service registry's hosts: a Service's or a ServiceEntry's fully qualified names, the
namespaces they are visible in (``exportTo``), and how hosts overlap."""

from __future__ import annotations

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
