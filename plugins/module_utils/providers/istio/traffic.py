"""Istio's traffic objects for a service: DestinationRules (subsets, TLS mode, pools, outlier
detection), VirtualServices (canary weights, header routes, timeouts, retries) and, with the
Gateway API, HTTPRoutes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...intent.model import Intent, Port, Service
from ...plan.callers import has_sidecar
from ...plan.ingress import IngressBinding
from ...plan.model import Gap, PlannedObject, StageContribution
from ...plan.model import template_meta as _meta
from ...stages import Stage
from ..gatewayapi.routes import (
    backend_services,
    http_route,
    route_ports,
    routes_versions,
    version_services,
    whole_duration,
)
from .api import NETWORKING
from .ports import port_prefix

_POOL_TCP = {"max_connections": "maxConnections", "connect_timeout": "connectTimeout"}


_POOL_HTTP = {
    "http1_max_pending_requests": "http1MaxPendingRequests",
    "http2_max_requests": "http2MaxRequests",
    "max_requests_per_connection": "maxRequestsPerConnection",
    "max_retries": "maxRetries",
}


_OUTLIER = {
    "consecutive_5xx_errors": "consecutive5xxErrors",
    "consecutive_gateway_errors": "consecutiveGatewayErrors",
    "interval": "interval",
    "base_ejection_time": "baseEjectionTime",
    "max_ejection_percent": "maxEjectionPercent",
}


def _tls_mode(intent: Intent, service: Service) -> str | None:
    """What clients originate to the service once strict: ISTIO_MUTUAL; DISABLE for a DISABLE
    exception, and for a service whose pods have no sidecar: Istio mTLS sent to a workload
    without one reaches the application as TLS it cannot read
    (https://istio.io/latest/docs/ops/configuration/traffic-management/tls-configuration/#auto-mtls:
    "only send plaintext to workloads that are not part of the mesh")."""
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return None
    if not has_sidecar(intent, service):
        return "DISABLE" if service.ports else None  # a client with no port is called by none
    if any(exception.mode == "DISABLE" for exception in intent.exceptions_for(service.name)):
        return "DISABLE"
    return "ISTIO_MUTUAL"


def _disabled_service_ports(intent: Intent, service: Service) -> list[int]:
    """Service ports whose workload port an exception sets to DISABLE (once strict)."""
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return []
    disabled = {port for exception in intent.exceptions_for(service.name)
                for port, mode in exception.ports.items() if mode == "DISABLE"}
    return sorted(p.port for p in service.ports if (p.target_port or p.port) in disabled)


def _needs_traffic_policy(intent: Intent, service: Service) -> bool:
    traffic = service.traffic
    return bool(traffic.connection_pool or traffic.outlier_detection
                or traffic.load_balancer or _tls_mode(intent, service) == "DISABLE"
                or _disabled_service_ports(intent, service))


def destination_rules(intent: Intent, service: Service) -> list[PlannedObject]:
    """The service's DestinationRule; with Gateway API routes, one per version backend too.

    Subsets serve VirtualService routes only. An HTTPRoute sends traffic to the version
    Services instead, so their hosts need the service's traffic policy of their own.
    """
    if intent.traffic_api != "gateway-api":
        needed = bool(service.versions) or _needs_traffic_policy(intent, service)
        return [_destination_rule(intent, service)] if needed else []
    if not _needs_traffic_policy(intent, service):
        return []
    hosts = [service.name]
    if service.traffic.routes and routes_versions(service):
        hosts += [name for name in backend_services(service) if name != service.name]
    return [_destination_rule(intent, service, host, subsets=False) for host in hosts]


def gateway_routes(intent: Intent, service: Service, contribution: StageContribution,
                   binding: IngressBinding | None = None) -> None:
    """The ``gateway-api`` option: an HTTPRoute per HTTP port (and one attached to the ingress
    gateway, when ``binding`` binds it), and the version Services."""
    path = intent.service_path(service)
    subject = f"service {service.namespace}/{service.name}"
    traffic = service.traffic
    ports = route_ports(service)
    if not ports:
        contribution.gaps.append(Gap(
            f"{path}.traffic", _traffic_summary(service), "istio (mesh_traffic_api gateway-api)",
            "an HTTPRoute attaches to an HTTP, HTTP2 or GRPC port and the service has none",
            subject))
        return
    timeouts = None
    if traffic.timeout:
        request, exact = whole_duration(traffic.timeout)
        timeouts = {"request": request}
        if not exact:
            contribution.gaps.append(Gap(
                f"{path}.traffic.timeout", traffic.timeout,
                "istio (mesh_traffic_api gateway-api)",
                f"Gateway API durations are whole milliseconds; rendered as {request}",
                subject))
    if traffic.retries:
        contribution.gaps.append(Gap(
            f"{path}.traffic.retries", _retries_summary(service),
            "istio (mesh_traffic_api gateway-api)",
            "the standard-channel HTTPRoute has no retry field (it is experimental); "
            "Istio's default retry policy applies", subject))
    for port in ports:
        contribution.objects.append(http_route(intent, service, port, timeouts=timeouts))
        if binding is not None and binding.gateway is not None:
            contribution.objects.append(http_route(intent, service, port, timeouts=timeouts,
                                                   gateway=binding.gateway,
                                                   hostnames=binding.hosts))
    contribution.objects.extend(version_services(intent, service))


def _traffic_summary(service: Service) -> dict[str, Any]:
    traffic = service.traffic
    return {key: value for key, value in (
        ("split", {w.subset: w.weight for w in traffic.split} or None),
        ("header_routes", len(traffic.header_routes) or None),
        ("timeout", traffic.timeout), ("retries", traffic.retries.attempts
                                       if traffic.retries else None)) if value is not None}


def _retries_summary(service: Service) -> dict[str, Any]:
    retries = service.traffic.retries
    assert retries is not None
    return {key: value for key, value in (
        ("attempts", retries.attempts), ("per_try_timeout", retries.per_try_timeout),
        ("retry_on", retries.retry_on)) if value is not None}


def _destination_rule(intent: Intent, service: Service, host: str | None = None,
                      subsets: bool = True) -> PlannedObject:
    traffic = service.traffic
    pool = traffic.connection_pool
    tls = _tls_mode(intent, service)
    host = host or service.name
    return PlannedObject(
        api_version=NETWORKING, kind="DestinationRule", name=host,
        namespace=service.namespace, template="istio/destination_rule.yaml.j2",
        context={
            **_meta(host, service.namespace, intent),
            "host": host,
            "tls": {"mode": tls} if tls else None,
            "load_balancer": {"simple": traffic.load_balancer} if traffic.load_balancer else None,
            "connection_pool": {
                "tcp": _camel(pool, _POOL_TCP), "http": _camel(pool, _POOL_HTTP),
            } if pool else None,
            "outlier_detection": _camel(traffic.outlier_detection, _OUTLIER),
            # clients must not originate mTLS to a port whose server side is DISABLE
            "port_level_settings": [
                {"port": {"number": port}, "tls": {"mode": "DISABLE"}}
                for port in _disabled_service_ports(intent, service)] or None,
            "subsets": [{"name": v.name, "labels": dict(v.labels)}
                        for v in service.versions] if subsets else [],
        },
    )


def peer_ports(service: Service) -> tuple[Port, ...]:
    """Every peer port of the service, once each, on its container port."""
    found: dict[int, Port] = {}
    for port in service.peer_ports:
        found.setdefault(port.port, port)
    return tuple(found.values())


def peers_service(intent: Intent, service: Service) -> PlannedObject:
    """A headless Service declaring every port the service's pods talk to each other on:
    a sidecar matches a pod's own address only on a port a headless Service declares (the
    service's own ClusterIP Service makes its ClusterIP known, not its pods'), and passes
    the rest through as plaintext, which STRICT refuses and a PERMISSIVE peer holds until
    the client speaks.
    https://istio.io/latest/docs/ops/configuration/traffic-management/traffic-routing/
    #headless-services"""
    return _headless(intent, service, "peer", peer_ports(service))


def pods_service(intent: Intent, service: Service) -> PlannedObject:
    """A headless Service declaring the container ports a service's callers reach at its
    pods' own addresses (``pod_addressed``, or ``pod_ports`` without Service ports: a
    registry such as Eureka or Consul hands the addresses out): with it, their sidecars
    match those addresses and send mTLS, instead of passing the requests through as
    plaintext, which STRICT refuses. The service's own Service, whose ClusterIP nobody
    uses, does not make the pods' addresses known to the sidecars.
    https://istio.io/latest/docs/ops/configuration/traffic-management/traffic-routing/
    #headless-services"""
    return _headless(intent, service, "pod", service.pod_addressed_ports())


def _headless(intent: Intent, service: Service, what: str,
              ports: tuple[Port, ...]) -> PlannedObject:
    """Headless Service ``<name>-<what>s`` over the service's pods, declaring ``ports``
    (``<protocol prefix>-<what>-<port>``, each on the same container port)."""
    name = f"{service.name}-{what}s"
    return PlannedObject(
        api_version="v1", kind="Service", name=name, namespace=service.namespace,
        template="istio/headless_service.yaml.j2",
        context={**_meta(name, service.namespace, intent),
                 "selector": service.selector,
                 "ports": [{"name": f"{port_prefix(p.protocol)}-{what}-{p.port}",
                            "port": p.port, "targetPort": p.port} for p in ports]},
    )


def service_entries(intent: Intent) -> list[PlannedObject]:
    """A ServiceEntry per namespace and host outside the cluster its injected services call
    (``calls: [api.example.com:443]``), visible in that namespace only: the hosts join the
    registry, so a Sidecar can import them and ``REGISTRY_ONLY`` lets them through.
    https://istio.io/latest/docs/reference/config/networking/service-entry/"""
    ports: dict[tuple[str, str], dict[int, str]] = {}
    for service in intent.services:
        if service.inject:
            for call in service.external_calls:
                ports.setdefault((service.namespace, call.host), {})[call.port] = call.protocol
    objects = []
    for (namespace, host), found in sorted(ports.items()):
        name = f"egress-{host.replace('.', '-')}"[:63].rstrip("-")
        objects.append(PlannedObject(
            api_version=NETWORKING, kind="ServiceEntry", name=name, namespace=namespace,
            template="istio/service_entry.yaml.j2",
            context={**_meta(name, namespace, intent), "hosts": [host], "export_to": ["."],
                     "ports": [{"number": number, "name": f"{protocol.lower()}-{number}",
                                "protocol": protocol}
                               for number, protocol in sorted(found.items())]},
        ))
    return objects


def _camel(source: Any, names: Mapping[str, str]) -> dict[str, Any] | None:
    if source is None:
        return None
    values = {camel: getattr(source, snake) for snake, camel in names.items()
              if getattr(source, snake) is not None}
    return values or None


def virtual_service(intent: Intent, service: Service,
                    binding: IngressBinding | None = None) -> PlannedObject:
    """The service's VirtualService: for sidecars, and for the ingress gateway too when the
    intent binds it (``binding``: the gateway and the hosts its requests carry)."""
    traffic = service.traffic
    retries = traffic.retries
    common = {
        "timeout": traffic.timeout,
        "retries": {
            "attempts": retries.attempts, "perTryTimeout": retries.per_try_timeout,
            "retryOn": retries.retry_on,
        } if retries else None,
    }
    default: list[tuple[str | None, int | None]]
    if traffic.split:
        default = [(w.subset, w.weight) for w in traffic.split]
    elif traffic.header_routes and service.versions:
        default = [(service.versions[0].name, None)]
    else:
        default = [(None, None)]
    gateway_ref = binding.gateway if binding is not None else None
    bound_hosts = list(binding.hosts) if binding is not None else []
    bound = gateway_ref is not None
    # A service with several ports (of any protocol: an HTTP port beside a TCP one counts)
    # gets its routes once per HTTP port, each matching the port and naming it in its
    # destinations: Istio cannot tell which port a destination means otherwise (istioctl
    # analyze IST0112, https://istio.io/latest/docs/reference/config/analysis/ist0112/).
    ports = route_ports(service)
    http: list[dict[str, Any]] = []
    for port in ports if len(service.ports) > 1 else [None]:
        number = port.port if port else None
        on_port = {"port": number} if number else {}

        def destination(subset: str | None, weight: int | None,
                        number: int | None = number) -> dict[str, Any]:
            return {"host": service.name, "subset": subset, "weight": weight,
                    "port": {"number": number} if number else None}

        for route in traffic.header_routes:
            http.append({
                "match": [{"headers": {m.header: {m.kind: m.value} for m in route.headers},
                           **on_port}],
                "destinations": [destination(route.subset, None)],
                **common,
            })
        http.append({"match": [on_port] if on_port else None,
                     "destinations": [destination(s, w) for s, w in default], **common})
    return PlannedObject(
        api_version=NETWORKING, kind="VirtualService", name=service.name,
        namespace=service.namespace, template="istio/virtual_service.yaml.j2",
        context={**_meta(service.name, service.namespace, intent),
                 "host": service.name, "http": http,
                 "hosts": [service.name, *bound_hosts] if bound else [service.name],
                 "gateways": [f"{gateway_ref[0]}/{gateway_ref[1]}", "mesh"]
                 if gateway_ref is not None else None},
    )
