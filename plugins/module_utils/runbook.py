"""The runbook of one environment: where it stands, what each stage changed and why, how
to verify it and how to roll it back. Deterministic: no dates, no commit ids."""

from __future__ import annotations

from collections.abc import Sequence

from .plan import StagePlan
from .stages import STAGE_PURPOSE, Stage, stages_through
from .tree import RenderedObject, env_dir, sync_dir

_VERIFY: dict[Stage, list[str]] = {
    Stage.PERMISSIVE_MTLS: [
        "kubectl get peerauthentication -A",
        "istioctl analyze --all-namespaces",
    ],
    Stage.INJECTION: [
        "kubectl get namespace -L istio-injection -L istio.io/rev",
        "istioctl proxy-status",
        "kubectl get pods -A -o jsonpath='{range .items[*]}{.metadata.namespace}/"
        "{.metadata.name}: {.spec.containers[*].name}{\"\\n\"}{end}' | grep -v istio-proxy",
    ],
    Stage.OBSERVABILITY: [
        "kubectl get telemetry -A",
        "istioctl proxy-config log deploy/<workload> -n <namespace>",
        "curl -s 'http://<prometheus>/api/v1/query?query=sum(istio_requests_total)'",
    ],
    Stage.TRAFFIC: [
        "kubectl get virtualservice,destinationrule,sidecar -A",
        "istioctl x describe pod <pod> -n <namespace>",
        "istioctl proxy-config routes deploy/<workload> -n <namespace>",
    ],
    Stage.STRICT_MTLS: [
        "kubectl get peerauthentication -A",
        "istioctl x describe pod <pod> -n <namespace>   # shows the effective mTLS mode",
        "sum by (destination_workload) (istio_requests_total{connection_security_policy!=\""
        "mutual_tls\", reporter=\"destination\"})   # PromQL: must be empty",
    ],
    Stage.AUTHORIZATION: [
        "kubectl get authorizationpolicy -A",
        "istioctl x authz check <pod> -n <namespace>",
        "sum by (destination_workload, response_code) (istio_requests_total{response_code="
        "\"403\"})   # PromQL: denials per workload",
    ],
}


def runbook_markdown(plan: StagePlan, objects: Sequence[RenderedObject],
                     warnings: Sequence[str]) -> str:
    intent = plan.intent
    stage = intent.stage
    env = intent.environment
    previous = [s for s in Stage if s.number == stage.number - 1]
    lines = [
        f"# Runbook: {env}",
        "",
        f"- provider: **{intent.provider}**",
        f"- stage: **{stage.number}. {stage.value}** of {len(Stage)}: {STAGE_PURPOSE[stage]}",
        f"- tree: `{env_dir(env)}` (built with `kubectl kustomize {env_dir(env)}`), synced "
        f"by the objects in `{sync_dir(env)}`",
        f"- trust domain: `{intent.trust_domain}`; root namespace: `{intent.root_namespace}`",
        "",
        "## What each stage carries, and why",
        "",
    ]
    by_stage = {s: [o for o in objects if o.planned.stage is s and
                    o.path.startswith(env_dir(env) + "/")] for s in Stage}
    for each in stages_through(stage):
        lines += [f"### {each.number}. {each.value}", "", f"Why: {STAGE_PURPOSE[each]}.", ""]
        for item in by_stage[each]:
            lines.append(f"- `{item.planned.resource}` ({each.folder}/{item.planned.filename})")
        if not by_stage[each]:
            lines.append("- (no objects of its own: a later stage reshaped them)")
        lines.append("")
        for note in plan.notes:
            if note.stage is each:
                lines.append(f"> {note.text}")
                lines.append("")
        lines += ["Verify:", "", "```sh", *_VERIFY[each], "```", ""]
    if warnings:
        lines += ["## Warnings from the intent and the analyzers", ""]
        lines += [f"- {warning}" for warning in warnings]
        lines.append("")
    lines += [
        "## Roll back",
        "",
        "Every run is one commit; the previous state is one revert away, and the GitOps",
        "tool syncs it back:",
        "",
        "```sh",
        "git revert --no-edit HEAD    # in the GitOps repository, then push",
        "```",
        "",
    ]
    injected = intent.injected_namespaces() if stage.reached(Stage.INJECTION) else ()
    if injected:
        label = "istio.io/rev" if intent.revision else "istio-injection"
        lines += [
            "Namespaces are never pruned by Argo CD or Flux (meshstage marks them so): when",
            "this environment moves back before `injection`, or a namespace leaves the",
            "injected waves, remove the label by hand and restart the namespace's workloads:",
            "",
            "```sh",
            *[f"kubectl label namespace {ns} {label}-" for ns in injected],
            "```",
            "",
        ]
    if previous:
        lines += [
            f"Or move the environment back one stage, to `{previous[0].value}`, through the",
            "inventory (`mesh_stage`) or for one run:",
            "",
            "```sh",
            f"ansible-playbook -i inventories/{env} playbooks/migrate.yml "
            f"-e mesh_stage={previous[0].value} --check --diff",
            f"ansible-playbook -i inventories/{env} playbooks/migrate.yml "
            f"-e mesh_stage={previous[0].value}",
            "```",
            "",
        ]
    return "\n".join(lines)
