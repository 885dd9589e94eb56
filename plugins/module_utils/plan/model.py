"""Plan: per environment and stage, which objects exist, from which template, where.

A provider planner (registered in ``PLANNERS``) lists, stage by stage, the objects each stage
shapes. Stages are cumulative; when a later stage shapes an object an earlier one made (the
mesh-wide PeerAuthentication going from PERMISSIVE to STRICT), the later stage owns it
(``stage``: the runbook lists it there) while the object stays in the folder, and so in the
sync unit, of the stage that first made it (``origin``): moving a stage never moves an object
from one sync unit to another. Every builder computes an object's content from the
environment's current stage, so the content does not depend on which stage listed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import IntentError, describe_value
from ..intent.model import Intent
from ..kube import ownership_labels
from ..stages import Stage, stages_through


@dataclass(frozen=True)
class PlannedObject:
    """One object to render: its identity, its template and the template's values."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    template: str
    context: Mapping[str, Any]
    stage: Stage = Stage.PERMISSIVE_MTLS
    # the first stage that lists the object: its folder in the tree (None: ``stage``)
    origin: Stage | None = field(default=None, compare=False)

    @property
    def home(self) -> Stage:
        """The stage whose folder holds the object's file: the first that made it."""
        return self.origin or self.stage

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.api_version.split("/")[0], self.kind, self.namespace or "", self.name)

    @property
    def resource(self) -> str:
        """``Kind namespace/name``, the way findings and errors name an object."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else \
            f"{self.kind} {self.name}"

    @property
    def filename(self) -> str:
        scope = self.namespace or "cluster"
        return f"{self.kind.lower()}.{scope}.{self.name}.yaml"


@dataclass(frozen=True)
class Note:
    """Something the runbook must say about this stage: a manual step, a gap, a check."""

    stage: Stage
    text: str


@dataclass(frozen=True)
class Gap:
    """An intent field the provider cannot express (for one service, or the whole mesh).

    ``str()`` reads like an intent warning, naming the field, the service and the value::

        mesh_services[3].traffic.connection_pool (service bookinfo/ratings): dict {...} is
        not expressible with linkerd: Linkerd proxies have no connection pool limits
    """

    path: str
    value: Any
    provider: str
    reason: str
    subject: str = ""
    stage: Stage = field(default=Stage.PERMISSIVE_MTLS, compare=False)

    def __str__(self) -> str:
        subject = f" ({self.subject})" if self.subject else ""
        return (f"{self.path}{subject}: {describe_value(self.value)} is not expressible with "
                f"{self.provider}: {self.reason}")


@dataclass
class StagePlan:
    """Everything an environment at one stage carries, before rendering."""

    intent: Intent
    objects: list[PlannedObject] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    extra_files: dict[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # risks of what is rendered
    # files outside envs/<env>, by path from the repository root (hosts/<env>/...)
    host_files: dict[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    # what the intent asks that would break a request at this stage, with the fix
    refusals: list[IntentError] = field(default_factory=list)

    def by_stage(self) -> dict[Stage, list[PlannedObject]]:
        grouped: dict[Stage, list[PlannedObject]] = {
            stage: [] for stage in stages_through(self.intent.stage)
        }
        for obj in self.objects:
            grouped[obj.stage].append(obj)
        return grouped


@dataclass
class StageContribution:
    """What one stage's planner lists: objects, runbook notes, extra (non-object) files,
    and the host sidecars' files (paths from the repository root)."""

    objects: list[PlannedObject] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra_files: dict[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # risks of what is rendered
    host_files: dict[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    # what the intent asks that would break a request (the run refuses, naming the fix)
    refusals: list[IntentError] = field(default_factory=list)


def assemble(intent: Intent,
             *planned: Mapping[Stage, StageContribution]) -> StagePlan:
    """Fold the stages' contributions (of one planner or several, in order), later stages
    taking over objects they reshape (the object keeps the ``origin`` of its first listing)."""
    plan = StagePlan(intent=intent)
    owners: dict[tuple[str, str, str, str], PlannedObject] = {}
    # what is listed already, to list each once: looked up, not searched for (a gap's value
    # may be a mapping, so gaps are kept by their other fields and compared in full there)
    gaps: dict[tuple[str, str, str, str], list[Gap]] = {}
    warnings: set[str] = set()
    refusals: set[str] = set()
    for stage in stages_through(intent.stage):
        for contributions in planned:
            contribution = contributions.get(stage)
            if contribution is None:
                continue
            for obj in contribution.objects:
                first = owners.get(obj.key)
                owners[obj.key] = replace(obj, stage=stage,
                                          origin=first.home if first else stage)
            plan.notes.extend(Note(stage, text) for text in contribution.notes)
            plan.extra_files.update(contribution.extra_files)
            plan.host_files.update(contribution.host_files)
            for gap in contribution.gaps:
                same = gaps.setdefault((gap.path, gap.provider, gap.reason, gap.subject), [])
                if gap not in same:  # equal content: the first stage that lists it names it
                    same.append(gap)
                    plan.gaps.append(replace(gap, stage=stage))
            for warning in contribution.warnings:
                if warning not in warnings:
                    warnings.add(warning)
                    plan.warnings.append(warning)
            for refusal in contribution.refusals:
                if str(refusal) not in refusals:
                    refusals.add(str(refusal))
                    plan.refusals.append(refusal)
    plan.objects = sorted(owners.values(), key=lambda o: (o.stage.number, o.filename))
    return plan


# A GitOps tool must never delete a namespace because meshstage stopped listing it.
NEVER_PRUNE: Mapping[str, str] = {
    "argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}


def template_meta(name: str, namespace: str | None, intent: Intent,
                  annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The metadata values an object's template prints: name, namespace, labels,
    annotations (None where absent, so the key is left out)."""
    meta = metadata(name, namespace, intent, annotations=annotations)
    return {"name": meta["name"], "namespace": meta.get("namespace"),
            "labels": meta["labels"], "annotations": meta.get("annotations")}


def metadata(name: str, namespace: str | None, intent: Intent,
             labels: Mapping[str, str] | None = None,
             annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Metadata of an object meshstage owns: its ownership labels always on it."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {**ownership_labels(intent.environment), **(labels or {})}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta
