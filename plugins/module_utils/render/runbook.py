"""The runbook of one environment: where it stands, what each stage changed and why, how
to verify it, what the provider cannot express, how to roll it back, and (after a switch of
``mesh_provider``) how to cut over from the other mesh. Deterministic: no dates, no commit
ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..flows.proof import FlowProof
from ..gitops.paths import env_dir, install_dir, sync_dir
from ..intent.model import Intent
from ..plan.model import StagePlan
from ..providers.provider import ControlPlane, HelmChart, RunbookText
from ..providers.registry import mesh
from ..stages import STAGE_PURPOSE, Stage, stages_through
from .tree import RenderedObject
from .units import MAX_UNIT_OBJECTS, SyncUnit, sync_order

_ROUTES = {"gateway-api": "httproutes.gateway.networking.k8s.io",
           "smi": "trafficsplits.split.smi-spec.io"}


@dataclass(frozen=True)
class ObjectSections:
    """The runbook's parts that read the rendered objects alone: the sync units in their
    order, and each stage's list of its objects and the units they are in. A large stage
    makes them while the flow proof's child works (``pipeline.render_stage``); the rest of
    the runbook waits for the proof's table."""

    units: tuple[SyncUnit, ...]
    stages: Mapping[Stage, tuple[str, ...]]


def object_sections(objects: Sequence[RenderedObject], env: str, stage: Stage) -> ObjectSections:
    """``ObjectSections`` of ``objects``, for the stages through ``stage``."""
    by_stage: dict[Stage, list[RenderedObject]] = {each: [] for each in Stage}
    for item in objects:
        if item.unit is not None:
            by_stage[item.planned.stage].append(item)
    return ObjectSections(
        tuple(sync_order(o.unit for o in objects if o.unit is not None)),
        {each: tuple(_stage_objects(by_stage[each], env)) for each in stages_through(stage)})


def runbook_markdown(plan: StagePlan, objects: Sequence[RenderedObject],
                     warnings: Sequence[str], install: ControlPlane | None = None,
                     migrated_from: str | None = None,
                     forced_gates: Sequence[Mapping[str, Any]] = (),
                     canary: Sequence[str] = (), flows: Sequence[str] = (),
                     sections: ObjectSections | None = None) -> str:
    """The runbook; ``sections`` are ``object_sections(objects, ...)`` when made already."""
    intent = plan.intent
    stage = intent.stage
    env = intent.environment
    text = _mesh_text(intent.provider)
    sections = sections or object_sections(objects, env, stage)
    units = sections.units
    previous = [s for s in Stage if s.number == stage.number - 1]
    lines = [
        f"# Runbook: {env}",
        "",
        f"- provider: **{intent.provider}**",
        f"- stage: **{stage.number}. {stage.value}** of {len(Stage)}: {STAGE_PURPOSE[stage]}",
        f"- tree: `{env_dir(env)}` (built with `kubectl kustomize {env_dir(env)}`), in "
        f"{len(units)} sync units (see below), synced by the objects in `{sync_dir(env)}`",
        f"- trust domain: `{intent.trust_domain}`; {text.settings(intent)}",
        "",
        "## What each stage carries, and why",
        "",
    ]
    for each in stages_through(stage):
        lines += [f"### {each.number}. {each.value}", "", f"Why: {STAGE_PURPOSE[each]}.", ""]
        lines += sections.stages[each]
        for note in plan.notes:
            if note.stage is each:
                lines.append(f"> {note.text}")
                lines.append("")
        verify = list(text.verify[each])
        if each is Stage.TRAFFIC and intent.traffic_api != "virtualservice":
            verify.insert(0, f"kubectl get {_ROUTES[intent.traffic_api]} -A")
        lines += ["Verify:", "", "```sh", *verify, "```", ""]
    lines += _sync_units(env, units)
    if install is not None:
        lines += _control_plane(env, install)
    lines += _apply_from_the_playbook(env)
    lines += canary  # the canary delivery section (canary.runbook_section)
    lines += flows  # the flow proof's table (flow_section)
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
    if injected:
        lines += text.rollback_injection(intent, injected)
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


def flow_section(proof: FlowProof) -> list[str]:
    """The runbook's table of the stage's flows: each flow, whether it gets through at this
    stage, and the object that decides (docs/architecture.md, "The flow proof"). It reads
    the target's verdicts only, so a run that changes nothing renders the same runbook."""
    rows = [row for row in proof.rows if row.then.outcome != "n/a"]
    if not rows:
        return []
    refused = sum(not row.then.allowed for row in rows)
    partly = sum(row.then.allowed and bool(row.then.partial) for row in rows)
    lines = [
        "## Flows",
        "",
        f"Every request flow of the estate, judged through this stage's configuration: "
        f"{len(rows)} flows, {len(rows) - refused - partly} allowed, {partly} partly, "
        f"{refused} refused. The run refuses any that worked before this stage and would "
        "stop (docs/architecture.md, \"The flow proof\").",
        "",
        "| flow | from | at this stage | decided by |",
        "|---|---|---|---|",
    ]
    for row in rows:
        flow = row.flow
        called = flow.destination.service or flow.destination.name
        request = f" {flow.request.method} {flow.request.path}" if flow.request else ""
        name = f"{flow.source} → {called} ({flow.destination}) {flow.protocol}{request}"
        origin = flow.origin + (f": {flow.via}" if flow.via else "")
        lines.append(f"| {_cell(name)} | {_cell(origin)} | {_cell(row.then.short())} | "
                     f"{_cell(row.then.by or row.then.reason)} |")
    return [*lines, ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
def _stage_objects(objects: Sequence[RenderedObject], env: str) -> list[str]:
    """A stage's objects, each with its file, and the sync units they are in (an object a
    later stage reshapes stays in the unit of the stage that made it)."""
    if not objects:
        return ["- (no objects of its own: a later stage reshaped them)", ""]
    base = len(env_dir(env)) + 1
    lines = [f"- `{item.planned.resource}` ({item.path[base:]})" for item in objects]
    touched = sync_order(item.unit for item in objects if item.unit is not None)
    return [*lines, "", "Sync units: " + ", ".join(f"`{unit.folder}`" for unit in touched), ""]


def _sync_units(env: str, units: Sequence[SyncUnit]) -> list[str]:
    """How the units are synced, and the commands that hand them to Argo CD or Flux."""
    folder = sync_dir(env)
    return [
        "## Sync units",
        "",
        f"`{env_dir(env)}` is cut into {len(units)} units of at most {MAX_UNIT_OBJECTS} objects, "
        f"`<NN-stage>/<RR>-<namespace>`, each built on its own (`kubectl kustomize "
        f"{env_dir(env)}/<NN-stage>/<unit>`). They sync in "
        "the apply order, `RR` first, then the stage: Argo CD through "
        f"`{folder}/argocd-applicationset.yaml` (one Application per unit; its RollingSync "
        "keeps the order when the ApplicationSet controller runs with progressive syncs, "
        "`applicationsetcontroller.enable.progressive.syncs: \"true\"` in "
        "`argocd-cmd-params-cm`; without them each unit syncs on its own), Flux through "
        f"`{folder}/flux-kustomization.yaml` (one Kustomization per unit, each `dependsOn` the "
        "units before it in its namespace and the mesh-wide ones). Hand them over once:",
        "",
        "```sh",
        f"kubectl apply --server-side -f {folder}/argocd-applicationset.yaml   # Argo CD",
        f"kubectl apply -f {folder}/flux-gitrepository.yaml -f {folder}/flux-kustomization.yaml"
        "   # Flux",
        "```",
        "",
    ]


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
    if intent.stage is Stage.STRICT_MTLS:
        lines += _mesh_text(intent.provider).before_authorization
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
    new, old = _mesh_text(intent.provider).cut_over, _mesh_text(previous).cut_over
    releases = " ".join(f"meshstage-{intent.environment}-{chart.release}"
                        for chart in reversed(_charts(previous, intent)))
    install = [
        new.install,
        f"{old.title}'s charts are gone from `00-install`. With Flux, suspend their "
        "HelmReleases before the sync, so pruning them skips the uninstall (`flux suspend "
        f"helmrelease -n {intent.gitops.flux_namespace} {releases}`); Argo CD leaves them "
        "installed, since meshstage's Applications carry no resources finalizer. Then sync "
        f"this commit: Argo CD or Flux prune {old.title}'s objects and apply {new.title}'s. "
        f"Keep {old.control_plane_running} running until the last step.",
        old.uninject_intro,
    ]
    commands = [old.uninject(ns) for ns in intent.namespaces]
    container = _container(previous)
    restart = ("Restart the workloads wave by wave (`kubectl rollout restart deployment "
               f"-n <namespace>`); after each wave, {new.proxy_check} and no `{container}` "
               "container left in it:")
    finish = old.uninstall
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


def _mesh_text(provider: str) -> RunbookText:
    text = mesh(provider).runbook
    assert text is not None, f"{provider} has no runbook text"
    return text


def _charts(provider: str, intent: Intent) -> tuple[HelmChart, ...]:
    install = mesh(provider).control_plane
    return install(intent).charts if install is not None else ()


def _container(provider: str) -> str:
    sidecar = mesh(provider).sidecar
    return sidecar.container if sidecar is not None else "proxy"
