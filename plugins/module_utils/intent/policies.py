"""Parsing the mesh-wide settings: injection waves, mTLS exceptions, telemetry, authorization
rules and Linkerd's own settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .checker import (
    GATEWAY_REF,
    HOST_PORT,
    Checker,
    join_path,
    optional,
    parse_networks,
    suggestion,
)
from .model import (
    CLASSIC_GATEWAY_LABELS,
    HTTP_METHODS,
    LINKERD_ACCESS_LOG_FORMATS,
    MTLS_EXCEPTION_MODES,
    AuthorizationRule,
    IngressGateway,
    InjectionWave,
    LinkerdSettings,
    MtlsExemption,
    Service,
    ServiceAuthorization,
    Source,
    Telemetry,
)

# Kubernetes' own namespaces: a wave that injects them meshes the cluster's components.
_SYSTEM_NAMESPACES = ("kube-system", "kube-public")


@dataclass
class _WaveClaims:
    """What the waves read so far claimed, each by the index of its wave."""

    names: dict[int, str] = field(default_factory=dict)          # wave -> its name
    named_ns: dict[str, int] = field(default_factory=dict)       # namespace -> wave naming it
    labelled: dict[str, int] = field(default_factory=dict)       # namespace -> wave labelling it
    named_service: dict[str, int] = field(default_factory=dict)  # service -> wave naming it

    def own_wave(self, service: Service) -> int | None:
        """The wave that names the service, else its namespace, else labels its namespace."""
        return self.named_service.get(service.name, self.named_ns.get(
            service.namespace, self.labelled.get(service.namespace)))


def parse_waves(check: Checker, value: Any, by_name: Mapping[str, Service]
                ) -> tuple[list[InjectionWave], dict[str, int]]:
    """The waves, and each service's own wave (its index): the wave that names it, else the
    wave that names its namespace, else the wave that labels its namespace."""
    waves: list[InjectionWave] = []
    claims = _WaveClaims()
    known = {service.namespace for service in by_name.values()}
    for index, item in enumerate(check.sequence(value, "mesh_injection_waves")):
        wave = _parse_wave(check, item, index, by_name, known, claims)
        if wave is not None:
            waves.append(wave)
    if value is None and known:
        waves.append(InjectionWave(name="wave-1", namespaces=tuple(sorted(known))))
        claims.labelled = {ns: 0 for ns in known}
    elif value is not None:
        kept_out = {service.namespace for service in by_name.values()} - {
            service.namespace for service in by_name.values() if service.inject}
        for ns in sorted(known - set(claims.labelled) - check.refused_namespaces - kept_out):
            check.warn("mesh_injection_waves", ns, "is a namespace of mesh_services in no "
                       "injection wave: its workloads are never injected")
    own = {}
    for service in by_name.values():
        number = claims.own_wave(service)
        if number is not None:
            own[service.name] = number
    return waves, own


def _parse_wave(check: Checker, item: Any, index: int, by_name: Mapping[str, Service],
                known: set[str], claims: _WaveClaims) -> InjectionWave | None:
    """One wave: it labels the namespaces it names and those of the services it names, each
    unless an earlier wave labels it already."""
    path = join_path("mesh_injection_waves", index)
    data = check.mapping(item, path, optional=("name", "namespaces", "services"))
    if data is None:
        return None
    if data.get("namespaces") is None and data.get("services") is None:
        check.error(join_path(path, "namespaces"), None, "is required (or services, for "
                    "a wave of services of one namespace)")
        return None
    name = optional(check, data, "name", path, check.dns_label, f"wave-{index + 1}")
    claims.names[index] = name
    namespaces = _claim_namespaces(check, data.get("namespaces"), join_path(path, "namespaces"),
                                   index, known, claims)
    services = _claim_services(check, data.get("services"), join_path(path, "services"),
                               index, by_name, claims)
    labels: list[str] = []
    for ns in [*namespaces, *(by_name[service].namespace for service in services)]:
        if ns not in claims.labelled:
            claims.labelled[ns] = index
            labels.append(ns)
    return InjectionWave(name=name, namespaces=tuple(labels), services=tuple(services))


def _claim_namespaces(check: Checker, value: Any, path: str, index: int, known: set[str],
                      claims: _WaveClaims) -> list[str]:
    """The namespaces a wave names: each a namespace of a service, in no earlier wave."""
    named: list[str] = []
    for ns_index, ns in enumerate(check.sequence(value, path)):
        ns_path = join_path(path, ns_index)
        ns = check.dns_label(ns, ns_path)
        if ns is None:
            continue
        if ns in claims.named_ns:
            check.error(ns_path, ns,
                        f"is already in injection wave {claims.names[claims.named_ns[ns]]!r}")
            continue
        if ns not in known:
            if ns not in check.refused_namespaces:
                check.error(ns_path, ns, "is not the namespace of any service in "
                            "mesh_services" + suggestion(ns, known))
            continue
        if ns in _SYSTEM_NAMESPACES:
            check.warn(ns_path, ns, "is a Kubernetes system namespace: injecting it puts "
                       "sidecars on the cluster's own components (DNS, the API server's "
                       "helpers), which then depend on the mesh to start; leave it out of "
                       "the waves unless that is meant")
        claims.named_ns[ns] = index
        named.append(ns)
    return named


def _claim_services(check: Checker, value: Any, path: str, index: int,
                    by_name: Mapping[str, Service], claims: _WaveClaims) -> list[str]:
    """The services a wave names: each a service of mesh_services, in no earlier wave."""
    services: list[str] = []
    for s_index, service in enumerate(check.sequence(value, path)):
        s_path = join_path(path, s_index)
        service = check.dns_label(service, s_path)
        if service is None or check.unknown_service(service, s_path, by_name):
            continue
        if service in claims.named_service:
            check.error(s_path, service, "is already in injection wave "
                        f"{claims.names[claims.named_service[service]]!r}")
            continue
        claims.named_service[service] = index
        services.append(service)
    return services


def parse_mtls_exceptions(check: Checker, value: Any,
                          by_name: Mapping[str, Service]) -> list[MtlsExemption]:
    exceptions: list[MtlsExemption] = []
    first: dict[str, int] = {}
    for index, item in enumerate(check.sequence(value, "mesh_mtls_exceptions")):
        path = join_path("mesh_mtls_exceptions", index)
        data = check.mapping(item, path, required=("service", "mode", "reason"),
                             optional=("ports",))
        if data is None:
            continue
        name = check.dns_label(data["service"], join_path(path, "service"))
        mode = check.choice(data["mode"], join_path(path, "mode"), MTLS_EXCEPTION_MODES)
        reason = check.string(data["reason"], join_path(path, "reason"))
        if name is not None and check.unknown_service(
                name, join_path(path, "service"), by_name,
                "selects nothing: no service of that name in mesh_services"):
            continue
        if name is not None and name in first:
            check.error(join_path(path, "service"), name, "has an exception already "
                        f"(mesh_mtls_exceptions[{first[name]}]); use ports for per-port modes")
            continue
        if name is not None:
            first[name] = index
        ports = _parse_exception_ports(check, data.get("ports"), join_path(path, "ports"),
                                       by_name.get(name) if name else None)
        if name is not None and mode is not None and reason is not None:
            exceptions.append(MtlsExemption(service=name, mode=mode, ports=ports,
                                            reason=reason))
    return exceptions


def _parse_exception_ports(check: Checker, value: Any, path: str,
                           service: Service | None) -> dict[int, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        check.error(path, value, "is not a mapping of port number to mode")
        return {}
    ports: dict[int, str] = {}
    declared = {port.target_port or port.port for port in service.ports} if service else set()
    for port, mode in value.items():
        port_path = join_path(path, str(port))
        number = check.integer(port, port_path, 1, 65535)
        mode = check.choice(mode, port_path, ("DISABLE", "PERMISSIVE", "STRICT"))
        if number is not None and service is not None and number not in declared:
            known = ", ".join(str(n) for n in sorted(declared)) or "none declared"
            check.error(port_path, port,
                        f"selects nothing: not a port of the service (ports: {known})")
            continue
        if number is not None and mode is not None:
            ports[number] = mode
    return dict(sorted(ports.items()))


def parse_telemetry(check: Checker, value: Any) -> Telemetry:
    path = "mesh_telemetry"
    if value is None:
        return Telemetry()
    data = check.mapping(value, path, optional=(
        "metrics_provider", "tracing_provider", "sampling_percentage",
        "access_log_provider", "access_log_filter", "prometheus_namespace", "scrape_interval"))
    if data is None:
        return Telemetry()
    defaults = Telemetry()
    return Telemetry(
        metrics_provider=optional(check, data, "metrics_provider", path, check.dns_subdomain,
                                  defaults.metrics_provider),
        tracing_provider=optional(check, data, "tracing_provider", path, check.dns_subdomain,
                                  None),
        sampling_percentage=optional(check, data, "sampling_percentage", path,
                                     lambda v, p: check.number(v, p, 0, 100),
                                     defaults.sampling_percentage),
        # an explicit null turns access logs off; leaving the key out keeps the default
        access_log_provider=(
            None if "access_log_provider" in data and data["access_log_provider"] is None
            else optional(check, data, "access_log_provider", path, check.dns_subdomain,
                          defaults.access_log_provider)),
        access_log_filter=optional(check, data, "access_log_filter", path, check.string, None),
        prometheus_namespace=optional(check, data, "prometheus_namespace", path, check.dns_label,
                                      defaults.prometheus_namespace),
        scrape_interval=optional(check, data, "scrape_interval", path, check.duration,
                                 defaults.scrape_interval),
        written=tuple(sorted(str(key) for key in data if data[key] is not None)),
    )


def parse_authorization(check: Checker, value: Any, by_name: Mapping[str, Service],
                        trust_domain: str = "cluster.local") -> list[ServiceAuthorization]:
    result: list[ServiceAuthorization] = []
    seen: set[str] = set()
    for index, item in enumerate(check.sequence(value, "mesh_authorization")):
        path = join_path("mesh_authorization", index)
        data = check.mapping(item, path, required=("service",),
                             optional=("allow", "deny", "deny_other_callers"))
        if data is None:
            continue
        name = check.dns_label(data["service"], join_path(path, "service"))
        if name is not None and check.unknown_service(name, join_path(path, "service"), by_name):
            continue
        if name in seen:
            check.error(join_path(path, "service"), name, "has rules already; merge them")
            continue
        allow = _parse_rules(check, data.get("allow"), join_path(path, "allow"), by_name,
                             by_name.get(name) if name else None)
        deny = _parse_rules(check, data.get("deny"), join_path(path, "deny"), by_name,
                            by_name.get(name) if name else None)
        deny_others = optional(check, data, "deny_other_callers", path, check.boolean, False)
        if deny_others and not any(r.source.services or r.source.principals for r in allow):
            check.error(join_path(path, "deny_other_callers"), True,
                        "needs an allow rule that names its callers (from or principals); "
                        "otherwise it would deny every caller")
        _check_wide_principals(check, join_path(path, "allow"), allow, trust_domain,
                               deny_others)
        if name is not None:
            seen.add(name)
            result.append(ServiceAuthorization(service=name, allow=allow, deny=deny,
                                               deny_other_callers=deny_others))
    return result


def _check_wide_principals(check: Checker, path: str, allow: tuple[AuthorizationRule, ...],
                           trust_domain: str, deny_others: bool) -> None:
    """A principal that matches every identity of the mesh (Istio matches ``*`` as any
    authenticated caller, and ``prefix*`` by prefix: https://istio.io/latest/docs/reference/
    config/security/authorization-policy/#Source) admits every caller: with
    ``deny_other_callers`` nobody is left to deny (an error), otherwise a warning."""
    for number, rule in enumerate(allow):
        for index, principal in enumerate(rule.source.principals):
            if not _matches_every_identity(principal, trust_domain):
                continue
            where = join_path(join_path(join_path(path, number), "principals"), index)
            if deny_others:
                check.error(where, principal, "matches every caller of the mesh, so "
                            "deny_other_callers would deny nobody; name the callers (from, "
                            "or their principals)")
            else:
                check.warn(where, principal, "matches every caller of the mesh: this rule "
                           "admits any workload with a mesh identity")


def _matches_every_identity(principal: str, trust_domain: str) -> bool:
    """True for ``*`` and for a prefix match whose prefix every identity of the trust
    domain (``<trust domain>/ns/<namespace>/sa/<account>``) starts with."""
    if principal == "*":
        return True
    return principal.endswith("*") and f"{trust_domain}/ns/".startswith(principal[:-1])


def _parse_rules(check: Checker, value: Any, path: str, by_name: Mapping[str, Service],
                 service: Service | None) -> tuple[AuthorizationRule, ...]:
    rules: list[AuthorizationRule] = []
    for index, item in enumerate(check.sequence(value, path)):
        item_path = join_path(path, index)
        data = check.mapping(item, item_path, optional=(
            "from", "principals", "namespaces", "methods", "paths", "ports"))
        if data is None:
            continue
        services = []
        for i, name in enumerate(check.sequence(data.get("from"), join_path(item_path, "from"))):
            name_path = join_path(join_path(item_path, "from"), i)
            name = check.dns_label(name, name_path)
            if name is not None and not check.unknown_service(name, name_path, by_name):
                services.append(name)
        principals = [
            p for i, p in enumerate(check.sequence(data.get("principals"),
                                                   join_path(item_path, "principals")))
            if check.string(p, join_path(join_path(item_path, "principals"), i)) is not None
        ]
        namespaces = [
            ns for i, ns in enumerate(check.sequence(data.get("namespaces"),
                                                     join_path(item_path, "namespaces")))
            if check.dns_label(ns, join_path(join_path(item_path, "namespaces"), i)) is not None
        ]
        methods = [
            m for i, m in enumerate(check.sequence(data.get("methods"),
                                                   join_path(item_path, "methods")))
            if check.choice(m, join_path(join_path(item_path, "methods"), i), HTTP_METHODS)
        ]
        paths = []
        for i, text in enumerate(check.sequence(data.get("paths"), join_path(item_path, "paths"))):
            text_path = join_path(join_path(item_path, "paths"), i)
            text = check.string(text, text_path)
            if text is not None and not (text.startswith(("/", "*"))):
                check.error(text_path, text, "is not a path: it must start with '/' or '*'")
            elif text is not None and "*" in text.strip("*"):
                check.error(text_path, text, "has '*' in the middle; Istio matches '*' only "
                            "as a prefix, a suffix or alone")
            elif text is not None:
                paths.append(text)
        ports = _parse_rule_ports(check, data.get("ports"), join_path(item_path, "ports"), service)
        rules.append(AuthorizationRule(
            source=Source(services=tuple(services), principals=tuple(principals),
                          namespaces=tuple(namespaces)),
            methods=tuple(methods), paths=tuple(paths), ports=ports))
    return tuple(rules)


def _parse_rule_ports(check: Checker, value: Any, path: str,
                      service: Service | None) -> tuple[int, ...]:
    """Workload ports a rule is limited to; each must be a port of the service."""
    ports: list[int] = []
    declared = service.workload_ports() if service else ()
    for index, port in enumerate(check.sequence(value, path)):
        port_path = join_path(path, index)
        number = check.integer(port, port_path, 1, 65535)
        if number is not None and service is not None and number not in declared:
            known = ", ".join(str(n) for n in sorted(declared)) or "none declared"
            check.error(port_path, port,
                        f"selects nothing: not a port of the service (ports: {known})")
        elif number is not None:
            ports.append(number)
    return tuple(dict.fromkeys(ports))


def parse_linkerd(check: Checker, value: Any) -> LinkerdSettings:
    path = "mesh_linkerd"
    if value is None:
        return LinkerdSettings()
    data = check.mapping(value, path, optional=(
        "control_plane_namespace", "viz_namespace", "probe_networks", "trace_collector",
        "trace_collector_service_account", "access_log_format"))
    if data is None:
        return LinkerdSettings()
    defaults = LinkerdSettings()
    networks = defaults.probe_networks
    if data.get("probe_networks") is not None:
        networks = parse_networks(check, data["probe_networks"], join_path(path, "probe_networks"))
    return LinkerdSettings(
        control_plane_namespace=optional(check, data, "control_plane_namespace", path,
                                         check.dns_label, defaults.control_plane_namespace),
        viz_namespace=optional(check, data, "viz_namespace", path, check.dns_label,
                               defaults.viz_namespace),
        probe_networks=networks or defaults.probe_networks,
        trace_collector=optional(check, data, "trace_collector", path,
                                 lambda v, p: check.string(
                                 v, p, HOST_PORT,
                                 "a host:port address (e.g. collector.linkerd-jaeger:55678)"),
                                 None),
        trace_collector_service_account=optional(check, data, "trace_collector_service_account",
                                                 path, check.dns_subdomain, None),
        access_log_format=optional(check, data, "access_log_format", path,
                                   lambda v, p: check.choice(v, p, LINKERD_ACCESS_LOG_FORMATS),
                                   defaults.access_log_format),
    )


def parse_ingress_gateway(check: Checker, value: Any) -> IngressGateway:
    """``mesh_ingress_gateway``: the gateway's pods (namespace, service account, labels,
    ports) and the gateway object ingress routes bind to. A Gateway API Gateway istiod deploys
    (``gateway_class``) runs as ``<gateway>-<class>`` with the label
    ``gateway.networking.k8s.io/gateway-name: <gateway>``
    (https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/#automated-deployment):
    those are the defaults of its service account and labels."""
    path = "mesh_ingress_gateway"
    defaults = IngressGateway()
    if value is None:
        return defaults
    data = check.mapping(value, path, optional=(
        "namespace", "service_account", "labels", "gateway", "gateway_class", "ports"))
    if data is None:
        return defaults
    namespace = optional(check, data, "namespace", path, check.dns_label, defaults.namespace)
    gateway = optional(check, data, "gateway", path, lambda v, p: check.string(
        v, p, GATEWAY_REF, "a gateway name, or namespace/name"), None)
    gateway_class = optional(check, data, "gateway_class", path, check.dns_subdomain, None)
    if gateway_class and not gateway:
        check.error(join_path(path, "gateway_class"), gateway_class,
                    "needs gateway: the name of the Gateway API Gateway of that class")
        gateway_class = None
    name = gateway.rpartition("/")[2] if gateway else None
    if gateway and gateway_class and "/" in gateway \
            and gateway.rpartition("/")[0] != namespace:
        check.error(join_path(path, "gateway"), gateway, f"is a Gateway of class "
                    f"{gateway_class!r}: istiod runs its pods in the Gateway's own namespace, "
                    f"so mesh_ingress_gateway.namespace must be {gateway.rpartition('/')[0]!r}")
    generated = f"{name}-{gateway_class}" if gateway_class and name else None
    account = optional(check, data, "service_account", path, check.dns_subdomain,
                       generated or defaults.service_account)
    default_labels: dict[str, str] = {"gateway.networking.k8s.io/gateway-name": name} \
        if generated and name else dict(CLASSIC_GATEWAY_LABELS)
    labels = optional(check, data, "labels", path, check.labels, default_labels)
    ports = tuple(dict.fromkeys(
        number for index, item in enumerate(check.sequence(data.get("ports"),
                                                           join_path(path, "ports")))
        if (number := check.integer(item, join_path(join_path(path, "ports"), index),
                                    1, 65535)) is not None))
    if labels is not None and not labels:
        check.error(join_path(path, "labels"), {}, "selects every pod of the namespace; "
                    "name the labels of the gateway's pods")
    return IngressGateway(namespace=namespace, service_account=account,
                          labels=labels or dict(CLASSIC_GATEWAY_LABELS), gateway=gateway,
                          gateway_class=gateway_class, ports=ports)
