"""The GitOps tree: where each rendered object, kustomization and sync object lives.

    README.md                              index of environments and their stages
    envs/<env>/kustomization.yaml          the stage folders this environment carries
    envs/<env>/<NN-stage>/kustomization.yaml
    envs/<env>/<NN-stage>/<kind>.<namespace>.<name>.yaml
    envs/<env>/install/                    Helm values for the mesh's control plane
    envs/<env>/RUNBOOK.md
    hosts/<env>/<host>/                    Envoy bootstrap, LDS, CDS and SDS files of a host
                                           sidecar (configured by the playbook, not synced)
    sync/<env>/                            Argo CD Application, Flux GitRepository and
                                           Kustomization that sync envs/<env>

``kubectl kustomize envs/<env>`` builds an environment; ``kubectl kustomize sync/<env>``
builds its sync objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..gitops.paths import env_dir, sync_dir
from ..intent.model import Intent
from ..plan.model import PlannedObject, StagePlan, metadata
from ..stages import Stage
from .renderer import Renderer
from .stage_cache import Rendering


class RenderedObject:
    """One rendered object: its plan, where it goes, its canonical text, its identity
    (``api_version``, ``kind``), and the object itself (``obj``). An object from the stage
    cache is decoded when ``obj`` is first read: a run that changes nothing reads none."""

    __slots__ = ("_load", "_obj", "api_version", "kind", "path", "planned", "text")

    def __init__(self, planned: PlannedObject, obj: dict[str, Any] | None, path: str,
                 text: str, rendering: Rendering | None = None) -> None:
        self.planned, self.path, self.text = planned, path, text
        self._obj = obj
        self._load = rendering.load if rendering is not None else None
        if obj is not None:
            self.api_version, self.kind = obj.get("apiVersion"), obj.get("kind")
        elif rendering is not None:
            self.api_version, self.kind = rendering.api_version, rendering.kind
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


def stage_objects(objects: list[RenderedObject], environment: str) -> list[dict[str, Any]]:
    """The objects of the environment's stage folders: what is applied to its cluster
    (not the sync objects, nor the control-plane install)."""
    folders = {f"{env_dir(environment)}/{stage.folder}/" for stage in Stage}
    return [item.obj for item in objects
            if item.path.rpartition("/")[0] + "/" in folders]


def render_objects(plan: StagePlan, renderer: Renderer) -> list[RenderedObject]:
    """Render every planned object and place it in its stage folder."""
    base = env_dir(plan.intent.environment)
    rendered = []
    for planned in plan.objects:
        rendering = renderer.render_deferred(planned.template, planned.context)
        path = f"{base}/{planned.stage.folder}/{planned.filename}"
        rendered.append(RenderedObject(planned, None, path, rendering.text, rendering))
    return rendered


def sync_objects(intent: Intent, renderer: Renderer,
                 install: str | None = None) -> list[RenderedObject]:
    """The Argo CD Application and Flux objects that would sync this environment.

    With ``install`` (the control-plane install folder), an Application and a Flux
    Kustomization sync its ``argocd/`` and ``flux/`` folders too, and the environment's Flux
    Kustomization waits for the install's.
    """
    gitops = intent.gitops
    name = f"meshstage-{intent.environment}"
    labels = metadata(name, None, intent)["labels"]
    path = env_dir(intent.environment)
    specs: list[tuple[str, str, str, str, dict[str, Any]]] = [
        ("argocd-application.yaml", "gitops/argocd_application.yaml.j2", "Application",
         name, {"path": path}),
        ("flux-gitrepository.yaml", "gitops/flux_git_repository.yaml.j2", "GitRepository",
         name, {}),
        ("flux-kustomization.yaml", "gitops/flux_kustomization.yaml.j2", "Kustomization",
         name, {"path": f"./{path}",
                "depends_on": [{"name": f"{name}-install"}] if install else None}),
    ]
    if install:
        specs += [
            ("argocd-install-application.yaml", "gitops/argocd_application.yaml.j2",
             "Application", f"{name}-install", {"path": f"{install}/argocd"}),
            ("flux-install-kustomization.yaml", "gitops/flux_kustomization.yaml.j2",
             "Kustomization", f"{name}-install", {"path": f"./{install}/flux",
                                                  "depends_on": None}),
        ]
    api_versions = {"Application": "argoproj.io/v1alpha1",
                    "GitRepository": "source.toolkit.fluxcd.io/v1",
                    "Kustomization": "kustomize.toolkit.fluxcd.io/v1"}
    result = []
    for filename, template, kind, object_name, extra in specs:
        namespace = gitops.argocd_namespace if kind == "Application" else gitops.flux_namespace
        context = {
            "name": object_name, "namespace": namespace, "labels": labels,
            "project": gitops.argocd_project, "repo_url": gitops.repo_url,
            "branch": gitops.branch, "path": path, "server": intent.cluster.server,
            "interval": gitops.sync_interval, "source_name": name, "depends_on": None,
            **extra,
        }
        planned = PlannedObject(api_version=api_versions[kind], kind=kind, name=object_name,
                                namespace=namespace, template=template, context=context)
        obj, text = renderer.render_canonical(template, context)
        result.append(RenderedObject(planned, obj, f"{sync_dir(intent.environment)}/{filename}",
                                     text))
    return result


def kustomizations(plan: StagePlan, objects: list[RenderedObject],
                   renderer: Renderer) -> dict[str, str]:
    """One kustomization per stage folder, one per environment, one for the sync folder."""
    base = env_dir(plan.intent.environment)
    by_folder: dict[str, list[str]] = {}
    for item in objects:
        if item.path.startswith(base + "/"):
            folder, _, filename = item.path[len(base) + 1:].rpartition("/")
            by_folder.setdefault(folder, []).append(filename)
    files: dict[str, str] = {}
    for folder, names in by_folder.items():
        files[f"{base}/{folder}/kustomization.yaml"] = _kustomization(renderer, sorted(names))
    files[f"{base}/kustomization.yaml"] = _kustomization(renderer, sorted(by_folder))
    sync = sync_dir(plan.intent.environment)
    sync_files = sorted(item.path.rpartition("/")[2] for item in objects
                        if item.path.startswith(sync + "/"))
    if sync_files:
        files[f"{sync}/kustomization.yaml"] = _kustomization(renderer, sync_files)
    return files


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
