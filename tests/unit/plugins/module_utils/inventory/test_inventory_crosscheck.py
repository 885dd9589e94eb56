"""Every run given ``mesh_check_paths`` checks the inventory against the estate: what the
inventory says of a service that its Service and pods contradict is a Warning naming the
inventory field and the manifest, in the run's warnings and its runbook."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.paths import (
    relative_to_inventory,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

ESTATE = Path(__file__).resolve().parents[4] / "data" / "estate"


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_the_example_inventories_agree_with_their_estate(environment, example_intent,
                                                         tmp_path):
    rendered = render_stage(example_intent(environment),
                            StageOptions(gitops_dir=tmp_path, check_paths=[ESTATE]))
    assert not [w for w in rendered.warnings if "MST03" in w]


def test_what_a_newcomer_gets_wrong_is_said_in_the_run(example_intent, tmp_path):
    """At the injection stage, stages before any route or subset would refuse a version
    that selects no pod (IST0173, at traffic): the run says it now."""
    variables = example_intent("dev", mesh_stage="injection")
    services = copy.deepcopy(variables["mesh_services"])
    reviews = next(s for s in services if s["name"] == "reviews")
    reviews["ports"] = [{"name": "htp", "port": 9080, "protocol": "TCP"}]   # typo, wrong kind
    reviews["versions"] = ["v1", "v2", "v3", "v4"]                          # v4 runs nowhere
    details = next(s for s in services if s["name"] == "details")
    details["service_account"] = "details"                                 # not its account
    rendered = render_stage({**variables, "mesh_services": services},
                            StageOptions(gitops_dir=tmp_path, check_paths=[ESTATE]))
    found = [w for w in rendered.warnings if "MST03" in w]
    assert found == [
        "Warning MST0307 Service bookinfo/details: mesh_services[1] (details).service_account: "
        "'details' is not the account its pods run as (bookinfo-details): its principal would "
        "admit no caller and name no callee",
        "Warning MST0303 Service bookinfo/reviews: mesh_services[2] (reviews).ports[0].name: "
        "'htp' is not the Service's name of port 9080 ('http') (spec.ports[0])",
        "Warning MST0304 Service bookinfo/reviews: mesh_services[2] (reviews).ports[0].protocol: "
        "TCP contradicts the Service, whose port 9080 says HTTP (its name) (spec.ports[0])",
        "Warning MST0306 Service bookinfo/reviews: mesh_services[2] (reviews).versions[3] (v4): "
        "no pod of the service carries version=v4: the version's routes and subsets would "
        "select nothing; label the pods, or give the version the labels they carry"]
    assert found[1] in rendered.files["envs/dev/RUNBOOK.md"]


def test_a_workload_the_inventory_would_inject_without_knowing_it(example_intent, tmp_path):
    estate = tmp_path / "estate"
    estate.mkdir()
    for path in ESTATE.iterdir():
        (estate / path.name).write_text(path.read_text())
    (estate / "report.yaml").write_text(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: report, namespace: payments}\n"
        "spec:\n  jobTemplate:\n    spec:\n      template:\n        metadata: {labels: "
        "{app: report}}\n        spec: {containers: [{name: report}]}\n")
    rendered = render_stage(example_intent("dev"),
                            StageOptions(gitops_dir=tmp_path / "gitops", check_paths=[estate]))
    (warning,) = [w for w in rendered.warnings if "MST0308" in w]
    assert warning.startswith("Warning MST0308 CronJob payments/report: mesh_services: CronJob "
                              "payments/report runs in namespace payments, which the "
                              "inventory injects")


def test_relative_check_paths_are_read_from_the_inventory_and_said_so():
    paths, notes = relative_to_inventory(["../../estate", "/abs/estate.yaml"],
                                         "/srv/inventories/dev")
    assert paths == [Path("/srv/inventories/dev/../../estate"), Path("/abs/estate.yaml")]
    assert notes == ["mesh_check_paths: ../../estate is relative, read as "
                     "/srv/inventories/dev/../../estate (relative to the inventory "
                     "/srv/inventories/dev)"]


def test_a_check_path_may_say_the_namespace_of_its_objects_that_name_none():
    from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
        ManifestPath,
    )
    paths, notes = relative_to_inventory(
        [{"path": "../../estate", "namespace": "shop"}, "~/export.yaml"], "/srv/inventories/dev")
    assert paths == [ManifestPath(Path("/srv/inventories/dev/../../estate"), "shop"),
                     Path("~/export.yaml").expanduser()]
    assert str(paths[0]) == "/srv/inventories/dev/../../estate"
    assert len(notes) == 1


@pytest.mark.parametrize("entry,field,message", [
    ({"path": "estate", "namespace": "Shop"}, "mesh_check_paths[0].namespace",
     "must be a namespace name"),
    ({"namespace": "shop"}, "mesh_check_paths[0].path", "must be a non-empty path"),
    ({"path": "estate", "ns": "shop"}, "mesh_check_paths[0].ns", "is not a known key here"),
    (7, "mesh_check_paths[0]", "is neither a path nor a mapping"),
])
def test_a_check_path_entry_that_is_wrong_names_its_field(entry, field, message):
    from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentErrors
    with pytest.raises(IntentErrors, match=re.escape(field) + r".*" + message):
        relative_to_inventory([entry], "/srv/inventories/dev")


def test_a_manifest_path_reads_its_objects_that_name_no_namespace_into_its_own(tmp_path):
    from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
        ManifestPath,
        read_manifests,
    )
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                                     "---\napiVersion: v1\nkind: Service\n"
                                     "metadata: {name: db, namespace: data}\n")
    found = read_manifests([ManifestPath(tmp_path / "a.yaml", "shop"), tmp_path / "a.yaml"])
    assert [(r.namespace, r.name) for r in found.resources] == [
        ("shop", "web"), ("data", "db"), ("default", "web"), ("data", "db")]
