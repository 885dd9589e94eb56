"""Sync units: bounded, stable, in the apply order, each a folder kustomize builds alone."""

from __future__ import annotations

import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
import yaml
from conftest import load_example_intent

from ansible_collections.meshstage.mesh.plugins.module_utils.cluster.apply import apply_rank
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
    run_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render import sync
from ansible_collections.meshstage.mesh.plugins.module_utils.render import (
    units as units_module,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.units import (
    SyncUnit,
    UnitKey,
    dependencies,
    place_units,
    split_bits,
    sync_order,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.stages import Stage

TRAFFIC, STRICT = Stage.TRAFFIC, Stage.STRICT_MTLS


def keys(count: int, stage: Stage = TRAFFIC, rank: int = 4, scope: str = "shop") -> list[UnitKey]:
    return [UnitKey(stage, rank, scope, f"virtualservice.{scope}.svc-{index:05d}.yaml")
            for index in range(count)]


def test_objects_of_one_stage_rank_and_namespace_share_a_unit():
    units = place_units([*keys(3), *keys(2, scope="data"), *keys(1, rank=3)])[0]
    assert [unit.folder for unit in units] == [
        "04-traffic/04-shop", "04-traffic/04-shop", "04-traffic/04-shop",
        "04-traffic/04-data", "04-traffic/04-data", "04-traffic/03-shop"]


@pytest.mark.parametrize("count", [11, 40, 100, 1000])
def test_no_unit_is_over_the_limit(count):
    units = place_units(keys(count), limit=10)[0]
    sizes = {unit: units.count(unit) for unit in set(units)}
    assert max(sizes.values()) <= 10
    assert len(sizes) == 1 << split_bits([zlib.crc32(k.filename.encode()) for k in keys(count)],
                                         10)


def test_a_split_keeps_part_zero_and_moves_objects_only_to_new_parts():
    """Growing past the limit cuts a unit in two: the objects that stay keep their unit,
    the others go to a part the unit did not have, which syncs before part 0 gives them up."""
    before = place_units(keys(10), limit=10)[0]
    after = place_units(keys(11), limit=10)[0]
    assert set(before) == {SyncUnit(TRAFFIC, 4, "shop")}
    moved = [new for old, new in zip(before, after, strict=False) if old != new]
    assert moved and all(unit.part > 0 for unit in moved)
    assert {unit.folder for unit in after} >= {"04-traffic/04-shop", "04-traffic/04-shop.1"}
    part_one, part_zero = sync_order(set(after))
    assert (part_one.part, part_zero.part) == (1, 0)
    assert dependencies(set(after), frozenset())[part_zero] == [part_one]


def test_units_sync_in_the_apply_order_then_the_stage():
    strict = SyncUnit(Stage.PERMISSIVE_MTLS, 7, "istio-system")  # mesh-wide STRICT
    exception = SyncUnit(STRICT, 6, "payments")
    routes = SyncUnit(TRAFFIC, 4, "payments")
    sidecars = SyncUnit(TRAFFIC, 3, "payments")
    assert sync_order([strict, exception, routes, sidecars]) == \
        [sidecars, routes, exception, strict]


def test_a_unit_waits_for_its_namespace_and_the_mesh_wide_units_before_it():
    namespaces = SyncUnit(Stage.INJECTION, 1, "cluster")
    shop_routes = SyncUnit(TRAFFIC, 4, "shop")
    data_routes = SyncUnit(TRAFFIC, 4, "data")
    exception = SyncUnit(STRICT, 6, "data")
    strict = SyncUnit(Stage.PERMISSIVE_MTLS, 7, "istio-system")
    shop_allow = SyncUnit(Stage.AUTHORIZATION, 9, "shop")
    waits = dependencies([namespaces, shop_routes, data_routes, exception, strict, shop_allow],
                         frozenset({"cluster", "istio-system"}))
    assert waits[namespaces] == []
    assert waits[shop_routes] == [namespaces]
    assert waits[exception] == [namespaces, data_routes]
    # the mesh-wide STRICT waits for the last unit of every namespace before it
    assert waits[strict] == [namespaces, shop_routes, exception]
    assert waits[shop_allow] == [namespaces, shop_routes, strict]


@pytest.fixture(scope="module")
def dev(crd_dir, tmp_path_factory):
    options = StageOptions(gitops_dir=tmp_path_factory.mktemp("unused"), crd_dirs=[crd_dir])
    return render_stage(load_example_intent("dev"), options)


def test_units_apply_their_objects_in_the_order_the_playbook_applies_them(dev):
    """Syncing the units one after the other applies the objects in ``apply_order``'s
    order: the GitOps tools and ``cluster_apply`` agree."""
    placed = [item for item in dev.objects if item.unit is not None]
    assert all(item.unit.rank == apply_rank(item.obj) for item in placed)
    in_sync_order = sorted(placed, key=lambda item: item.unit.position)
    ranks = [apply_rank(item.obj) for item in in_sync_order]
    assert ranks == sorted(ranks)
    assert {item.unit.stage for item in placed} == set(Stage)


def test_every_unit_and_the_whole_environment_build_with_kubectl(dev, tmp_path):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (with kustomize) is not installed on this machine")
    for path, text in dev.files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    units = sorted({item.unit for item in dev.objects if item.unit is not None},
                   key=lambda unit: unit.folder)
    built = 0
    for unit in units:
        output = kustomize(tmp_path / "envs" / "dev" / unit.folder)
        built += len(output)
        assert {doc["metadata"].get("namespace", "cluster") for doc in output} == {unit.scope}
    whole = kustomize(tmp_path / "envs" / "dev")
    assert built == len(whole) == len([item for item in dev.objects if item.unit is not None])


def test_the_sync_objects_name_every_unit_once(dev):
    appset = next(item.obj for item in dev.objects if item.kind == "ApplicationSet")
    elements = appset["spec"]["generators"][0]["list"]["elements"]
    units = {item.unit for item in dev.objects if item.unit is not None}
    assert sorted(e["unit"] for e in elements) == sorted(unit.folder for unit in units)
    steps = [step["matchExpressions"][0]["values"][0]
             for step in appset["spec"]["strategy"]["rollingSync"]["steps"]]
    assert steps == sorted(set(steps), key=lambda wave: [e["wave"] for e in elements]
                           .index(wave))
    flux = {item.obj["metadata"]["name"]: item.obj for item in dev.objects
            if item.kind == "Kustomization" and item.path.count("/") == 4}
    assert sorted(flux) == sorted(unit.name("dev") for unit in units)
    for obj in flux.values():
        for dependency in obj["spec"].get("dependsOn", []):
            assert dependency["name"] in flux


def kustomize(folder: Path) -> list[dict]:
    result = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True,
                            text=True, check=True, timeout=120)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_a_cut_is_kept_when_the_unit_shrinks():
    """Undoing a cut would move objects back into part 0 while their part's unit is deleted,
    and Argo CD or Flux would prune them with it: a unit keeps the cut it was given."""
    grown, cuts = place_units(keys(11), limit=10)
    assert cuts == {"04-traffic/04-shop": 1}
    shrunk, kept = place_units(keys(6), limit=10, kept=cuts)
    assert shrunk == grown[:6] and kept == cuts
    assert {unit.part for unit in shrunk} == {0, 1}
    fresh, none = place_units(keys(6), limit=10)
    assert {unit.part for unit in fresh} == {0} and none == {}


@pytest.mark.parametrize("recorded", ["1", -1, 17, True, None, 1.0])
def test_a_recorded_cut_that_is_no_bit_count_is_ignored(recorded):
    units, cuts = place_units(keys(6), limit=10, kept={"04-traffic/04-shop": recorded})
    assert {unit.part for unit in units} == {0} and cuts == {}


def test_a_stage_of_more_flux_units_than_the_limit_is_cut_in_sync_folders(
        crd_dir, tmp_path, monkeypatch):
    """No folder of Flux Kustomizations holds more than the limit: the stage's folder is cut
    in parts; part 0 keeps its name and waits for the other parts, which do not wait for
    their units; each unit's Kustomization is in exactly one folder; the cut is recorded."""
    monkeypatch.setattr(sync, "MAX_UNIT_OBJECTS", 2)
    options = StageOptions(gitops_dir=tmp_path / "unused", crd_dirs=[crd_dir])
    rendered = render_stage(load_example_intent("dev"), options)
    flux = "sync/dev/flux/"
    kustomizations = [item for item in rendered.objects if item.kind == "Kustomization"
                      and item.path.startswith(flux)]
    folders: dict[str, list[str]] = {}
    for item in kustomizations:
        folder = item.path[len(flux):].rpartition("/")[0]
        if folder:
            folders.setdefault(folder, []).append(item.obj["metadata"]["name"])
    assert max(len(names) for names in folders.values()) <= 2
    units = {item.unit for item in rendered.objects if item.unit is not None}
    assert sorted(name for names in folders.values() for name in names) == \
        sorted(unit.name("dev") for unit in units)
    parents = {item.obj["metadata"]["name"]: item.obj for item in kustomizations
               if item.path.count("/") == 3}
    for folder in folders:
        stage, _, part = folder.partition(".")
        parent = parents[f"meshstage-dev-{folder}"]
        assert parent["spec"]["path"] == f"./{flux}{folder}"
        if part:
            assert parent["spec"]["wait"] is False
            assert {"name": f"meshstage-dev-{folder}"} in \
                parents[f"meshstage-dev-{stage}"]["spec"]["dependsOn"]
        else:
            assert parent["spec"]["wait"] is True
    cut = {key: bits for key, bits in rendered.record()["unit_cuts"].items()
           if key.startswith("flux/")}
    assert cut and all(f"{key[len('flux/'):]}.1" in folders for key in cut)
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (with kustomize) is not installed on this machine")
    for path, text in rendered.files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    for folder, names in folders.items():
        built = kustomize(tmp_path / flux / folder)
        assert sorted(doc["metadata"]["name"] for doc in built) == sorted(names)


def test_the_repository_keeps_the_cuts_it_recorded(crd_dir, tmp_path, monkeypatch):
    """A run records its cuts with the environment; a later run that would need none keeps
    them, so nothing moves and nothing is committed."""
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    monkeypatch.setattr(units_module, "MAX_UNIT_OBJECTS", 1)
    monkeypatch.setattr(sync, "MAX_UNIT_OBJECTS", 1)
    first = run_stage(load_example_intent("dev"), options)
    cuts = GitOpsRepo(gitops).scope_meta("dev")["unit_cuts"]
    assert any(key.startswith("flux/") for key in cuts)
    assert any(not key.startswith("flux/") for key in cuts)
    tree = sorted(path.relative_to(gitops) for path in gitops.rglob("*.yaml")
                  if ".git" not in path.parts)
    monkeypatch.setattr(units_module, "MAX_UNIT_OBJECTS", 500)
    monkeypatch.setattr(sync, "MAX_UNIT_OBJECTS", 500)
    again = run_stage(load_example_intent("dev"), options)
    assert first.commit and not again.changed and again.commit is None
    assert sorted(path.relative_to(gitops) for path in gitops.rglob("*.yaml")
                  if ".git" not in path.parts) == tree
