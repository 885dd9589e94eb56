"""The runbook of one environment: where it stands, what each stage changed and why, how
to verify it, what the provider cannot express, how to roll it back, and (after a switch of
``mesh_provider``) how to cut over from the other mesh. Deterministic: no dates, no commit
ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..gitops.paths import env_dir, install_dir, sync_dir
from ..plan.model import StagePlan
from ..stages import STAGE_PURPOSE, Stage, stages_through
from .control_plane import ControlPlane
from .tree import RenderedObject

_VERIFY_ISTIO: dict[Stage, list[str]] = {
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


_NS_POLICY = r"POLICY:.metadata.annotations.config\.linkerd\.io/default-inbound-policy"
_VERIFY_LINKERD: dict[Stage, list[str]] = {
    Stage.PERMISSIVE_MTLS: [
        "linkerd check",
        f"kubectl get namespace -o custom-columns=NAME:.metadata.name,{_NS_POLICY}",
    ],
    Stage.INJECTION: [
        "kubectl get namespace -o custom-columns=NAME:.metadata.name,"
        r"INJECT:.metadata.annotations.linkerd\.io/inject",
        "linkerd check --proxy -n <namespace>",
        "kubectl get pods -A -o jsonpath='{range .items[*]}{.metadata.namespace}/"
        "{.metadata.name}: {.spec.containers[*].name}{\"\\n\"}{end}' | grep -v linkerd-proxy",
    ],
    Stage.OBSERVABILITY: [
        "linkerd viz check",
        "linkerd viz stat deploy -n <namespace>",
        "curl -s 'http://<prometheus>/api/v1/query?query=sum(request_total)'",
    ],
    Stage.TRAFFIC: [
        "kubectl get services -A -l app.kubernetes.io/managed-by=meshstage   # version backends",
        "linkerd viz stat-outbound deploy/<workload> -n <namespace>",
        "linkerd diagnostics policy -n <namespace> svc/<service> <port>",
    ],
    Stage.STRICT_MTLS: [
        f"kubectl get namespace -o custom-columns=NAME:.metadata.name,{_NS_POLICY}",
        "linkerd viz edges deploy -n <namespace>   # every edge SECURED",
        "sum by (namespace, deployment) (request_total{direction=\"inbound\", tls!=\"true\"})"
        "   # PromQL: must be empty",
    ],
    Stage.AUTHORIZATION: [
        "kubectl get server,authorizationpolicy,meshtlsauthentication,networkauthentication -A",
        "linkerd viz authz -n <namespace> deploy/<workload>",
        "sum by (namespace, deployment, authz_name) (inbound_http_authz_deny_total)"
        "   # PromQL: denials per workload",
    ],
}
_VERIFY = {"istio": _VERIFY_ISTIO, "linkerd": _VERIFY_LINKERD}
_ROUTES = {"gateway-api": "httproutes.gateway.networking.k8s.io",
           "smi": "trafficsplits.split.smi-spec.io"}


def runbook_markdown(plan: StagePlan, objects: Sequence[RenderedObject],
                     warnings: Sequence[str], install: ControlPlane | None = None,
                     migrated_from: str | None = None,
                     forced_gates: Sequence[Mapping[str, Any]] = (),
                     canary: Sequence[str] = ()) -> str:
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
        f"- trust domain: `{intent.trust_domain}`; "
        + (f"control plane namespace: `{intent.linkerd.control_plane_namespace}`; "
           f"traffic API: `{intent.traffic_api}`" if intent.provider == "linkerd" else
           f"root namespace: `{intent.root_namespace}`"
           + ("; traffic API: `gateway-api`" if intent.traffic_api == "gateway-api" else "")),
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
        verify = list(_VERIFY[intent.provider][each])
        if each is Stage.TRAFFIC and intent.traffic_api != "virtualservice":
            verify.insert(0, f"kubectl get {_ROUTES[intent.traffic_api]} -A")
        lines += ["Verify:", "", "```sh", *verify, "```", ""]
    if install is not None:
        lines += _control_plane(env, install)
    lines += _apply_from_the_playbook(env)
    lines += canary  # the canary delivery section (canary.runbook_section)
    gaps = [str(gap) for gap in plan.gaps]
    if plan.gaps:
        lines += [f"## Not expressible with {intent.provider}", "",
                  "What the intent asks and this provider cannot say. Nothing of it is "
                  "rendered as asked: decide for each line whether the mesh still does what "
                  "you need.", ""]
        for each in stages_through(stage):
            found = [gap for gap in plan.gaps if gap.stage is each]
            if found:
                lines += [f"{each.number}. {each.value}:", ""]
                lines += [f"- {gap}" for gap in found]
                lines.append("")
    others = [warning for warning in warnings if warning not in gaps]
    if others:
        lines += ["## Warnings", ""]
        lines += [f"- {warning}" for warning in others]
        lines.append("")
    lines += _next_gate(plan)
    if forced_gates:
        lines += _forced(forced_gates)
    if migrated_from:
        lines += _cut_over(plan, migrated_from)
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
    if injected and intent.provider == "linkerd":
        lines += [
            "Namespaces are never pruned by Argo CD or Flux (meshstage marks them so). Every",
            "namespace of the catalogue stays in this tree at every stage, so moving back",
            "changes its annotations in place. A proxy keeps the injection and default",
            "policy it started with: restart the workloads of a namespace after moving it back.",
            "",
        ]
    elif injected:
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
            f"Or move the environment back one stage, to `{previous[0].value}`, with the",
            "rollback playbook (it refuses a stage that is not earlier than the recorded one;",
            "with `-e mesh_apply=true` it also applies the change, in reverse apply order), then",
            "set `mesh_stage` in the inventory too:",
            "",
            "```sh",
            f"ansible-playbook -i inventories/{env} playbooks/rollback.yml "
            f"-e mesh_stage={previous[0].value} --check --diff",
            f"ansible-playbook -i inventories/{env} playbooks/rollback.yml "
            f"-e mesh_stage={previous[0].value}",
            "```",
            "",
        ]
    return "\n".join(lines)


_NEXT_GATE: dict[Stage, str] = {
    Stage.TRAFFIC: (
        "The `strict_mtls` gate refuses the move while a workload in scope has no sidecar "
        "(from the cluster facts with `mesh_cluster_facts: true`, from the intent otherwise), "
        "or while Prometheus (`mesh_gates.prometheus`) shows plaintext requests into one "
        "during `mesh_gates.window`; services in `mesh_mtls_exceptions` are out of scope."),
    Stage.STRICT_MTLS: (
        "The `authorization` gate refuses the move while Prometheus shows a request the "
        "dry run of the authorization rules would have denied during `mesh_gates.window` "
        "(Istio: the `istio.io/dry-run` policies of this stage; host sidecars: their RBAC "
        "shadow rules), or a caller the intent does not admit. `meshstage derive-authz` "
        "prints the ALLOW rules the observed traffic needs."),
}


def _next_gate(plan: StagePlan) -> list[str]:
    """What the gate of the next stage reads (docs/architecture.md, "Stage gates")."""
    intent = plan.intent
    text = _NEXT_GATE.get(intent.stage)
    if text is None:
        return []
    lines = ["## Before the next stage", "", text, ""]
    if intent.stage is Stage.STRICT_MTLS and intent.provider == "istio":
        lines += ["```promql",
                  "sum by (namespace, app) (increase({__name__=~\"envoy_http_inbound_.+_rbac\","
                  " authz_dry_run_result=\"denied\"}[1h]))   # must be 0",
                  "```", ""]
    elif intent.stage is Stage.STRICT_MTLS:
        lines += ["Linkerd's authorization has no dry run here (meshstage renders no "
                  "audit-mode policy): the gate cannot see would-be denials of Linkerd "
                  "workloads and refuses until it is forced or `mesh_gates.observe` is false.",
                  ""]
    return lines


def _forced(records: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## Forced gates", "",
             "These stage gates refused a move of this environment and were overridden with "
             "`mesh_force_gates`. Each stays listed here:", ""]
    for record in records:
        lines.append(f"- `{record.get('gate')}`, moving from "
                     f"`{record.get('from') or 'nothing'}` to `{record.get('to')}`: "
                     f"{record.get('refusal')}")
    return [*lines, ""]


def _control_plane(env: str, install: ControlPlane) -> list[str]:
    folder = install_dir(env)
    charts = ", ".join(f"`{c.chart}` (release `{c.release}`)" for c in install.charts)
    lines = [
        "## Control plane",
        "",
        f"Charts {charts}, version `{install.version}`, from `{install.repository}`, in this "
        "order. Their values are in "
        f"`{folder}/values/`. Argo CD installs them from `{folder}/argocd` (synced by "
        f"`{sync_dir(env)}/argocd-install-application.yaml`), Flux from `{folder}/flux` "
        f"(synced by `{sync_dir(env)}/flux-install-kustomization.yaml`). Without either:",
        "",
        "```sh",
    ]
    for chart in install.charts:
        lines.append(f"helm upgrade --install {chart.release} {chart.chart} --repo "
                     f"{install.repository} --version {install.version} -n {chart.namespace} "
                     f"--create-namespace -f {folder}/values/{chart.release}.yaml")
    lines += ["```", ""]
    for note in install.notes:
        lines += [f"> {note}", ""]
    return lines


def _apply_from_the_playbook(env: str) -> list[str]:
    return [
        "## Apply from the playbook",
        "",
        "Instead of Argo CD or Flux, the playbook can apply this stage (server-side, field",
        "manager `meshstage`), restart the injected waves and prune what it no longer renders:",
        "",
        "```sh",
        f"ansible-playbook -i inventories/{env} playbooks/migrate.yml -e mesh_apply=true "
        "--check --diff",
        f"ansible-playbook -i inventories/{env} playbooks/migrate.yml -e mesh_apply=true",
        "```",
        "",
    ]


def _cut_over(plan: StagePlan, previous: str) -> list[str]:
    """The order of a switch from ``previous`` to this environment's provider."""
    intent = plan.intent
    namespaces = intent.injected_namespaces() if intent.stage.reached(Stage.INJECTION) \
        else intent.namespaces
    strict = intent.stage.reached(Stage.STRICT_MTLS)
    if intent.provider == "linkerd":
        install = [
            "Install the Gateway API CRDs, then Linkerd's charts from `00-install` (see "
            "Control plane above) and the viz extension; `linkerd check` must pass. Do it "
            "before the sync: the tree holds Linkerd kinds.",
            "Istio's charts are gone from `00-install`. With Flux, suspend their HelmReleases "
            "before the sync, so pruning them skips the uninstall (`flux suspend helmrelease "
            f"-n {intent.gitops.flux_namespace} meshstage-{intent.environment}-istiod "
            f"meshstage-{intent.environment}-istio-base`); Argo CD leaves them installed, since "
            "meshstage's Applications carry no resources finalizer. Then sync this commit: "
            "Argo CD or Flux prune Istio's objects and apply Linkerd's. Keep istiod running "
            "until the last step.",
            "Take Istio's injection label off every namespace (a sync removes it where this "
            "tree keeps the namespace; this makes sure):",
        ]
        commands = [f"kubectl label namespace {ns} istio-injection- istio.io/rev-"
                    for ns in intent.namespaces]
        restart = ("Restart the workloads wave by wave (`kubectl rollout restart deployment "
                   "-n <namespace>`); after each wave, `linkerd check --proxy -n <namespace>` "
                   "and no `istio-proxy` container left in it:")
        finish = ("When no pod has an `istio-proxy` container, uninstall Istio "
                  "(`istioctl uninstall --purge`, or its Helm releases) and its CRDs.")
    else:
        install = [
            "Install Istio's charts `base` and `istiod` from `00-install` (see Control plane "
            "above); `istioctl verify-install` must pass. Do it before the sync.",
            "Linkerd's charts are gone from `00-install`. With Flux, suspend their "
            "HelmReleases before the sync, so pruning them skips the uninstall (`flux suspend "
            f"helmrelease -n {intent.gitops.flux_namespace} "
            f"meshstage-{intent.environment}-linkerd-control-plane "
            f"meshstage-{intent.environment}-linkerd-crds`); Argo CD leaves them installed, "
            "since meshstage's Applications carry no resources finalizer. Then sync this "
            "commit: Argo CD or Flux prune Linkerd's objects and apply Istio's. Keep the "
            "Linkerd control plane running until the last step.",
            "Take Linkerd's annotations off every namespace of the catalogue:",
        ]
        commands = [f"kubectl annotate namespace {ns} linkerd.io/inject- "
                    "config.linkerd.io/default-inbound-policy- config.linkerd.io/trace-collector-"
                    " config.linkerd.io/access-log-" for ns in intent.namespaces]
        restart = ("Restart the workloads wave by wave (`kubectl rollout restart deployment "
                   "-n <namespace>`); after each wave, `istioctl proxy-status` and no "
                   "`linkerd-proxy` container left in it:")
        finish = ("When no pod has a `linkerd-proxy` container, uninstall Linkerd "
                  "(`linkerd viz uninstall | kubectl delete -f -`, then "
                  "`linkerd uninstall | kubectl delete -f -`).")
    lines = [
        f"## Cut-over from {previous}",
        "",
        f"This environment ran {previous} before. The commit that switched it rendered "
        f"{intent.provider}'s tree and removed {previous}'s files. Cut over in this order:",
        "",
        f"1. {install[0]}",
        f"2. {install[1]}",
        f"3. {install[2]}",
        "",
        "   ```sh",
        *[f"   {command}" for command in commands],
        "   ```",
        "",
        f"4. {restart} {', '.join(f'`{ns}`' for ns in namespaces)}.",
        f"5. {finish}",
        "",
    ]
    if strict:
        lines += [
            f"While both meshes run, {previous}-injected callers cannot reach "
            f"{intent.provider}-injected workloads with mTLS, and this stage "
            f"(`{intent.stage.value}`) refuses plaintext. Cut over with the environment at "
            "`observability` or `traffic` (`-e mesh_stage=traffic`), then move it forward "
            "again; or restart callers before the services they call.",
            "",
        ]
    return lines
