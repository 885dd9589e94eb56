"""What an estate's Istio says, as the intent says it (``meshstage import``): the control
plane's settings, the injected namespaces, the ingress gateway, the Sidecars' egress (calls),
the mesh-wide PeerAuthentication and its workload exceptions, Telemetry and ProxyConfig. The
traffic objects are read in ``estate_traffic.py``, the AuthorizationPolicies in
``estate_authorization.py``. Only objects of Istio's API groups are read.

Each object either becomes intent (``Draft.became``) or is kept as it is, with the reason
(``Draft.keep``); each stage an object shows is a hint of the stage the estate is at.

- Injection: the namespace label ``istio-injection: enabled`` or ``istio.io/rev``
  (https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/).
- Sidecar egress hosts ``<namespace>/<host>`` name what a workload reaches
  (https://istio.io/latest/docs/reference/config/networking/sidecar/): a catalogue
  service, or a host outside the cluster that a ServiceEntry of the namespace declares
  (``calls: [api.stripe.com]``, one per port: ``host:port`` unless 443).
- PeerAuthentication: mesh-wide in the root namespace without a selector; a workload's
  DISABLE or PERMISSIVE (with ``portLevelMtls``) is an mTLS exception
  (https://istio.io/latest/docs/reference/config/security/peer_authentication/).
- Telemetry without a selector in the root namespace is the mesh's
  (https://istio.io/latest/docs/reference/config/telemetry/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...estate.objects import Resource, as_list, as_mapping, as_strings
from ...inventory.draft import Draft, ServiceDraft
from ...kube import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from ...stages import Stage
from ...yaml_io import YAMLError, load_yaml
from .estate_authorization import import_authorization
from .estate_traffic import import_traffic

_INGRESS_LABEL = {"istio": "ingressgateway"}


def import_istio(draft: Draft) -> None:
    """Everything an estate's Istio objects say, into ``draft``."""
    _control_plane(draft)
    _ingress_gateway(draft)
    _namespaces(draft)
    _sidecars(draft)
    _service_entries(draft)
    import_traffic(draft)
    _peer_authentications(draft)
    import_authorization(draft)
    _telemetry(draft)
    _proxy_config(draft)
    _gateways(draft)


def _root(draft: Draft) -> str:
    return str(draft.shared.get("mesh_root_namespace") or "istio-system")


def _control_plane(draft: Draft) -> None:
    """Trust domain, root namespace, revision, proxy resources and opt-outs from istiod's
    chart values (or the ``istio`` ConfigMap's mesh config)."""
    values = as_mapping(draft.charts.get("istiod"))
    mesh = as_mapping(values.get("meshConfig"))
    config = draft.index.get("ConfigMap", _root(draft), "istio")
    if not mesh and config is not None:
        from_text = as_mapping(config.obj.get("data")).get("mesh")
        mesh = as_mapping(_yaml(from_text))
    if mesh.get("trustDomain"):
        draft.shared["mesh_trust_domain"] = str(mesh["trustDomain"])
        draft.note("mesh_trust_domain", "from istiod's mesh config (meshConfig.trustDomain)")
    if mesh.get("rootNamespace"):
        draft.shared["mesh_root_namespace"] = str(mesh["rootNamespace"])
    revision = values.get("revision") or as_mapping(draft.charts.get("base")).get(
        "defaultRevision")
    if revision:
        draft.shared["mesh_revision"] = str(revision)
        draft.note("mesh_revision", "from istiod's chart values (revision)")
    resources = as_mapping(as_mapping(as_mapping(values.get("global")).get("proxy")).get(
        "resources"))
    proxy = {key: as_mapping(resources.get(part)).get(kind) for key, part, kind in (
        ("cpu", "requests", "cpu"), ("memory", "requests", "memory"),
        ("cpu_limit", "limits", "cpu"), ("memory_limit", "limits", "memory"))}
    proxy = {k: str(v) for k, v in proxy.items() if v is not None}
    if proxy:
        draft.shared.setdefault("mesh_proxy", {}).update(proxy)
    for selector in as_list(as_mapping(values.get("sidecarInjectorWebhook")).get(
            "neverInjectSelector")):
        labels = as_strings(as_mapping(selector).get("matchLabels"))
        for service in _services_labelled(draft, labels):
            service.put("inject", False, "istiod never injects it "
                        "(sidecarInjectorWebhook.neverInjectSelector)")
            draft.held.add(service.name)


def _yaml(text: Any) -> Any:
    try:
        return load_yaml(text) if isinstance(text, str) else None
    except YAMLError:
        return None


def _services_labelled(draft: Draft, labels: Mapping[str, str]) -> list[ServiceDraft]:
    if set(labels) == {"app"}:
        found = draft.services.get(labels["app"])
        return [found] if found is not None else []
    return [s for s in draft.services.values() if s.pods() and all(
        all(w.labels.get(k) == v for k, v in labels.items()) for w in s.pods())]


def _ingress_gateway(draft: Draft) -> None:
    """The ingress gateway's identity, from its Deployment (label istio: ingressgateway)."""
    for workload in draft.index.workloads_matching(None, _INGRESS_LABEL):
        if workload.resource.kind not in ("Deployment", "DaemonSet", "Rollout"):
            continue
        gateway = {"namespace": workload.namespace,
                   "service_account": workload.service_account}
        if gateway != {"namespace": "istio-system",
                       "service_account": "istio-ingressgateway-service-account"}:
            draft.shared["mesh_ingress_gateway"] = gateway
            draft.note("mesh_ingress_gateway", f"from {workload.resource.display}")
        return


def _namespaces(draft: Draft) -> None:
    for namespace in draft.index.of_kind("Namespace"):
        labels = namespace.labels
        if labels.get("istio-injection") == "enabled":
            draft.injected[namespace.name] = f"{namespace.display} istio-injection=enabled"
        elif labels.get("istio.io/rev") and labels.get("istio-injection") != "disabled":
            draft.injected[namespace.name] = \
                f"{namespace.display} istio.io/rev={labels['istio.io/rev']}"
            draft.shared.setdefault("mesh_revision", labels["istio.io/rev"])
        else:
            continue
        draft.hint_stage(Stage.INJECTION, f"{namespace.display} is labelled for injection")


def _callers(draft: Draft, resource: Resource, selector: Any) -> list[ServiceDraft]:
    labels = as_strings(as_mapping(selector).get("labels"))
    if labels:
        return draft.services_selected(resource.namespace, {"matchLabels": labels})
    return [s for s in draft.services.values() if s.namespace == resource.namespace]


def _sidecars(draft: Draft) -> None:
    """Calls from each Sidecar's egress hosts (wildcards name no call)."""
    root = _root(draft)
    for sidecar in draft.index.istio("Sidecar"):
        callers = _callers(draft, sidecar, sidecar.spec.get("workloadSelector"))
        extra = sorted(set(sidecar.spec) - {"workloadSelector", "egress"})
        for number, egress in enumerate(as_list(sidecar.spec.get("egress"))):
            egress = as_mapping(egress)
            extra += [f"egress[{number}].{k}" for k in sorted(set(egress) - {"hosts"})]
            for host in as_list(egress.get("hosts")):
                namespace, _, name = str(host).partition("/")
                namespace = sidecar.namespace if namespace == "." else namespace
                if "*" in name or (namespace in ("*", "~") and "." not in name) \
                        or namespace == root:
                    continue
                callee = draft.service_for_host(namespace, name)
                for caller in callers:
                    if callee is not None and callee.namespace in (namespace, "*"):
                        draft.call(caller, callee, f"{sidecar.display} lets it reach "
                                   f"{host}")
                if callee is None and "." in name and namespace == sidecar.namespace:
                    for entry, port in _external_ports(draft, namespace, name):
                        for caller in callers:
                            draft.call_external(
                                caller, name if port == 443 else f"{name}:{port}",
                                f"{sidecar.display} lets it reach {host}, which "
                                f"{entry.display} declares (port {port})")
        draft.hint_stage(Stage.TRAFFIC, f"{sidecar.display} scopes a proxy's egress")
        if extra:
            draft.keep(sidecar, "the intent says a Sidecar's egress hosts only (calls); it "
                       f"cannot say {', '.join(extra)}")
        else:
            draft.became(sidecar, "calls (meshstage renders the Sidecar from them)")


def _service_entries(draft: Draft) -> None:
    """The estate's ServiceEntries no Sidecar named (those are ``_external_ports``'): each
    is listed, kept as it is, saying what a service needs to keep reaching its hosts once
    meshstage's Sidecars scope the egress (from the traffic stage, only the hosts its
    ``calls`` name and the root namespace's; a host outside them leaves through the
    passthrough cluster, which ``outboundTrafficPolicy: REGISTRY_ONLY`` blocks:
    https://istio.io/latest/docs/reference/config/networking/sidecar/)."""
    root = _root(draft)
    for entry in draft.index.istio("ServiceEntry"):
        if draft.said(entry) or entry.namespace == root \
                or entry.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE:
            continue
        hosts = ", ".join(str(h) for h in as_list(entry.spec.get("hosts")))
        draft.keep(entry, f"it declares {hosts}: from the traffic stage, meshstage's Sidecars "
                   "let a service reach a host outside the cluster only when its calls name "
                   "it (calls: [host]); add each host to the calls of the services that "
                   "reach it (meshstage renders its own ServiceEntry, remove this one then), "
                   "or their requests leave through the passthrough cluster, which "
                   "REGISTRY_ONLY blocks")


def _gateways(draft: Draft) -> None:
    """The estate's Istio Gateways, which the intent does not say (the ingress gateway's
    own listeners): listed, kept as they are, so that the file's end names every mesh
    object of the estate."""
    for gateway in draft.index.istio("Gateway"):
        if not draft.said(gateway):
            draft.keep(gateway, "the listeners of an ingress gateway: meshstage renders no "
                       "Gateway, and binds the routes of ingress services to the one "
                       "mesh_ingress_gateway.gateway names")


def _external_ports(draft: Draft, namespace: str, host: str) -> list[tuple[Resource, int]]:
    """The ports of the ServiceEntries of ``namespace`` that declare ``host`` (outside the
    mesh, https://istio.io/latest/docs/reference/config/networking/service-entry/): the
    ones meshstage rendered (``egress-<host>``, from ``calls``) become the calls that render
    them again."""
    found = []
    for entry in draft.index.istio("ServiceEntry"):
        if entry.namespace != namespace or host not in map(str, as_list(entry.spec.get(
                "hosts"))):
            continue
        numbers = [as_mapping(p).get("number") for p in as_list(entry.spec.get("ports"))]
        found += [(entry, int(n)) for n in numbers if isinstance(n, int)]
        if entry.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE \
                and entry.name.startswith("egress-"):
            draft.became(entry, "calls of the services whose Sidecar reaches "
                         f"{host} (meshstage renders it from them)")
        else:
            draft.keep(entry, f"it declares {host}, which calls now name too: meshstage "
                       "renders its own ServiceEntry egress-<host> for them (remove one)")
    return found


def _peer_authentications(draft: Draft) -> None:
    root = _root(draft)
    for policy in draft.index.istio("PeerAuthentication"):
        spec = policy.spec
        mode = str(as_mapping(spec.get("mtls")).get("mode") or "UNSET")
        labels = as_strings(as_mapping(spec.get("selector")).get("matchLabels"))
        ports = {int(k): str(as_mapping(v).get("mode") or "UNSET") for k, v in
                 as_mapping(spec.get("portLevelMtls")).items() if str(k).isdigit()}
        if not labels and policy.namespace == root:
            if mode == "STRICT":
                draft.hint_stage(Stage.STRICT_MTLS, f"{policy.display} is STRICT")
                draft.became(policy, "mesh_stage strict_mtls (mesh-wide STRICT)")
            elif mode == "PERMISSIVE":
                draft.hint_stage(Stage.PERMISSIVE_MTLS, f"{policy.display} is PERMISSIVE")
                draft.became(policy, "mesh_stage (mesh-wide PERMISSIVE)")
            else:
                draft.keep(policy, f"a mesh-wide {mode}: the first stage makes it PERMISSIVE")
            continue
        services = _services_labelled(draft, labels) if labels else []
        if len(services) != 1 or mode not in ("DISABLE", "PERMISSIVE") \
                or any(m not in ("DISABLE", "PERMISSIVE", "STRICT") for m in ports.values()):
            draft.keep(policy, "only a workload's DISABLE or PERMISSIVE exception (per port "
                       "DISABLE, PERMISSIVE or STRICT) is an mTLS exception of the intent")
            continue
        service = services[0]
        reason = policy.annotations.get("meshstage.io/reason") or \
            f"kept from {policy.display} of the estate"
        exception: dict[str, Any] = {"service": service.name, "mode": mode, "reason": reason}
        if ports:
            exception["ports"] = dict(sorted(ports.items()))
        draft.mtls_exceptions.append(exception)
        draft.became(policy, f"mesh_mtls_exceptions ({service.name})")


def _telemetry(draft: Draft) -> None:
    root = _root(draft)
    for telemetry in draft.index.istio("Telemetry"):
        spec = telemetry.spec
        draft.hint_stage(Stage.OBSERVABILITY, f"{telemetry.display} configures telemetry")
        if telemetry.namespace != root or spec.get("selector") or spec.get("targetRefs"):
            draft.keep(telemetry, "the intent's telemetry is mesh-wide (root namespace, no "
                       "selector)")
            continue
        found: dict[str, Any] = {}
        metrics = [as_mapping(m) for m in as_list(spec.get("metrics"))]
        tracing = [as_mapping(t) for t in as_list(spec.get("tracing"))]
        logging = [as_mapping(a) for a in as_list(spec.get("accessLogging"))]
        provider = _provider(metrics)
        if provider:
            found["metrics_provider"] = provider
        if tracing:
            if _provider(tracing):
                found["tracing_provider"] = _provider(tracing)
            if tracing[0].get("randomSamplingPercentage") is not None:
                found["sampling_percentage"] = tracing[0]["randomSamplingPercentage"]
        found["access_log_provider"] = _provider(logging) if logging else None
        expression = as_mapping(logging[0].get("filter")).get("expression") if logging else None
        if expression:
            found["access_log_filter"] = expression
        draft.shared.setdefault("mesh_telemetry", {}).update(found)
        lost = len(metrics) > 1 or len(tracing) > 1 or len(logging) > 1 or any(
            m.get("overrides") or m.get("reportingInterval") for m in metrics)
        if lost:
            draft.keep(telemetry, "the intent says one provider each for metrics, tracing and "
                       "access logs; the rest of it is not carried over")
        draft.became(telemetry, "mesh_telemetry")


def _provider(entries: list[Mapping[str, Any]]) -> str | None:
    providers = as_list(entries[0].get("providers")) if entries else []
    name = as_mapping(providers[0]).get("name") if providers else None
    return str(name) if name else None


def _proxy_config(draft: Draft) -> None:
    root = _root(draft)
    for config in draft.index.istio("ProxyConfig"):
        spec = config.spec
        if config.namespace != root or spec.get("selector") or set(spec) - {
                "concurrency", "image"}:
            draft.keep(config, "the intent's proxy settings are mesh-wide: concurrency and "
                       "image type")
            continue
        proxy = draft.shared.setdefault("mesh_proxy", {})
        if spec.get("concurrency") is not None:
            proxy["concurrency"] = spec["concurrency"]
        image = as_mapping(spec.get("image")).get("imageType")
        if image:
            proxy["image_type"] = image
        draft.became(config, "mesh_proxy")
