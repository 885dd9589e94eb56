"""The Istio plan: which objects each of the six stages shapes, and their values.

API versions are the ones the Istio CRDs store or serve as v1: networking.istio.io/v1,
security.istio.io/v1, telemetry.istio.io/v1. Every builder below computes its object from
the environment's current stage (a DestinationRule gets ``ISTIO_MUTUAL`` once the
environment is at strict_mtls, whichever stage lists it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...intent.model import AuthorizationRule, Intent, Service
from ...plan.model import NEVER_PRUNE, Gap, PlannedObject, StageContribution
from ...plan.model import template_meta as _meta
from ...stages import Stage
from ...yaml_io import dump_plain
from ..gatewayapi.routes import (
    backend_services,
    http_route,
    route_ports,
    routes_versions,
    version_services,
    whole_duration,
)
from .control_plane import ISTIOD_VALUES

NETWORKING = "networking.istio.io/v1"
NETWORKING_PROXY = "networking.istio.io/v1beta1"  # ProxyConfig is served as v1beta1 only
SECURITY = "security.istio.io/v1"
# At strict_mtls the authorization stage's policies run as a dry run: the proxies evaluate
# them and count what they would deny, and enforce nothing (the authorization gate reads it).
DRY_RUN = {"istio.io/dry-run": "true"}
TELEMETRY = "telemetry.istio.io/v1"


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


def plan_istio(intent: Intent) -> dict[Stage, StageContribution]:
    """Each stage's objects and runbook notes for an Istio environment."""
    return {
        Stage.PERMISSIVE_MTLS: _permissive(intent),
        Stage.INJECTION: _injection(intent),
        Stage.OBSERVABILITY: _observability(intent),
        Stage.TRAFFIC: _traffic(intent),
        Stage.STRICT_MTLS: _strict(intent),
        Stage.AUTHORIZATION: _authorization(intent),
    }


# --------------------------------------------------------------------------- stages


def _permissive(intent: Intent) -> StageContribution:
    return StageContribution(
        objects=[_mesh_peer_authentication(intent)],
        notes=["Mesh-wide PeerAuthentication `default` in the root namespace accepts both "
               "plaintext and mTLS: no client or server changes behaviour yet."],
    )


def _injection(intent: Intent) -> StageContribution:
    contribution = StageContribution()
    label = ({"istio.io/rev": intent.revision} if intent.revision
             else {"istio-injection": "enabled"})
    for namespace in intent.injected_namespaces():
        contribution.objects.append(PlannedObject(
            api_version="v1", kind="Namespace", name=namespace, namespace=None,
            template="istio/namespace.yaml.j2",
            context={"name": namespace, "labels": label, "annotations": dict(NEVER_PRUNE)},
        ))
    opt_outs = [s for s in intent.services if not s.inject]
    proxy = intent.proxy
    if proxy.concurrency is not None or proxy.image_type:
        contribution.objects.append(PlannedObject(
            api_version=NETWORKING_PROXY, kind="ProxyConfig", name="mesh-default",
            namespace=intent.root_namespace, template="istio/proxy_config.yaml.j2",
            context={**_meta("mesh-default", intent.root_namespace, intent),
                     "concurrency": proxy.concurrency,
                     "image": {"imageType": proxy.image_type} if proxy.image_type else None},
        ))
    waves = intent.injection_waves
    pending = [w.name for w in waves[intent.injected_waves:]]
    contribution.notes.append(
        f"Injected waves: {intent.injected_waves} of {len(waves)}"
        + (f"; still to come: {', '.join(pending)}." if pending else ".")
        + " Pods get sidecars only when restarted: restart each wave's workloads "
        "(`kubectl rollout restart deployment -n <namespace>`) and check "
        "`istioctl proxy-status` before the next wave."
    )
    for service in opt_outs:
        contribution.notes.append(
            f"Opt-out: `{service.namespace}/{service.name}` is never injected "
            "(istiod `sidecarInjectorWebhook.neverInjectSelector` in "
            f"{ISTIOD_VALUES}; or label its pod template `sidecar.istio.io/inject: \"false\"`)."
        )
    return contribution


def _observability(intent: Intent) -> StageContribution:
    telemetry = intent.telemetry
    tracing: dict[str, Any] = {"randomSamplingPercentage": telemetry.sampling_percentage}
    if telemetry.tracing_provider:
        tracing["providers"] = [{"name": telemetry.tracing_provider}]
    access_logging = None
    if telemetry.access_log_provider:
        access_logging = [{
            "providers": [{"name": telemetry.access_log_provider}],
            "filter": ({"expression": telemetry.access_log_filter}
                       if telemetry.access_log_filter else None),
        }]
    objects = [
        PlannedObject(
            api_version=TELEMETRY, kind="Telemetry", name="mesh-default",
            namespace=intent.root_namespace, template="istio/telemetry.yaml.j2",
            context={
                **_meta("mesh-default", intent.root_namespace, intent),
                "metrics": [{"providers": [{"name": telemetry.metrics_provider}]}],
                "tracing": [tracing],
                "access_logging": access_logging,
            },
        ),
        PlannedObject(
            api_version="v1", kind="ConfigMap", name="meshstage-scrape-configs",
            namespace=telemetry.prometheus_namespace, template="istio/configmap.yaml.j2",
            context={
                **_meta("meshstage-scrape-configs", telemetry.prometheus_namespace, intent),
                "data": {"istio-scrape-configs.yaml": _scrape_configs(intent)},
            },
        ),
    ]
    return StageContribution(objects=objects, notes=[
        "Telemetry `mesh-default` turns on metrics, tracing "
        f"({telemetry.sampling_percentage:g}% sampled) and access logs mesh-wide. "
        "ConfigMap `meshstage-scrape-configs` holds Prometheus scrape jobs for the "
        "sidecars' merged metrics and istiod; add it to Prometheus' scrape configs."
    ])


def _traffic(intent: Intent) -> StageContribution:
    contribution = StageContribution()
    for service in intent.services:
        contribution.objects.extend(_destination_rules(intent, service))
        if service.traffic.routes and intent.traffic_api == "gateway-api":
            _gateway_routes(intent, service, contribution)
        elif service.traffic.routes:
            contribution.objects.append(_virtual_service(intent, service))
        if service.inject:
            contribution.objects.append(_sidecar(intent, service))
    contribution.notes.append(
        "Each injected workload's Sidecar admits only the services it calls (and the "
        "root namespace): a call that is missing from `calls` leaves the mesh through the "
        "passthrough cluster, without mTLS or routing."
    )
    return contribution


def _strict(intent: Intent) -> StageContribution:
    contribution = StageContribution(objects=[_mesh_peer_authentication(intent)])
    for service in intent.services:
        contribution.objects.extend(_destination_rules(intent, service))
    for exception in intent.mtls_exceptions:
        service = intent.service(exception.service)
        name = f"{service.name}-mtls-exception"
        contribution.objects.append(PlannedObject(
            api_version=SECURITY, kind="PeerAuthentication", name=name,
            namespace=service.namespace, template="istio/peer_authentication.yaml.j2",
            context={
                **_meta(name, service.namespace, intent,
                        annotations={"meshstage.io/reason": exception.reason}),
                "selector": {"matchLabels": service.selector},
                "mode": exception.mode,
                "port_level_mtls": {str(port): {"mode": mode}
                                    for port, mode in exception.ports.items()} or None,
            },
        ))
        contribution.notes.append(
            f"Exception: `{service.namespace}/{service.name}` stays {exception.mode} "
            f"({exception.reason})."
        )
    dry_run = _authorization(intent, dry_run=True).objects
    if dry_run and intent.stage is Stage.STRICT_MTLS:  # later, the authorization stage owns them
        contribution.objects.extend(dry_run)
        contribution.notes.append(
            "The authorization stage's AuthorizationPolicies are here as a dry run "
            "(`istio.io/dry-run: \"true\"`): the sidecars count what they would deny "
            "(Envoy RBAC shadow rules, `authz_dry_run_result` in Prometheus) and enforce "
            "nothing. The authorization gate reads those counts before it lets them enforce."
        )
    return contribution


def _authorization(intent: Intent, dry_run: bool = False) -> StageContribution:
    """The authorization stage; ``dry_run``: the same policies, annotated to enforce
    nothing (rendered at strict_mtls)."""
    contribution = StageContribution()
    explicit = {rules.service: rules for rules in intent.authorization}
    callers: dict[str, list[Service]] = {}
    for caller in intent.services:
        for callee in caller.calls:
            callers.setdefault(callee, []).append(caller)
    for service in intent.services:
        if not service.inject:
            continue  # no sidecar, nothing to enforce a policy: the runbook says so
        rules = explicit.get(service.name)
        if rules is not None:
            allow = [_rule(intent, rule) for rule in rules.allow]
            deny = [_rule(intent, rule) for rule in rules.deny]
            if rules.deny_other_callers:
                deny.append({"from": [{"source": {
                    "notPrincipals": _allowed_principals(intent, rules.allow)}}], "to": None})
        else:
            allow = _derived_allow(intent, service, callers.get(service.name, []))
            deny = []
        if allow:
            contribution.objects.append(_authorization_policy(
                intent, service, "allow", "ALLOW", allow, dry_run))
        if deny:
            contribution.objects.append(_authorization_policy(
                intent, service, "deny", "DENY", deny, dry_run))
    if intent.default_deny:
        for namespace in intent.namespaces:
            contribution.objects.append(PlannedObject(
                api_version=SECURITY, kind="AuthorizationPolicy", name="allow-nothing",
                namespace=namespace, template="istio/authorization_policy_allow_nothing.yaml.j2",
                context=_meta("allow-nothing", namespace, intent,
                              annotations=DRY_RUN if dry_run else None),
            ))
        contribution.notes.append(
            "Default deny: `allow-nothing` in every namespace of the catalogue. Requests "
            "that match no ALLOW policy get 403 (RBAC: access denied). Kubelet probes are "
            "rewritten to the sidecar agent by Istio and are not affected."
        )
    for service in intent.services:
        if not service.inject:
            contribution.notes.append(
                f"`{service.namespace}/{service.name}` has no sidecar (inject: false): no "
                "AuthorizationPolicy can be enforced on it; protect it at the network level.")
    contribution.notes.append(
        "Services without explicit rules get an ALLOW policy derived from the catalogue: "
        "the principals of the services whose `calls` name them (and the ingress gateway "
        "for `ingress: true`)."
    )
    return contribution


# --------------------------------------------------------------------------- builders


def _mesh_peer_authentication(intent: Intent) -> PlannedObject:
    strict = intent.stage.reached(Stage.STRICT_MTLS)
    return PlannedObject(
        api_version=SECURITY, kind="PeerAuthentication", name="default",
        namespace=intent.root_namespace, template="istio/peer_authentication.yaml.j2",
        context={
            **_meta("default", intent.root_namespace, intent),
            "selector": None, "port_level_mtls": None,
            "mode": "STRICT" if strict else "PERMISSIVE",
        },
    )


def _tls_mode(intent: Intent, service: Service) -> str | None:
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return None
    for exception in intent.mtls_exceptions:
        if exception.service == service.name and exception.mode == "DISABLE":
            return "DISABLE"
    return "ISTIO_MUTUAL"


def _disabled_service_ports(intent: Intent, service: Service) -> list[int]:
    """Service ports whose workload port an exception sets to DISABLE (once strict)."""
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return []
    disabled = {port for exception in intent.mtls_exceptions
                if exception.service == service.name
                for port, mode in exception.ports.items() if mode == "DISABLE"}
    return sorted(p.port for p in service.ports if (p.target_port or p.port) in disabled)


def _needs_traffic_policy(intent: Intent, service: Service) -> bool:
    traffic = service.traffic
    return bool(traffic.connection_pool or traffic.outlier_detection
                or traffic.load_balancer or _tls_mode(intent, service) == "DISABLE"
                or _disabled_service_ports(intent, service))


def _destination_rules(intent: Intent, service: Service) -> list[PlannedObject]:
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


def _gateway_routes(intent: Intent, service: Service, contribution: StageContribution) -> None:
    """The ``gateway-api`` option: an HTTPRoute per HTTP port, and the version Services."""
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


def _camel(source: Any, names: Mapping[str, str]) -> dict[str, Any] | None:
    if source is None:
        return None
    values = {camel: getattr(source, snake) for snake, camel in names.items()
              if getattr(source, snake) is not None}
    return values or None


def _virtual_service(intent: Intent, service: Service) -> PlannedObject:
    traffic = service.traffic
    retries = traffic.retries
    common = {
        "timeout": traffic.timeout,
        "retries": {
            "attempts": retries.attempts, "perTryTimeout": retries.per_try_timeout,
            "retryOn": retries.retry_on,
        } if retries else None,
    }
    if traffic.split:
        default = [(w.subset, w.weight) for w in traffic.split]
    elif traffic.header_routes and service.versions:
        default = [(service.versions[0].name, None)]
    else:
        default = [(None, None)]
    # A service with several HTTP ports gets its routes once per port, each matching the
    # port and naming it in its destinations: Istio cannot tell which port a destination
    # means otherwise (istioctl analyze IST0112).
    ports = route_ports(service)
    http: list[dict[str, Any]] = []
    for port in ports if len(ports) > 1 else [None]:
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
                 "host": service.name, "http": http},
    )


def _sidecar(intent: Intent, service: Service) -> PlannedObject:
    domain = intent.cluster.domain
    names: set[tuple[str, str]] = set()
    for callee in (intent.service(name) for name in service.calls):
        names.add((callee.namespace, callee.name))
        if intent.traffic_api == "gateway-api" and callee.traffic.routes \
                and routes_versions(callee):
            # the HTTPRoute sends the callee's traffic on to its version Services
            names.update((callee.namespace, name) for name in backend_services(callee))
    hosts = sorted(f"{namespace}/{name}.{namespace}.svc.{domain}" for namespace, name in names)
    hosts.append(f"{intent.root_namespace}/*")
    return PlannedObject(
        api_version=NETWORKING, kind="Sidecar", name=service.name,
        namespace=service.namespace, template="istio/sidecar.yaml.j2",
        context={**_meta(service.name, service.namespace, intent),
                 "selector": service.selector, "egress_hosts": hosts},
    )


def _allowed_principals(intent: Intent, rules: tuple[AuthorizationRule, ...]) -> list[str]:
    principals: list[str] = []
    for rule in rules:
        for name in rule.source.services:
            principals.append(intent.principal(intent.service(name)))
        principals.extend(rule.source.principals)
    return list(dict.fromkeys(principals))


def _rule(intent: Intent, rule: AuthorizationRule) -> dict[str, Any]:
    source = rule.source
    principals = [intent.principal(intent.service(n)) for n in source.services]
    principals += list(source.principals)
    from_ = None
    if principals or source.namespaces:
        from_ = [{"source": {"principals": principals or None,
                             "namespaces": list(source.namespaces) or None}}]
    to = None
    if rule.methods or rule.paths or rule.ports:
        to = [{"operation": {"ports": [str(port) for port in rule.ports] or None,
                             "methods": list(rule.methods) or None,
                             "paths": list(rule.paths) or None}}]
    return {"from": from_, "to": to}


def _derived_allow(intent: Intent, service: Service,
                   callers: list[Service]) -> list[dict[str, Any]]:
    principals = [intent.principal(caller) for caller in callers]
    if service.ingress:
        gateway = intent.ingress_gateway
        principals.append(f"{intent.trust_domain}/ns/{gateway.namespace}/sa/"
                          f"{gateway.service_account}")
    if not principals:
        return []
    return [{"from": [{"source": {"principals": sorted(set(principals))}}], "to": None}]


def _authorization_policy(intent: Intent, service: Service, suffix: str, action: str,
                          rules: list[dict[str, Any]], dry_run: bool = False) -> PlannedObject:
    name = f"{service.name}-{suffix}"
    return PlannedObject(
        api_version=SECURITY, kind="AuthorizationPolicy", name=name,
        namespace=service.namespace, template="istio/authorization_policy.yaml.j2",
        context={**_meta(name, service.namespace, intent,
                         annotations=DRY_RUN if dry_run else None),
                 "match_labels": service.selector, "action": action, "rules": rules},
    )


def _scrape_configs(intent: Intent) -> str:
    """Prometheus scrape jobs for the sidecars' merged metrics and istiod, as YAML text."""
    interval = intent.telemetry.scrape_interval
    jobs = [
        {
            "job_name": "istiod",
            "scrape_interval": interval,
            "kubernetes_sd_configs": [{"role": "endpoints",
                                       "namespaces": {"names": [intent.root_namespace]}}],
            "relabel_configs": [{
                "source_labels": ["__meta_kubernetes_service_name",
                                  "__meta_kubernetes_endpoint_port_name"],
                "action": "keep", "regex": "istiod;http-monitoring"}],
        },
        {
            "job_name": "envoy-stats",
            "scrape_interval": interval,
            "metrics_path": "/stats/prometheus",
            "kubernetes_sd_configs": [{"role": "pod",
                                       "namespaces": {"names": list(intent.namespaces)}}],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_pod_container_port_name"],
                 "action": "keep", "regex": ".*-envoy-prom"},
                # the authorization gate reads the dry run per namespace and app
                *({"source_labels": [f"__meta_kubernetes_{source}"], "target_label": target}
                  for source, target in (("namespace", "namespace"), ("pod_name", "pod"),
                                         ("pod_label_app", "app"))),
            ],
        },
    ]
    return dump_plain({"scrape_configs": jobs})
