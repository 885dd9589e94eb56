"""One run's gates: which judge, the refusal message, forcing, the registry, and the
commit message and runbook that record a forced gate."""

from __future__ import annotations

import json

import pytest
from gate_helpers import move

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentErrors
from ansible_collections.meshstage.mesh.plugins.module_utils.gates import registry
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.gate import Evidence
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.run import (
    GateRefused,
    applicable,
    judge,
    judge_run,
    parse_force,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.message import gate_lines
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import forced_gates


def test_the_registry_lists_each_gate_once_in_the_order_they_judge():
    assert list(registry.GATES) == ["order", "strict_mtls", "authorization"]
    assert all(gate.name == name for name, gate in registry.GATES.items())
    assert all(type(gate).__doc__ and "Refuses::" in type(gate).__doc__
               and "Passes::" in type(gate).__doc__ for gate in registry.GATES.values())


@pytest.mark.parametrize(("recorded", "stage", "gates"), [
    (None, "permissive_mtls", ["order"]),
    ("traffic", "strict_mtls", ["order", "strict_mtls"]),
    ("traffic", "authorization", ["order", "strict_mtls", "authorization"]),
    ("strict_mtls", "authorization", ["order", "authorization"]),
    ("authorization", "authorization", []),
    ("authorization", "traffic", []),
])
def test_which_gates_judge_a_move(recorded, stage, gates):
    current = move(stage, recorded, environments={"dev": "authorization"})
    assert [gate.name for gate in applicable(current)] == gates


def test_a_refusal_names_each_blocker_how_to_proceed_and_how_to_force():
    current = move("authorization", "traffic", environments={"dev": "authorization"})
    with pytest.raises(GateRefused) as refused:
        judge(current, applicable(current), Evidence(unobserved="no Prometheus is configured"))
    lines = str(refused.value).splitlines()
    assert lines[0] == ("staging (istio): the stage gates refuse the move from traffic to "
                        "authorization:")
    assert lines[1] == ("  - gate order: staging is recorded at traffic (stage 4): "
                        "authorization (stage 6) would skip strict_mtls")
    assert lines[2] == "    to proceed: move one stage at a time: mesh_stage: strict_mtls next"
    assert "  - gate strict_mtls: plaintext traffic cannot be judged: no Prometheus is " \
        "configured" in lines
    assert "  - gate authorization: no dry run ran: staging is recorded at traffic, and the " \
        "authorization rules run as a dry run at strict_mtls" in lines
    assert lines[-1] == ("To override (recorded in the commit message and the runbook): -e '"
                         + json.dumps({"mesh_force_gates": ["order", "strict_mtls",
                                                            "authorization"]}) + "'")


def test_a_forced_gate_passes_with_its_refusal_kept():
    current = move("strict_mtls", "traffic", environments={"dev": "authorization"})
    verdicts = judge(current, applicable(current), Evidence(unobserved="nothing to ask"),
                     force=("strict_mtls",))
    assert [(v.gate, v.passed, v.forced) for v in verdicts] == [
        ("order", True, False), ("strict_mtls", False, True)]
    assert verdicts[1].blockers == ("plaintext traffic cannot be judged: nothing to ask",)


@pytest.mark.parametrize(("value", "message"), [
    ("order", "mesh_force_gates: 'order' is not a list of gate names (order, strict_mtls, "
              "authorization)"),
    (["order", "strict"], "mesh_force_gates[1]: 'strict' is not one of order, strict_mtls, "
                          "authorization"),
])
def test_mesh_force_gates_is_checked(value, message):
    with pytest.raises(IntentErrors) as raised:
        parse_force(value)
    assert str(raised.value.errors[0]) == message
    assert parse_force(None) == ()
    assert parse_force(["order", "order"]) == ("order",)


def test_judge_run_refuses_an_unknown_gate_before_judging(example_intent):
    with pytest.raises(IntentErrors, match=r"mesh_force_gates\[0\]: 'all'"):
        judge_run(example_intent("dev"), {}, force=["all"])


def test_forced_gates_accumulate_in_the_state_and_appear_in_the_commit_message():
    verdicts = [{"gate": "order", "passed": True, "forced": False, "summary": "one stage",
                 "blockers": []},
                {"gate": "strict_mtls", "passed": False, "forced": True, "summary": "x",
                 "blockers": ["host a: 3 plaintext request(s)", "host b: 1"]}]
    previous = {"stage": "traffic", "forced_gates": [
        {"gate": "order", "from": None, "to": "traffic", "refusal": "new environment"}]}
    records = forced_gates(previous, verdicts, "strict_mtls")
    assert records == [
        {"gate": "order", "from": None, "to": "traffic", "refusal": "new environment"},
        {"gate": "strict_mtls", "from": "traffic", "to": "strict_mtls",
         "refusal": "host a: 3 plaintext request(s); host b: 1"}]
    assert forced_gates({"stage": "strict_mtls", "forced_gates": records}, [],
                        "strict_mtls") == records
    assert gate_lines(verdicts, "traffic", "strict_mtls") == [
        "Stage gates, moving from traffic to strict_mtls:",
        "- order: passed: one stage",
        "- strict_mtls: FORCED (mesh_force_gates) over its refusal: host a: 3 plaintext "
        "request(s); host b: 1"]
    assert gate_lines([], "traffic", "traffic") == []
