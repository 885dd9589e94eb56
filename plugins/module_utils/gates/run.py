"""One run's gates: which judge the move, what they read, their verdicts, the refusal.

``judge_run`` is what the action ``meshstage.mesh.stage_gates`` calls: the intent and the
recorded stages in, the verdicts out, or ``GateRefused`` naming every blocker and how to
proceed. A gate listed in ``mesh_force_gates`` that refuses is forced: its verdict says so,
and the run records it in the commit message and the runbook (``pipeline.run_stage``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import IntentError, IntentErrors, MeshstageError
from ..intent.parse import parse_intent
from ..prometheus import PrometheusClient, PrometheusError
from ..stages import STAGE_NAMES, Stage
from .gate import Call, Evidence, Gate, Move, Verdict
from .observe import observe
from .registry import GATES

FORCE_VARIABLE = "mesh_force_gates"


class GateRefused(MeshstageError):
    """A gate refuses the move: the message names each blocker and how to proceed."""

    def __init__(self, move: Move, refused: Sequence[Verdict]) -> None:
        self.refused = list(refused)
        lines = [f"{move.environment} ({move.intent.provider}): the stage gates refuse the "
                 f"move {move.describe()}:"]
        for verdict in refused:
            lines += [f"  - gate {verdict.gate}: {blocker}" for blocker in verdict.blockers]
            lines.append(f"    to proceed: {verdict.proceed}")
        names = json.dumps({FORCE_VARIABLE: [v.gate for v in refused]})
        lines.append(f"To override (recorded in the commit message and the runbook): "
                     f"-e '{names}'")
        super().__init__("\n".join(lines))


def parse_force(value: Any) -> tuple[str, ...]:
    """``mesh_force_gates``: a list of gate names, each checked."""
    if value is None or value == "":
        return ()
    if not isinstance(value, list | tuple):
        raise IntentErrors([IntentError(FORCE_VARIABLE, value, "is not a list of gate names "
                                        f"({', '.join(GATES)})")])
    errors = [IntentError(f"{FORCE_VARIABLE}[{index}]", name,
                          "is not one of " + ", ".join(GATES))
              for index, name in enumerate(value) if name not in GATES]
    if errors:
        raise IntentErrors(errors)
    return tuple(dict.fromkeys(value))


def recorded_stages(meta: Mapping[str, Mapping[str, Any]]) -> dict[str, Stage | None]:
    """Each environment's stage as the GitOps repository's state records it."""
    return {env: Stage(entry["stage"]) if entry.get("stage") in STAGE_NAMES else None
            for env, entry in meta.items()}


def applicable(move: Move) -> list[Gate]:
    return [gate for gate in GATES.values() if gate.applies(move)]


def gather(move: Move, gates: Sequence[Gate], facts: Mapping[str, Any] | None,
           client: Callable[[str], PrometheusClient] = PrometheusClient,
           at: float | None = None) -> Evidence:
    """The evidence the gates need: the facts, and Prometheus' observations when a gate
    reads them (or why there are none)."""
    needs = frozenset().union(*(gate.needs(move) for gate in gates))
    if not needs:
        return Evidence(facts)
    url = move.intent.gates.prometheus
    if not url:
        return Evidence(facts, None, "no Prometheus is configured (mesh_gates.prometheus); "
                        "set it, or opt out of the observed-traffic checks with "
                        "mesh_gates.observe: false")
    try:
        return Evidence(facts, observe(client(url), move.intent, needs, at))
    except PrometheusError as error:
        return Evidence(facts, None, str(error))


def judge(move: Move, gates: Sequence[Gate], evidence: Evidence,
          force: Sequence[str] = ()) -> list[Verdict]:
    """Every gate's verdict; raises ``GateRefused`` when one refuses and is not forced."""
    verdicts = []
    for gate in gates:
        verdict = gate.judge(move, evidence)
        if not verdict.passed and gate.name in force:
            verdict = replace(verdict, forced=True)
        verdicts.append(verdict)
    refused = [v for v in verdicts if not v.passed and not v.forced]
    if refused:
        raise GateRefused(move, refused)
    return verdicts


def judge_run(variables: Mapping[str, Any], recorded: Mapping[str, Mapping[str, Any]],
              facts: Mapping[str, Any] | None = None, force: Any = None,
              client: Callable[[str], PrometheusClient] = PrometheusClient,
              at: float | None = None,
              seen: list[Call] | None = None) -> tuple[Move, list[Verdict]]:
    """The intent variables of one environment and the GitOps state's metadata of every
    environment in; the move and its verdicts out (``GateRefused`` when refused). The
    caller/callee edges Prometheus showed, when a gate read them, are added to ``seen``:
    the flow proof judges them too."""
    forced = parse_force(force)
    intent, _warnings = parse_intent(variables)
    environments = recorded_stages({env: meta for env, meta in recorded.items()
                                    if not env.startswith("_")})
    move = Move(intent, environments.get(intent.environment), environments)
    gates = applicable(move)
    evidence = gather(move, gates, facts, client, at)
    if seen is not None and evidence.observations is not None:
        seen.extend(evidence.observations.calls)
    return move, judge(move, gates, evidence, forced)
