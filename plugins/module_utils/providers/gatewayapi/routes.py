"""Gateway API routing, shared by the providers that route with it (Istio's ``gateway-api``
option, Linkerd's default): an HTTPRoute attached to the Service (parentRefs kind Service,
as the Gateway API's mesh profile has it), and the per-version Services its backends name.

The shapes follow Istio's ``samples/bookinfo/gateway-api`` routes and
``platform/kube/bookinfo-versions.yaml``: ``reviews`` with backends ``reviews-v1`` (weight 90)
and ``reviews-v2`` (weight 10), each a Service selecting ``app: reviews, version: v1``.
A version whose ``service`` the intent names is routed to that Service instead, and meshstage
does not render it (the team owns it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ...intent.checker import duration_seconds
from ...intent.model import HeaderMatch, Intent, Port, Service
from ...plan.model import PlannedObject, metadata

GATEWAY = "gateway.networking.k8s.io/v1"
# Ports an HTTPRoute can attach to: HTTP in any of its forms.
ROUTABLE_PROTOCOLS: tuple[str, ...] = ("HTTP", "HTTP2", "GRPC")

_REGEX_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def regex_escape(text: str) -> str:
    """``text`` as a literal in a regular expression (RE2 and Rust regex alike)."""
    return _REGEX_SPECIAL.sub(r"\\\1", text)


def regex_literal(pattern: str) -> str | None:
    """The text a regular expression of ``regex_escape``'s making matches literally, or None
    when it holds an unescaped special character (it matches more than one text)."""
    text, escaped = [], False
    for char in pattern:
        if escaped:
            text.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ".+*?()|[]{}^$":
            return None
        else:
            text.append(char)
    return None if escaped else "".join(text)


def whole_duration(text: str) -> tuple[str, bool]:
    """A duration as one whole number and unit (``1.5s`` -> ``1500ms``), and whether that is
    exact. Gateway API durations and Linkerd's annotations take no fractions; a value that is
    not a whole number of milliseconds is rounded up to the next one."""
    millis = duration_seconds(text) * 1000
    whole = math.ceil(round(millis, 6))
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if whole % size == 0:
            return f"{whole // size}{unit}", whole == round(millis, 6)
    return f"{whole}ms", whole == round(millis, 6)


def route_ports(service: Service) -> list[Port]:
    """The ports of ``service`` an HTTPRoute can attach to."""
    return [port for port in service.ports if port.protocol in ROUTABLE_PROTOCOLS]


def route_name(service: Service, port: Port) -> str:
    """``<service>``, or ``<service>-<port name>`` when the service has several HTTP ports."""
    return service.name if len(route_ports(service)) == 1 else f"{service.name}-{port.name}"


def backend_name(service: Service, version: str) -> str:
    """The Service that carries one version's traffic."""
    for item in service.versions:
        if item.name == version and item.service:
            return item.service
    return f"{service.name}-{version}"


def backend_services(service: Service) -> list[str]:
    """Every version's backend Service, in the order of the versions."""
    return [backend_name(service, version.name) for version in service.versions]


def routes_versions(service: Service) -> bool:
    """True when the service's route sends traffic to version backends."""
    return bool(service.traffic.split or (service.traffic.header_routes and service.versions))


def version_services(intent: Intent, service: Service,
                     annotations: Mapping[str, str] | None = None) -> list[PlannedObject]:
    """The per-version Services meshstage renders for a routed service (one per version the
    intent does not name a Service for), like bookinfo-versions.yaml."""
    if not routes_versions(service):
        return []
    objects = []
    for version in service.versions:
        if version.service:
            continue
        name = backend_name(service, version.name)
        meta = metadata(name, service.namespace, intent, annotations=annotations)
        objects.append(PlannedObject(
            api_version="v1", kind="Service", name=name, namespace=service.namespace,
            template="gatewayapi/service.yaml.j2",
            context={
                "name": name, "namespace": service.namespace, "labels": meta["labels"],
                "annotations": meta.get("annotations"),
                "ports": [{"name": port.name, "port": port.port,
                           "targetPort": port.target_port} for port in service.ports],
                "selector": {**service.selector, **version.labels},
            },
        ))
    return objects


def header_matches(headers: tuple[HeaderMatch, ...]) -> list[dict[str, Any]]:
    """Gateway API header matches: exact as is, prefix and regex as a regular expression."""
    matches = []
    for match in headers:
        if match.kind == "exact":
            matches.append({"name": match.header, "value": match.value})
        elif match.kind == "prefix":
            matches.append({"name": match.header, "type": "RegularExpression",
                            "value": f"^{regex_escape(match.value)}.*"})
        else:
            matches.append({"name": match.header, "type": "RegularExpression",
                            "value": match.value})
    return matches


def route_rules(service: Service, port: Port,
                timeouts: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The rules of a service's outbound route: header routes first, then the default."""
    traffic = service.traffic
    rules: list[dict[str, Any]] = []
    for route in traffic.header_routes:
        rules.append({
            "matches": [{"headers": header_matches(route.headers)}],
            "backend_refs": [{"name": backend_name(service, route.subset),
                              "port": port.port}],
            "timeouts": timeouts,
        })
    if traffic.split:
        backends = [{"name": backend_name(service, item.subset), "port": port.port,
                     "weight": item.weight} for item in traffic.split]
        if len(backends) == 1:
            backends[0]["weight"] = None  # the only backend gets everything
    elif traffic.header_routes and service.versions:
        backends = [{"name": backend_name(service, service.versions[0].name),
                     "port": port.port}]
    else:
        backends = [{"name": service.name, "port": port.port}]
    rules.append({"matches": None, "backend_refs": backends, "timeouts": timeouts})
    return rules


def http_route(intent: Intent, service: Service, port: Port,
               annotations: Mapping[str, str] | None = None,
               timeouts: Mapping[str, str] | None = None,
               gateway: tuple[str, str] | None = None,
               hostnames: tuple[str, ...] = ()) -> PlannedObject:
    """The outbound HTTPRoute of one service port: parent the Service itself; or, with
    ``gateway`` (namespace, name), the same rules attached to that Gateway for requests to
    ``hostnames``: ``<route>-ingress``."""
    name = route_name(service, port) + ("-ingress" if gateway else "")
    meta = metadata(name, service.namespace, intent, annotations=annotations)
    parent = {"group": "", "kind": "Service", "name": service.name, "port": port.port}
    if gateway is not None:
        parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway[1],
                  "namespace": gateway[0] if gateway[0] != service.namespace else None}
    return PlannedObject(
        api_version=GATEWAY, kind="HTTPRoute", name=name, namespace=service.namespace,
        template="gatewayapi/http_route.yaml.j2",
        context={
            "name": name, "namespace": service.namespace, "labels": meta["labels"],
            "annotations": meta.get("annotations"),
            "parent_refs": [parent],
            "hostnames": list(hostnames) or None,
            "rules": route_rules(service, port, timeouts),
        },
    )


def grpc_route(intent: Intent, service: Service, port: Port,
               annotations: Mapping[str, str] | None = None) -> PlannedObject:
    """The outbound GRPCRoute of one gRPC service port (parent the Service): the same rules
    as its HTTPRoute would have, without timeouts (GRPCRoute has none)."""
    name = route_name(service, port)
    meta = metadata(name, service.namespace, intent, annotations=annotations)
    return PlannedObject(
        api_version=GATEWAY, kind="GRPCRoute", name=name, namespace=service.namespace,
        template="gatewayapi/grpc_route.yaml.j2",
        context={
            "name": name, "namespace": service.namespace, "labels": meta["labels"],
            "annotations": meta.get("annotations"),
            "parent_refs": [{"group": "", "kind": "Service", "name": service.name,
                             "port": port.port}],
            "rules": route_rules(service, port),
        },
    )
