"""Parsing ``mesh_hosts`` (the plain hosts and their ``mesh_host`` variables), the stage gates'
settings and the promotion order; and the calls that cross between hosts and the cluster."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .checker import (
    ABSOLUTE_PATH,
    HTTP_URL,
    Checker,
    duration_seconds,
    ip_address,
    join_path,
    optional,
    parse_simple,
)
from .model import (
    GateSettings,
    InjectionWave,
    MeshHost,
    Service,
    Telemetry,
)
from .services import (
    subset_name,
)

# The fields of a host's ``mesh_host`` variable (hosts of the inventory group mesh_hosts).
HOST_KEYS: tuple[str, ...] = (
    "environment", "service", "address", "app_port", "inbound_port", "version", "wave",
    "app_address", "outbound_port", "admin_port", "stats_port", "root",
)


def parse_hosts(check: Checker, value: Any, environment: str,
                by_name: Mapping[str, Service],
                waves: list[InjectionWave]) -> list[MeshHost]:
    """The hosts of ``environment`` (each host's ``mesh_host``, keyed by inventory name).

    Hosts of other environments (inventories combined in one run) are left out here, after
    their ``environment`` is checked: each host belongs to exactly its own environment.
    """
    if value is None:
        return []
    if not isinstance(value, Mapping):
        check.error("mesh_hosts", value, "is not a mapping of host name to its mesh_host")
        return []
    hosts: list[MeshHost] = []
    wave_of = {ns: wave.name for wave in waves for ns in wave.namespaces}
    wave_names = [wave.name for wave in waves]
    listeners: dict[tuple[str, int], str] = {}
    for name, item in sorted(value.items(), key=lambda pair: str(pair[0])):
        path = join_path("mesh_hosts", str(name))
        check.string(name, path)
        if not isinstance(item, Mapping):
            check.error(path, item, "is not a mapping (the host's mesh_host variable)")
            continue
        owner = check.dns_label(item.get("environment"), join_path(path, "environment"))
        if owner != environment:
            continue  # another environment's host: checked when that environment runs
        data = check.mapping(item, path, required=("environment", "service", "address",
                                                   "app_port"),
                             optional=tuple(k for k in HOST_KEYS if k not in (
                                 "environment", "service", "address", "app_port")))
        if data is None:
            continue
        if check.dns_label(name, path) is None:  # a folder, and the sidecar's node id
            continue
        host = _parse_host(check, str(name), data, path, by_name, wave_of, wave_names)
        if host is None:
            continue
        other = listeners.setdefault((host.address, host.inbound_port), host.name)
        if other != host.name:
            check.error(join_path(path, "inbound_port"), host.inbound_port,
                        f"on {host.address} is host {other!r}'s inbound port too")
            continue
        hosts.append(host)
    return hosts


def _parse_host(check: Checker, name: str, data: Mapping[str, Any], path: str,
                by_name: Mapping[str, Service], wave_of: Mapping[str, str],
                wave_names: list[str]) -> MeshHost | None:
    """One host of this environment, or None after recording what is wrong with it."""
    service_name = check.dns_label(data["service"], join_path(path, "service"))
    service = None
    if service_name is not None and not check.unknown_service(
            service_name, join_path(path, "service"), by_name):
        service = by_name[service_name]
        if not service.inject:
            check.error(join_path(path, "service"), service_name,
                        "has inject: false; a host that carries it gets a sidecar, "
                        "so the service must not opt out of injection")
            service = None
    address = ip_address(check, data["address"], join_path(path, "address"))

    def port(value: Any, port_path: str) -> int | None:
        return check.integer(value, port_path, 1, 65535)

    app_port = port(data["app_port"], join_path(path, "app_port"))
    default_inbound = service.ports[0].port if service and service.ports else None
    inbound = optional(check, data, "inbound_port", path, port, default_inbound)
    if inbound is None and service is not None and "inbound_port" not in data:
        check.error(join_path(path, "inbound_port"), None,
                    f"is required: service {service.name!r} declares no port")
    numbers = {key: optional(check, data, key, path, port, default) for key, default in (
        ("outbound_port", 15001), ("admin_port", 15000), ("stats_port", 15090))}
    seen_ports: dict[int, str] = {}
    for key, number in {"inbound_port": inbound, **numbers}.items():
        if number is not None and number in seen_ports:
            check.error(join_path(path, key), number, f"is the same port as {seen_ports[number]}")
        elif number is not None:
            seen_ports[number] = key
    app_address = optional(check, data, "app_address", path,
                           lambda v, p: ip_address(check, v, p), "127.0.0.1")
    versions = tuple(v.name for v in service.versions) if service else ()
    version = optional(check, data, "version", path,
                       lambda v, p: subset_name(check, v, p, versions),
                       versions[0] if versions else None)
    wave = optional(check, data, "wave", path, lambda v, p: _wave(check, v, p, wave_names),
                    wave_of.get(service.namespace) if service else None)
    root = optional(check, data, "root", path, lambda v, p: check.string(
        v, p, ABSOLUTE_PATH, "an absolute path without spaces"), "/")
    if service is not None and wave is None and "wave" not in data:
        check.warn(join_path(path, "wave"), None, f"is not set and no injection wave holds "
                   f"namespace {service.namespace!r}: host {name} never gets its sidecar")
    if service is None or address is None or app_port is None or inbound is None \
            or None in numbers.values() or len(seen_ports) < 4:
        return None
    return MeshHost(
        name=name, service=service.name, address=address, app_port=app_port,
        inbound_port=inbound, version=version, wave=wave, app_address=app_address,
        outbound_port=numbers["outbound_port"] or 0, admin_port=numbers["admin_port"] or 0,
        stats_port=numbers["stats_port"] or 0, root=root)


def _wave(check: Checker, value: Any, path: str, names: list[str]) -> str | None:
    if isinstance(value, str) and value in names:
        return value
    check.error(path, value, "is not an injection wave (waves: "
                + (", ".join(names) or "none") + ")")
    return None


def parse_gates(check: Checker, value: Any, telemetry: Telemetry) -> GateSettings:
    """``mesh_gates``: the window must hold at least two scrapes, or Prometheus cannot show
    a change within it."""
    path = "mesh_gates"
    settings = parse_simple(check, value, path, GateSettings, {
        "prometheus": lambda v, p: check.string(v, p, HTTP_URL, "an http:// or https:// URL "
                                                "without spaces"),
        "window": check.duration,
        "observe": check.boolean,
    })
    scrape = duration_seconds(telemetry.scrape_interval)
    if duration_seconds(settings.window) < 2 * scrape:
        check.error(join_path(path, "window"), settings.window,
                    f"is shorter than twice mesh_telemetry.scrape_interval "
                    f"({telemetry.scrape_interval}): Prometheus cannot show a change within it")
    return settings


def parse_promotion_order(check: Checker, value: Any, environment: str) -> tuple[str, ...]:
    """``mesh_promotion_order``: every environment once, in the order changes are promoted;
    it must name the environment that runs."""
    path = "mesh_promotion_order"
    names: list[str] = []
    for index, item in enumerate(check.sequence(value, path)):
        name = check.dns_label(item, join_path(path, index))
        if name is not None and name in names:
            check.error(join_path(path, index), name, "is a duplicate environment")
        elif name is not None:
            names.append(name)
    if value is not None and isinstance(value, list | tuple) and names \
            and len(names) == len(value) and environment not in names:
        check.error(path, list(value), f"does not name this environment {environment!r}; "
                    "list every environment, in the order changes are promoted")
    return tuple(names)


# ``Kind namespace/name`` (``Kind name`` for a cluster-scoped kind), as the import writes them
_REPLACED = re.compile(r"^[A-Z][A-Za-z0-9]*( [a-z0-9]([-a-z0-9]*[a-z0-9])?/| )"
                       r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def parse_replaced(check: Checker, value: Any) -> tuple[tuple[str, str, str], ...]:
    """``mesh_replaced``: objects of the estate that meshstage's own replace (what the import
    turned into intent), as ``(kind, namespace, name)``; the namespace is empty for a
    cluster-scoped kind."""
    path = "mesh_replaced"
    found: list[tuple[str, str, str]] = []
    for index, item in enumerate(check.sequence(value, path)):
        if not isinstance(item, str) or not _REPLACED.match(item):
            check.error(join_path(path, index), item, "is not 'Kind namespace/name' (e.g. "
                        "'VirtualService shop/payment-canary')")
            continue
        kind, _, rest = item.partition(" ")
        namespace, _, name = rest.rpartition("/")
        if (kind, namespace, name) in found:
            check.error(join_path(path, index), item, "is a duplicate")
            continue
        found.append((kind, namespace, name))
    return tuple(found)


def check_host_calls(check: Checker, services: list[Service], on_hosts: set[str]) -> None:
    """Calls between Kubernetes and host services are not meshed: say so, never silently."""
    for index, service in enumerate(services):
        if service.name in on_hosts and service.external_calls:
            check.warn(f"mesh_services[{index}].calls", [c.host for c in service.external_calls],
                       f"are hosts outside the cluster called from host service "
                       f"{service.name!r}: the host sidecar has no route to them; the "
                       "application calls them directly")
        for call_index, callee in enumerate(service.calls):
            path = f"mesh_services[{index}].calls[{call_index}]"
            if service.name in on_hosts and callee not in on_hosts:
                check.warn(path, callee, f"is a Kubernetes service called from host service "
                           f"{service.name!r}: the host sidecar has no route to it, so the "
                           "call is not meshed (no mTLS, no routing); call it through the "
                           "cluster's ingress")
            elif service.name not in on_hosts and callee in on_hosts:
                check.warn(path, callee, f"runs on hosts and is called from Kubernetes "
                           f"service {service.name!r}: the call is not meshed; the host "
                           "accepts its plaintext only while permissive (before strict_mtls) "
                           "or under a PERMISSIVE mesh_mtls_exceptions entry")
