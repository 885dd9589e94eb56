"""Linkerd's control plane: the linkerd-crds and linkerd-control-plane charts at a pinned edge
release, and the values meshstage gives them."""

from __future__ import annotations

from typing import Any

from ...intent.model import Intent, Service
from ...stages import Stage
from ..provider import ControlPlane, HelmChart
from .api import DEFAULT_OPAQUE_PORTS, inbound_policy

# The control plane's charts: Linkerd's edge Helm repository, a pinned release (the edge
# release of the reference CRDs, edge-26.8.3).
CHART_REPOSITORY = "https://helm.linkerd.io/edge"
CHART_VERSION = "2026.8.3"


# The proxy injector's default object selector; Helm replaces a list as a whole.
_INJECTOR_SELECTOR: list[dict[str, Any]] = [
    {"key": "linkerd.io/control-plane-component", "operator": "DoesNotExist"},
    {"key": "linkerd.io/cni-resource", "operator": "DoesNotExist"},
]


# What the linkerd-control-plane chart generates anew at every render while its webhook
# certificates are Helm-generated (no externalSecret): the webhooks' certificates and CA
# bundles, the heartbeat's random schedule, and the checksum annotations of the Deployments
# that mount them. Argo CD renders the chart each sync and would show the Application
# OutOfSync forever. https://github.com/linkerd/linkerd2/issues/8440,
# https://github.com/BuoyantIO/real-world-argo-linkerd (apps/linkerd/linkerd-control-plane
# .yaml, and its pull request 2 for the group without version, the CronJob and the
# checksums, linkerd/linkerd2#11440)
_WEBHOOK_SECRETS = ("linkerd-proxy-injector-k8s-tls", "linkerd-sp-validator-k8s-tls",
                    "linkerd-policy-validator-k8s-tls")
_GENERATED: tuple[dict[str, Any], ...] = (
    *({"group": "", "kind": "Secret", "name": name,
       "jsonPointers": ["/data/tls.crt", "/data/tls.key"]} for name in _WEBHOOK_SECRETS),
    {"group": "admissionregistration.k8s.io", "kind": "MutatingWebhookConfiguration",
     "name": "linkerd-proxy-injector-webhook-config",
     "jqPathExpressions": [".webhooks[]?.clientConfig.caBundle"]},
    *({"group": "admissionregistration.k8s.io", "kind": "ValidatingWebhookConfiguration",
       "name": name, "jqPathExpressions": [".webhooks[]?.clientConfig.caBundle"]}
      for name in ("linkerd-sp-validator-webhook-config",
                   "linkerd-policy-validator-webhook-config")),
    {"group": "batch", "kind": "CronJob", "name": "linkerd-heartbeat",
     "jsonPointers": ["/spec/schedule"]},
    *({"group": "apps", "kind": "Deployment", "name": name,
       "jqPathExpressions": [".spec.template.metadata.annotations[\"checksum/config\"]"]}
      for name in ("linkerd-destination", "linkerd-proxy-injector")),
)


def linkerd_control_plane(intent: Intent) -> ControlPlane:
    """Linkerd's install: charts linkerd-crds and linkerd-control-plane, values from the
    intent. The identity issuer is external (a Secret, e.g. from cert-manager): its key
    never goes into the GitOps repository."""
    namespace = intent.linkerd.control_plane_namespace
    return ControlPlane(
        repository_name="linkerd",
        repository=intent.install.repository or CHART_REPOSITORY,
        version=intent.install.version or CHART_VERSION,
        charts=(
            HelmChart(chart="linkerd-crds", release="linkerd-crds", namespace=namespace,
                      values_template="linkerd/crds_values.yaml.j2", values={}),
            HelmChart(chart="linkerd-control-plane", release="linkerd-control-plane",
                      namespace=namespace, values_template="linkerd/control_plane_values.yaml.j2",
                      values=control_plane_values(intent), ignore_differences=_GENERATED),
        ),
        notes=(
            "The identity issuer is external (`identity.externalCA: true`, issuer scheme "
            "`kubernetes.io/tls`): before the control plane, create the trust anchor "
            f"ConfigMap `linkerd-identity-trust-roots` and the issuer Secret "
            f"`linkerd-identity-issuer` in `{namespace}` (cert-manager, or `step certificate "
            "create` by hand). Their keys never go into this repository.",
            "The Gateway API CRDs (standard channel, HTTPRoute `v1`) must be installed first: "
            "the routes of the traffic stage and Linkerd's policy controller use them.",
        ),
    )


def opt_out_expressions(intent: Intent) -> list[dict[str, Any]]:
    """The injector's ``objectSelector`` expressions that leave out the services kept from
    injection: one ``NotIn`` per label key (``app`` first), ANDed, so a pod carrying any of
    the labels listed is left out. Each service is left out by one label of its selector:
    the first that no service to inject carries (``opt_out_labels``)."""
    values: dict[str, set[str]] = {}
    for _service, (key, value), _shared in opt_out_labels(intent):
        values.setdefault(key, set()).add(value)
    return [{"key": key, "operator": "NotIn", "values": sorted(values[key])}
            for key in sorted(values, key=lambda k: (k != "app", k))]


def opt_out_labels(intent: Intent) -> list[tuple[Service, tuple[str, str], list[Service]]]:
    """For each service kept from injection, the label its pods are left out by, and the
    services to inject that carry it too. One LabelSelector cannot say "all of these
    labels": a label every pod of a Helm release shares (``app.kubernetes.io/instance``)
    would leave the whole release out. So the label is one of the service's selector that
    no selector of a service to inject has (``app`` first); when each is shared, the one
    fewest share, and those services wait too (``shared``)."""
    kept = intent.kept_from_injection()
    names = {s.name for s in kept}
    carriers: dict[tuple[str, str], list[Service]] = {}
    for service in intent.services:
        if service.name not in names:
            for pair in service.selector.items():
                carriers.setdefault(pair, []).append(service)
    found = []
    for service in kept:
        pairs = sorted(service.selector.items(), key=lambda p: (p[0] != "app", p))
        # the injector's selector holds for every namespace: so do the carriers
        pair = min(pairs, key=lambda p: len(carriers.get(p, ())))
        found.append((service, pair, carriers.get(pair, [])))
    return found


def control_plane_values(intent: Intent) -> dict[str, Any]:
    """The linkerd-control-plane Helm values this environment's stage needs (the template
    context of ``linkerd/control_plane_values.yaml.j2``). The identity certificates the
    chart also needs are not here: they are secrets, provided at install."""
    proxy = intent.proxy
    workers: dict[str, Any] | None = None
    if proxy.concurrency == 0:
        workers = {"maximumCPURatio": 1.0}
    elif proxy.concurrency is not None:
        workers = {"minimum": proxy.concurrency, "maximum": proxy.concurrency}
    selector = None
    if intent.stage.reached(Stage.INJECTION):
        selector = [*_INJECTOR_SELECTOR, *opt_out_expressions(intent)]
    native = intent.proxy.native_sidecars
    extra = [p for p in intent.server_first_ports() if p not in DEFAULT_OPAQUE_PORTS]
    stopping = [s for s in intent.services if s.is_job and s.stops_proxy and intent.injected(s)]
    return {
        # native sidecars for every pod when asked; where only some services need them,
        # their namespaces say so (NATIVE_SIDECAR); https://linkerd.io/2-edge/features/
        # native-sidecars/
        "native_sidecar": {"enabled": True, "disabled": False}.get(native),
        # the app containers wait for the proxy (the chart's default is true)
        "await_proxy": intent.proxy.hold_application,
        # linkerd-await --shutdown needs the proxy's /shutdown, off by default since 2.16
        # (CVE-2024-40632): https://linkerd.io/2-edge/tasks/graceful-shutdown/
        "shutdown_endpoint": True if stopping else None,
        # the catalogue's server-first ports join the default opaque ports (the list
        # replaces the chart's): the proxies skip protocol detection on them, for Services
        # (the destination controller's default) and pods (the injector's default)
        "opaque_ports": ",".join(str(p) for p in sorted({*DEFAULT_OPAQUE_PORTS, *extra}))
        if extra else None,
        "trust_domain": intent.trust_domain,
        "cluster_domain": intent.cluster.domain,
        "default_inbound_policy": inbound_policy(intent),
        "probe_networks": list(intent.linkerd.probe_networks),
        "proxy_resources": {
            "cpu": {"request": proxy.cpu, "limit": proxy.cpu_limit},
            "memory": {"request": proxy.memory, "limit": proxy.memory_limit},
        },
        "runtime": {"workers": workers} if workers else None,
        "injector_selector": {"matchExpressions": selector} if selector else None,
    }
