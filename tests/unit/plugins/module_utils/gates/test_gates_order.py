"""The order gate: one stage at a time, never ahead of the environment promoted from; on
plain data, and on the stages a real GitOps repository records."""

from __future__ import annotations

import pytest
from gate_helpers import move

from ansible_collections.meshstage.mesh.plugins.module_utils.gates.gate import Evidence
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.order import OrderGate
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.run import (
    GateRefused,
    judge_run,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo

GATE = OrderGate()
PROMOTED = {"dev": "authorization"}   # staging is promoted from dev (mesh_promotion_order)


@pytest.mark.parametrize(("recorded", "stage", "applies"), [
    (None, "permissive_mtls", True),
    ("traffic", "strict_mtls", True),
    ("traffic", "traffic", False),          # staying: not gated
    ("strict_mtls", "traffic", False),      # moving back: never gated
])
def test_the_order_gate_judges_forward_moves_only(recorded, stage, applies):
    assert GATE.applies(move(stage, recorded, environments=PROMOTED)) is applies


def test_one_stage_forward_passes():
    verdict = GATE.judge(move("strict_mtls", "traffic", environments=PROMOTED), Evidence())
    assert verdict.passed
    assert verdict.summary == ("one stage forward, to strict_mtls; dev, which it is promoted "
                               "from, is at authorization")


def test_a_skipped_stage_is_refused_naming_both_stages_and_the_next_one():
    verdict = GATE.judge(move("authorization", "traffic", environments=PROMOTED), Evidence())
    assert not verdict.passed
    assert verdict.blockers == ("staging is recorded at traffic (stage 4): authorization "
                                "(stage 6) would skip strict_mtls",)
    assert verdict.proceed == "move one stage at a time: mesh_stage: strict_mtls next"


def test_a_new_environment_starts_at_the_first_stage():
    assert GATE.judge(move("permissive_mtls", None, environments=PROMOTED), Evidence()).passed
    verdict = GATE.judge(move("injection", None, environments=PROMOTED), Evidence())
    assert verdict.blockers == (
        "staging is not recorded in the GitOps repository (a new environment starts at "
        "permissive_mtls): injection (stage 2) would skip permissive_mtls",)


def test_an_environment_may_not_move_ahead_of_the_one_it_is_promoted_from():
    verdict = GATE.judge(move("strict_mtls", "traffic", environments={"dev": "traffic"}),
                         Evidence())
    assert verdict.blockers == (
        "staging is promoted from dev (mesh_promotion_order: dev, staging, prod), which the "
        "GitOps repository records at traffic (stage 4): staging would be ahead of it at "
        "strict_mtls (stage 5)",)
    assert verdict.proceed == "promote dev to strict_mtls first"
    unrecorded = GATE.judge(move("permissive_mtls", None), Evidence())
    assert "which the GitOps repository records nowhere (nothing rendered there yet)" in \
        unrecorded.blockers[0]


def test_the_first_environment_and_one_outside_a_promotion_order_are_not_held_back():
    assert GATE.judge(move("strict_mtls", "traffic", environment="dev"), Evidence()).passed
    assert GATE.judge(move("strict_mtls", "traffic", mesh_promotion_order=[]),
                      Evidence()).passed


def _record(repo: GitOpsRepo, environment: str, stage: str) -> None:
    update = repo.plan(environment, {f"envs/{environment}/stage.txt": stage},
                       {"provider": "istio", "stage": stage})
    repo.apply(update)
    assert repo.commit(f"{environment} at {stage}")


def test_the_order_gate_reads_the_stages_a_real_gitops_repository_records(
        tmp_path, example_intent):
    repo = GitOpsRepo(tmp_path / "gitops")
    staging = example_intent("staging", mesh_stage="strict_mtls")
    _record(repo, "dev", "traffic")
    _record(repo, "staging", "traffic")
    with pytest.raises(GateRefused) as refused:
        judge_run(staging, repo.all_scope_meta(), force=["strict_mtls"])
    assert "promoted from dev (mesh_promotion_order: dev, staging, prod), which the GitOps " \
        "repository records at traffic (stage 4)" in str(refused.value)
    assert "-e '{\"mesh_force_gates\": [\"order\"]}'" in str(refused.value)
    _record(repo, "dev", "strict_mtls")
    move_, verdicts = judge_run(staging, repo.all_scope_meta(), force=["strict_mtls"])
    assert move_.recorded.value == "traffic"
    assert [(v.gate, v.passed, v.forced) for v in verdicts] == [
        ("order", True, False), ("strict_mtls", False, True)]
