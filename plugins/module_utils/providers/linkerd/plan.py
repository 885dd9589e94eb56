"""The Linkerd plan: which objects each of the six stages shapes, from the same intent.

API versions are the ones the reference CRDs store or serve without deprecation:
``policy.linkerd.io/v1beta3`` Server (storage), ``policy.linkerd.io/v1alpha1``
AuthorizationPolicy, MeshTLSAuthentication and NetworkAuthentication (their only version),
``gateway.networking.k8s.io/v1`` HTTPRoute (storage; see docs/decisions.md for why not
``policy.linkerd.io``), ``split.smi-spec.io/v1alpha1`` TrafficSplit (what linkerd-smi stores
and its adaptor reads), core ``v1`` Namespace, Service and ConfigMap.

The stage by stage shape:

- permissive_mtls: every namespace of the catalogue annotated
  ``config.linkerd.io/default-inbound-policy: all-unauthenticated``, and the control plane's
  Helm values (``proxy.defaultInboundPolicy``, ``identityTrustDomain``, ...).
- injection: ``linkerd.io/inject: enabled`` on the namespaces of the injected waves; opt-outs
  in the proxy injector's object selector.
- observability: trace collector and access log annotations; Prometheus scrape jobs.
- traffic: an HTTPRoute per routed service (weights, header matches, retry and timeout
  annotations), per-version Services with failure accrual annotations; or TrafficSplit.
- strict_mtls: ``all-authenticated``; a Server per port of an excepted workload.
- authorization: Servers, AuthorizationPolicies, MeshTLS and NetworkAuthentications, routes
  for per-route rules (see ``linkerd_policy``), ``deny`` as the namespaces' default.

What Linkerd cannot express is a ``Gap``: a warning in the task result and the runbook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...intent.model import Intent, MtlsException, Port, Service
from ...plan.model import NEVER_PRUNE, Gap, PlannedObject, StageContribution, metadata
from ...plan.model import template_meta as _meta
from ...stages import Stage
from ...yaml_io import dump_plain
from ..gatewayapi.routes import (
    GATEWAY,
    backend_name,
    http_route,
    route_ports,
    routes_versions,
    version_services,
    whole_duration,
)
from .policy import (
    ALL,
    Clients,
    PortPolicy,
    RouteGroup,
    port_policy,
    service_policy,
    service_ports,
)

PROVIDER = "linkerd"
POLICY_GROUP = "policy.linkerd.io"
SERVER = "policy.linkerd.io/v1beta3"
POLICY = "policy.linkerd.io/v1alpha1"
SPLIT = "split.smi-spec.io/v1alpha1"

INBOUND_POLICY = "config.linkerd.io/default-inbound-policy"
INJECT = "linkerd.io/inject"
TRACE_COLLECTOR = "config.linkerd.io/trace-collector"
TRACE_ACCOUNT = "config.alpha.linkerd.io/trace-collector-service-account"
ACCESS_LOG = "config.linkerd.io/access-log"
VALUES_FILE = "00-install/values/linkerd-control-plane.yaml"

# Names meshstage gives the objects it shares in a namespace; no service-derived name
# (<service>-<port>...) starts with "meshstage-" unless a service does.
ADMIN_SERVER = "meshstage-proxy-admin"
ALL_NETWORKS = "meshstage-all-networks"
PROBE_NETWORKS = "meshstage-probe-networks"
SCRAPERS = "meshstage-prometheus"

_PROXY_PROTOCOL = {"HTTP": "HTTP/1", "HTTP2": "HTTP/2", "GRPC": "gRPC", "TCP": "opaque",
                   "MONGO": "opaque", "REDIS": "opaque", "TLS": "TLS", "HTTPS": "TLS"}
_EXCEPTION_POLICY = {"DISABLE": "all-unauthenticated", "PERMISSIVE": "all-unauthenticated",
                     "STRICT": "all-authenticated"}
# Istio retry conditions Linkerd's retry.linkerd.io/http takes as they are.
_RETRY_CONDITIONS = ("5xx", "gateway-error")


def plan_linkerd(intent: Intent) -> dict[Stage, StageContribution]:
    """Each stage's objects, runbook notes and gaps for a Linkerd environment."""
    return {
        Stage.PERMISSIVE_MTLS: _permissive(intent),
        Stage.INJECTION: _injection(intent),
        Stage.OBSERVABILITY: _observability(intent),
        Stage.TRAFFIC: _traffic(intent),
        Stage.STRICT_MTLS: _strict(intent),
        Stage.AUTHORIZATION: _authorization(intent),
    }


def _gap(path: str, value: Any, reason: str, service: Service | None = None) -> Gap:
    subject = f"service {service.namespace}/{service.name}" if service else ""
    return Gap(path, value, PROVIDER, reason, subject)


# --------------------------------------------------------------------------- stages


def _permissive(intent: Intent) -> StageContribution:
    contribution = StageContribution(
        objects=[_namespace(intent, ns) for ns in intent.namespaces],
        notes=["Default inbound policy `all-unauthenticated`: meshed workloads accept "
               "plaintext and mTLS (namespace annotation `config.linkerd.io/default-inbound-"
               "policy`, and `proxy.defaultInboundPolicy` in "
               f"`{VALUES_FILE}`). Install the Gateway API CRDs, the Linkerd CRDs and the "
               "control plane (`00-install`) before this tree syncs."],
    )
    return contribution


def _injection(intent: Intent) -> StageContribution:
    contribution = StageContribution(
        objects=[_namespace(intent, ns) for ns in intent.injected_namespaces()])
    waves = intent.injection_waves
    pending = [w.name for w in waves[intent.injected_waves:]]
    contribution.notes.append(
        f"Injected waves: {intent.injected_waves} of {len(waves)}"
        + (f"; still to come: {', '.join(pending)}." if pending else ".")
        + " Pods get the proxy only when restarted: restart each wave's workloads "
        "(`kubectl rollout restart deployment -n <namespace>`) and check "
        "`linkerd check --proxy -n <namespace>` before the next wave."
    )
    for service in intent.services:
        if not service.inject:
            contribution.notes.append(
                f"Opt-out: `{service.namespace}/{service.name}` is never injected (the proxy "
                f"injector's `objectSelector` in {VALUES_FILE} leaves out `app: "
                f"{service.name}`; or annotate its pod template `linkerd.io/inject: "
                "disabled`).")
    if intent.revision:
        contribution.gaps.append(_gap(
            "mesh_revision", intent.revision, "Linkerd has no control-plane revisions; "
            "namespaces are annotated linkerd.io/inject: enabled"))
    if intent.proxy.image_type:
        contribution.gaps.append(_gap(
            "mesh_proxy.image_type", intent.proxy.image_type,
            "the Linkerd proxy comes in one image flavour"))
    return contribution


def _observability(intent: Intent) -> StageContribution:
    telemetry = intent.telemetry
    linkerd = intent.linkerd
    contribution = StageContribution(objects=[
        _namespace(intent, ns) for ns in intent.injected_namespaces()
        if _observability_annotations(intent)])
    contribution.objects.append(PlannedObject(
        api_version="v1", kind="ConfigMap", name="meshstage-scrape-configs",
        namespace=telemetry.prometheus_namespace, template="linkerd/configmap.yaml.j2",
        context={**_meta("meshstage-scrape-configs", telemetry.prometheus_namespace, intent),
                 "data": {"linkerd-scrape-configs.yaml": _scrape_configs(intent)}},
    ))
    contribution.notes.append(
        "The viz extension's Prometheus scrapes every proxy (`linkerd viz install`). "
        "ConfigMap `meshstage-scrape-configs` holds the same jobs (`linkerd-controller`, "
        "`linkerd-proxy`) for a Prometheus of your own; add them to its scrape configs.")
    if linkerd.trace_collector:
        contribution.notes.append(
            f"Proxies export spans to `{linkerd.trace_collector}` (annotation "
            f"`{TRACE_COLLECTOR}` on the injected namespaces).")
    if _observability_annotations(intent):
        contribution.notes.append(
            "The proxy injector reads the namespaces' tracing and access-log annotations "
            "when a pod is created: restart the workloads for them to take effect.")
    if telemetry.metrics_provider != "prometheus":
        contribution.gaps.append(_gap(
            "mesh_telemetry.metrics_provider", telemetry.metrics_provider,
            "Linkerd proxies serve Prometheus metrics only (on their admin port)"))
    if telemetry.tracing_provider:
        contribution.gaps.append(_gap(
            "mesh_telemetry.tracing_provider", telemetry.tracing_provider,
            "Linkerd has no tracing providers; proxies export spans to "
            "mesh_linkerd.trace_collector"
            + ("" if linkerd.trace_collector else ", which is not set")))
    contribution.gaps.append(_gap(
        "mesh_telemetry.sampling_percentage", telemetry.sampling_percentage,
        "Linkerd proxies sample what the trace's root (ingress or application) sampled"
        if linkerd.trace_collector else
        "no mesh_linkerd.trace_collector is set, so Linkerd proxies emit no spans"))
    if telemetry.access_log_provider and telemetry.access_log_filter:
        contribution.gaps.append(_gap(
            "mesh_telemetry.access_log_filter", telemetry.access_log_filter,
            "Linkerd access logs have no filter: every HTTP request is logged"))
    return contribution


def _traffic(intent: Intent) -> StageContribution:
    contribution = StageContribution()
    for service in intent.services:
        path = intent.service_path(service)
        traffic = service.traffic
        if service.inject and service.calls:
            contribution.gaps.append(_gap(
                f"{path}.calls", list(service.calls),
                "Linkerd proxies do not scope egress per workload (Istio's Sidecar); calls "
                "still derive the ALLOW rules of the authorization stage", service))
        if traffic.connection_pool:
            contribution.gaps.append(_gap(
                f"{path}.traffic.connection_pool", _fields(traffic.connection_pool),
                "Linkerd proxies have no connection pool limits", service))
        if traffic.load_balancer:
            contribution.gaps.append(_gap(
                f"{path}.traffic.load_balancer", traffic.load_balancer,
                "Linkerd always balances by latency (EWMA, power of two choices)", service))
        accrual = _failure_accrual(intent, service, contribution)
        if traffic.routes and intent.traffic_api == "smi":
            _smi(intent, service, contribution, accrual)
        elif traffic.routes:
            _http_routes(intent, service, contribution, accrual)
        elif accrual:
            _accrual_elsewhere(service, [service.name], accrual, contribution, path)
    return contribution


def _strict(intent: Intent) -> StageContribution:
    contribution = StageContribution(
        objects=[_namespace(intent, ns) for ns in intent.namespaces],
        notes=["Default inbound policy `all-authenticated`: meshed workloads refuse plaintext "
               "(namespace annotations, and `proxy.defaultInboundPolicy` in "
               f"`{VALUES_FILE}`). A proxy reads the default when its pod starts: restart "
               "the workloads of each namespace (`kubectl rollout restart deployment -n "
               "<namespace>`) and check `linkerd viz authz -n <namespace> deploy` shows no "
               "unauthorized traffic."],
    )
    for index, exception in enumerate(intent.mtls_exceptions):
        service = intent.service(exception.service)
        if not service.inject:
            contribution.notes.append(
                f"Exception: `{service.namespace}/{service.name}` has no proxy (inject: "
                f"false): meshed clients talk plaintext to it ({exception.reason}).")
            continue
        contribution.objects.extend(_servers(intent, service))
        path = f"mesh_mtls_exceptions[{index}]"
        if exception.mode == "DISABLE":
            contribution.gaps.append(_gap(
                f"{path}.mode", "DISABLE",
                "a meshed workload always answers meshed clients with mTLS; its Servers "
                "accept plaintext as well (accessPolicy all-unauthenticated)", service))
        for port, mode in exception.ports.items():
            if mode == "DISABLE":
                contribution.gaps.append(_gap(
                    f"{path}.ports.{port}", "DISABLE",
                    "a meshed workload always answers meshed clients with mTLS; the Server "
                    "of this port accepts plaintext as well (accessPolicy "
                    "all-unauthenticated)", service))
        contribution.notes.append(
            f"Exception: `{service.namespace}/{service.name}` accepts plaintext "
            f"({exception.mode}; {exception.reason}).")
    return contribution


def _authorization(intent: Intent) -> StageContribution:
    contribution = StageContribution()
    callers: dict[str, list[Service]] = {}
    for caller in intent.services:
        for callee in caller.calls:
            callers.setdefault(callee, []).append(caller)
    shared: dict[str, set[str]] = {}  # namespace -> shared authentications it needs
    for service in intent.services:
        if not service.inject:
            contribution.notes.append(
                f"`{service.namespace}/{service.name}` has no proxy (inject: false): no "
                "Server or policy can be enforced on it; protect it at the network level.")
            continue
        policy = service_policy(intent, service, callers.get(service.name, []))
        for path, value, reason in policy.gaps:
            contribution.gaps.append(_gap(path, value, reason, service))
        if not (policy.allow or intent.default_deny or _exception(intent, service)):
            continue
        contribution.objects.extend(_servers(intent, service))
        for port in service_ports(service):
            found = port_policy(policy, service, port, intent)
            for path, value, reason in found.gaps:
                contribution.gaps.append(_gap(path, value, reason, service))
            _port_objects(intent, service, found, contribution, shared)
            if found.routes and not service.probe_paths:
                contribution.warnings.append(
                    f"{intent.service_path(service)}.probe_paths (service "
                    f"{service.namespace}/{service.name}): none listed, and port "
                    f"{found.workload_port} has per-route rules, which end Linkerd's default "
                    "authorization of kubelet probes: probes to that port are refused; list "
                    "the probe paths so they get a route of their own")
    if intent.default_deny:
        contribution.objects.extend(_namespace(intent, ns) for ns in intent.namespaces)
        for namespace in sorted({s.namespace for s in intent.services if s.inject}):
            contribution.objects.extend(_proxy_admin(intent, namespace))
            shared.setdefault(namespace, set()).add(PROBE_NETWORKS)
        contribution.notes.append(
            "Default deny: `config.linkerd.io/default-inbound-policy: deny` on every "
            "namespace of the catalogue, and every Server refuses what no AuthorizationPolicy "
            "allows (403 for HTTP, a refused connection otherwise). Restart the workloads for "
            "the namespace default to reach their proxies. The proxies' admin port stays open "
            "to Prometheus (`/metrics`) and kubelet probes (`/live`, `/ready`).")
    for namespace, names in sorted(shared.items()):
        for name in sorted(names):
            networks = (list(intent.linkerd.probe_networks) if name == PROBE_NETWORKS
                        else list(ALL.networks))
            contribution.objects.append(_network_authentication(intent, namespace, name,
                                                                networks))
    contribution.notes.append(
        "Services without explicit rules are allowed to the identities of the services whose "
        "`calls` name them (and the ingress gateway for `ingress: true`).")
    return contribution


# --------------------------------------------------------------------------- builders


def inbound_policy(intent: Intent, namespace: str | None = None) -> str:
    """The default inbound policy at the environment's stage (a namespace's, when given)."""
    if namespace and intent.default_deny and intent.stage.reached(Stage.AUTHORIZATION):
        return "deny"
    if intent.stage.reached(Stage.STRICT_MTLS):
        return "all-authenticated"
    return "all-unauthenticated"


def _observability_annotations(intent: Intent) -> dict[str, str]:
    linkerd = intent.linkerd
    annotations: dict[str, str] = {}
    if linkerd.trace_collector:
        annotations[TRACE_COLLECTOR] = linkerd.trace_collector
        if linkerd.trace_collector_service_account:
            annotations[TRACE_ACCOUNT] = linkerd.trace_collector_service_account
    if intent.telemetry.access_log_provider:
        annotations[ACCESS_LOG] = linkerd.access_log_format
    return annotations


def _namespace(intent: Intent, namespace: str) -> PlannedObject:
    """A namespace of the catalogue: its default policy, injection and telemetry
    annotations, all computed from the environment's stage; never pruned."""
    annotations = {**NEVER_PRUNE, INBOUND_POLICY: inbound_policy(intent, namespace)}
    injected = namespace in intent.injected_namespaces()
    if injected and intent.stage.reached(Stage.INJECTION):
        annotations[INJECT] = "enabled"
    if injected and intent.stage.reached(Stage.OBSERVABILITY):
        annotations.update(_observability_annotations(intent))
    return PlannedObject(
        api_version="v1", kind="Namespace", name=namespace, namespace=None,
        template="linkerd/namespace.yaml.j2",
        context={"name": namespace, "annotations": annotations},
    )


def _scrape_configs(intent: Intent) -> str:
    """Prometheus jobs for the Linkerd control plane and the proxies, as YAML text (the
    subset of linkerd-viz's own configuration that Linkerd documents)."""
    linkerd = intent.linkerd
    interval = intent.telemetry.scrape_interval
    jobs = [
        {
            "job_name": "linkerd-controller",
            "scrape_interval": interval,
            "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [
                linkerd.control_plane_namespace, linkerd.viz_namespace]}}],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_pod_container_port_name"],
                 "action": "keep", "regex": "admin-http"},
                {"source_labels": ["__meta_kubernetes_pod_container_name"],
                 "action": "replace", "target_label": "component"},
            ],
        },
        {
            "job_name": "linkerd-proxy",
            "scrape_interval": interval,
            "kubernetes_sd_configs": [{"role": "pod",
                                       "namespaces": {"names": list(intent.namespaces)}}],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_pod_container_name",
                                   "__meta_kubernetes_pod_container_port_name",
                                   "__meta_kubernetes_pod_label_linkerd_io_control_plane_ns"],
                 "action": "keep",
                 "regex": f"^linkerd-proxy;linkerd-admin;{linkerd.control_plane_namespace}$"},
                {"source_labels": ["__meta_kubernetes_namespace"], "action": "replace",
                 "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "action": "replace",
                 "target_label": "pod"},
                {"action": "labelmap",
                 "regex": "__meta_kubernetes_pod_label_linkerd_io_proxy_(.+)"},
            ],
        },
    ]
    return dump_plain({"scrape_configs": jobs})


def _fields(value: Any) -> dict[str, Any]:
    return {key: item for key, item in vars(value).items() if item is not None}


# -- traffic


def _failure_accrual(intent: Intent, service: Service,
                     contribution: StageContribution) -> dict[str, str]:
    """The ``balancer.linkerd.io`` annotations for the service's outlier detection; gaps for
    what consecutive-failures accrual cannot say."""
    outlier = service.traffic.outlier_detection
    if outlier is None:
        return {}
    path = f"{intent.service_path(service)}.traffic.outlier_detection"
    unsupported = {
        "consecutive_gateway_errors": "Linkerd counts every 5xx response as a failure",
        "interval": "Linkerd trips on consecutive failures, with no analysis interval",
        "max_ejection_percent": "Linkerd can make every endpoint unavailable",
    }
    for key, reason in unsupported.items():
        value = getattr(outlier, key)
        if value is not None:
            contribution.gaps.append(_gap(f"{path}.{key}", value, reason, service))
    annotations = {"balancer.linkerd.io/failure-accrual": "consecutive"}
    if outlier.consecutive_5xx_errors is not None:
        annotations["balancer.linkerd.io/failure-accrual-consecutive-max-failures"] = \
            str(outlier.consecutive_5xx_errors)
    if outlier.base_ejection_time is not None:
        penalty, exact = whole_duration(outlier.base_ejection_time)
        annotations["balancer.linkerd.io/failure-accrual-consecutive-min-penalty"] = penalty
        if not exact:
            contribution.gaps.append(_gap(
                f"{path}.base_ejection_time", outlier.base_ejection_time,
                f"Linkerd durations are whole milliseconds; rendered as {penalty}", service))
    return annotations


def _accrual_elsewhere(service: Service, names: list[str], accrual: Mapping[str, str],
                       contribution: StageContribution, path: str) -> None:
    """Failure accrual for Services meshstage does not own: a gap and the command."""
    command = " ".join(f"{key}={value}" for key, value in accrual.items())
    for name in names:
        contribution.gaps.append(_gap(
            f"{path}.traffic.outlier_detection", _fields(service.traffic.outlier_detection),
            f"Linkerd reads failure accrual from annotations on Service "
            f"{service.namespace}/{name}, which meshstage does not own; annotate it "
            "(see the runbook)", service))
        contribution.notes.append(
            f"Failure accrual for `{service.namespace}/{name}`: `kubectl annotate service "
            f"-n {service.namespace} {name} {command}`.")


def _retry_annotations(intent: Intent, service: Service,
                       contribution: StageContribution) -> dict[str, str]:
    """``retry.linkerd.io/*`` and ``timeout.linkerd.io/request`` for the service's route."""
    traffic = service.traffic
    path = f"{intent.service_path(service)}.traffic"
    annotations: dict[str, str] = {}
    if traffic.timeout:
        annotations["timeout.linkerd.io/request"] = _duration(
            traffic.timeout, f"{path}.timeout", service, contribution)
    retries = traffic.retries
    if retries is None or retries.attempts == 0:
        return annotations
    conditions: list[str] = []
    if retries.retry_on is None:
        contribution.gaps.append(_gap(
            f"{path}.retries.retry_on", None,
            "Istio's default conditions (connect-failure, refused-stream, unavailable, "
            "cancelled, retriable-status-codes) have no Linkerd form; Linkerd retries 5xx "
            "responses", service))
    else:
        dropped = []
        for condition in retries.retry_on.split(","):
            if condition in _RETRY_CONDITIONS or _status_code(condition):
                conditions.append(condition)
            else:
                dropped.append(condition)
        if dropped:
            contribution.gaps.append(_gap(
                f"{path}.retries.retry_on", ",".join(dropped),
                "retry.linkerd.io/http takes 5xx, gateway-error and HTTP status codes; "
                + ("these conditions are left out" if conditions else
                   "no condition is left, so no retries are rendered"), service))
            if not conditions:
                return annotations
    annotations["retry.linkerd.io/limit"] = str(retries.attempts)
    if conditions:
        annotations["retry.linkerd.io/http"] = ",".join(conditions)
    if retries.per_try_timeout:
        annotations["retry.linkerd.io/timeout"] = _duration(
            retries.per_try_timeout, f"{path}.retries.per_try_timeout", service, contribution)
    return annotations


def _status_code(condition: str) -> bool:
    bounds = condition.split("-", 1)
    return all(part.isdigit() and 100 <= int(part) < 600 for part in bounds) and \
        (len(bounds) == 1 or int(bounds[0]) <= int(bounds[1]))


def _duration(text: str, path: str, service: Service,
              contribution: StageContribution) -> str:
    value, exact = whole_duration(text)
    if not exact:
        contribution.gaps.append(_gap(path, text, "Linkerd durations are whole milliseconds; "
                                      f"rendered as {value}", service))
    return value


def _http_routes(intent: Intent, service: Service, contribution: StageContribution,
                 accrual: Mapping[str, str]) -> None:
    path = intent.service_path(service)
    ports = route_ports(service)
    if not ports:
        contribution.gaps.append(_gap(
            f"{path}.traffic", {"timeout": service.traffic.timeout,
                                "split": len(service.traffic.split) or None},
            "an HTTPRoute attaches to an HTTP, HTTP2 or GRPC port and the service has none",
            service))
        if accrual:
            _accrual_elsewhere(service, [service.name], accrual, contribution, path)
        return
    annotations = _retry_annotations(intent, service, contribution)
    for port in ports:
        contribution.objects.append(http_route(intent, service, port,
                                               annotations=annotations or None))
    _version_backends(intent, service, contribution, accrual)


def _version_backends(intent: Intent, service: Service, contribution: StageContribution,
                      accrual: Mapping[str, str]) -> None:
    """Per-version Services (failure accrual on them); gaps for the ones the team owns."""
    contribution.objects.extend(version_services(intent, service, annotations=accrual or None))
    path = intent.service_path(service)
    if not accrual:
        return
    if not routes_versions(service):
        _accrual_elsewhere(service, [service.name], accrual, contribution, path)
        return
    owned_elsewhere = [v.service for v in service.versions if v.service]
    if owned_elsewhere:
        _accrual_elsewhere(service, owned_elsewhere, accrual, contribution, path)


def _smi(intent: Intent, service: Service, contribution: StageContribution,
         accrual: Mapping[str, str]) -> None:
    """``mesh_traffic_api: smi``: a TrafficSplit for weights; the rest is not expressible."""
    traffic = service.traffic
    path = f"{intent.service_path(service)}.traffic"
    reason = "an SMI TrafficSplit has weights only (mesh_traffic_api smi); use gateway-api"
    if traffic.header_routes:
        contribution.gaps.append(_gap(f"{path}.header_routes", len(traffic.header_routes),
                                      reason, service))
    if traffic.timeout:
        contribution.gaps.append(_gap(f"{path}.timeout", traffic.timeout, reason, service))
    if traffic.retries:
        contribution.gaps.append(_gap(f"{path}.retries", _fields(traffic.retries), reason,
                                      service))
    if not traffic.split:
        if accrual:
            _accrual_elsewhere(service, [service.name], accrual, contribution,
                               intent.service_path(service))
        return
    contribution.objects.append(PlannedObject(
        api_version=SPLIT, kind="TrafficSplit", name=service.name,
        namespace=service.namespace, template="linkerd/traffic_split.yaml.j2",
        context={
            **_meta(service.name, service.namespace, intent),
            "service": service.name,
            # the milli-units linkerd-smi's own examples use: 90% is 900m
            "backends": [{"service": backend_name(service, item.subset),
                          "weight": f"{item.weight * 10}m"} for item in traffic.split],
        },
    ))
    _version_backends(intent, service, contribution, accrual)


# -- servers and policies


def _exception(intent: Intent, service: Service) -> MtlsException | None:
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return None
    return next((e for e in intent.mtls_exceptions if e.service == service.name), None)


def _server_name(service: Service, port: Port) -> str:
    return f"{service.name}-{port.name}"


def _servers(intent: Intent, service: Service) -> list[PlannedObject]:
    """A Server per workload port; its access policy computed from the stage: ``deny`` once
    authorization governs the service, else the mTLS exception's mode."""
    exception = _exception(intent, service)
    governed = intent.stage.reached(Stage.AUTHORIZATION) and (
        intent.default_deny or bool(service_policy(intent, service, _callers(intent, service))
                                    .allow))
    objects = []
    for port in service_ports(service):
        number = port.target_port or port.port
        if governed:
            access = "deny"
        elif exception is not None:
            access = _EXCEPTION_POLICY[exception.ports.get(number, exception.mode)]
        else:
            continue
        name = _server_name(service, port)
        annotations = {"meshstage.io/reason": exception.reason} if exception else None
        objects.append(PlannedObject(
            api_version=SERVER, kind="Server", name=name, namespace=service.namespace,
            template="linkerd/server.yaml.j2",
            context={
                **_meta(name, service.namespace, intent, annotations=annotations),
                "pod_selector": {"matchLabels": service.selector},
                "port": number,
                "proxy_protocol": _PROXY_PROTOCOL[port.protocol],
                "access_policy": access,
            },
        ))
    return objects


def _callers(intent: Intent, service: Service) -> list[Service]:
    return [caller for caller in intent.services if service.name in caller.calls]


def _port_objects(intent: Intent, service: Service, found: PortPolicy,
                  contribution: StageContribution, shared: dict[str, set[str]]) -> None:
    """The routes, authentications and policies of one port."""
    server = _server_name(service, found.port)
    namespace = service.namespace
    if not found.routes:
        _grant(intent, namespace, {"group": POLICY_GROUP, "kind": "Server", "name": server},
               server, found.server_clients, contribution, shared)
        return
    for number, group in enumerate(found.routes, start=1):
        route = f"{server}-{number}"
        contribution.objects.append(_inbound_route(intent, namespace, route, server, group))
        _grant(intent, namespace, {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                   "name": route}, route, group.clients, contribution, shared)


def _inbound_route(intent: Intent, namespace: str, name: str, server: str,
                   group: RouteGroup) -> PlannedObject:
    meta = metadata(name, namespace, intent)
    return PlannedObject(
        api_version=GATEWAY, kind="HTTPRoute", name=name, namespace=namespace,
        template="gatewayapi/http_route.yaml.j2",
        context={
            "name": name, "namespace": namespace, "labels": meta["labels"], "annotations": None,
            "parent_refs": [{"group": POLICY_GROUP, "kind": "Server", "name": server}],
            "rules": [{"matches": [m.as_gateway() for m in group.matches],
                       "backend_refs": None, "timeouts": None}],
        },
    )


def _grant(intent: Intent, namespace: str, target: Mapping[str, str], name: str,
           clients: Clients, contribution: StageContribution,
           shared: dict[str, set[str]]) -> None:
    """AuthorizationPolicies that let ``clients`` reach ``target``: one for the mesh
    identities (a MeshTLSAuthentication of the same name), one for a network."""
    identities = sorted(c.identity for c in clients if not c.is_network)
    if identities:
        contribution.objects.append(_meshtls_authentication(intent, namespace, name,
                                                            identities))
        contribution.objects.append(_authorization_policy(
            intent, namespace, f"{name}-mesh", target, "MeshTLSAuthentication", name))
    # at most one network: anyone (no source), or the probe networks (probe routes)
    for client in sorted(c for c in clients if c.is_network):
        authn = ALL_NETWORKS if client == ALL else PROBE_NETWORKS
        shared.setdefault(namespace, set()).add(authn)
        contribution.objects.append(_authorization_policy(
            intent, namespace, f"{name}-network", target, "NetworkAuthentication", authn))


def _authorization_policy(intent: Intent, namespace: str, name: str,
                          target: Mapping[str, str], kind: str,
                          authentication: str) -> PlannedObject:
    return PlannedObject(
        api_version=POLICY, kind="AuthorizationPolicy", name=name, namespace=namespace,
        template="linkerd/authorization_policy.yaml.j2",
        context={**_meta(name, namespace, intent), "target_ref": dict(target),
                 "authentication_refs": [{"group": POLICY_GROUP, "kind": kind,
                                          "name": authentication}]},
    )


def _meshtls_authentication(intent: Intent, namespace: str, name: str,
                            identities: list[str]) -> PlannedObject:
    return PlannedObject(
        api_version=POLICY, kind="MeshTLSAuthentication", name=name, namespace=namespace,
        template="linkerd/meshtls_authentication.yaml.j2",
        context={**_meta(name, namespace, intent), "identities": identities},
    )


def _network_authentication(intent: Intent, namespace: str, name: str,
                            networks: list[str]) -> PlannedObject:
    return PlannedObject(
        api_version=POLICY, kind="NetworkAuthentication", name=name, namespace=namespace,
        template="linkerd/network_authentication.yaml.j2",
        context={**_meta(name, namespace, intent),
                 "networks": [{"cidr": cidr} for cidr in networks]},
    )


def _proxy_admin(intent: Intent, namespace: str) -> list[PlannedObject]:
    """Under default deny, the proxies' admin port stays open to Prometheus on /metrics
    and to kubelet probes on /live and /ready (what `linkerd viz allow-scrapes` writes)."""
    linkerd = intent.linkerd
    td = intent.trust_domain
    server = PlannedObject(
        api_version=SERVER, kind="Server", name=ADMIN_SERVER, namespace=namespace,
        template="linkerd/server.yaml.j2",
        context={**_meta(ADMIN_SERVER, namespace, intent),
                 "pod_selector": {"matchExpressions": [
                     {"key": "linkerd.io/control-plane-ns", "operator": "Exists"}]},
                 "port": "linkerd-admin", "proxy_protocol": "HTTP/1",
                 "access_policy": "deny"},
    )
    objects = [server]
    # viz's Prometheus, and any identity of the namespace of a Prometheus of the team's own
    scrapers = [f"prometheus.{linkerd.viz_namespace}.serviceaccount.identity.linkerd.{td}"]
    if intent.telemetry.prometheus_namespace != linkerd.viz_namespace:
        scrapers.insert(0, f"*.{intent.telemetry.prometheus_namespace}.serviceaccount."
                           f"identity.linkerd.{td}")
    for suffix, paths in (("metrics", ["/metrics"]), ("probes", ["/live", "/ready"])):
        name = f"{ADMIN_SERVER}-{suffix}"
        meta = metadata(name, namespace, intent)
        objects.append(PlannedObject(
            api_version=GATEWAY, kind="HTTPRoute", name=name, namespace=namespace,
            template="gatewayapi/http_route.yaml.j2",
            context={"name": name, "namespace": namespace, "labels": meta["labels"],
                     "annotations": None,
                     "parent_refs": [{"group": POLICY_GROUP, "kind": "Server",
                                      "name": ADMIN_SERVER}],
                     "rules": [{"matches": [{"path": {"type": "Exact", "value": p},
                                             "method": "GET"} for p in paths],
                                "backend_refs": None, "timeouts": None}]},
        ))
        target = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}
        if suffix == "metrics":
            objects.append(_meshtls_authentication(intent, namespace, SCRAPERS, scrapers))
            objects.append(_authorization_policy(intent, namespace, name, target,
                                                 "MeshTLSAuthentication", SCRAPERS))
        else:
            objects.append(_authorization_policy(intent, namespace, name, target,
                                                 "NetworkAuthentication", PROBE_NETWORKS))
    return objects
