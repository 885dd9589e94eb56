"""``meshstage import`` of real manifests: Istio's bookinfo, Linkerd's emojivoto and booksapp
(../shared/reference/samples), alone and as one cluster export with what ``kubectl get -A -o
yaml`` adds (uid, resourceVersion, managedFields, status, ReplicaSets and Pods owned by uid,
and the proxies the injectors put into the pods of injected namespaces).

Each inventory is asserted field by field, and must render valid trees with no Error finding,
at every stage, with either mesh, analyzed against the same manifests (``mesh_check_paths``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_export import cluster_export

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    read_manifests,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.importer import (
    Imported,
    ImportOptions,
    import_estate,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.stages import STAGE_NAMES


def _import(*paths: Path, **options: Any) -> Imported:
    return import_estate(read_manifests(paths).resources, ImportOptions(**options))


def _service(imported: Imported, name: str) -> dict[str, Any]:
    return next(s for s in imported.shared["mesh_services"] if s["name"] == name)


def _notes(imported: Imported, name: str, field: str = "") -> str:
    index = [s["name"] for s in imported.shared["mesh_services"]].index(name)
    key = f"mesh_services[{index}]" + (f".{field}" if field else "")
    return " ".join(text for path, texts in imported.notes.items()
                    if path == key or path.startswith(f"{key}.") for text in texts)


@pytest.fixture(scope="module")
def samples(reference_dir: Path) -> dict[str, Path]:
    base = reference_dir / "samples"
    return {"bookinfo": base / "istio-bookinfo" / "platform" / "kube" / "bookinfo.yaml",
            "emojivoto": base / "linkerd" / "website" / "run.linkerd.io" / "public"
            / "emojivoto.yml",
            "booksapp": base / "linkerd" / "website" / "run.linkerd.io" / "public"
            / "booksapp.yml",
            "networking": base / "istio-bookinfo" / "networking"}


def test_bookinfo(samples):
    imported = _import(samples["bookinfo"])
    assert [s["name"] for s in imported.shared["mesh_services"]] == [
        "details", "productpage", "ratings", "reviews"]
    assert _service(imported, "reviews") == {
        "name": "reviews", "namespace": "default", "service_account": "bookinfo-reviews",
        "ports": [{"name": "http", "port": 9080, "protocol": "HTTP"}],
        "versions": ["v1", "v2", "v3"]}
    assert "from the port name 'http'" in _notes(imported, "reviews", "ports[0]")
    assert "v2 from the label version=v2 of Deployment default/reviews-v2" in \
        _notes(imported, "reviews", "versions")
    assert imported.shared["mesh_provider"] == "istio"
    assert imported.environment == {"mesh_environment": "dev",
                                    "mesh_stage": "permissive_mtls", "mesh_injected_waves": 0}
    # one namespace: waves of services, leaves first (no call is known: one wave)
    assert imported.shared["mesh_injection_waves"] == [
        {"name": "wave-1", "services": ["details", "productpage", "ratings", "reviews"]}]


def test_bookinfo_with_its_mesh_objects(samples):
    """The routes and subsets of bookinfo's own samples become the intent; what the intent
    cannot say (fault injection, a gateway's routes, egress) is kept and listed."""
    imported = _import(samples["bookinfo"],
                       samples["networking"] / "destination-rule-all.yaml",
                       samples["networking"] / "virtual-service-reviews-90-10.yaml",
                       samples["networking"] / "virtual-service-ratings-test-abort.yaml",
                       samples["networking"] / "bookinfo-gateway.yaml")
    reviews = _service(imported, "reviews")
    assert reviews["versions"] == ["v1", "v2", "v3"]
    assert reviews["canary"] == {"stable": "v1", "subset": "v2", "weight": 10}
    assert "VirtualService reviews" in _notes(imported, "reviews", "canary")
    assert _service(imported, "productpage")["ingress"] is True
    assert "routes gateway bookinfo-gateway" in _notes(imported, "productpage", "ingress")
    assert "traffic" not in _service(imported, "ratings")  # its fault route stays as it is
    kept = dict(imported.draft.listed)
    assert "http[0] has fault" in kept["VirtualService ratings"]
    assert "VirtualService bookinfo" in kept
    assert imported.environment["mesh_stage"] == "traffic"


def test_emojivoto(samples):
    imported = _import(samples["emojivoto"])
    web = _service(imported, "web-svc")
    assert web == {"name": "web-svc", "namespace": "emojivoto", "service_account": "web",
                   "ports": [{"name": "http", "port": 80, "protocol": "HTTP",
                              "target_port": 8080}],
                   "versions": ["v11"], "calls": ["emoji-svc", "voting-svc"]}
    assert "EMOJISVC_HOST of container web-svc" in _notes(imported, "web-svc", "calls")
    emoji = _service(imported, "emoji-svc")
    assert emoji["ports"] == [{"name": "grpc", "port": 8080, "protocol": "GRPC"},
                              {"name": "prom", "port": 8801, "protocol": "HTTP"}]
    assert "guessed from the port name 'prom'" in _notes(imported, "emoji-svc", "ports[1]")
    # a workload no Service selects is a client that calls
    assert _service(imported, "vote-bot") == {
        "name": "vote-bot", "namespace": "emojivoto", "service_account": "default",
        "ports": [], "calls": ["web-svc"]}
    assert "a client" in _notes(imported, "vote-bot")
    assert "the namespace's default account" in _notes(imported, "vote-bot",
                                                        "service_account")
    assert imported.shared["mesh_injection_waves"] == [
        {"name": "wave-1", "services": ["emoji-svc", "voting-svc"]},
        {"name": "wave-2", "services": ["web-svc"]},
        {"name": "wave-3", "services": ["vote-bot"]}]


def test_booksapp(samples):
    imported = _import(samples["booksapp"])
    webapp = _service(imported, "webapp")
    assert webapp == {"name": "webapp", "namespace": "default",
                      "ports": [{"name": "service", "port": 7000, "protocol": "HTTP"}],
                      "versions": [], "calls": ["authors", "books"], "probe_paths": ["/ping"]}
    assert "guessed from the readinessProbe httpGet" in _notes(imported, "webapp", "ports[0]")
    assert "no version label on its pods" in _notes(imported, "webapp", "versions")
    assert "its Service selects app=webapp,project=booksapp" not in _notes(imported, "webapp")
    # traffic is told its target in its arguments, with a port of the Service
    assert _service(imported, "traffic")["calls"] == ["webapp"]
    assert "args[1] of container traffic" in _notes(imported, "traffic", "calls")
    # authors and books call each other: one wave, after nothing
    assert imported.shared["mesh_injection_waves"][0] == {
        "name": "wave-1", "services": ["authors", "books"]}


@pytest.fixture(scope="module")
def export(samples, tmp_path_factory) -> Path:
    def documents(path: Path) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]

    target = tmp_path_factory.mktemp("export") / "cluster.yaml"
    target.write_text(yaml.safe_dump(cluster_export(
        [("bookinfo", documents(samples["bookinfo"])),
         ("emojivoto", documents(samples["emojivoto"])),
         ("booksapp", documents(samples["booksapp"]))],
        injected={"bookinfo": "istio", "emojivoto": "linkerd"})))
    return target


def test_a_cluster_export_reads_as_its_manifests_do(export, samples):
    imported = _import(export)
    services = {s["name"]: s for s in imported.shared["mesh_services"]}
    # ReplicaSets and Pods fold into their Deployment: one service each, as in the manifests
    assert sorted(services) == ["authors", "books", "details", "emoji-svc", "productpage",
                                "ratings", "reviews", "traffic", "vote-bot", "voting-svc",
                                "web-svc", "webapp"]
    assert services["reviews"]["versions"] == ["v1", "v2", "v3"]
    assert "Deployment bookinfo/reviews-v2" in _notes(imported, "reviews")
    assert services["webapp"]["calls"] == ["authors", "books"]
    # both meshes run; Istio has more objects, and the pods Linkerd injected cannot take
    # Istio's sidecar
    assert imported.shared["mesh_provider"] == "istio"
    assert services["web-svc"]["inject"] is False
    assert "already run linkerd's proxy (linkerd-proxy)" in _notes(imported, "web-svc",
                                                                   "inject")
    assert "inject" not in services["reviews"]
    # the injected namespaces are the first wave, injected already; emojivoto, whose every
    # service runs Linkerd's proxy (inject: false), is in none: never labelled for Istio
    assert imported.shared["mesh_injection_waves"] == [
        {"name": "injected", "namespaces": ["bookinfo"]},
        {"name": "wave-1", "namespaces": ["booksapp"]}]
    assert imported.environment["mesh_injected_waves"] == 1
    assert imported.environment["mesh_stage"] == "injection"


def test_a_cluster_export_imported_for_linkerd(export):
    imported = _import(export, provider="linkerd", environment="staging")
    services = {s["name"]: s for s in imported.shared["mesh_services"]}
    assert imported.shared["mesh_provider"] == "linkerd"
    assert services["reviews"]["inject"] is False
    assert "inject" not in services["web-svc"]
    assert imported.environment["mesh_environment"] == "staging"


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
@pytest.mark.parametrize("sample", ["bookinfo", "emojivoto", "booksapp", "export"])
def test_imported_inventories_render_every_stage_without_an_error(sample, provider, samples,
                                                                  export, crd_dir, tmp_path):
    path = export if sample == "export" else samples[sample]
    imported = _import(path, provider=provider)
    for stage in STAGE_NAMES:
        rendered = render_stage({**imported.intent_variables, "mesh_stage": stage},
                                StageOptions(gitops_dir=tmp_path / stage, crd_dirs=[crd_dir],
                                             check_paths=[path]))
        assert rendered.objects, stage
        assert not [w for w in rendered.warnings if "MST03" in w], (stage, rendered.warnings)
