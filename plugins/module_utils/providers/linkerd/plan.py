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

from ...estate.estate import Estate
from ...intent.model import Intent, Service
from ...plan.callers import has_sidecar, identity_refusals
from ...plan.ingress import ingress_binding
from ...plan.model import NEVER_PRUNE, Gap, PlannedObject, StageContribution
from ...plan.model import template_meta as _meta
from ...plan.probes import service_probes
from ...plan.restarts import restart_note
from ...stages import Stage
from ...yaml_io import dump_plain
from ..gatewayapi.routes import ROUTABLE_PROTOCOLS
from .api import (
    ACCESS_LOG,
    DEFAULT_OPAQUE_PORTS,
    INBOUND_POLICY,
    INJECT,
    NATIVE_SIDECAR,
    PROBE_NETWORKS,
    PROVIDER,
    TRACE_ACCOUNT,
    TRACE_COLLECTOR,
    VALUES_FILE,
    inbound_policy,
    linkerd_gap,
)
from .authorization import (
    governed,
    ingress_gateway_servers,
    mtls_exception,
    network_authentication,
    one_server_per_port,
    port_objects,
    probe_objects,
    proxy_admin,
    server_objects,
)
from .control_plane import opt_out_labels
from .policy import (
    ALL,
    port_policy,
    service_policy,
    service_ports,
)
from .traffic import accrual_elsewhere, failure_accrual, http_routes, set_fields, smi_split


def plan_linkerd(intent: Intent, estate: Estate | None = None,
               ) -> dict[Stage, StageContribution]:
    """Each stage's objects, runbook notes and gaps for a Linkerd environment."""
    return {
        Stage.PERMISSIVE_MTLS: _permissive(intent),
        Stage.INJECTION: _injection(intent, estate),
        Stage.OBSERVABILITY: _observability(intent),
        Stage.TRAFFIC: _traffic(intent, estate),
        Stage.STRICT_MTLS: _strict(intent, estate),
        Stage.AUTHORIZATION: _authorization(intent, estate),
    }


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


def _injection(intent: Intent, estate: Estate | None = None) -> StageContribution:
    contribution = StageContribution(
        objects=[_namespace(intent, ns) for ns in intent.injected_namespaces()])
    for caller in intent.external_callers:
        if caller.in_catalogue:
            contribution.notes.append(
                f"{caller.subject} runs in `{caller.namespace}`, a namespace of the "
                "catalogue: it gets the proxy with its namespace's wave, and its identity "
                "with it.")
        elif caller.inject and caller.namespace:
            # an ingress in ingress mode routes by Host and l5d-dst-override: its requests
            # get the backend's policy and mTLS (https://linkerd.io/2-edge/tasks/using-ingress/)
            mode = "ingress" if caller.kind == "ingress-controller" else "enabled"
            contribution.objects.append(PlannedObject(
                api_version="v1", kind="Namespace", name=caller.namespace, namespace=None,
                template="linkerd/namespace.yaml.j2",
                context={"name": caller.namespace,
                         "annotations": {**NEVER_PRUNE, INJECT: mode}}))
            contribution.notes.append(
                f"`{caller.namespace}` ({caller.title}) is annotated `{INJECT}: {mode}`; "
                "restart its workloads."
                + (" It must remove the `l5d-dst-override` header from client requests, or "
                   "it becomes an open relay." if mode == "ingress" else ""))
        elif not caller.inject:
            targets = ", ".join(f"`{name}`" for name, _ in caller.calls)
            contribution.notes.append(
                f"{caller.subject} has no proxy: its requests to {targets} are plaintext "
                "without identity; strict_mtls keeps their ports open to unauthenticated "
                "clients (Servers `all-unauthenticated`) and authorization admits them from "
                "any network.")
    contribution.notes.append(restart_note(intent, "the proxy",
                                           "linkerd check --proxy -n <namespace>", estate))
    contribution.notes.extend(_startup_notes(intent))
    _opaque_ports(intent, contribution)
    for service in intent.services:
        if not service.inject:
            contribution.notes.append(
                f"Opt-out: `{service.namespace}/{service.name}` is never injected (the proxy "
                f"injector's `objectSelector` in {VALUES_FILE} leaves out "
                f"`{_labels(service)}`; or annotate its pod template "
                "`linkerd.io/inject: disabled`).")
    if intent.stage.reached(Stage.INJECTION):
        for service, (key, value), shared in opt_out_labels(intent):
            if shared:
                contribution.gaps.append(linkerd_gap(
                    f"{intent.service_path(service)}.selector", service.selector,
                    f"the proxy injector leaves {service.namespace}/{service.name} out by "
                    f"its label {key}={value}, which "
                    + ", ".join(f"{s.namespace}/{s.name}" for s in shared)
                    + " carry too, and they are left out with it: every label of its "
                    "selector is shared, and one objectSelector cannot say \"all of these "
                    "labels\"; give its pods a label of their own (and its selector), or "
                    "annotate its pod template linkerd.io/inject: disabled", service))
    for service in intent.held_back():
        contribution.notes.append(
            f"Held back: `{service.namespace}/{service.name}` waits for its wave "
            f"`{intent.wave_name(service)}` (the proxy injector's `objectSelector` in "
            f"{VALUES_FILE} leaves out `{_labels(service)}` until then).")
    if intent.revision:
        contribution.gaps.append(linkerd_gap(
            "mesh_revision", intent.revision, "Linkerd has no control-plane revisions; "
            "namespaces are annotated linkerd.io/inject: enabled"))
    if intent.proxy.image_type:
        contribution.gaps.append(linkerd_gap(
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
        contribution.gaps.append(linkerd_gap(
            "mesh_telemetry.metrics_provider", telemetry.metrics_provider,
            "Linkerd proxies serve Prometheus metrics only (on their admin port)"))
    if telemetry.tracing_provider:
        contribution.gaps.append(linkerd_gap(
            "mesh_telemetry.tracing_provider", telemetry.tracing_provider,
            "Linkerd has no tracing providers; proxies export spans to "
            "mesh_linkerd.trace_collector"
            + ("" if linkerd.trace_collector else ", which is not set")))
    if "sampling_percentage" in telemetry.written:  # a rate the inventory asks for
        contribution.gaps.append(linkerd_gap(
            "mesh_telemetry.sampling_percentage", telemetry.sampling_percentage,
            "Linkerd proxies sample what the trace's root (ingress or application) sampled"
            if linkerd.trace_collector else
            "no mesh_linkerd.trace_collector is set, so Linkerd proxies emit no spans"))
    if telemetry.access_log_provider and telemetry.access_log_filter:
        contribution.gaps.append(linkerd_gap(
            "mesh_telemetry.access_log_filter", telemetry.access_log_filter,
            "Linkerd access logs have no filter: every HTTP request is logged"))
    return contribution


def _traffic(intent: Intent, estate: Estate | None) -> StageContribution:
    contribution = StageContribution()
    callers = [s.name for s in intent.services if s.inject and s.calls]
    if callers:  # once for the catalogue: the same for every service
        contribution.gaps.append(Gap(
            "mesh_services[].calls", callers, PROVIDER,
            "Linkerd proxies do not scope egress per workload (Istio's Sidecar); calls "
            "still derive the ALLOW rules of the authorization stage",
            f"{len(callers)} service(s) that call"))
    for service in intent.services:
        path = intent.service_path(service)
        traffic = service.traffic
        if traffic.connection_pool:
            contribution.gaps.append(linkerd_gap(
                f"{path}.traffic.connection_pool", set_fields(traffic.connection_pool),
                "Linkerd proxies have no connection pool limits", service))
        if traffic.load_balancer:
            contribution.gaps.append(linkerd_gap(
                f"{path}.traffic.load_balancer", traffic.load_balancer,
                "Linkerd always balances by latency (EWMA, power of two choices)", service))
        accrual = failure_accrual(intent, service, contribution)
        binding = None
        if traffic.routes:
            smi = intent.traffic_api == "smi"
            binding = ingress_binding(intent, service, estate,
                                      "TrafficSplit" if smi else "HTTPRoute", can_bind=not smi)
            contribution.warnings.extend(binding.warnings)
            contribution.refusals.extend(binding.refusals)
        if traffic.routes and intent.traffic_api == "smi":
            smi_split(intent, service, contribution, accrual)
        elif traffic.routes:
            http_routes(intent, service, contribution, accrual, binding)
        elif accrual:
            accrual_elsewhere(service, [service.name], accrual, contribution, path)
    return contribution


def _strict(intent: Intent, estate: Estate | None) -> StageContribution:
    contribution = StageContribution(
        objects=[_namespace(intent, ns) for ns in intent.namespaces],
        notes=["Default inbound policy `all-authenticated`: meshed workloads refuse plaintext "
               "(namespace annotations, and `proxy.defaultInboundPolicy` in "
               f"`{VALUES_FILE}`). A proxy reads the default when its pod starts: restart "
               "the workloads of each namespace (`kubectl rollout restart deployment -n "
               "<namespace>`) and check `linkerd viz authz -n <namespace> deploy` shows no "
               "unauthorized traffic."],
    )
    shared: dict[str, set[str]] = {}
    for service in intent.services:
        probes = service_probes(estate, service) if has_sidecar(intent, service) else {}
        if not probes or governed(intent, service):
            continue  # authorization renders the Servers of a service it governs
        contribution.objects.extend(server_objects(intent, service, probes, routed=[
            number for number, found in probes.items() if found.grpc]))
        probe_objects(intent, service, probes, contribution, shared)
    _shared_authentications(intent, shared, contribution)
    written = {e.service: index for index, e in enumerate(intent.mtls_exceptions)}
    for exception in intent.exemptions():
        service = intent.service(exception.service)
        if not service.inject:
            contribution.notes.append(
                f"Exception: `{service.namespace}/{service.name}` has no proxy (inject: "
                f"false): meshed clients talk plaintext to it ({exception.reason}).")
            continue
        contribution.objects.extend(server_objects(intent, service,
                                                   service_probes(estate, service)))
        path = f"mesh_mtls_exceptions[{written.get(service.name)}]"
        if exception.mode == "DISABLE":
            contribution.gaps.append(linkerd_gap(
                f"{path}.mode", "DISABLE", _disable_rendered(intent, service, None), service))
        for port, mode in exception.ports.items():
            if mode == "DISABLE":
                contribution.gaps.append(linkerd_gap(
                    f"{path}.ports.{port}", "DISABLE",
                    _disable_rendered(intent, service, port), service))
        contribution.notes.append(exception.note(
            service.namespace, f"accepts plaintext ({exception.mode}; {exception.reason})."))
    ingress_gateway_servers(intent, contribution)
    one_server_per_port(intent, contribution)
    return contribution


def _authorization(intent: Intent, estate: Estate | None) -> StageContribution:
    contribution = StageContribution()
    callers: dict[str, list[Service]] = {}
    for caller in intent.services:
        for callee in caller.calls:
            callers.setdefault(callee, []).append(caller)
    shared: dict[str, set[str]] = {}  # namespace -> shared authentications it needs
    positions = {e.service: (index, e) for index, e in enumerate(intent.authorization)}
    for service in intent.services:
        if not service.inject:
            contribution.notes.append(
                f"`{service.namespace}/{service.name}` has no proxy (inject: false): no "
                "Server or policy can be enforced on it; protect it at the network level.")
            continue
        policy = service_policy(intent, service, callers.get(service.name, []))
        index, explicit = positions.get(service.name, (None, None))
        if explicit is not None:
            contribution.refusals.extend(identity_refusals(
                intent, service, explicit, [], f"mesh_authorization[{index}]"))
        for path, value, reason in policy.gaps:
            contribution.gaps.append(linkerd_gap(path, value, reason, service))
        if not (policy.allow or intent.default_deny or mtls_exception(intent, service)):
            continue
        probes = service_probes(estate, service)
        found_ports = [port_policy(policy, service, port, intent,
                                   probes.get(port.target_port or port.port))
                       for port in service_ports(service, probes)]
        contribution.objects.extend(server_objects(intent, service, probes, routed=[
            found.workload_port for found in found_ports if found.routes]))
        for found in found_ports:
            number = found.workload_port
            for path, value, reason in found.gaps:
                contribution.gaps.append(linkerd_gap(path, value, reason, service))
            port_objects(intent, service, found, contribution, shared, probes.get(number))
            if found.routes and not service.probe_paths and estate is None:
                contribution.warnings.append(
                    f"{intent.service_path(service)}.probe_paths (service "
                    f"{service.namespace}/{service.name}): none listed, and port "
                    f"{found.workload_port} has per-route rules, which end Linkerd's default "
                    "authorization of kubelet probes: probes to that port are refused; list "
                    "the probe paths so they get a route of their own")
    if intent.default_deny:
        contribution.objects.extend(_namespace(intent, ns) for ns in intent.namespaces)
        for namespace in sorted({s.namespace for s in intent.services if s.inject}):
            contribution.objects.extend(proxy_admin(intent, namespace))
            shared.setdefault(namespace, set()).add(PROBE_NETWORKS)
        contribution.notes.append(
            "Default deny: `config.linkerd.io/default-inbound-policy: deny` on every "
            "namespace of the catalogue, and every Server refuses what no AuthorizationPolicy "
            "allows (403 for HTTP, a refused connection otherwise). Restart the workloads for "
            "the namespace default to reach their proxies. The proxies' admin port stays open "
            "to Prometheus (`/metrics`) and kubelet probes (`/live`, `/ready`).")
    _shared_authentications(intent, shared, contribution)
    one_server_per_port(intent, contribution)
    contribution.notes.append(
        "Services without explicit rules are allowed to the identities of the services whose "
        "`calls` name them (and the ingress gateway for `ingress: true`).")
    return contribution


def _opaque_ports(intent: Intent, contribution: StageContribution) -> None:
    """The server-first ports of the catalogue: opaque cluster-wide (``proxy.opaquePorts``),
    and a warning where that makes another service's HTTP port opaque too."""
    extra = [p for p in intent.server_first_ports() if p not in DEFAULT_OPAQUE_PORTS]
    if not extra:
        return
    contribution.notes.append(
        f"Opaque ports: {', '.join(str(p) for p in extra)} join the default opaque ports "
        f"(`proxy.opaquePorts` in `{VALUES_FILE}`): the proxies skip protocol detection on "
        "these server-first ports, which would otherwise wait 10 seconds for the client's "
        "first bytes. The injector annotates pods with it when they are created; restart "
        "the workloads.")
    for service in intent.services:
        for index, port in enumerate(service.ports):
            if port.protocol in ROUTABLE_PROTOCOLS and (
                    port.port in extra or (port.target_port or port.port) in extra):
                contribution.warnings.append(
                    f"{intent.service_path(service)}.ports[{index}] (service "
                    f"{service.namespace}/{service.name}): port {port.port} is a "
                    "server-first port of another service, opaque cluster-wide "
                    "(proxy.opaquePorts): this HTTP port loses HTTP routing, metrics and "
                    "per-route authorization; give one of them another number, or annotate "
                    "this service's pods and Service config.linkerd.io/opaque-ports with "
                    "their own list")


def _startup_notes(intent: Intent) -> list[str]:
    """What keeps jobs completing and init containers working once they are injected."""
    notes = []
    needing = intent.native_sidecar_services()
    if intent.native_sidecars and intent.proxy.native_sidecars == "auto":
        where = ", ".join(f"`{s.namespace}/{s.name}` ({s.kind}"
                          + (", init containers on the network" if s.init_network else "")
                          + ")" for s in needing)
        notes.append(
            f"Native sidecars (namespace annotation `{NATIVE_SIDECAR}: \"true\"`) for "
            f"{where}: the proxy runs as an init container with `restartPolicy: Always`, "
            "starts before the other init containers and stops when a job's containers "
            "end. The namespaces' pods get it at their next restart.")
    elif intent.native_sidecars:
        notes.append(f"Native sidecars for every pod (`proxy.nativeSidecar: true` in "
                     f"`{VALUES_FILE}`), at each pod's next restart.")
    for service in intent.services:
        if service.is_job and service.stops_proxy and intent.injected(service):
            notes.append(
                f"`{service.namespace}/{service.name}` ({service.kind}) stops its proxy "
                "itself when it is done (`linkerd-await --shutdown -- <command>`; the "
                f"proxy's `/shutdown` endpoint is on: `proxy.enableShutdownEndpoint` in "
                f"`{VALUES_FILE}`): without it the job never completes.")
    if intent.proxy.hold_application is not None:
        held = "wait" if intent.proxy.hold_application else "do not wait"
        notes.append(f"`proxy.await: {str(intent.proxy.hold_application).lower()}` in "
                     f"`{VALUES_FILE}`: application containers {held} for the proxy.")
    return notes


# --------------------------------------------------------------------------- builders



def _shared_authentications(intent: Intent, shared: dict[str, set[str]],
                            contribution: StageContribution) -> None:
    """The NetworkAuthentications the policies of each namespace share."""
    for namespace, names in sorted(shared.items()):
        for name in sorted(names):
            networks = (list(intent.linkerd.probe_networks) if name == PROBE_NETWORKS
                        else list(ALL.networks))
            contribution.objects.append(network_authentication(intent, namespace, name,
                                                               networks))


def _disable_rendered(intent: Intent, service: Service, port: int | None) -> str:
    """What a DISABLE exception becomes under Linkerd at the environment's stage: meshed
    clients always send mTLS to a meshed workload
    (https://linkerd.io/2-edge/features/automatic-mtls/), so Linkerd has no DISABLE; what it
    can do is accept plaintext too."""
    servers, verb = (f"the Server of port {port}", "s") if port else ("its Servers", "")
    text = ("Linkerd cannot turn mTLS off for a meshed workload: meshed clients always send it "
            "mTLS. ")
    governed = intent.stage.reached(Stage.AUTHORIZATION) and any(
        obj.context.get("access_policy") == "deny" for obj in server_objects(intent, service))
    if governed:
        return text + (f"At {intent.stage.value}, {servers} refuse{verb} what no "
                       "AuthorizationPolicy "
                       "allows (accessPolicy deny): meshed callers are admitted by identity, "
                       "plaintext callers without a proxy from any network, and other "
                       "plaintext is refused")
    return text + (f"At {intent.stage.value}, {servers} accept{verb} plaintext as well as mTLS "
                   "(accessPolicy all-unauthenticated)")


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
    injected = intent.is_injected(namespace)
    if injected and intent.stage.reached(Stage.INJECTION):
        annotations[INJECT] = "enabled"
        if intent.proxy.native_sidecars == "auto" and intent.native_sidecars and any(
                s.namespace == namespace for s in intent.native_sidecar_services()):
            annotations[NATIVE_SIDECAR] = "true"
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


# -- traffic


# -- servers and policies


def _labels(service: Service) -> str:
    """``app: reviews``: the labels the injector's ``objectSelector`` leaves out."""
    return ", ".join(f"{key}: {value}" for key, value in sorted(service.selector.items()))
