"""The sync objects of an environment: what Argo CD and Flux need to sync its units in order.

    sync/<env>/kustomization.yaml               the files below: apply them once, by hand
    sync/<env>/argocd-applicationset.yaml       Argo CD: one Application per sync unit
    sync/<env>/argocd-install-application.yaml  Argo CD: envs/<env>/00-install/argocd
    sync/<env>/flux-gitrepository.yaml          Flux: the repository
    sync/<env>/flux-install-kustomization.yaml  Flux: envs/<env>/00-install/flux
    sync/<env>/flux-kustomization.yaml          Flux: sync/<env>/flux, after the install
    sync/<env>/flux/                            Flux: one Kustomization per stage folder
                                                (and per part of one), each syncing
                                                sync/<env>/flux/<NN-stage>[.<part>]
    sync/<env>/flux/<NN-stage>[.<part>]/        Flux: one Kustomization per unit

Argo CD: the ApplicationSet lists the units (a list generator) and makes one Application
each. Its ``RollingSync`` strategy syncs them one step per position in the sync order
(``units.SyncUnit.position``), each step once the one before is healthy; the
ApplicationSet controller does that only with progressive syncs enabled
(https://argo-cd.readthedocs.io/en/stable/operator-manual/applicationset/Progressive-Syncs/),
and without them each Application syncs on its own.

Flux: each unit's Kustomization ``dependsOn`` the units it waits for (``units.dependencies``).
kustomize-controller applies a Kustomization only once each dependency is ready at the
same source revision (``checkDependencies`` in fluxcd/kustomize-controller), so the order
holds for every commit. No folder Flux builds holds more than one stage's units, nor more
than ``MAX_UNIT_OBJECTS`` of them: a stage with more units is cut in parts by a hash of each
unit's name, as a unit is cut (``units.cut_parts``), and the cut is kept once made. Part 0
keeps the stage folder's name and its Kustomization ``dependsOn`` the other parts', so
when a cut moves unit Kustomizations out of part 0 the new parts apply them first (Flux
labels an object with the Kustomization that applied it last, and prunes only objects that
carry its own labels), and part 0 no longer owns them when it gives them up. The other
parts' Kustomizations do not ``wait`` for their units: part 0 waits for them, and a unit
of theirs may wait for a unit of part 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..gitops.paths import env_dir, sync_dir
from ..intent.model import Intent
from ..kube import ownership_labels
from ..plan.model import PlannedObject
from ..stages import Stage
from .renderer import Renderer
from .tree import RenderedObject
from .units import (
    CLUSTER_SCOPE,
    MAX_UNIT_OBJECTS,
    SyncUnit,
    cut_parts,
    dependencies,
    kept_bits,
    sync_order,
    waves,
)

ARGOCD = "argoproj.io/v1alpha1"
FLUX_SOURCE = "source.toolkit.fluxcd.io/v1"
FLUX_KUSTOMIZE = "kustomize.toolkit.fluxcd.io/v1"
WAVE_LABEL = "meshstage.io/wave"
_FLUX_KUSTOMIZATION = "gitops/flux_kustomization.yaml.j2"


@dataclass(frozen=True)
class _SyncObject:
    """One sync object to render: where, from which template, what it is, its values."""

    path: str
    template: str
    api_version: str
    kind: str
    name: str
    values: Mapping[str, Any]


def sync_objects(intent: Intent, renderer: Renderer, units: Sequence[SyncUnit],
                 flux_parts: Mapping[SyncUnit, int],
                 install: str | None = None) -> list[RenderedObject]:
    """Every sync object of the environment: the ApplicationSet, the Flux GitRepository and
    Kustomizations of the units (each in its part of its stage's folder: ``flux_cuts``),
    and (with ``install``, the control-plane install folder) an Application and a Flux
    Kustomization for its ``argocd/`` and ``flux/`` folders."""
    base = _base_values(intent)
    specs = [*_top_objects(intent, units, install), *_flux_units(intent, units, flux_parts)]
    return [_render(renderer, spec, intent, base) for spec in specs]


def _top_objects(intent: Intent, units: Sequence[SyncUnit],
                 install: str | None) -> list[_SyncObject]:
    name = f"meshstage-{intent.environment}"
    folder = sync_dir(intent.environment)
    specs = [
        _SyncObject(f"{folder}/argocd-applicationset.yaml",
                    "gitops/argocd_applicationset.yaml.j2", ARGOCD, "ApplicationSet", name,
                    _applicationset_values(intent, units)),
        _SyncObject(f"{folder}/flux-gitrepository.yaml", "gitops/flux_git_repository.yaml.j2",
                    FLUX_SOURCE, "GitRepository", name, {}),
        _SyncObject(f"{folder}/flux-kustomization.yaml", _FLUX_KUSTOMIZATION, FLUX_KUSTOMIZE,
                    "Kustomization", name,
                    {"path": f"./{folder}/flux",
                     "depends_on": [{"name": f"{name}-install"}] if install else None}),
    ]
    if install:
        specs += [
            _SyncObject(f"{folder}/argocd-install-application.yaml",
                        "gitops/argocd_application.yaml.j2", ARGOCD, "Application",
                        f"{name}-install", {"path": f"{install}/argocd"}),
            _SyncObject(f"{folder}/flux-install-kustomization.yaml", _FLUX_KUSTOMIZATION,
                        FLUX_KUSTOMIZE, "Kustomization", f"{name}-install",
                        {"path": f"./{install}/flux"}),
        ]
    return specs


def _applicationset_values(intent: Intent, units: Sequence[SyncUnit]) -> dict[str, Any]:
    """The list of units and the RollingSync steps, one per position in the sync order."""
    environment = intent.environment
    labels = {**ownership_labels(environment), WAVE_LABEL: "{{.wave}}"}
    return {
        "elements": [{"name": unit.name(environment), "unit": unit.folder, "wave": unit.wave}
                     for unit in sync_order(units)],
        "steps": [{"matchExpressions": [{"key": WAVE_LABEL, "operator": "In",
                                         "values": [wave[0].wave]}]}
                  for wave in waves(units)],
        "unit_name": "{{.name}}", "unit_labels": labels,
        "unit_path": f"{env_dir(environment)}/{{{{.unit}}}}",
    }


def flux_cuts(environment: str, units: Sequence[SyncUnit],
              kept: Mapping[str, int] | None = None
              ) -> tuple[dict[SyncUnit, int], dict[str, int]]:
    """The part of its stage's folder each unit's Flux Kustomization is in: 0 but where the
    stage has more than ``MAX_UNIT_OBJECTS`` units (or had: ``kept``); and the cuts to
    record for the next run (``flux/<NN-stage>``: its hash bits)."""
    by_stage: dict[Stage, list[SyncUnit]] = {}
    for unit in sync_order(units):
        by_stage.setdefault(unit.stage, []).append(unit)
    parts: dict[SyncUnit, int] = {}
    record: dict[str, int] = {}
    for stage, members in by_stage.items():
        key = f"flux/{stage.folder}"
        cut, bits = cut_parts([unit.name(environment) for unit in members],
                              MAX_UNIT_OBJECTS, kept_bits(kept, key))
        if bits:
            record[key] = bits
        parts.update(zip(members, cut, strict=True))
    return parts, record


def _flux_folder(stage: Stage, part: int) -> str:
    """The folder, under ``sync/<env>/flux``, of one part of a stage's unit Kustomizations."""
    return f"{stage.folder}.{part}" if part else stage.folder


def _flux_units(intent: Intent, units: Sequence[SyncUnit],
                flux_parts: Mapping[SyncUnit, int]) -> list[_SyncObject]:
    """A Kustomization per stage folder and part (under ``sync/<env>/flux``) and one per unit
    (under ``sync/<env>/flux/<NN-stage>[.<part>]``), each unit's depending on the units it
    waits for; part 0's on the other parts of its stage."""
    environment = intent.environment
    folder = f"{sync_dir(environment)}/flux"
    namespace = intent.gitops.flux_namespace
    waits = dependencies(units, shared_scopes(intent, units))
    specs: list[_SyncObject] = []
    for stage in sorted({unit.stage for unit in units}, key=lambda each: each.number):
        others = [_flux_folder(stage, part) for part in
                  sorted({flux_parts[unit] for unit in units if unit.stage is stage} - {0})]
        specs.append(_flux_object(folder, namespace, f"meshstage-{environment}-{stage.folder}",
                                  {"path": f"./{folder}/{stage.folder}", "depends_on": [
                                      {"name": f"meshstage-{environment}-{other}"}
                                      for other in others] or None}))
        specs += [_flux_object(folder, namespace, f"meshstage-{environment}-{other}",
                               {"path": f"./{folder}/{other}", "wait": False})
                  for other in others]
    for unit in sync_order(units):
        depends_on = [{"name": other.name(environment)} for other in waits[unit]]
        specs.append(_flux_object(f"{folder}/{_flux_folder(unit.stage, flux_parts[unit])}",
                                  namespace, unit.name(environment),
                                  {"path": f"./{env_dir(environment)}/{unit.folder}",
                                   "depends_on": depends_on or None}))
    return specs


def _flux_object(folder: str, namespace: str, name: str,
                 values: Mapping[str, Any]) -> _SyncObject:
    """A Flux Kustomization in ``folder``, its file named like every object's."""
    return _SyncObject(f"{folder}/kustomization.{namespace}.{name}.yaml", _FLUX_KUSTOMIZATION,
                       FLUX_KUSTOMIZE, "Kustomization", name, values)


def shared_scopes(intent: Intent, units: Sequence[SyncUnit]) -> frozenset[str]:
    """The mesh-wide scopes: cluster-scoped objects, the root namespace, and every namespace
    that holds no service of the catalogue."""
    catalogue = set(intent.namespaces)
    found = {unit.scope for unit in units if unit.scope not in catalogue}
    return frozenset({CLUSTER_SCOPE, intent.root_namespace, *found})


def _base_values(intent: Intent) -> dict[str, Any]:
    gitops = intent.gitops
    return {
        "labels": ownership_labels(intent.environment), "project": gitops.argocd_project,
        "repo_url": gitops.repo_url, "branch": gitops.branch,
        "server": intent.cluster.server, "interval": gitops.sync_interval,
        "source_name": f"meshstage-{intent.environment}", "depends_on": None, "wait": True,
    }


def _render(renderer: Renderer, spec: _SyncObject, intent: Intent,
            base: Mapping[str, Any]) -> RenderedObject:
    gitops = intent.gitops
    namespace = gitops.argocd_namespace if spec.api_version == ARGOCD else gitops.flux_namespace
    context = {**base, "name": spec.name, "namespace": namespace, **spec.values}
    planned = PlannedObject(api_version=spec.api_version, kind=spec.kind, name=spec.name,
                            namespace=namespace, template=spec.template, context=context)
    obj, text = renderer.render_canonical(spec.template, context)
    return RenderedObject(planned, obj, spec.path, text)
