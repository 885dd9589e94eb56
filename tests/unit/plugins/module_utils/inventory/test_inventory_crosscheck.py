"""Every run given ``mesh_check_paths`` checks the inventory against the estate: what the
inventory says of a service that its Service and pods contradict is a Warning naming the
inventory field and the manifest, in the run's warnings and its runbook."""

from __future__ import annotations

import copy
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
