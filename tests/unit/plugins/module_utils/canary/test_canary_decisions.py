"""Canary runs: the pure decisions, the record, and how the record shapes the intent."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.canary.decisions import (
    decide,
    judge_step,
    roll_back_by_hand,
    start,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.canary.messages import (
    commit_for,
    runbook_section,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.canary.queries import Figures
from ansible_collections.meshstage.mesh.plugins.module_utils.canary.record import (
    CanaryError,
    CanaryState,
    Decision,
    Status,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.canary.shaping import effective_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.model import (
    CanaryAnalysis,
    WeightedSubset,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent

ANALYSIS = CanaryAnalysis(interval="30s", success_rate=99.0, latency_p99="250ms",
                          min_requests=20, max_waits=2)

VARIABLES: dict[str, Any] = {
    "mesh_environment": "dev",
    "mesh_stage": "traffic",
    "mesh_services": [
        {"name": "web", "namespace": "shop", "versions": ["v1"], "calls": ["api"]},
        {"name": "api", "namespace": "shop", "versions": ["v1", "v2", "v3"],
         "canary": {"stable": "v1", "subset": "v2", "weight": 5, "steps": [10, 50, 100],
                    "analysis": {"interval": "30s", "min_requests": 20, "max_waits": 2,
                                 "latency_p99": "250ms"}},
         "traffic": {"header_routes": [
             {"headers": {"x-old": {"exact": "1"}}, "subset": "v1"},
             {"headers": {"x-new": {"exact": "1"}}, "subset": "v2"}]}},
    ],
}


def figures(requests: float, errors: float = 0, p99: float | None = 12.0,
            window: float = 30) -> Figures:
    return Figures(requests=requests, errors=errors, latency_p99_ms=p99, window_s=window)


def intent_of(variables: dict[str, Any] | None = None):
    return parse_intent(variables or VARIABLES)[0]


# --------------------------------------------------------------------------- judge


@pytest.mark.parametrize(("measured", "waits", "last", "decision", "check", "reason"), [
    pytest.param(figures(100), 0, False, Decision.ADVANCE, "all checks",
                 "100 requests, success rate 100.00%, p99 latency 12.0ms: within the "
                 "thresholds", id="healthy-advances"),
    pytest.param(figures(100), 0, True, Decision.PROMOTE, "all checks",
                 "100 requests, success rate 100.00%, p99 latency 12.0ms: within the "
                 "thresholds", id="healthy-last-step-promotes"),
    pytest.param(figures(100, errors=1), 0, False, Decision.ADVANCE, "all checks",
                 "100 requests, success rate 99.00%, p99 latency 12.0ms: within the "
                 "thresholds", id="at-the-threshold-passes"),
    pytest.param(figures(100, errors=20), 0, False, Decision.ROLLBACK, "success rate",
                 "success rate 80.00% is under 99%", id="failing-fifth-rolls-back"),
    pytest.param(figures(100, p99=400), 0, False, Decision.ROLLBACK, "p99 latency",
                 "p99 latency 400.0ms is over 250ms", id="slow-rolls-back"),
    pytest.param(figures(100, errors=5, p99=400), 0, True, Decision.ROLLBACK, "success rate",
                 "success rate 95.00% is under 99%", id="success-rate-is-checked-first"),
    pytest.param(figures(19), 0, False, Decision.WAIT, "request count",
                 "too few requests: 19 in 30s, at least 20 needed", id="too-few-waits"),
    pytest.param(figures(0, p99=None), 1, False, Decision.WAIT, "request count",
                 "too few requests: 0 in 30s, at least 20 needed", id="none-waits"),
    pytest.param(figures(3, errors=3, window=90), 2, False, Decision.HALT, "request count",
                 "too few requests: 3 in 90s, at least 20 needed, after 2 wait(s)",
                 id="too-few-after-max-waits-halts"),
])
def test_judge(measured, waits, last, decision, check, reason):
    verdict = judge_step(measured, ANALYSIS, waits, last)
    assert (verdict.decision, verdict.check, verdict.reason) == (decision, check, reason)


def test_judge_waits_for_a_lagging_latency_figure_then_halts():
    waiting = judge_step(figures(100, p99=None), ANALYSIS, 0, False)
    assert (waiting.decision, waiting.check) == (Decision.WAIT, "p99 latency")
    assert waiting.reason == ("100 requests but no p99 latency: the latency histogram has no "
                              "data yet")
    halted = judge_step(figures(100, p99=None), ANALYSIS, ANALYSIS.max_waits, False)
    assert (halted.decision, halted.check) == (Decision.HALT, "p99 latency")
    assert halted.reason.endswith(f"after {ANALYSIS.max_waits} wait(s); the analysis cannot decide")


# --------------------------------------------------------------------------- the run


def test_a_run_walks_its_steps_then_promotes():
    canary = intent_of().service("api").canary
    run = start("api", canary)
    assert (run.status, run.step, run.weight) == (Status.PROGRESSING, 1, 10)
    passed = judge_step(figures(100), ANALYSIS, 0, last_step=False)
    run = decide(run, passed, figures(100))
    assert (run.step, run.weight) == (2, 50)
    run = decide(run, passed, figures(100))
    assert (run.step, run.weight) == (3, 100)
    run = decide(run, judge_step(figures(100), ANALYSIS, 0, last_step=True), figures(100))
    assert (run.status, run.step, run.weight) == (Status.PROMOTED, 3, 100)
    assert [e.event for e in run.events] == ["started", "advanced", "advanced", "promoted"]


def test_rollback_and_halt_record_the_check_and_the_figures():
    run = start("api", intent_of().service("api").canary)
    failed = figures(100, errors=20)
    rolled = decide(run, judge_step(failed, ANALYSIS, 0, False), failed)
    assert (rolled.status, rolled.step, rolled.weight) == (Status.ROLLED_BACK, 1, 0)
    assert (rolled.events[-1].check, rolled.events[-1].figures) == ("success rate", failed)
    few = figures(2, window=90)
    halted = decide(run, judge_step(few, ANALYSIS, 2, False), few)
    assert (halted.status, halted.weight) == (Status.HALTED, 10)
    by_hand = roll_back_by_hand(halted)
    assert (by_hand.status, by_hand.weight, by_hand.events[-1].check) == (
        Status.ROLLED_BACK, 0, "by hand")
    with pytest.raises(CanaryError, match="a wait verdict changes no run"):
        decide(run, judge_step(few, ANALYSIS, 0, False), few)


def test_the_record_round_trips_through_scope_metadata_as_json():
    run = start("api", intent_of().service("api").canary)
    run = decide(run, judge_step(figures(123.4, 1.2, 7.26), ANALYSIS, 0, False),
                 figures(123.4, 1.2, 7.26))
    meta = CanaryState({}).with_run(run, new=True).as_meta()
    assert meta["api"][0]["events"][1]["figures"] == {
        "requests": 123.4, "errors": 1.2, "success_rate": 99.03, "latency_p99_ms": 7.3,
        "window_s": 30}
    again = CanaryState.from_meta(copy.deepcopy(meta))
    assert again.as_meta() == meta
    assert again.latest("api").weight == 50


def test_the_record_keeps_the_last_runs_of_a_service():
    canary = intent_of().service("api").canary
    state = CanaryState({})
    for _ in range(7):
        state = state.with_run(start("api", canary), new=True)
    state = state.with_run(roll_back_by_hand(state.latest("api")), new=False)
    assert len(state.runs["api"]) == 5
    assert state.latest("api").status is Status.ROLLED_BACK
    assert state.runs["api"][0].status is Status.PROGRESSING


@pytest.mark.parametrize(("meta", "message"), [
    ([], "is a list, not a mapping of service to runs"),
    ({"api": []}, "the canary record of 'api' in .meshstage/state.json is not a non-empty "
                  "list of runs"),
    ({"api": [{"stable": "v1"}]}, "the canary record of 'api' in .meshstage/state.json is "
                                  "not valid: KeyError('canary')"),
    ({"api": [{"stable": "v1", "canary": "v2", "steps": [10], "status": "done", "step": 1,
               "weight": 10}]}, "not valid: ValueError"),
])
def test_a_record_that_is_not_valid_is_refused(meta, message):
    with pytest.raises(CanaryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CanaryState.from_meta(meta)


# --------------------------------------------------------------------------- rendering


def state_with(run) -> CanaryState:
    return CanaryState({}).with_run(run, new=True)


def test_without_a_record_the_inventory_is_rendered():
    intent = intent_of()
    assert effective_intent(intent, CanaryState({})) == (intent, [])


def test_a_run_in_progress_renders_its_weight_and_says_so():
    intent = intent_of()
    run = decide(start("api", intent.service("api").canary),
                 judge_step(figures(100), ANALYSIS, 0, False), figures(100))
    shaped, warnings = effective_intent(intent, state_with(run))
    assert shaped.service("api").traffic.split == (WeightedSubset("v1", 50),
                                                   WeightedSubset("v2", 50))
    assert shaped.service("web") is intent.service("web")
    assert warnings == [
        "mesh_services[1].canary.weight: 5 is not rendered for api: the GitOps repository "
        "records its canary run (v1 -> v2) in progress at step 2 of 3 (50% to v2), so v2 gets "
        "50%; playbooks/canary.yml resumes the run (-e mesh_canary_rollback=true rolls it "
        "back)"]


def test_a_rolled_back_run_renders_zero_until_the_inventory_says_so():
    intent = intent_of()
    run = roll_back_by_hand(start("api", intent.service("api").canary))
    shaped, warnings = effective_intent(intent, state_with(run))
    assert shaped.service("api").traffic.split == (WeightedSubset("v1", 100),
                                                   WeightedSubset("v2", 0))
    assert "set canary.weight: 0 in the inventory, or run playbooks/canary.yml again" in \
        warnings[0]
    variables = copy.deepcopy(VARIABLES)
    variables["mesh_services"][1]["canary"]["weight"] = 0
    assert effective_intent(intent_of(variables), state_with(run))[1] == []


def test_a_promotion_makes_the_canary_stable_and_removes_the_old_version():
    intent = intent_of()
    run = decide(start("api", intent.service("api").canary),
                 judge_step(figures(100), ANALYSIS, 0, True), figures(100))
    shaped, warnings = effective_intent(intent, state_with(run))
    api = shaped.service("api")
    assert [v.name for v in api.versions] == ["v2", "v3"]
    assert api.traffic.split == (WeightedSubset("v2", 100),)
    assert [r.subset for r in api.traffic.header_routes] == ["v2"]
    assert warnings == [
        "mesh_services[1].traffic.header_routes[0].subset: 'v1' is not rendered: the canary "
        "run promoted v2 and retired v1; remove the route from the inventory",
        "mesh_services[1].canary: api v1 -> v2 is not rendered as written: the GitOps "
        "repository records v2 promoted over v1, so v2 gets 100% and v1 is removed; in the "
        "inventory, remove canary and list v2 first in mesh_services[1].versions, without v1"]


def promoted_state() -> CanaryState:
    intent = intent_of()
    return state_with(decide(start("api", intent.service("api").canary),
                             judge_step(figures(100), ANALYSIS, 0, True), figures(100)))


def with_api(**fields: Any) -> dict[str, Any]:
    variables = copy.deepcopy(VARIABLES)
    api = variables["mesh_services"][1]
    for key, value in fields.items():
        if value is None:
            api.pop(key, None)
        else:
            api[key] = value
    return variables


@pytest.mark.parametrize(("fields", "field"), [
    pytest.param({"canary": None, "traffic": None}, "versions[0]", id="canary-removed"),
    pytest.param({"canary": {"stable": "v1", "subset": "v3", "weight": 10}}, "canary.stable",
                 id="v1-stable-of-another-canary"),
])
def test_a_later_run_may_not_make_the_retired_version_stable_again(fields, field):
    with pytest.raises(CanaryError) as refused:
        effective_intent(intent_of(with_api(**fields)), promoted_state())
    assert str(refused.value) == (
        f"dev: mesh_services[1].{field}: 'v1' would undo the canary promotion the GitOps "
        "repository records for api (v2 promoted over v1): list v2 first in versions and "
        "drop v1; to bring v1 back on purpose, make it the canary of v2 (canary: {stable: v2, "
        "subset: v1, weight: ...})")


@pytest.mark.parametrize("fields", [
    pytest.param({"canary": None, "traffic": None, "versions": ["v2", "v3"]},
                 id="inventory-updated"),
    pytest.param({"canary": {"stable": "v2", "subset": "v1", "weight": 10}},
                 id="v1-back-as-the-canary-of-v2"),
    pytest.param({"canary": None, "traffic": {"split": {"v1": 50, "v2": 50}}},
                 id="an-explicit-split"),
])
def test_an_inventory_that_moved_on_from_a_promotion_is_rendered_as_written(fields):
    intent = intent_of(with_api(**fields))
    shaped, warnings = effective_intent(intent, promoted_state())
    assert shaped.service("api").traffic == intent.service("api").traffic
    assert warnings == []


def test_a_run_whose_versions_left_the_inventory_is_not_rendered_and_is_named():
    intent = intent_of()
    run = start("api", intent.service("api").canary)
    other = intent_of(with_api(canary={"stable": "v1", "subset": "v3", "weight": 10}))
    shaped, warnings = effective_intent(other, state_with(run))
    assert shaped.service("api").traffic.split == (WeightedSubset("v1", 90),
                                                   WeightedSubset("v3", 10))
    assert warnings == [
        "mesh_services[1].canary: the GitOps repository records a canary run of api (v1 -> "
        "v2) in progress at step 1 of 3 (10% to v2), and the inventory no longer names that "
        "pair: the inventory is rendered, and playbooks/canary.yml cannot resume the run"]


# --------------------------------------------------------------------------- messages


def test_each_event_titles_its_commit():
    intent = intent_of()
    canary = intent.service("api").canary
    run = start("api", canary)
    state = state_with(run)
    assert commit_for(intent, state, run).subject == "canary api: v2 at 10% (step 1 of 3)"
    passed = figures(140, 0, 8.0)
    run = decide(run, judge_step(passed, canary.analysis, 0, False), passed)
    commit = commit_for(intent, state, run)
    assert commit.subject == "canary api: v2 at 50% (step 2 of 3)"
    assert commit.body[1] == ("Step 1 (10%) passed its analysis over 30s: 140 requests (at "
                              "least 20), success rate 100.00% (at least 99%), p99 latency "
                              "8.0ms (at most 250ms).")
    assert commit.body[2] == "Step 2 of 3: 50% of requests to v2, 50% to v1."
    failing = figures(151, 31, 4.8)
    rolled = decide(run, judge_step(failing, canary.analysis, 0, False), failing)
    commit = commit_for(intent, state, rolled)
    assert commit.subject == "canary api: v2 rolled back to 0%, success rate 79.47% is under 99%"
    assert commit.body[1].startswith("Step 2 (50%) failed its analysis over 30s: success "
                                     "rate 79.47% is under 99%. Measured: 151 requests")
    few = figures(4, 0, None, window=90)
    halted = decide(run, judge_step(few, canary.analysis, 2, False), few)
    commit = commit_for(intent, state, halted)
    assert commit.subject == "canary api: v2 halted at 50%, too few requests (4 of 20)"
    assert "Halted without promoting: v2 keeps 50%." in commit.body[2]
    assert commit_for(intent, state, roll_back_by_hand(run)).subject == \
        "canary api: v2 rolled back to 0%, by hand"
    promoted = decide(run, judge_step(passed, canary.analysis, 0, True), passed)
    assert commit_for(intent, state, promoted).subject == "canary api: v2 promoted, v1 removed"


def test_the_runbook_shows_settings_queries_and_history():
    intent = intent_of()
    canary = intent.service("api").canary
    run = start("api", canary)
    passed = figures(140, 0, 8.0)
    run = decide(run, judge_step(passed, canary.analysis, 0, False), passed)
    failing = figures(151, 31, 4.8)
    run = decide(run, judge_step(failing, canary.analysis, 0, False), failing)
    text = "\n".join(runbook_section(intent, state_with(run)))
    assert "### api: v1 -> v2" in text
    assert "- steps: 10% → 50% → 100%, then promotion" in text
    assert ("- analysis: 30s after each step; at least 20 requests to v2 (waiting up to 2 "
            "more intervals for them), success rate at least 99%, p99 latency at most "
            "250ms") in text
    assert "- now: **rolled back at step 2 of 3 (0% to v2)**" in text
    assert ('sum(increase(istio_requests_total{reporter="destination",'
            'destination_workload_namespace="shop",destination_app="api",'
            'destination_version="v2"}[<window>]))') in text
    assert "| 1 | — | — | — | — | started at step 1 | 10% |" in text
    assert "| 2 | 1 (10%) | 140 in 30s | 100.00% | 8.0ms | advanced to step 2 | 50% |" in text
    assert ("| 3 | 2 (50%) | 151 in 30s | 79.47% | 4.8ms | rolled back: success rate 79.47% "
            "is under 99% | 0% |") in text
    before_traffic = intent_of({**VARIABLES, "mesh_stage": "observability"})
    assert runbook_section(before_traffic, state_with(run)) == []
