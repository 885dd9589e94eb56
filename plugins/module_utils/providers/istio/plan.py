"""The Istio plan: which objects each of the six stages shapes, and their values.

API versions are the ones the Istio CRDs store or serve as v1: networking.istio.io/v1,
security.istio.io/v1, telemetry.istio.io/v1. Every builder below computes its object from
the environment's current stage (a DestinationRule gets ``ISTIO_MUTUAL`` once the
environment is at strict_mtls, whichever stage lists it).
"""

from __future__ import annotations

from typing import Any

from ...errors import IntentError
from ...estate.estate import Estate
from ...intent.model import Intent, MtlsExemption, Service
from ...plan.callers import (
    disabled_ports,
    has_sidecar,
    identity_refusals,
    merge_exemptions,
    plaintext_callers,
    services_calling,
)
from ...plan.ingress import ingress_binding
from ...plan.model import NEVER_PRUNE, PlannedObject, StageContribution
from ...plan.model import template_meta as _meta
from ...plan.restarts import restart_note
from ...stages import Stage
from ...yaml_io import dump_plain
from ..gatewayapi.routes import (
    backend_services,
    routes_versions,
)
from .api import DRY_RUN, NETWORKING, NETWORKING_PROXY, SECURITY, TELEMETRY
from .authorization import (
    SCRAPES_IDENTITY,
    authorization_policy,
    deny_other_callers,
    derived_allow,
    exempt_inbound,
    inbound_rules,
    on_own_ports,
    policy_rule,
)
from .control_plane import ISTIOD_VALUES
from .gateways import gateway_allows, ingress_principals
from .probes import REWRITE, probe_allow, probe_exception, unrewritten_probes
from .traffic import (
    destination_rules,
    gateway_routes,
    peer_ports,
    peers_service,
    pods_service,
    service_entries,
    virtual_service,
)


def plan_istio(intent: Intent, estate: Estate | None = None,
               ) -> dict[Stage, StageContribution]:
    """Each stage's objects and runbook notes for an Istio environment."""
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
    return StageContribution(
        objects=[_mesh_peer_authentication(intent)],
        notes=["Mesh-wide PeerAuthentication `default` in the root namespace accepts both "
               "plaintext and mTLS: no client or server changes behaviour yet."],
    )


def _injection(intent: Intent, estate: Estate | None = None) -> StageContribution:
    contribution = StageContribution()
    label = ({"istio.io/rev": intent.revision} if intent.revision
             else {"istio-injection": "enabled"})
    # a caller in a namespace of the catalogue gets the proxy with its namespace's wave
    callers = sorted({c.namespace for c in intent.external_callers
                      if c.inject and c.namespace and not c.in_catalogue})
    for namespace in [*intent.injected_namespaces(), *callers]:
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
    contribution.notes.append(restart_note(intent, "sidecars", "istioctl proxy-status",
                                           estate))
    contribution.notes.extend(_startup_notes(intent))
    contribution.notes.extend(_caller_notes(intent))
    for service in opt_outs:
        contribution.notes.append(
            f"Opt-out: `{service.namespace}/{service.name}` is never injected "
            "(istiod `sidecarInjectorWebhook.neverInjectSelector` in "
            f"{ISTIOD_VALUES}; or label its pod template `sidecar.istio.io/inject: \"false\"`)."
        )
    for service in intent.held_back():
        contribution.notes.append(
            f"Held back: `{service.namespace}/{service.name}` waits for its wave "
            f"`{intent.wave_name(service)}` (istiod `sidecarInjectorWebhook."
            f"neverInjectSelector` in {ISTIOD_VALUES} until then).")
    for service in intent.services:
        if service.inject and service.peer_ports:
            # from the first sidecar on: without it, a sidecar passes pod-to-pod traffic
            # through as plaintext, which a PERMISSIVE peer holds until the client speaks
            # (a server-first protocol never does) and STRICT refuses
            contribution.objects.append(peers_service(intent, service))
            contribution.notes.append(
                f"Service `{service.namespace}/{service.name}-peers` (headless) declares the "
                f"ports the pods of `{service.name}` ({service.kind}) talk to each other on "
                f"({', '.join(str(p.port) for p in peer_ports(service))}), at their own "
                "addresses: Istio sends traffic to a pod address no headless Service "
                "declares as plaintext, which a PERMISSIVE peer holds until the client "
                "speaks and STRICT refuses.")
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


def _traffic(intent: Intent, estate: Estate | None) -> StageContribution:
    contribution = StageContribution()
    same_pods = _same_pods(intent)
    for service in intent.services:
        contribution.objects.extend(destination_rules(intent, service))
        binding = None
        if service.traffic.routes:
            api = "HTTPRoute" if intent.traffic_api == "gateway-api" else "VirtualService"
            binding = ingress_binding(intent, service, estate, api)
            contribution.warnings.extend(binding.warnings)
            contribution.refusals.extend(binding.refusals)
        if service.traffic.routes and intent.traffic_api == "gateway-api":
            gateway_routes(intent, service, contribution, binding)
        elif service.traffic.routes:
            contribution.objects.append(virtual_service(intent, service, binding))
        sharing = same_pods.get(service.name, [service])
        if service.inject and sharing[0] is service:
            contribution.objects.append(_sidecar(intent, sharing))
            if len(sharing) > 1:
                contribution.notes.append(
                    f"Sidecar `{service.namespace}/{service.name}` serves the pods of "
                    + ", ".join(f"`{s.name}`" for s in sharing) + ", which select the same "
                    "pods: one Sidecar per workload, with the calls of each (two would "
                    "leave the one Istio applies undefined).")
    contribution.objects.extend(service_entries(intent))
    contribution.notes.append(
        "Each injected workload's Sidecar admits only the services it calls (and the "
        "root namespace): a call that is missing from `calls` leaves the mesh through the "
        "passthrough cluster, without mTLS or routing."
    )
    return contribution


def _strict(intent: Intent, estate: Estate | None) -> StageContribution:
    contribution = StageContribution(objects=[_mesh_peer_authentication(intent)])
    for service in intent.services:
        contribution.objects.extend(destination_rules(intent, service))
        if service.inject and service.called_at_pods:
            contribution.objects.append(pods_service(intent, service))
            contribution.notes.append(
                f"Service `{service.namespace}/{service.name}-pods` (headless) declares the "
                f"ports its callers reach at the pods of `{service.name}` ("
                + ", ".join(str(p.port) for p in service.pod_addressed_ports())
                + "): a registry hands out pod addresses, and Istio sends requests to "
                "undeclared pod addresses as plaintext, which STRICT refuses.")
    entries = []
    for exception in intent.exemptions(scrapes_identity=SCRAPES_IDENTITY):
        service = intent.service(exception.service)
        entries.append(exception)
        contribution.notes.append(exception.note(
            service.namespace, f"stays {exception.mode} ({exception.reason})."))
    for service in intent.services:
        probes = unrewritten_probes(estate, service) if has_sidecar(intent, service) else {}
        if probes:
            entry, refusals = probe_exception(intent, service, probes)
            contribution.refusals.extend(refusals)
            if entry is not None:
                entries.append(entry)
                contribution.notes.append(
                    f"Exception: `{service.namespace}/{service.name}` accepts plaintext on "
                    f"port(s) {', '.join(map(str, probes))}: Istio does not rewrite its "
                    "kubelet probes, which arrive there without a certificate.")
    _peer_exceptions(intent, entries, contribution)
    dry_run = _authorization(intent, estate, dry_run=True).objects
    if dry_run and intent.stage is Stage.STRICT_MTLS:  # later, the authorization stage owns them
        contribution.objects.extend(dry_run)
        contribution.notes.append(
            "The authorization stage's AuthorizationPolicies are here as a dry run "
            "(`istio.io/dry-run: \"true\"`): the sidecars count what they would deny "
            "(Envoy RBAC shadow rules, `authz_dry_run_result` in Prometheus) and enforce "
            "nothing. The authorization gate reads those counts before it lets them enforce."
        )
    return contribution


def _authorization(intent: Intent, estate: Estate | None = None,
                   dry_run: bool = False) -> StageContribution:
    """The authorization stage; ``dry_run``: the same policies, annotated to enforce
    nothing (rendered at strict_mtls)."""
    contribution = StageContribution()
    explicit = {rules.service: (index, rules)
                for index, rules in enumerate(intent.authorization)}
    for service in intent.services:
        if not service.inject:
            continue  # no sidecar, nothing to enforce a policy: the runbook says so
        index, rules = explicit.get(service.name, (None, None))
        if rules is not None:
            contribution.refusals.extend(identity_refusals(
                intent, service, rules, disabled_ports(intent, service),
                f"mesh_authorization[{index}]"))
            allow = [policy_rule(intent, rule) for rule in rules.allow]
            deny = [policy_rule(intent, rule) for rule in rules.deny]
            if rules.deny_other_callers:
                deny.append(deny_other_callers(intent, service, rules))
            deny = [on_own_ports(intent, service, rule) for rule in deny]
        else:
            allow = derived_allow(intent, service, services_calling(intent, service),
                                  ingress_principals(intent, service, estate))
            deny = []
            _plaintext_note(intent, service, contribution)
        inbound = inbound_rules(intent, service)
        if inbound and (allow or intent.default_deny):
            allow += inbound
            deny = [exempt_inbound(intent, service, rule) for rule in deny]
        if allow:
            contribution.objects.append(authorization_policy(
                intent, service, "allow", "ALLOW", allow, dry_run))
        if deny:
            contribution.objects.append(authorization_policy(
                intent, service, "deny", "DENY", deny, dry_run))
        probes = unrewritten_probes(estate, service) if has_sidecar(intent, service) else {}
        if probes and (allow or intent.default_deny):
            contribution.objects.append(probe_allow(intent, service, probes, dry_run))
        if probes and rules is not None and rules.deny_other_callers:
            contribution.refusals.append(IntentError(
                f"mesh_authorization[{index}].deny_other_callers",
                True, f"denies the kubelet's probes of {service.namespace}/{service.name} "
                f"({'; '.join(found.describe() for found in probes.values())}): Istio does not "
                f"rewrite them ({REWRITE}: \"false\"), so they arrive without a principal; "
                "let Istio rewrite the probes, or drop deny_other_callers"))
    if intent.default_deny:
        for namespace in intent.namespaces:
            contribution.objects.append(PlannedObject(
                api_version=SECURITY, kind="AuthorizationPolicy", name="allow-nothing",
                namespace=namespace, template="istio/authorization_policy_allow_nothing.yaml.j2",
                context=_meta("allow-nothing", namespace, intent,
                              annotations=DRY_RUN if dry_run else None),
            ))
        contribution.objects.extend(gateway_allows(intent, estate, dry_run, contribution))
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
        "for `ingress: true`); callers that reach them in plaintext (no sidecar, a DISABLE "
        "exception, a plain host) carry no principal and are admitted by port, or by "
        "address for hosts."
    )
    return contribution


def _plaintext_note(intent: Intent, service: Service, contribution: StageContribution) -> None:
    """Say in the runbook which ports a derived ALLOW opens to plaintext callers, and why."""
    callers = plaintext_callers(intent, service)
    disabled = disabled_ports(intent, service)
    if not callers and not disabled:
        return
    who = ", ".join(f"{c.name} ({c.reason})" for c in callers)
    why = (f"port(s) {', '.join(map(str, disabled))} are under a DISABLE exception"
           if disabled else "")
    contribution.notes.append(
        f"`{service.namespace}/{service.name}`: its ALLOW admits plaintext callers without "
        f"an identity to check ({'; '.join(x for x in (who, why) if x)}): by port, so any "
        "plaintext client reaching those ports is admitted; by address for hosts.")
def _caller_notes(intent: Intent) -> list[str]:
    """How the callers outside the catalogue keep working."""
    notes = []
    for caller in intent.external_callers:
        if caller.in_catalogue:
            notes.append(f"{caller.subject} runs in `{caller.namespace}`, a namespace of the "
                         "catalogue: it gets the sidecar with its namespace's wave"
                         + (", as it has at this stage" if caller.inject else
                            ", not yet at this stage") + "; its scrapes of pod addresses "
                         "stay plaintext either way." if caller.kind == "prometheus" else
                         f"{caller.subject} runs in `{caller.namespace}`, a namespace of the "
                         "catalogue: it gets the sidecar with its namespace's wave.")
        elif caller.inject:
            extra = (" An injected ingress-nginx must send to the Service, not to pod IPs "
                     "(annotation `nginx.ingress.kubernetes.io/service-upstream: \"true\"`), "
                     "and leave inbound traffic to the controller "
                     "(`traffic.sidecar.istio.io/includeInboundPorts: \"\"`): requests to pod "
                     "IPs pass the sidecar as plaintext." if caller.kind == "ingress-controller"
                     else "")
            notes.append(f"`{caller.namespace}` ({caller.title}) is injected from this stage "
                         f"on; restart its workloads.{extra}")
        else:
            targets = ", ".join(f"`{name}`" for name, _ in caller.calls)
            notes.append(f"{caller.subject} has no sidecar: its requests to {targets} are "
                         "plaintext without identity; strict_mtls keeps their ports "
                         "PERMISSIVE and authorization admits them by port.")
    return notes


def _startup_notes(intent: Intent) -> list[str]:
    """What keeps jobs completing and init containers working once they are injected."""
    notes = []
    needing = intent.native_sidecar_services()
    if intent.native_sidecars:
        why = ", ".join(f"`{s.namespace}/{s.name}` ({s.kind}"
                        + (", init containers on the network" if s.init_network else "")
                        + ")" for s in needing) or "mesh_proxy.native_sidecars: enabled"
        notes.append(
            "Native sidecars (`pilot.env.ENABLE_NATIVE_SIDECARS: \"true\"` in "
            f"{ISTIOD_VALUES}) for {why}: the proxy runs as an init container with "
            "`restartPolicy: Always`, starts before the other init containers and stops "
            "when a job's containers end. Every injected pod gets it at its next restart; "
            "to keep it to these workloads, annotate their pod templates "
            "`sidecar.istio.io/nativeSidecar: \"true\"` and set "
            "`mesh_proxy.native_sidecars: disabled`.")
    for service in intent.services:
        if service.is_job and service.stops_proxy and intent.injected(service):
            notes.append(
                f"`{service.namespace}/{service.name}` ({service.kind}) stops its proxy "
                "itself when it is done (`curl -X POST localhost:15020/quitquitquit`): "
                "without it the job never completes.")
    if intent.proxy.hold_application is not None:
        held = "holds" if intent.proxy.hold_application else "does not hold"
        notes.append(
            f"`meshConfig.defaultConfig.holdApplicationUntilProxyStarts` in {ISTIOD_VALUES}: "
            f"the injector {held} the application containers until the proxy is ready.")
    return notes


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


def _peer_exceptions(intent: Intent, entries: list[MtlsExemption],
                     contribution: StageContribution) -> None:
    """One PeerAuthentication ``<service>-mtls-exception`` per workload, named after the
    first service with an exception: the exceptions of services over the same pods
    (``Intent.same_pods``) merged into it. Istio applies one workload PeerAuthentication per
    workload, the oldest, and ignores the rest (MST0102;
    https://istio.io/latest/docs/concepts/security/#peer-authentication)."""
    workloads: dict[str, list[MtlsExemption]] = {}
    for entry in entries:
        first = intent.same_pods(intent.service(entry.service))[0].name
        workloads.setdefault(first, []).append(entry)
    for group in workloads.values():
        service = intent.service(group[0].service)
        merged = merge_exemptions(group)
        name = f"{service.name}-mtls-exception"
        contribution.objects.append(PlannedObject(
            api_version=SECURITY, kind="PeerAuthentication", name=name,
            namespace=service.namespace, template="istio/peer_authentication.yaml.j2",
            context={
                **_meta(name, service.namespace, intent,
                        annotations={"meshstage.io/reason": merged.reason}),
                "selector": {"matchLabels": service.selector},
                "mode": merged.mode,
                "port_level_mtls": {str(port): {"mode": mode}
                                    for port, mode in merged.ports.items()} or None,
            },
        ))
        names = list(dict.fromkeys(entry.service for entry in group))
        if len(names) > 1:
            contribution.notes.append(
                f"PeerAuthentication `{service.namespace}/{name}` holds the exceptions of "
                + ", ".join(f"`{each}`" for each in names) + ", which select the same pods: "
                "Istio applies one per workload, so their modes are merged (where they "
                "differ, PERMISSIVE, which accepts what each accepts).")


def _same_pods(intent: Intent) -> dict[str, list[Service]]:
    """The injected services whose selector is another's (``Intent.same_pods``), by each
    one's name: they share one Sidecar, the first's. Istio applies one Sidecar per workload;
    with two that select it, which one is undefined (IST0110,
    https://istio.io/latest/docs/reference/config/analysis/ist0110/)."""
    shared: dict[str, list[Service]] = {}
    for service in intent.services:
        group = [s for s in intent.same_pods(service) if s.inject]
        if service.inject and len(group) > 1:
            shared[service.name] = group
    return shared


def _sidecar(intent: Intent, services: list[Service]) -> PlannedObject:
    """The Sidecar of the pods of ``services`` (one, or several over the same pods),
    named after the first: the egress of every call of each."""
    service = services[0]
    domain = intent.cluster.domain
    names: set[tuple[str, str]] = set()
    external: set[str] = set()
    for each in services:
        for callee in (intent.service(name) for name in each.calls):
            names.add((callee.namespace, callee.name))
            if callee.called_at_pods and callee.inject \
                    and intent.stage.reached(Stage.STRICT_MTLS):
                names.add((callee.namespace, f"{callee.name}-pods"))
            if intent.traffic_api == "gateway-api" and callee.traffic.routes \
                    and routes_versions(callee):
                # the HTTPRoute sends the callee's traffic on to its version Services
                names.update((callee.namespace, name) for name in backend_services(callee))
        if each.peer_ports:
            # its pods talk to each other: through its own Service, and (from strict_mtls)
            # the headless Service that declares the other peer ports
            names.add((each.namespace, each.name))
            names.add((each.namespace, f"{each.name}-peers"))
        external.update(f"{each.namespace}/{call.host}" for call in each.external_calls)
    hosts = sorted(f"{namespace}/{name}.{namespace}.svc.{domain}" for namespace, name in names)
    # the hosts outside the cluster it calls: their ServiceEntry in its namespace
    hosts += sorted(external)
    hosts.append(f"{intent.root_namespace}/*")
    return PlannedObject(
        api_version=NETWORKING, kind="Sidecar", name=service.name,
        namespace=service.namespace, template="istio/sidecar.yaml.j2",
        context={**_meta(service.name, service.namespace, intent),
                 "selector": service.selector, "egress_hosts": hosts},
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
