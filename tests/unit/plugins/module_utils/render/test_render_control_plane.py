"""The control-plane install in envs/<env>/00-install: Helm values, the Argo CD Applications and
Flux objects that install the charts at a pinned version, and what syncs them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.providers import registry
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.istio.control_plane import (
    CHART_REPOSITORY,
    CHART_VERSION,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.istio.provider import ISTIO
from ansible_collections.meshstage.mesh.plugins.module_utils.render.control_plane import (
    control_plane,
    install_tree,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import Renderer

BASE = "envs/prod/00-install"


@pytest.fixture
def prod(example_intent, crd_dir, tmp_path):
    def make(**overrides):
        return render_stage(example_intent("prod", **overrides),
                            StageOptions(gitops_dir=tmp_path, crd_dirs=[crd_dir]))
    return make


def doc(rendered, path: str) -> dict:
    return yaml.safe_load(rendered.files[path])


def test_istio_installs_base_then_istiod_at_the_pinned_version(prod):
    rendered = prod()
    base = doc(rendered, f"{BASE}/argocd/application.argocd.meshstage-prod-istio-base.yaml")
    istiod = doc(rendered, f"{BASE}/argocd/application.argocd.meshstage-prod-istiod.yaml")
    assert [base["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"],
            istiod["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]] == ["0", "1"]
    chart, values = istiod["spec"]["sources"]
    assert chart == {"repoURL": CHART_REPOSITORY, "chart": "istiod",
                     "targetRevision": CHART_VERSION,
                     "helm": {"releaseName": "istiod",
                              "valueFiles": [f"$values/{BASE}/values/istiod.yaml"]}}
    assert values == {"repoURL": "https://git.example.invalid/platform/mesh-gitops.git",
                      "targetRevision": "main", "ref": "values"}
    assert istiod["spec"]["destination"] == {
        "server": "https://prod.k8s.example.invalid:6443", "namespace": "istio-system"}
    assert f"{BASE}/values/istiod.yaml" in rendered.files


def test_flux_release_carries_the_same_values_and_waits_for_base(prod):
    rendered = prod()
    release = doc(rendered, f"{BASE}/flux/helmrelease.flux-system.meshstage-prod-istiod.yaml")
    assert release["spec"]["chart"]["spec"] == {
        "chart": "istiod", "version": CHART_VERSION,
        "sourceRef": {"kind": "HelmRepository", "name": "meshstage-prod-istio"}}
    assert release["spec"]["dependsOn"] == [{"name": "meshstage-prod-istio-base"}]
    assert release["spec"]["values"] == doc(rendered, f"{BASE}/values/istiod.yaml")
    assert release["spec"]["values"]["sidecarInjectorWebhook"]["neverInjectSelector"] == [
        {"matchLabels": {"app": "legacy-billing"}}]
    repository = doc(rendered, f"{BASE}/flux/helmrepository.flux-system.meshstage-prod-istio.yaml")
    assert repository["spec"] == {"interval": "5m", "url": CHART_REPOSITORY}


def test_helm_release_is_validated_against_the_reference_crd(prod):
    """The reference CRDs carry Flux's HelmRelease: it is validated, and nothing warns."""
    assert not any("not validated" in warning for warning in prod().warnings)


def test_helm_release_without_its_crd_is_reported_as_not_validated(example_intent, crd_dir,
                                                                    tmp_path):
    crds = tmp_path / "crds"
    for path in crd_dir.rglob("*.yaml"):
        if "helmreleases" not in path.name:
            target = crds / path.relative_to(crd_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    rendered = render_stage(example_intent("prod"),
                            StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crds]))
    assert "HelmRelease (helm.toolkit.fluxcd.io/v2) not validated: the CRD directories hold " \
        "no CRD for it" in rendered.warnings


def test_version_and_repository_come_from_mesh_install(prod):
    rendered = prod(mesh_install={"version": "1.28.3", "repository": "oci://registry.example.invalid/istio"})
    istiod = doc(rendered, f"{BASE}/argocd/application.argocd.meshstage-prod-istiod.yaml")
    assert istiod["spec"]["sources"][0]["targetRevision"] == "1.28.3"
    repository = doc(rendered, f"{BASE}/flux/helmrepository.flux-system.meshstage-prod-istio.yaml")
    assert repository["spec"]["type"] == "oci"


def test_install_is_synced_apart_from_the_stage_folders(prod):
    rendered = prod()
    environment = doc(rendered, "envs/prod/kustomization.yaml")
    assert not any(r.startswith("00-install") for r in environment["resources"])
    assert doc(rendered, f"{BASE}/argocd/kustomization.yaml")["resources"] == [
        "application.argocd.meshstage-prod-istio-base.yaml",
        "application.argocd.meshstage-prod-istiod.yaml"]
    flux = doc(rendered, "sync/prod/flux-kustomization.yaml")
    assert flux["spec"]["dependsOn"] == [{"name": "meshstage-prod-install"}]
    install = doc(rendered, "sync/prod/flux-install-kustomization.yaml")
    assert install["spec"]["path"] == f"./{BASE}/flux"
    argo = doc(rendered, "sync/prod/argocd-install-application.yaml")
    assert argo["spec"]["source"]["path"] == f"{BASE}/argocd"


def test_revision_reaches_both_charts(prod):
    rendered = prod(mesh_revision="1-29")
    assert doc(rendered, f"{BASE}/values/istio-base.yaml") == {"defaultRevision": "1-29"}
    assert doc(rendered, f"{BASE}/values/istiod.yaml")["revision"] == "1-29"


def test_linkerd_installs_its_crds_then_the_control_plane(example_intent):
    intent, _ = parse_intent(example_intent("prod", mesh_provider="linkerd"))
    plane = control_plane(intent)
    assert plane is not None
    assert plane.repository == "https://helm.linkerd.io/edge"
    assert [(c.chart, c.release, c.namespace) for c in plane.charts] == [
        ("linkerd-crds", "linkerd-crds", "linkerd"),
        ("linkerd-control-plane", "linkerd-control-plane", "linkerd")]
    objects, files, warnings = install_tree(intent, Renderer([]))
    assert warnings == []
    values = yaml.safe_load(files[f"{BASE}/values/linkerd-control-plane.yaml"])
    # the identity issuer comes from outside the repository: no key is ever rendered
    assert values["identity"] == {"externalCA": True, "issuer": {"scheme": "kubernetes.io/tls"}}
    assert values["proxy"]["defaultInboundPolicy"] == "all-unauthenticated"
    assert yaml.safe_load(files[f"{BASE}/values/linkerd-crds.yaml"]) == {
        "installGatewayAPI": False}
    releases = [o.obj for o in objects if o.obj["kind"] == "HelmRelease"]
    assert [r["spec"]["chart"]["spec"]["chart"] for r in releases] == [
        "linkerd-crds", "linkerd-control-plane"]
    assert releases[1]["spec"]["dependsOn"] == [{"name": "meshstage-prod-linkerd-crds"}]


def test_a_provider_without_an_install_says_so(example_intent, monkeypatch):
    monkeypatch.setitem(registry.MESHES, "istio", replace(ISTIO, control_plane=None))
    intent, _ = parse_intent(example_intent("prod"))
    assert control_plane(intent) is None
    objects, files, warnings = install_tree(intent, Renderer([]))
    assert (objects, files) == ([], {})
    assert warnings == ["mesh_provider 'istio' has no control-plane install yet: nothing is "
                        "rendered into envs/prod/00-install; install the mesh yourself"]


def test_the_reference_crds_hold_what_the_install_renders(crd_dir: Path):
    """Application, HelmRepository and HelmRelease are all validated: the reference has
    their CRDs."""
    names = {p.name for p in crd_dir.rglob("*.yaml")}
    assert "application-crd.yaml" in names
    assert "source.toolkit.fluxcd.io_helmrepositories.yaml" in names
    assert "helm.toolkit.fluxcd.io_helmreleases.yaml" in names


def test_argocd_ignores_what_istiod_writes_into_its_webhooks(prod):
    """istiod flips failurePolicy and patches the caBundle of its webhooks (issue 14, item
    7): the Applications must not show them OutOfSync, nor revert them."""
    rendered = prod()
    istiod = doc(rendered, f"{BASE}/argocd/application.argocd.meshstage-prod-istiod.yaml")
    assert istiod["spec"]["ignoreDifferences"] == [
        {"group": "admissionregistration.k8s.io", "kind": "ValidatingWebhookConfiguration",
         "jqPathExpressions": [".webhooks[]?.failurePolicy",
                               ".webhooks[]?.clientConfig.caBundle"]},
        {"group": "admissionregistration.k8s.io", "kind": "MutatingWebhookConfiguration",
         "jqPathExpressions": [".webhooks[]?.clientConfig.caBundle"]}]
    assert "RespectIgnoreDifferences=true" in istiod["spec"]["syncPolicy"]["syncOptions"]
    base = doc(rendered, f"{BASE}/argocd/application.argocd.meshstage-prod-istio-base.yaml")
    assert base["spec"]["ignoreDifferences"][0]["kind"] == "ValidatingWebhookConfiguration"


def test_argocd_ignores_the_certificates_linkerd_generates_at_each_render(prod):
    rendered = prod(mesh_provider="linkerd")
    app = doc(rendered, f"{BASE}/argocd/application.argocd.meshstage-prod-linkerd-control-"
                        "plane.yaml")
    ignored = {(i["kind"], i.get("name")): i for i in app["spec"]["ignoreDifferences"]}
    for secret in ("linkerd-proxy-injector-k8s-tls", "linkerd-sp-validator-k8s-tls",
                   "linkerd-policy-validator-k8s-tls"):
        assert ignored[("Secret", secret)]["jsonPointers"] == ["/data/tls.crt",
                                                               "/data/tls.key"]
    webhook = ignored[("MutatingWebhookConfiguration", "linkerd-proxy-injector-webhook-config")]
    assert webhook["group"] == "admissionregistration.k8s.io"  # the group, no version
    assert ("ValidatingWebhookConfiguration", "linkerd-policy-validator-webhook-config") in \
        ignored
    assert ignored[("CronJob", "linkerd-heartbeat")]["jsonPointers"] == ["/spec/schedule"]
    assert ("Deployment", "linkerd-destination") in ignored
