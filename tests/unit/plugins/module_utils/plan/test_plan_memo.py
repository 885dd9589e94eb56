"""The last run's intent and plan answer a run with the same inputs, and only that run."""

from __future__ import annotations

import pickle
import subprocess
from pathlib import Path

import pytest
from cache_helpers import counting as counting_calls
from cache_helpers import open_cache
from plan_helpers import every_inventory
from test_estates import estate_variables

from ansible_collections.meshstage.mesh.plugins.module_utils import pipeline
from ansible_collections.meshstage.mesh.plugins.module_utils._plain import plain_data
from ansible_collections.meshstage.mesh.plugins.module_utils.flows import stage as flow_stage
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
    run_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.plan.memo import PlanMemo
from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import (
    BUILTIN_TEMPLATES,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.stage_cache import (
    CACHE_DIR,
    StageCache,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import (
    SchemaRegistry,
)


def counting(monkeypatch) -> list[str]:
    """What is parsed and planned from now on: "parse", "plan"."""
    return counting_calls(monkeypatch, {"parse_plain_intent": lambda args: "parse",
                                        "plan_stage": lambda args: "plan"})


def test_a_run_with_the_same_variables_parses_plans_and_checks_nothing_anew(
        tmp_path, crd_dir, example_intent, monkeypatch):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    first = run_stage(example_intent("dev"), options)
    # the example's warnings include the parse's own (the short form of ``versions``)
    assert any("versions" in warning for warning in first.warnings)

    def refuse(*args, **kwargs):
        raise AssertionError("done again")

    for name in ("parse_plain_intent", "plan_stage", "analyze_rendered", "runbook_section"):
        monkeypatch.setattr(pipeline, name, refuse)
    monkeypatch.setattr(flow_stage, "proof_of", refuse)  # the proof is the one kept
    again = run_stage(example_intent("dev"), options)
    assert not again.changed
    assert again.warnings == first.warnings  # each once: none kept twice
    # what the kept intent and plan render is what parsing and planning render
    monkeypatch.undo()
    kept = render_stage(example_intent("dev"), options, cache=open_cache(gitops, "dev", options))
    fresh = render_stage(example_intent("dev"), options)
    assert kept.files == fresh.files and kept.warnings == fresh.warnings
    assert kept.plan.objects == fresh.plan.objects and kept.intent == fresh.intent


def test_changed_variables_are_parsed_and_planned_again(tmp_path, crd_dir, example_intent,
                                                        monkeypatch):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    calls = counting(monkeypatch)
    result = run_stage(example_intent("prod", mesh_stage="observability"), options)
    assert result.changed and calls == ["parse", "plan"]
    calls.clear()
    assert not run_stage(example_intent("prod", mesh_stage="observability"), options).changed
    assert calls == []


def test_the_recorded_canary_runs_are_part_of_the_key(tmp_path, example_intent):
    gitops = tmp_path / "gitops"
    subprocess.run(["git", "init", "-q", str(gitops)], check=True)
    options = StageOptions(gitops_dir=gitops)
    variables = plain_data(example_intent("prod"))
    cache = open_cache(gitops, "prod", options)
    memo = PlanMemo(cache, variables, {})
    assert memo.parsed() is None
    intent, warnings, canary = pipeline._parse(variables, {})
    plan = pipeline.plan_stage(intent, None)
    memo.keep(intent, warnings, canary, None, plan)
    cache.save()

    cache = open_cache(gitops, "prod", options)
    kept = PlanMemo(cache, variables, {})
    assert kept.parsed() is not None and kept.plan(None) is not None
    assert kept.parsed()[0] == intent and kept.parsed()[1] == warnings
    runs = {"reviews": [{"version": "v3", "step": 1, "weight": 10}]}
    assert PlanMemo(cache, variables, {"canary": runs}).parsed() is None
    assert PlanMemo(cache, {**variables, "mesh_stage": "traffic"}, {}).parsed() is None


def test_a_changed_estate_is_planned_again_from_the_kept_intent(tmp_path, crd_dir,
                                                                monkeypatch):
    variables, paths = estate_variables("bookinfo")
    manifests = tmp_path / "estate.yaml"
    manifests.write_text("\n---\n".join(path.read_text() for path in paths))
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir], check_paths=[manifests])
    run_stage(variables, options)
    calls = counting(monkeypatch)
    assert not run_stage(variables, options).changed
    assert calls == []
    # a new Deployment in the estate: the planners read the estate, so the plan is made
    # again; the intent does not depend on it
    with manifests.open("a") as stream:
        stream.write("\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
                     "  name: extra\n  namespace: default\nspec:\n  selector:\n"
                     "    matchLabels: {app: extra}\n  template:\n    metadata:\n"
                     "      labels: {app: extra}\n    spec:\n      containers:\n"
                     "      - {name: extra, image: extra:1}\n")
    run_stage(variables, options)
    assert calls == ["plan"]


class _Runs:
    """Whatever unpickles this calls os.system: the kept plan must never build it."""

    def __reduce__(self):
        import os
        return (os.system, ("touch ran",))


def test_a_kept_plan_that_names_another_class_builds_nothing(tmp_path, crd_dir,
                                                             example_intent, monkeypatch):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    stage = gitops / ".git" / CACHE_DIR / "stage-prod.pickle"
    document = pickle.loads(stage.read_bytes())
    key, _data = document["plan"]
    document["plan"] = [key, pickle.dumps(_Runs())]
    stage.write_bytes(pickle.dumps(document))
    monkeypatch.chdir(tmp_path)
    calls = counting(monkeypatch)
    assert not run_stage(example_intent("prod"), options).changed
    assert not (tmp_path / "ran").exists()
    assert calls == ["parse", "plan"]  # ignored, as if there were none


def _text(value: str) -> bytes:
    data = value.encode()
    return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE


MODULE_UTILS = "ansible_collections.meshstage.mesh.plugins.module_utils"
# a class, then BUILD with (None, {attribute: value}): setattr on the class itself
SETS_A_CLASS_ATTRIBUTE = (b"\x80\x04" + _text(f"{MODULE_UTILS}.plan.model")
                          + _text("PlannedObject") + b"\x93" + b"N}" + _text("filename")
                          + _text("same.yaml") + b"s\x86b.")
# Stage("traffic") is the enum's own member: BUILD changes its value for the process
SETS_AN_ENUM_MEMBER = (b"\x80\x04" + _text(f"{MODULE_UTILS}.stages") + _text("Stage")
                       + b"\x93" + _text("traffic") + b"\x85R}" + _text("_value_")
                       + _text("strict_mtls") + b"sb.")
# a name with a dot reaches what a meshstage module imported (here the signal module)
NAMES_ANOTHER_MODULE = (b"\x80\x04" + _text(f"{MODULE_UTILS}._fork")
                        + _text("signal.Signals") + b"\x93.")


@pytest.mark.parametrize("planted", [SETS_A_CLASS_ATTRIBUTE, SETS_AN_ENUM_MEMBER,
                                     NAMES_ANOTHER_MODULE, pickle.dumps(_Runs())])
def test_a_kept_plan_that_changes_a_class_is_refused_and_the_class_put_back(
        tmp_path, crd_dir, example_intent, monkeypatch, planted):
    from ansible_collections.meshstage.mesh.plugins.module_utils.plan.model import (
        PlannedObject,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.stages import Stage

    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    stage = gitops / ".git" / CACHE_DIR / "stage-prod.pickle"
    document = pickle.loads(stage.read_bytes())
    document["plan"] = [document["plan"][0], planted]
    stage.write_bytes(pickle.dumps(document))
    monkeypatch.chdir(tmp_path)
    calls = counting(monkeypatch)
    assert not run_stage(example_intent("prod"), options).changed
    assert calls == ["parse", "plan"]  # refused: parsed and planned as if there were none
    assert not (tmp_path / "ran").exists()
    assert "filename" not in vars(PlannedObject) or \
        not isinstance(vars(PlannedObject)["filename"], str)
    assert Stage.TRAFFIC.value == "traffic" and Stage("strict_mtls") is Stage.STRICT_MTLS


def test_a_plan_made_from_an_estate_pickle_refuses_is_never_taken_as_the_same(
        tmp_path, example_intent, monkeypatch):
    from ansible_collections.meshstage.mesh.plugins.module_utils.plan import memo as plan_memo

    gitops = tmp_path / "gitops"
    subprocess.run(["git", "init", "-q", str(gitops)], check=True)
    options = StageOptions(gitops_dir=gitops)
    monkeypatch.setattr(plan_memo, "_estate_key", lambda estate: None)
    variables = plain_data(example_intent("prod"))
    cache = open_cache(gitops, "prod", options)
    memo = PlanMemo(cache, variables, {})
    intent, warnings, canary = pipeline._parse(variables, {})
    memo.keep(intent, warnings, canary, None, pipeline.plan_stage(intent, None))
    cache.save()
    kept = PlanMemo(open_cache(gitops, "prod", options), variables, {})
    assert kept.parsed() is not None  # the intent does not depend on the estate
    assert kept.plan(None) is None


def test_with_templates_of_the_users_the_plan_is_kept_before_they_render(
        tmp_path, crd_dir, example_intent):
    """A template may change the values it is given; what is kept is what planning gave."""
    templates = tmp_path / "templates" / "istio"
    templates.mkdir(parents=True)
    builtin = BUILTIN_TEMPLATES / "istio" / "sidecar.yaml.j2"
    (templates / "sidecar.yaml.j2").write_text(
        builtin.read_text() + "{% set _ = egress_hosts.append('./changed.local') %}")
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir],
                           template_dirs=[tmp_path / "templates"])
    first = run_stage(example_intent("dev"), options)
    assert any(name.startswith("Sidecar ") for name in first.objects["added"])
    again = run_stage(example_intent("dev"), options)
    assert not again.changed


def test_check_mode_keeps_no_plan(tmp_path, crd_dir, example_intent, monkeypatch):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    calls = counting(monkeypatch)
    checked = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir], check_mode=True)
    run_stage(example_intent("prod", mesh_stage="observability"), checked)
    run_stage(example_intent("prod", mesh_stage="observability"), checked)
    assert calls == ["parse", "plan", "parse", "plan"]


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def test_the_plan_kept_is_the_one_planning_gave(tmp_path, registry, monkeypatch):
    """The memo pickles the intent and the plan late (while the proof runs): nothing after
    planning changes them, on every example inventory at every stage and on every estate."""
    planned: list[bytes] = []
    kept: list[bytes] = []
    plan = pipeline.plan_stage
    keep = PlanMemo.keep

    def planning(intent, estate):
        result = plan(intent, estate)
        planned.append(pickle.dumps((intent, result)))
        return result

    def keeping(self, intent, warnings, canary, estate, result, keys=None, section=None):
        kept.append(pickle.dumps((intent, result)))
        return keep(self, intent, warnings, canary, estate, result, keys, section)

    monkeypatch.setattr(pipeline, "plan_stage", planning)
    monkeypatch.setattr(PlanMemo, "keep", keeping)
    count = 0
    for variables, paths in every_inventory():
        cache = StageCache(None, variables["mesh_environment"], "renderer", "schema")
        render_stage(variables, StageOptions(gitops_dir=tmp_path / "none", check_paths=paths),
                     registry, cache=cache)
        count += 1
    assert len(planned) == len(kept) == count
    assert planned == kept


def test_a_run_that_loads_the_plan_looks_its_renderings_up_by_the_keys_kept(
        tmp_path, crd_dir, example_intent, monkeypatch):
    from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import (
        Renderer,
    )

    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    first = run_stage(example_intent("dev"), options)
    made: list[int] = []
    keys_of = Renderer.keys_of

    def counted(self, items):
        made.append(len(items))
        return keys_of(self, items)

    monkeypatch.setattr(Renderer, "keys_of", counted)
    calls = counting(monkeypatch)
    again = run_stage(example_intent("dev"), options)
    assert not again.changed and again.warnings == first.warnings
    assert calls == [] and made == []  # no context pickled and hashed again
    # a changed inventory is planned again, and its objects' keys made from the new plan
    assert run_stage(example_intent("dev", mesh_stage="traffic"), options).changed
    assert calls == ["parse", "plan"] and len(made) == 1 and made[0] > 0


def test_the_keys_kept_are_the_ones_the_loaded_plan_gives(tmp_path, registry):
    """The keys a run keeps with its plan, made from the contexts before pickling, are the
    ones the plan read back gives, and its canary section the one the intent read back
    gives: on every example inventory at every stage and on every estate."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import (
        Renderer,
    )

    gitops = tmp_path / "gitops"
    subprocess.run(["git", "init", "-q", str(gitops)], check=True)
    count = 0
    for variables, paths in every_inventory():
        options = StageOptions(gitops_dir=gitops, check_paths=paths)
        environment = variables["mesh_environment"]
        cache = open_cache(gitops, environment, options)
        render_stage(variables, options, registry, cache=cache, prove=False)
        cache.save()
        cache = open_cache(gitops, environment, options)
        memo = PlanMemo(cache, plain_data(variables), {})
        parsed = memo.parsed()
        assert parsed is not None
        estate = pipeline.Estate.read(paths) if paths else None
        plan = memo.plan(estate)
        assert plan is not None
        kept = memo.render_keys(plan)
        assert kept is not None and len(kept) == len(plan.objects)
        items = [(planned.template, planned.context) for planned in plan.objects]
        assert kept == Renderer(cache=cache).keys_of(items)
        # and the canary section kept is the one the intent and canary state read back give
        assert memo.canary_section() == pipeline.runbook_section(parsed[0], parsed[2])
        count += 1
    assert count > 10


def test_keys_kept_under_another_renderer_or_by_an_older_memo_are_made_again(
        tmp_path, crd_dir, example_intent, monkeypatch):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    variables = plain_data(example_intent("prod"))
    run_stage(variables, options)
    cache = open_cache(gitops, "prod", options)
    memo = PlanMemo(cache, variables, {})
    plan = memo.plan(None)
    assert plan is not None and memo.render_keys(plan) is not None
    assert memo.render_keys(pipeline.plan_stage(memo.parsed()[0], None)) is None  # not kept
    cache.renderer_key = "another renderer"
    assert memo.render_keys(plan) is None

    # a memo kept before the keys and the canary section were (five or six parts) is read
    # without what it lacks, and kept again with it by the next run
    stage = gitops / ".git" / CACHE_DIR / "stage-prod.pickle"
    for parts in (5, 6):
        document = pickle.loads(stage.read_bytes())
        key, data = document["plan"]
        document["plan"] = [key, pickle.dumps(pickle.loads(data)[:parts],
                                              protocol=pickle.HIGHEST_PROTOCOL)]
        stage.write_bytes(pickle.dumps(document))
        old = PlanMemo(open_cache(gitops, "prod", options), variables, {})
        assert old.parsed() is not None and old.canary_section() is None
        assert (old.render_keys(old.plan(None)) is None) is (parts == 5)
        calls = counting(monkeypatch)
        assert not run_stage(variables, options).changed
        assert calls == []
        monkeypatch.undo()
        again = PlanMemo(open_cache(gitops, "prod", options), variables, {})
        assert again.render_keys(again.plan(None)) is not None
        assert again.canary_section() == pipeline.runbook_section(*again.parsed()[::2])
