"""Helpers for the gate tests (a plain module, imported by name): moves over the example
estate, observations as plain data."""

from __future__ import annotations

from typing import Any

from conftest import load_example_intent

from ansible_collections.meshstage.mesh.plugins.module_utils.gates.gate import (
    Evidence,
    Move,
    Observations,
    Target,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.stages import Stage

PROMETHEUS = "http://127.0.0.1:9"


def intent(environment: str = "staging", **overrides: Any):
    variables = {**load_example_intent(environment),
                 "mesh_gates": {"prometheus": PROMETHEUS, "window": "1h"}, **overrides}
    return parse_intent(variables)[0]


def move(stage: str, recorded: str | None, environment: str = "staging",
         environments: dict[str, str | None] | None = None, **overrides: Any) -> Move:
    recorded_stage = Stage(recorded) if recorded else None
    others = {env: Stage(s) if s else None for env, s in (environments or {}).items()}
    return Move(intent(environment, mesh_stage=stage, **overrides), recorded_stage,
                {**others, environment: recorded_stage})


def workload(namespace: str, name: str, app: str | None = None) -> Target:
    return Target("Workload", namespace, name, app or name.rsplit("-", 1)[0])


def seen_everything(current: Move) -> frozenset[Target]:
    """Every catalogue service of the move, as if Prometheus had series for each."""
    return frozenset(Target("Service", s.namespace, s.name, s.name)
                     for s in current.intent.services)


def observed(current: Move, **fields: Any) -> Evidence:
    fields.setdefault("seen", seen_everything(current))
    return Evidence(observations=Observations(prometheus=PROMETHEUS, window="1h", **fields))
