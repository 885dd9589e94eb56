"""What every gate judges and what it answers, as plain data.

A ``Move`` is one run of one environment: the stage the GitOps repository records for it
(``None`` for an environment it does not know yet) and the stage the intent asks for. A gate
judges only forward moves that reach its stage; moving back is never gated.

``Evidence`` is everything a gate may read besides the move: the cluster facts
(``sidecars.sidecar_facts`` shape, when gathered) and what Prometheus observed over the
window (``Observations``, gathered by ``observe.py``), or why nothing was observed.
A gate answers with a ``Verdict``: passed or not, each blocker in one sentence (what blocks,
the figure, the window), and how to proceed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..intent.model import Intent
from ..stages import Stage

PLAINTEXT, DRY_RUN, CALLS = "plaintext", "dry_run", "calls"


@dataclass(frozen=True)
class Move:
    """One environment moving from its recorded stage to the intent's."""

    intent: Intent
    recorded: Stage | None                       # what the GitOps repository records
    environments: Mapping[str, Stage | None] = field(default_factory=dict)  # every env's

    @property
    def environment(self) -> str:
        return self.intent.environment

    @property
    def target(self) -> Stage:
        return self.intent.stage

    @property
    def forward(self) -> bool:
        return self.recorded is None or self.target.number > self.recorded.number

    def crosses(self, stage: Stage) -> bool:
        """True when this move brings the environment to ``stage`` (or past it) for the
        first time since the recorded stage."""
        before = self.recorded.number if self.recorded else 0
        return before < stage.number <= self.target.number

    @property
    def recorded_name(self) -> str:
        return self.recorded.value if self.recorded else "nothing (a new environment)"

    def describe(self) -> str:
        return f"from {self.recorded_name} to {self.target.value}"


@dataclass(frozen=True)
class Target:
    """What a gate judges: a Kubernetes workload (``Kind namespace/name``) or a plain host."""

    kind: str              # Workload, Service, Pod, or host
    namespace: str
    name: str
    service: str | None = None

    def __str__(self) -> str:
        if self.kind == "host":
            return f"host {self.name} ({self.service} in {self.namespace})"
        text = f"{self.kind} {self.namespace}/{self.name}"
        return text + (f" (service {self.service})" if self.service and
                       self.service != self.name else "")


@dataclass(frozen=True)
class Flow:
    """Requests of one kind into one target over the window."""

    target: Target
    requests: float


@dataclass(frozen=True)
class DryRun:
    """The authorization dry run at one target over the window."""

    target: Target
    denied: float        # requests the rules would have denied
    covered: bool        # the dry run's series reach back to the window's start


@dataclass(frozen=True)
class Call:
    """Observed requests from one caller identity to one catalogue service."""

    caller: str                 # principal (trust domain/ns/<ns>/sa/<account>)
    callee: str                 # the called service's name
    callee_namespace: str
    requests: float
    caller_service: str | None = None   # the catalogue service of the caller, when known
    seen_by: str = "istio"              # istio, or the host sidecar that reported it
    protocol: str | None = None
    caller_workload: str | None = None  # "<namespace>/<workload>" when the metric names it


@dataclass(frozen=True)
class Observations:
    """What Prometheus showed over the window, and the queries it rests on."""

    prometheus: str
    window: str
    plaintext: tuple[Flow, ...] = ()
    dry_run: tuple[DryRun, ...] = ()
    calls: tuple[Call, ...] = ()
    seen: frozenset[Target] = frozenset()   # targets with any series in the window
    queries: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Evidence:
    facts: Mapping[str, Any] | None = None          # cluster facts, when gathered
    observations: Observations | None = None
    unobserved: str | None = None   # why there are no observations (None: there are)


@dataclass(frozen=True)
class Verdict:
    gate: str
    passed: bool
    summary: str                        # one line: what was found
    blockers: tuple[str, ...] = ()      # each: what blocks, the figure, the window
    proceed: str = ""                   # how to proceed
    forced: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": self.passed, "forced": self.forced,
                "summary": self.summary, "blockers": list(self.blockers),
                "proceed": self.proceed}


class Gate:
    """One stage gate: which moves it judges, what it reads, and its judgement."""

    name: ClassVar[str]

    def applies(self, move: Move) -> bool:
        raise NotImplementedError

    def needs(self, move: Move) -> frozenset[str]:
        """The observations it reads (``PLAINTEXT``, ``DRY_RUN``, ``CALLS``)."""
        return frozenset()

    def judge(self, move: Move, evidence: Evidence) -> Verdict:
        raise NotImplementedError

    def verdict(self, blockers: list[str], summary: str, proceed: str) -> Verdict:
        return Verdict(self.name, not blockers, summary, tuple(blockers),
                       proceed if blockers else "")


def count(value: float) -> str:
    """A figure from ``increase()`` (extrapolated, so fractional) as whole requests."""
    return str(max(1, round(value))) if value > 0 else "0"


def window_text(move: Move) -> str:
    return f"the last {move.intent.gates.window}"


def promql_duration(seconds: float) -> str:
    """A PromQL range in the largest unit that divides it: 1h, 90s, 1500ms."""
    millis = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis and millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"
