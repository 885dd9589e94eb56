"""Istio's control plane: the base and istiod charts at a pinned release, and the values
meshstage gives them."""

from __future__ import annotations

from ...intent.model import Intent
from ..provider import ControlPlane, HelmChart

# The control plane's charts: Istio's own Helm repository, a pinned release.
CHART_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
CHART_VERSION = "1.29.2"
ISTIOD_VALUES = "00-install/values/istiod.yaml"


# istiod writes these fields of its webhooks itself: it flips the validating webhooks'
# failurePolicy from Ignore to Fail when it is ready, and patches the caBundle of the
# validating and injection webhooks. Argo CD must not undo them (an Application stays
# OutOfSync, and selfHeal fights istiod). The chart's own comment in istio/istio
# manifests/charts/istio-control/istio-discovery/templates/validatingwebhookconfiguration
# .yaml; https://github.com/istio/istio/issues/52785, https://github.com/argoproj/argo-cd/
# issues/1487; https://argo-cd.readthedocs.io/en/stable/user-guide/diffing/
_VALIDATING_WEBHOOKS = {"group": "admissionregistration.k8s.io",
                        "kind": "ValidatingWebhookConfiguration",
                        "jqPathExpressions": [".webhooks[]?.failurePolicy",
                                              ".webhooks[]?.clientConfig.caBundle"]}
_INJECTION_WEBHOOKS = {"group": "admissionregistration.k8s.io",
                       "kind": "MutatingWebhookConfiguration",
                       "jqPathExpressions": [".webhooks[]?.clientConfig.caBundle"]}


def native_sidecar_env(intent: Intent) -> dict[str, str] | None:
    """istiod's ``ENABLE_NATIVE_SIDECARS`` (``pilot.env``): on where the environment runs
    native sidecars, off when the intent turns them off, else Istio's own default (off
    before 1.27, on from 1.27 where every node runs Kubernetes 1.33 or later).
    https://istio.io/latest/news/releases/1.27.x/announcing-1.27/upgrade-notes/
    #native-sidecar-enabled-by-default; ``detectNativeSidecar`` in istio/istio
    pkg/kube/inject/webhook.go (the env wins over the auto-detection)."""
    if intent.native_sidecars:
        return {"ENABLE_NATIVE_SIDECARS": "true"}
    if intent.proxy.native_sidecars == "disabled":
        return {"ENABLE_NATIVE_SIDECARS": "false"}
    return None


def istio_control_plane(intent: Intent) -> ControlPlane:
    """Istio's install: charts base (CRDs) and istiod, their values from the intent."""
    proxy = intent.proxy
    opt_outs = intent.kept_from_injection()  # inject: false, and services held back
    return ControlPlane(
        repository_name="istio",
        repository=intent.install.repository or CHART_REPOSITORY,
        version=intent.install.version or CHART_VERSION,
        charts=(
            HelmChart(chart="base", release="istio-base", namespace=intent.root_namespace,
                      values_template="istio/base_values.yaml.j2",
                      values={"default_revision": intent.revision},
                      ignore_differences=(_VALIDATING_WEBHOOKS,)),
            HelmChart(chart="istiod", release="istiod", namespace=intent.root_namespace,
                      values_template="istio/istiod_values.yaml.j2", values={
                          "proxy_resources": {
                              "requests": {"cpu": proxy.cpu, "memory": proxy.memory},
                              "limits": {"cpu": proxy.cpu_limit, "memory": proxy.memory_limit},
                          },
                          "revision": intent.revision,
                          "trust_domain": intent.trust_domain,
                          "root_namespace": intent.root_namespace,
                          "never_inject_selector": [{"matchLabels": s.selector}
                                                    for s in opt_outs],
                          "pilot_env": native_sidecar_env(intent),
                          # meshConfig.defaultConfig: the injector puts the proxy first and
                          # holds the other containers until it is ready (releasenotes
                          # 24737.yaml, istio/istio#11130)
                          "hold_application": intent.proxy.hold_application,
                      }, ignore_differences=(_VALIDATING_WEBHOOKS, _INJECTION_WEBHOOKS)),
        ),
    )
