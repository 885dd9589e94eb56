"""Parsing ``mesh_services``: ports, versions, calls, canaries and traffic policy of each
service, and the checks across services (calls that name no service, route budgets, canary
windows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .checker import (
    HEADER_NAME,
    INGRESS_HOST,
    INT32_MAX,
    PROBE_PATH,
    RETRY_ON,
    UINT32_MAX,
    Checker,
    at_least_seconds,
    duration_seconds,
    is_dns_label,
    join_path,
    optional,
    parse_simple,
)
from .model import (
    CANARY_STEPS,
    HEADER_MATCH_KINDS,
    LOAD_BALANCERS,
    MAX_CANARY_STEPS,
    PROTOCOLS,
    SERVER_FIRST_PROTOCOLS,
    Canary,
    CanaryAnalysis,
    ConnectionPool,
    ExternalHost,
    HeaderMatch,
    HeaderRoute,
    Intent,
    OutlierDetection,
    Port,
    Retries,
    Service,
    ServiceAuthorization,
    TrafficPolicy,
    Version,
    WeightedSubset,
)
from .workloads import WORKLOAD_KEYS, parse_workload

SERVICE_KEYS = ("namespace", "service_account", "ports", "versions", "calls", "inject",
                "ingress", "ingress_hosts", "canary", "traffic", "probe_paths", "selector",
                "pod_addressed", *WORKLOAD_KEYS)


def check_canary_windows(check: Checker, intent: Intent) -> None:
    """A canary step is measured over its interval: it must hold two scrapes at least."""
    scrape = intent.telemetry.scrape_interval
    for service in intent.services:
        canary = service.canary
        if canary and duration_seconds(canary.analysis.interval) < \
                2 * duration_seconds(scrape):
            check.warn(f"{intent.service_path(service)}.canary.analysis.interval",
                       canary.analysis.interval, f"is under two scrape intervals "
                       f"(mesh_telemetry.scrape_interval {scrape}): a step's analysis "
                       "window holds too few samples to measure it")


def parse_services(check: Checker, items: list[Any]) -> list[Service]:
    services: list[Service] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        path = join_path("mesh_services", index)
        if isinstance(item, Mapping) and is_dns_label(item.get("name")):
            check.service_names[index] = item["name"]  # errors name the service from here
        data = check.mapping(item, path, required=("name", "namespace"),
                             optional=SERVICE_KEYS)
        if data is None:
            continue
        name = check.dns_label(data["name"], join_path(path, "name"))
        if name is None:
            continue
        if name in seen:
            check.error(join_path(path, "name"), name,
                        f"is a duplicate service (also mesh_services[{seen[name]}])")
            continue
        seen[name] = index
        service = _parse_service(check, data, path, name)
        if service is not None:
            services.append(service)
    return services


def _parse_service(check: Checker, data: dict[str, Any], path: str, name: str) -> Service | None:
    namespace = check.dns_label(data["namespace"], join_path(path, "namespace"))
    account = optional(check, data, "service_account", path, check.dns_subdomain, name)
    ports = _parse_ports(check, data.get("ports"), join_path(path, "ports"))
    versions = _parse_versions(check, data.get("versions"), join_path(path, "versions"))
    calls_path = join_path(path, "calls")
    written = check.sequence(data.get("calls"), calls_path)
    calls = tuple(
        name for name in (
            check.dns_label(call, join_path(calls_path, i))
            for i, call in enumerate(written) if not external_call(call)
        ) if name is not None
    )
    external = tuple(found for found in (
        _external_host(check, call, join_path(calls_path, i))
        for i, call in enumerate(written) if external_call(call)) if found is not None)
    inject = optional(check, data, "inject", path, check.boolean, True)
    workload = parse_workload(check, data, path, ports)
    ingress = optional(check, data, "ingress", path, check.boolean, False)
    hosts_path = join_path(path, "ingress_hosts")
    ingress_hosts = tuple(dict.fromkeys(
        text for i, text in enumerate(check.sequence(data.get("ingress_hosts"), hosts_path))
        if check.string(text, join_path(hosts_path, i), INGRESS_HOST,
                        "a host name (e.g. shop.example.com or *.example.com)") is not None))
    if ingress_hosts and not ingress:
        check.error(hosts_path, list(ingress_hosts), "needs ingress: true: they are the hosts "
                    "the ingress gateway receives this service's requests on")
    probe_paths = tuple(
        text for i, text in enumerate(check.sequence(data.get("probe_paths"),
                                                     join_path(path, "probe_paths")))
        if check.string(text, join_path(join_path(path, "probe_paths"), i), PROBE_PATH,
                        "an exact path starting with '/' (no '*', '?', '#' or spaces)")
        is not None)
    rendered = {f"{name}-{version.name}" for version in versions if version.service is None}
    for index, version in enumerate(versions):
        if version.service in rendered:
            check.error(join_path(join_path(join_path(path, "versions"), index), "service"),
                        version.service, "is the name meshstage gives the Service of another "
                        "version; name that version's service too, or pick another name")
    version_names = tuple(version.name for version in versions)
    traffic = _parse_traffic(check, data.get("traffic"), join_path(path, "traffic"), version_names)
    canary = _parse_canary(check, data.get("canary"), join_path(path, "canary"), version_names)
    if canary and traffic.split:
        check.error(join_path(path, "canary"), data.get("canary"),
                    "cannot be combined with traffic.split; use one of them")
        canary = None
    elif canary:
        traffic = TrafficPolicy(**{**traffic.__dict__, "split": canary.split()})
    if namespace is None:
        return None
    selector = optional(check, data, "selector", path, check.labels, None)
    pod_addressed = optional(check, data, "pod_addressed", path, check.boolean, False)
    if pod_addressed and not ports and not workload["pod_ports"]:
        check.error(join_path(path, "pod_addressed"), True, "names no port its callers reach: "
                    "give the service its ports, or the pod_ports they reach")
    return Service(name=name, namespace=namespace, service_account=account, ports=ports,
                   versions=versions, calls=calls, inject=inject, ingress=ingress,
                   traffic=traffic, probe_paths=probe_paths, canary=canary,
                   ingress_hosts=ingress_hosts, external_calls=external,
                   pod_labels=tuple(sorted(selector.items())) if selector else (),
                   pod_addressed=bool(pod_addressed), **workload)


def _parse_ports(check: Checker, value: Any, path: str) -> tuple[Port, ...]:
    ports: list[Port] = []
    for index, item in enumerate(check.sequence(value, path)):
        item_path = join_path(path, index)
        data = check.mapping(item, item_path, required=("port",),
                             optional=("name", "protocol", "target_port"))
        if data is None:
            continue
        number = check.integer(data["port"], join_path(item_path, "port"), 1, 65535)
        protocol = optional(check, data, "protocol", item_path,
                            lambda v, p: check.choice(v, p, PROTOCOLS), "HTTP")
        name = optional(check, data, "name", item_path, check.dns_label,
                        default_port_name(protocol, number))
        target = optional(check, data, "target_port", item_path,
                          lambda v, p: check.integer(v, p, 1, 65535), None)
        if number is not None:
            ports.append(Port(name=name, port=number, protocol=protocol, target_port=target))
    if not ports and value is None:
        ports.append(Port(name="http", port=80, protocol="HTTP"))
    return tuple(ports)


def external_call(call: Any) -> bool:
    """A ``calls`` item that names a host outside the cluster: it has a dot or a port."""
    return isinstance(call, str) and ("." in call or ":" in call)


def _external_host(check: Checker, value: str, path: str) -> ExternalHost | None:
    """``host`` or ``host:port`` (443 by default): TLS on 443, HTTP on 80, TCP otherwise."""
    host, _, port_text = value.partition(":")
    if check.dns_subdomain(host, path) is None:
        return None
    if "." not in host:
        check.error(path, value, "is not a service in mesh_services, nor a fully qualified "
                    "host outside the cluster (api.example.com:443)")
        return None
    port = int(port_text) if port_text.isdigit() else None
    if port_text and (port is None or not 1 <= port <= 65535):
        check.error(path, value, "has no port number 1-65535 after the ':'")
        return None
    port = port or 443
    protocol = {443: "TLS", 80: "HTTP"}.get(port, "TCP")
    return ExternalHost(host=host, port=port, protocol=protocol)


def default_port_name(protocol: str, number: Any) -> str:
    """``<protocol>-<port>``, e.g. ``http-8080``; a server-first protocol that the port-name
    convention has no prefix for is named ``tcp-<protocol>-<port>`` (``tcp-nats-4222``), so
    that a Service port of that name is not sniffed."""
    prefix = protocol.lower()
    if protocol in SERVER_FIRST_PROTOCOLS and protocol != "MYSQL":
        prefix = f"tcp-{prefix}"
    return f"{prefix}-{number}"


def _parse_versions(check: Checker, value: Any, path: str) -> tuple[Version, ...]:
    versions: list[Version] = []
    seen: set[str] = set()
    services: dict[str, str] = {}
    for index, item in enumerate(check.sequence(value, path)):
        item_path = join_path(path, index)
        short = isinstance(item, str)
        if short:
            item = {"name": item}
        data = check.mapping(item, item_path, required=("name",),
                             optional=("labels", "service"))
        if data is None:
            continue
        name = check.dns_label(data["name"], join_path(item_path, "name"))
        if name is None:
            continue
        if name in seen:
            check.error(join_path(item_path, "name"), name, "is a duplicate version")
            continue
        seen.add(name)
        labels = optional(check, data, "labels", item_path, check.labels, {"version": name})
        service = optional(check, data, "service", item_path, check.dns_label, None)
        if service is not None and service in services:
            check.error(join_path(item_path, "service"), service,
                        f"is already the service of version {services[service]!r}")
            service = None
        if service is not None:
            services[service] = name
        versions.append(Version(name=name, labels=labels, service=service, assumed=short))
    return tuple(versions)


def subset_name(check: Checker, value: Any, path: str, versions: tuple[str, ...]) -> str | None:
    name = check.dns_label(value, path)
    if name is not None and name not in versions:
        known = ", ".join(versions) if versions else "none declared"
        check.error(path, value, f"is not among the service's versions ({known})")
        return None
    return name


def _parse_canary(check: Checker, value: Any, path: str,
                  versions: tuple[str, ...]) -> Canary | None:
    if value is None:
        return None
    data = check.mapping(value, path, required=("subset", "weight"),
                         optional=("stable", "steps", "analysis"))
    if data is None:
        return None
    subset = subset_name(check, data["subset"], join_path(path, "subset"), versions)
    weight = check.integer(data["weight"], join_path(path, "weight"), 0, 100)
    stable = optional(check, data, "stable", path,
                      lambda v, p: subset_name(check, v, p, versions),
                      versions[0] if versions else None)
    steps = _parse_canary_steps(check, data.get("steps"), join_path(path, "steps"))
    analysis = parse_simple(check, data.get("analysis"), join_path(path, "analysis"),
                            CanaryAnalysis, {
        "interval": lambda v, p: at_least_seconds(check, v, p, 1.0),
        "success_rate": lambda v, p: check.number(v, p, 0, 100),
        "latency_p99": check.duration,
        "min_requests": lambda v, p: check.integer(v, p, 1),
        "max_waits": lambda v, p: check.integer(v, p, 0, 100),
    })
    if subset is None or weight is None or stable is None or steps is None:
        return None
    if stable == subset:
        check.error(join_path(path, "subset"), subset, "is the same as canary.stable")
        return None
    return Canary(stable=stable, subset=subset, weight=weight, steps=steps, analysis=analysis)


def _parse_canary_steps(check: Checker, value: Any, path: str) -> tuple[int, ...] | None:
    """Canary weights, strictly increasing, each 1 to 100; None after an error."""
    if value is None:
        return CANARY_STEPS
    if not isinstance(value, list | tuple) or not value:
        check.error(path, value, "is not a non-empty list of weights (e.g. [10, 25, 50, 100])")
        return None
    if len(value) > MAX_CANARY_STEPS:
        check.error(path, value, f"has {len(value)} steps, more than {MAX_CANARY_STEPS}")
        return None
    steps: list[int] = []
    for index, item in enumerate(value):
        weight = check.integer(item, join_path(path, index), 1, 100)
        if weight is None:
            return None
        if steps and weight <= steps[-1]:
            check.error(join_path(path, index), weight,
                        f"is not above the step before it ({steps[-1]})")
            return None
        steps.append(weight)
    return tuple(steps)


def _parse_traffic(check: Checker, value: Any, path: str,
                   versions: tuple[str, ...]) -> TrafficPolicy:
    if value is None:
        return TrafficPolicy()
    data = check.mapping(value, path, optional=(
        "split", "header_routes", "timeout", "retries", "connection_pool",
        "outlier_detection", "load_balancer"))
    if data is None:
        return TrafficPolicy()
    return TrafficPolicy(
        split=_parse_split(check, data.get("split"), join_path(path, "split"), versions),
        header_routes=_parse_header_routes(check, data.get("header_routes"),
                                           join_path(path, "header_routes"), versions),
        timeout=optional(check, data, "timeout", path, check.duration, None),
        retries=_parse_retries(check, data.get("retries"), join_path(path, "retries")),
        connection_pool=parse_simple(
            check, data.get("connection_pool"), join_path(path, "connection_pool"),
            ConnectionPool, {
                "max_connections": lambda v, p: check.integer(v, p, 1, INT32_MAX),
                "connect_timeout": check.duration,
                "http1_max_pending_requests": lambda v, p: check.integer(v, p, 1, INT32_MAX),
                "http2_max_requests": lambda v, p: check.integer(v, p, 1, INT32_MAX),
                "max_requests_per_connection": lambda v, p: check.integer(v, p, 1, INT32_MAX),
                "max_retries": lambda v, p: check.integer(v, p, 0, INT32_MAX),
            }, none_if_absent=True),
        outlier_detection=parse_simple(
            check, data.get("outlier_detection"), join_path(path, "outlier_detection"),
            OutlierDetection, {
                "consecutive_5xx_errors": lambda v, p: check.integer(v, p, 0, UINT32_MAX),
                "consecutive_gateway_errors": lambda v, p: check.integer(v, p, 0, UINT32_MAX),
                "interval": check.duration,
                "base_ejection_time": check.duration,
                "max_ejection_percent": lambda v, p: check.integer(v, p, 0, 100),
            }, none_if_absent=True),
        load_balancer=optional(check, data, "load_balancer", path,
                               lambda v, p: check.choice(v, p, LOAD_BALANCERS), None),
    )


def _parse_split(check: Checker, value: Any, path: str,
                 versions: tuple[str, ...]) -> tuple[WeightedSubset, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not value:
        check.error(path, value, "is not a mapping of version to weight")
        return ()
    result: list[WeightedSubset] = []
    for subset, weight in value.items():
        item_path = join_path(path, str(subset))
        name = subset_name(check, subset, item_path, versions)
        number = check.integer(weight, item_path, 0, 100)
        if name is not None and number is not None:
            result.append(WeightedSubset(name, number))
    total = sum(item.weight for item in result)
    if len(result) == len(value) and total != 100:
        check.error(path, dict(value), f"weights sum to {total}, not 100")
    return tuple(result)


def _parse_header_routes(check: Checker, value: Any, path: str,
                         versions: tuple[str, ...]) -> tuple[HeaderRoute, ...]:
    routes: list[HeaderRoute] = []
    for index, item in enumerate(check.sequence(value, path)):
        item_path = join_path(path, index)
        data = check.mapping(item, item_path, required=("headers", "subset"))
        if data is None:
            continue
        subset = subset_name(check, data["subset"], join_path(item_path, "subset"), versions)
        headers = _parse_headers(check, data["headers"], join_path(item_path, "headers"))
        if subset is not None and headers:
            routes.append(HeaderRoute(headers=headers, subset=subset))
    return tuple(routes)


def _parse_headers(check: Checker, value: Any, path: str) -> tuple[HeaderMatch, ...]:
    if not isinstance(value, Mapping) or not value:
        check.error(path, value, "is not a non-empty mapping of header name to match")
        return ()
    matches: list[HeaderMatch] = []
    for header, match in value.items():
        header_path = join_path(path, str(header))
        if not isinstance(header, str) or not HEADER_NAME.match(header):
            check.error(header_path, header, "is not a lower-case HTTP header name")
            continue
        data = check.mapping(match, header_path, optional=HEADER_MATCH_KINDS)
        if data is None:
            continue
        if len(data) != 1:
            check.error(header_path, match, "needs exactly one of exact, prefix, regex")
            continue
        ((kind, text),) = data.items()
        text = check.string(text, join_path(header_path, kind))
        if text is not None:
            matches.append(HeaderMatch(header=header, kind=kind, value=text))
    return tuple(sorted(matches, key=lambda m: m.header))


def _parse_retries(check: Checker, value: Any, path: str) -> Retries | None:
    if value is None:
        return None
    data = check.mapping(value, path, required=("attempts",),
                         optional=("per_try_timeout", "retry_on"))
    if data is None:
        return None
    attempts = check.integer(data["attempts"], join_path(path, "attempts"), 0, 100)
    per_try = optional(check, data, "per_try_timeout", path, check.duration, None)
    retry_on = optional(check, data, "retry_on", path,
                        lambda v, p: check.string(v, p, RETRY_ON,
                                                  "a comma-separated list of retry conditions "
                                                  "(e.g. 5xx,reset,connect-failure)"), None)
    if attempts is None:
        return None
    return Retries(attempts=attempts, per_try_timeout=per_try, retry_on=retry_on)


def check_calls(check: Checker, items: list[Any], by_name: Mapping[str, Service]) -> None:
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) \
                or item["name"] not in by_name:
            continue
        for call_index, call in enumerate(by_name[item["name"]].calls):
            path = f"mesh_services[{index}].calls[{call_index}]"
            if check.unknown_service(call, path, by_name):
                continue
            callee = by_name[call]
            if not callee.ports and not callee.pod_ports:
                check.warn(path, call, f"has no ports (no Service): no request to it is "
                           "routed, proven or admitted; if its callers reach its pods' own "
                           "addresses (a registry such as Eureka or Consul hands them out), "
                           f"give {call} the pod_ports they reach")


def check_route_budgets(check: Checker, services: list[Service]) -> None:
    """Warn when retries cannot all fit in the route timeout."""
    for index, service in enumerate(services):
        traffic = service.traffic
        retries = traffic.retries
        if not (traffic.timeout and retries and retries.per_try_timeout):
            continue
        budget = duration_seconds(retries.per_try_timeout) * max(retries.attempts, 1)
        if budget > duration_seconds(traffic.timeout):
            check.warn(f"mesh_services[{index}].traffic.retries", {
                "attempts": retries.attempts, "per_try_timeout": retries.per_try_timeout},
                f"need up to {budget:g}s, more than the route timeout {traffic.timeout}: "
                "the last attempts will be cut off")


def check_shared_accounts(check: Checker, services: list[Service],
                          authorization: list[ServiceAuthorization],
                          enforced: bool = False) -> None:
    """Services that run as one service account share one identity (the principal of
    every request they make), so an ALLOW that names one of them admits them all: warn,
    naming the services and the account, when an allow rule names one of them, or, at the
    authorization stage (``enforced``), when one of them calls a service of the catalogue
    (its derived ALLOW then admits them all: Online Boutique, Bank of Anthos and the
    TeaStore run every workload as ``default``)."""
    allowed = {name for entry in authorization for rule in entry.allow
               for name in rule.source.services}
    if enforced:
        catalogue = {service.name for service in services}
        allowed |= {service.name for service in services
                    if catalogue.intersection(service.calls)}
    by_identity: dict[tuple[str, str], list[tuple[int, Service]]] = {}
    for number, service in enumerate(services):
        by_identity.setdefault((service.namespace, service.service_account), []).append(
            (number, service))
    for (namespace, account), sharing in sorted(by_identity.items()):
        names = [service.name for _number, service in sharing]
        if len(sharing) < 2 or not allowed.intersection(names):
            continue
        check.warn(f"mesh_services[{sharing[1][0]}].service_account", account,
                   f"is the service account of {', '.join(names)} in namespace {namespace}: "
                   "they share one identity, so every ALLOW that admits one of them admits "
                   "them all; give each its own service_account")
