"""The control-plane install: the mesh's Helm charts at a pinned version, their values, and the
Argo CD and Flux objects that install them, in the first folder of the environment's tree::

    envs/<env>/00-install/values/<release>.yaml      Helm values, one file per chart
    envs/<env>/00-install/argocd/                    one Application per chart (multi-source:
                                                     the chart, and the values file from Git)
    envs/<env>/00-install/flux/                      a HelmRepository and one HelmRelease per
                                                     chart (values inline)

The folder is not part of ``envs/<env>/kustomization.yaml``: it holds one GitOps tool's
objects each, and a cluster without that tool's CRDs could not take them. ``sync/<env>``
carries the Application and the Flux Kustomization that sync the tool's folder.

Each provider describes its install as data (``ControlPlane``, its record's
``control_plane``): the chart repository, the pinned version, the charts in install order
(each depends on the one before) and their values.
"""

from __future__ import annotations

from ..gitops.paths import install_dir
from ..intent.model import Intent
from ..plan.model import PlannedObject, template_meta
from ..providers.provider import ControlPlane
from ..providers.registry import mesh
from ..yaml_io import load_yaml
from .renderer import Renderer
from .tree import RenderedObject

ARGOCD_APPLICATION = "argoproj.io/v1alpha1"
FLUX_HELM_REPOSITORY = "source.toolkit.fluxcd.io/v1"
FLUX_HELM_RELEASE = "helm.toolkit.fluxcd.io/v2"

# Kinds the install renders whose CRD a CRD directory may lack (Flux's helm-controller CRDs are
# not installed everywhere). They are validated when the CRD directories hold their CRD; without
# it the run says, in a warning, that they were not validated.
SCHEMA_OPTIONAL: frozenset[tuple[str, str]] = frozenset({(FLUX_HELM_RELEASE, "HelmRelease")})


def control_plane(intent: Intent) -> ControlPlane | None:
    """The provider's install with the intent's overrides, or None when it has none yet."""
    install = mesh(intent.provider).control_plane
    return install(intent) if install is not None else None


def install_tree(intent: Intent, renderer: Renderer
                 ) -> tuple[list[RenderedObject], dict[str, str], list[str]]:
    """The install's objects, its other files (values, kustomizations), and warnings."""
    plane = control_plane(intent)
    if plane is None:
        return [], {}, [f"mesh_provider {intent.provider!r} has no control-plane install yet: "
                        f"nothing is rendered into {install_dir(intent.environment)}; "
                        "install the mesh yourself"]
    base = install_dir(intent.environment)
    gitops = intent.gitops
    env = intent.environment
    objects: list[RenderedObject] = []
    files: dict[str, str] = {}
    repository = f"meshstage-{env}-{plane.repository_name}"
    objects.append(_render_object(renderer, f"{base}/flux", PlannedObject(
        api_version=FLUX_HELM_REPOSITORY, kind="HelmRepository", name=repository,
        namespace=gitops.flux_namespace, template="gitops/flux_helm_repository.yaml.j2",
        context={**template_meta(repository, gitops.flux_namespace, intent),
                 "interval": gitops.sync_interval, "url": plane.repository,
                 "type": "oci" if plane.repository.startswith("oci://") else None})))
    previous: str | None = None
    for wave, chart in enumerate(plane.charts):
        values_path = f"{base}/values/{chart.release}.yaml"
        _, files[values_path] = renderer.render_canonical(chart.values_template, chart.values)
        # the values as their canonical text reads back: the same mapping, key order and
        # all, whether the text came from the stage cache or was just rendered
        values = load_yaml(files[values_path])
        name = f"meshstage-{env}-{chart.release}"
        objects.append(_render_object(renderer, f"{base}/argocd", PlannedObject(
            api_version=ARGOCD_APPLICATION, kind="Application", name=name,
            namespace=gitops.argocd_namespace, template="gitops/argocd_helm_application.yaml.j2",
            context={
                **template_meta(name, gitops.argocd_namespace, intent,
                        annotations={"argocd.argoproj.io/sync-wave": str(wave)}),
                "project": gitops.argocd_project, "server": intent.cluster.server,
                "destination_namespace": chart.namespace, "chart_repository": plane.repository,
                "chart": chart.chart, "version": plane.version, "release": chart.release,
                "value_files": [f"$values/{values_path}"], "repo_url": gitops.repo_url,
                "branch": gitops.branch,
                "ignore_differences": list(chart.ignore_differences) or None,
            })))
        objects.append(_render_object(renderer, f"{base}/flux", PlannedObject(
            api_version=FLUX_HELM_RELEASE, kind="HelmRelease", name=name,
            namespace=gitops.flux_namespace, template="gitops/flux_helm_release.yaml.j2",
            context={
                **template_meta(name, gitops.flux_namespace, intent),
                "interval": gitops.sync_interval, "release": chart.release,
                "target_namespace": chart.namespace, "chart": chart.chart,
                "version": plane.version, "repository": repository,
                "depends_on": [{"name": previous}] if previous else None,
                "values": values,
            })))
        previous = name
    for tool in ("argocd", "flux"):
        names = sorted(o.path.rpartition("/")[2] for o in objects
                       if o.path.startswith(f"{base}/{tool}/"))
        files[f"{base}/{tool}/kustomization.yaml"] = renderer.render_canonical(
            "gitops/kustomization.yaml.j2", {"resources": names})[1]
    return objects, files, []


def _render_object(renderer: Renderer, folder: str, planned: PlannedObject) -> RenderedObject:
    obj, text = renderer.render_canonical(planned.template, planned.context)
    return RenderedObject(planned, obj, f"{folder}/{planned.filename}", text)
