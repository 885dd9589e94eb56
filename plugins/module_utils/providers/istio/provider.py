"""The Istio record: its planner, control plane, sidecar, canary queries, runbook text and
what the stage gates observe of it."""

from __future__ import annotations

from collections.abc import Sequence

from ...intent.model import Intent
from ...stages import Stage
from ..provider import (
    CanaryQueries,
    CutOver,
    Provider,
    RunbookText,
    Sidecar,
)
from .control_plane import istio_control_plane
from .flows.registry import ISTIO_FLOWS
from .plan import plan_istio

QUANTILE = 0.99

VERIFY: dict[Stage, tuple[str, ...]] = {
    Stage.PERMISSIVE_MTLS: (
        "kubectl get peerauthentication -A",
        "istioctl analyze --all-namespaces",
    ),
    Stage.INJECTION: (
        "kubectl get namespace -L istio-injection -L istio.io/rev",
        "istioctl proxy-status",
        "kubectl get pods -A -o jsonpath='{range .items[*]}{.metadata.namespace}/"
        "{.metadata.name}: {.spec.containers[*].name}{\"\\n\"}{end}' | grep -v istio-proxy",
    ),
    Stage.OBSERVABILITY: (
        "kubectl get telemetry -A",
        "istioctl proxy-config log deploy/<workload> -n <namespace>",
        "curl -s 'http://<prometheus>/api/v1/query?query=sum(istio_requests_total)'",
    ),
    Stage.TRAFFIC: (
        "kubectl get virtualservice,destinationrule,sidecar -A",
        "istioctl x describe pod <pod> -n <namespace>",
        "istioctl proxy-config routes deploy/<workload> -n <namespace>",
    ),
    Stage.STRICT_MTLS: (
        "kubectl get peerauthentication -A",
        "istioctl x describe pod <pod> -n <namespace>   # shows the effective mTLS mode",
        "sum by (destination_workload) (istio_requests_total{connection_security_policy!=\""
        "mutual_tls\", reporter=\"destination\"})   # PromQL: must be empty",
    ),
    Stage.AUTHORIZATION: (
        "kubectl get authorizationpolicy -A",
        "istioctl x authz check <pod> -n <namespace>",
        "sum by (destination_workload, response_code) (istio_requests_total{response_code="
        "\"403\"})   # PromQL: denials per workload",
    ),
}


def _settings(intent: Intent) -> str:
    return f"root namespace: `{intent.root_namespace}`" + (
        "; traffic API: `gateway-api`" if intent.traffic_api == "gateway-api" else "")


def _rollback_injection(intent: Intent, injected: Sequence[str]) -> list[str]:
    label = "istio.io/rev" if intent.revision else "istio-injection"
    return [
        "Namespaces are never pruned by Argo CD or Flux (meshstage marks them so): when",
        "this environment moves back before `injection`, or a namespace leaves the",
        "injected waves, remove the label by hand and restart the namespace's workloads:",
        "",
        "```sh",
        *[f"kubectl label namespace {ns} {label}-" for ns in injected],
        "```",
        "",
    ]


ISTIO = Provider(
    name="istio",
    plan=plan_istio,
    traffic_apis=("virtualservice", "gateway-api"),
    marks=("istio.io",),
    control_plane=istio_control_plane,
    sidecar=Sidecar(
        container="istio-proxy",
        opt_out_labels={"sidecar.istio.io/inject": "false"},
        opt_out_annotations={"sidecar.istio.io/inject": "false"},
    ),
    canary_queries=CanaryQueries(
        source="the canary's own Istio sidecars, as destination",
        selector='reporter="destination",destination_workload_namespace="{namespace}",'
                 'destination_app="{service}",destination_version="{version_label}"',
        requests="sum(increase(istio_requests_total{{{selector}}}[{window}]))",
        errors='sum(increase(istio_requests_total{{{selector},response_code=~"5.."}}'
               "[{window}]))",
        latency_p99=f"histogram_quantile({QUANTILE}, sum by (le) (rate("
                    "istio_request_duration_milliseconds_bucket{{{selector}}}[{window}])))",
    ),
    runbook=RunbookText(
        verify=VERIFY,
        settings=_settings,
        rollback_injection=_rollback_injection,
        before_authorization=(
            "```promql",
            "sum by (namespace, app) (increase({__name__=~\"envoy_http_inbound_.+_rbac\","
            " authz_dry_run_result=\"denied\"}[1h]))   # must be 0",
            "```",
            "",
        ),
        cut_over=CutOver(
            title="Istio",
            install="Install Istio's charts `base` and `istiod` from `00-install` (see Control "
                    "plane above); `istioctl verify-install` must pass. Do it before the sync.",
            proxy_check="`istioctl proxy-status`",
            control_plane_running="istiod",
            uninject_intro="Take Istio's injection label off every namespace (a sync removes "
                           "it where this tree keeps the namespace; this makes sure):",
            uninject=lambda ns: f"kubectl label namespace {ns} istio-injection- istio.io/rev-",
            uninstall="When no pod has an `istio-proxy` container, uninstall Istio "
                      "(`istioctl uninstall --purge`, or its Helm releases) and its CRDs.",
        ),
    ),
    flows=ISTIO_FLOWS,
)
