"""Private helper: the destinations of a VirtualService, with their field paths."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...estate.objects import Resource, as_mapping


@dataclass(frozen=True)
class Destination:
    """One destination of a route (or mirror) of a VirtualService."""

    host: str
    subset: str
    port: int | None
    path: str          # spec.http[0].route[1].destination
    mirror: bool
    route_kind: str    # http, tcp or tls


def _destination(raw: Any, path: str, mirror: bool, kind: str) -> Destination:
    raw = as_mapping(raw)
    port = as_mapping(raw.get("port")).get("number")
    return Destination(host=str(raw.get("host") or ""), subset=str(raw.get("subset") or ""),
                       port=port if isinstance(port, int) else None, path=path,
                       mirror=mirror, route_kind=kind)


def route_destinations(virtual_service: Resource) -> Iterator[Destination]:
    """Every route destination of http, tcp and tls rules (an empty route entry counts, with
    an empty host), then every http mirror."""
    spec = virtual_service.spec
    for kind in ("http", "tcp", "tls"):
        rules = spec.get(kind)
        for number, rule in enumerate(rules if isinstance(rules, list) else []):
            routes = as_mapping(rule).get("route")
            for index, route in enumerate(routes if isinstance(routes, list) else []):
                yield _destination(as_mapping(route).get("destination"),
                                   f"spec.{kind}[{number}].route[{index}].destination",
                                   False, kind)
    rules = spec.get("http")
    for number, rule in enumerate(rules if isinstance(rules, list) else []):
        rule = as_mapping(rule)
        if rule.get("mirror"):
            yield _destination(rule["mirror"], f"spec.http[{number}].mirror", True, "http")
        mirrors = rule.get("mirrors")
        for index, mirror in enumerate(mirrors if isinstance(mirrors, list) else []):
            yield _destination(as_mapping(mirror).get("destination"),
                               f"spec.http[{number}].mirrors[{index}].destination", True,
                               "http")


def string_list(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def gateways(virtual_service: Resource) -> list[str]:
    """The VirtualService's gateways; none means the mesh."""
    return string_list(virtual_service.spec.get("gateways"))


def applies_to_mesh(virtual_service: Resource) -> bool:
    named = gateways(virtual_service)
    return not named or "mesh" in named
