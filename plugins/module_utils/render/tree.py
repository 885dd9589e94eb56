"""The GitOps tree: where each rendered object and kustomization lives.

    README.md                              index of environments and their stages
    envs/<env>/kustomization.yaml          the stage folders this environment carries
    envs/<env>/<NN-stage>/kustomization.yaml
                                           the sync units of one stage folder
    envs/<env>/<NN-stage>/<RR>-<namespace>/kustomization.yaml
    envs/<env>/<NN-stage>/<RR>-<namespace>/<kind>.<namespace>.<name>.yaml
                                           one sync unit (``units.py``), one object per file
    envs/<env>/00-install/                 the mesh's control plane (``control_plane.py``)
    envs/<env>/RUNBOOK.md
    hosts/<env>/<host>/                    Envoy bootstrap, LDS, CDS and SDS files of a host
                                           sidecar (configured by the playbook, not synced)
    sync/<env>/                            the objects that sync the units (``sync.py``)

``kubectl kustomize envs/<env>`` builds an environment; ``kubectl kustomize
envs/<env>/<NN-stage>/<unit>`` one unit, as Argo CD and Flux build it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..cluster.apply import apply_class, class_rank
from ..gitops.paths import env_dir, sync_dir
from ..plan.model import PlannedObject, StagePlan
from ..stages import Stage
from .renderer import Renderer
from .stage_cache import Rendering
from .units import CLUSTER_SCOPE, SyncUnit, UnitKey, place_units


class RenderedObject:
    """One rendered object: its plan, where it goes, its canonical text, its identity
    (``api_version``, ``kind``), its class in the apply order, its sync unit (None outside
    the stage folders), and the object itself (``obj``). An object from the stage cache is
    decoded when ``obj`` is first read: a run that changes nothing reads none."""

    __slots__ = ("_load", "_obj", "api_version", "apply_class", "kind", "path", "planned",
                 "text", "unit")

    def __init__(self, planned: PlannedObject, obj: dict[str, Any] | None, path: str,
                 text: str, rendering: Rendering | None = None,
                 unit: SyncUnit | None = None) -> None:
        self.planned, self.path, self.text, self.unit = planned, path, text, unit
        self._obj = obj
        self._load = rendering.load if rendering is not None else None
        if obj is not None:
            self.api_version, self.kind = obj.get("apiVersion"), obj.get("kind")
            self.apply_class = apply_class(obj)
        elif rendering is not None:
            self.api_version, self.kind = rendering.api_version, rendering.kind
            self.apply_class = rendering.apply_class
        else:
            raise ValueError("a rendered object needs the object or its rendering")

    @property
    def obj(self) -> dict[str, Any]:
        if self._obj is None:
            assert self._load is not None
            self._obj, self._load = self._load(), None
        return self._obj

    def __repr__(self) -> str:
        return f"RenderedObject({self.path!r})"


def stage_objects(objects: list[RenderedObject]) -> list[dict[str, Any]]:
    """The objects of the environment's sync units: what is applied to its cluster (not the
    sync objects, nor the control-plane install)."""
    return [item.obj for item in objects if item.unit is not None]


def place_objects(plan: StagePlan, renderer: Renderer, kept: Mapping[str, int] | None = None,
                  keys: Sequence[str | None] | None = None,
                  ) -> tuple[list[RenderedObject], dict[str, int], list[str | None]]:
    """Render every planned object and place it in its sync unit, keeping the cuts the
    repository recorded (``units.place_units``); the objects, the cuts made, and each
    object's stage-cache key (``keys``: the ones the plan memo kept with this plan)."""
    base = env_dir(plan.intent.environment)
    items = [(planned.template, planned.context) for planned in plan.objects]
    keys = renderer.keys_for(items, keys)
    renderings = renderer.render_all(items, keys)
    units, cuts = place_units([
        UnitKey(planned.home, class_rank(rendering.apply_class),
                planned.namespace or CLUSTER_SCOPE, planned.filename)
        for planned, rendering in zip(plan.objects, renderings, strict=True)], kept=kept)
    return [RenderedObject(planned, None, f"{base}/{unit.folder}/{planned.filename}",
                           rendering.text, rendering, unit)
            for planned, rendering, unit in zip(plan.objects, renderings, units, strict=True)
            ], cuts, list(keys)


def kustomizations(plan: StagePlan, objects: Iterable[RenderedObject],
                   renderer: Renderer) -> dict[str, str]:
    """The kustomizations of the environment's tree and of its sync folder.

    Under ``envs/<env>`` each folder lists its files and its sub-folders, so the
    environment, a stage folder and a unit each build on their own. Under ``sync/<env>``
    each folder lists its own files only: each level is synced by the objects of the level
    above it (``sync.py``)."""
    environment = plan.intent.environment
    listed: dict[str, set[str]] = {}
    for item in objects:
        for root, nested in ((env_dir(environment), True), (sync_dir(environment), False)):
            if item.path.startswith(root + "/"):
                _list_path(listed, root, item.path, nested)
    return {f"{folder}/kustomization.yaml": _kustomization(renderer, sorted(names))
            for folder, names in sorted(listed.items())}


def _list_path(listed: dict[str, set[str]], root: str, path: str, nested: bool) -> None:
    """Enter ``path`` in its folder's resources and, when ``nested``, each folder between it
    and ``root`` in its parent's."""
    folder, _, name = path.rpartition("/")
    listed.setdefault(folder, set()).add(name)
    while nested and folder != root:
        folder, _, name = folder.rpartition("/")
        listed.setdefault(folder, set()).add(name)


def _kustomization(renderer: Renderer, resources: list[str]) -> str:
    return renderer.render_canonical("gitops/kustomization.yaml.j2",
                                     {"resources": resources})[1]


def extra_files(plan: StagePlan, renderer: Renderer) -> dict[str, str]:
    """Files that are not Kubernetes objects (Helm values), rendered like objects."""
    base = env_dir(plan.intent.environment)
    return {
        f"{base}/{path}": renderer.render_canonical(template, context)[1]
        for path, (template, context) in sorted(plan.extra_files.items())
    }


def render_host_files(plan: StagePlan, renderer: Renderer) -> dict[str, str]:
    """The host sidecars' files (``hosts/<env>/...``), rendered like objects."""
    return {path: renderer.render_canonical(template, context)[1]
            for path, (template, context) in sorted(plan.host_files.items())}


def index_markdown(environments: Mapping[str, Mapping[str, Any]]) -> str:
    """The top README: every environment in the repository, its provider and stage."""
    lines = [
        "# Service-mesh migration: environments and stages",
        "",
        "Written by meshstage; do not edit by hand (the next run would refuse to",
        "overwrite it). Each environment's tree is under `envs/<env>`, its runbook in",
        "`envs/<env>/RUNBOOK.md`, and the objects that sync it under `sync/<env>`.",
        "",
        "| environment | provider | stage | " + " | ".join(s.value for s in Stage) + " |",
        "|---|---|---|" + "---|" * len(Stage),
    ]
    for name in sorted(environments):
        meta = environments[name]
        stage = Stage(meta["stage"])
        marks = ["x" if stage.reached(s) else " " for s in Stage]
        lines.append(f"| [{name}](envs/{name}/RUNBOOK.md) | {meta['provider']} | "
                     f"{stage.number}. {stage.value} | " + " | ".join(marks) + " |")
    return "\n".join(lines) + "\n"
