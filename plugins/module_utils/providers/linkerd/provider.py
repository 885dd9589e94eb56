"""The Linkerd record: its planner, control plane, sidecar, canary queries, runbook text and
what the stage gates observe of it."""

from __future__ import annotations

from collections.abc import Sequence

from ...intent.model import Intent
from ...stages import Stage
from ..provider import (
    CanaryQueries,
    CutOver,
    GateSupport,
    Provider,
    RunbookText,
    Sidecar,
)
from .control_plane import linkerd_control_plane
from .flows.registry import LINKERD_FLOWS
from .plan import plan_linkerd

QUANTILE = 0.99

_NS_POLICY = r"POLICY:.metadata.annotations.config\.linkerd\.io/default-inbound-policy"
VERIFY: dict[Stage, tuple[str, ...]] = {
    Stage.PERMISSIVE_MTLS: (
        "linkerd check",
        f"kubectl get namespace -o custom-columns=NAME:.metadata.name,{_NS_POLICY}",
    ),
    Stage.INJECTION: (
        "kubectl get namespace -o custom-columns=NAME:.metadata.name,"
        r"INJECT:.metadata.annotations.linkerd\.io/inject",
        "linkerd check --proxy -n <namespace>",
        "kubectl get pods -A -o jsonpath='{range .items[*]}{.metadata.namespace}/"
        "{.metadata.name}: {.spec.containers[*].name}{\"\\n\"}{end}' | grep -v linkerd-proxy",
    ),
    Stage.OBSERVABILITY: (
        "linkerd viz check",
        "linkerd viz stat deploy -n <namespace>",
        "curl -s 'http://<prometheus>/api/v1/query?query=sum(request_total)'",
    ),
    Stage.TRAFFIC: (
        "kubectl get services -A -l app.kubernetes.io/managed-by=meshstage   # version backends",
        "linkerd viz stat-outbound deploy/<workload> -n <namespace>",
        "linkerd diagnostics policy -n <namespace> svc/<service> <port>",
    ),
    Stage.STRICT_MTLS: (
        f"kubectl get namespace -o custom-columns=NAME:.metadata.name,{_NS_POLICY}",
        "linkerd viz edges deploy -n <namespace>   # every edge SECURED",
        "sum by (namespace, deployment) (request_total{direction=\"inbound\", tls!=\"true\"})"
        "   # PromQL: must be empty",
    ),
    Stage.AUTHORIZATION: (
        "kubectl get server,authorizationpolicy,meshtlsauthentication,networkauthentication -A",
        "linkerd viz authz -n <namespace> deploy/<workload>",
        "sum by (namespace, deployment, authz_name) (inbound_http_authz_deny_total)"
        "   # PromQL: denials per workload",
    ),
}


def _settings(intent: Intent) -> str:
    return (f"control plane namespace: `{intent.linkerd.control_plane_namespace}`; "
            f"traffic API: `{intent.traffic_api}`")


def _rollback_injection(intent: Intent, injected: Sequence[str]) -> list[str]:
    return [
        "Namespaces are never pruned by Argo CD or Flux (meshstage marks them so). Every",
        "namespace of the catalogue stays in this tree at every stage, so moving back",
        "changes its annotations in place. A proxy keeps the injection and default",
        "policy it started with: restart the workloads of a namespace after moving it back.",
        "",
    ]


LINKERD = Provider(
    name="linkerd",
    plan=plan_linkerd,
    traffic_apis=("gateway-api", "smi"),
    marks=("linkerd.io", "smi-spec.io"),  # SMI's TrafficSplit is Linkerd's
    control_plane=linkerd_control_plane,
    sidecar=Sidecar(
        container="linkerd-proxy",
        opt_out_annotations={"linkerd.io/inject": "disabled"},
        # the label Linkerd's Servers select meshed pods by
        injected_labels=lambda intent: {
            "linkerd.io/control-plane-ns": intent.linkerd.control_plane_namespace},
        ports=(("linkerd-proxy", 4143), ("linkerd-admin", 4191)),
    ),
    canary_queries=CanaryQueries(
        source="the callers' Linkerd proxies, outbound per route backend",
        selector='direction="outbound",dst_namespace="{namespace}",dst_service="{backend}"',
        requests="sum(increase(response_total{{{selector}}}[{window}]))",
        errors='sum(increase(response_total{{{selector},classification="failure"}}'
               "[{window}]))",
        latency_p99=f"histogram_quantile({QUANTILE}, sum by (le) (rate("
                    "response_latency_ms_bucket{{{selector}}}[{window}])))",
    ),
    runbook=RunbookText(
        verify=VERIFY,
        settings=_settings,
        rollback_injection=_rollback_injection,
        before_authorization=(
            "Linkerd's authorization has no dry run here (meshstage renders no "
            "audit-mode policy): the gate cannot see would-be denials of Linkerd "
            "workloads and refuses until it is forced or `mesh_gates.observe` is false.",
            "",
        ),
        cut_over=CutOver(
            title="Linkerd",
            install="Install the Gateway API CRDs, then Linkerd's charts from `00-install` (see "
                    "Control plane above) and the viz extension; `linkerd check` must pass. Do "
                    "it before the sync: the tree holds Linkerd kinds.",
            proxy_check="`linkerd check --proxy -n <namespace>`",
            control_plane_running="the Linkerd control plane",
            uninject_intro="Take Linkerd's annotations off every namespace of the catalogue:",
            uninject=lambda ns: (
                f"kubectl annotate namespace {ns} linkerd.io/inject- "
                "config.linkerd.io/default-inbound-policy- config.linkerd.io/trace-collector-"
                " config.linkerd.io/access-log-"),
            uninstall="When no pod has a `linkerd-proxy` container, uninstall Linkerd "
                      "(`linkerd viz uninstall | kubectl delete -f -`, then "
                      "`linkerd uninstall | kubectl delete -f -`).",
        ),
    ),
    gates=GateSupport(
        plaintext="plaintext into Linkerd workloads cannot be judged: reading Linkerd's proxy "
                  "metrics is not built (docs/decisions.md)",
        dry_run="the dry run of Linkerd authorization is not built (meshstage renders no "
                "audit-mode policy): would-be denials of Linkerd workloads cannot be seen",
    ),
    flows=LINKERD_FLOWS,
)
