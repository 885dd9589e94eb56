"""A canary run's record: its steps, status and events, as the GitOps repository keeps it.

A canary run (``playbooks/canary.yml``) moves one service's canary along its steps
(``canary.steps``, e.g. 10 -> 25 -> 50 -> 100), one commit per step. After each step it waits
``canary.analysis.interval`` and judges the canary on Prometheus' figures (``judge_step``): too
few requests, and it waits another interval (at most ``max_waits`` times, then the run halts
without promoting); a success rate or a p99 latency past its threshold, and the canary is
rolled back to 0%; otherwise it advances to the next step, or after the last one is promoted:
the canary becomes the stable version, with 100% of the requests, and the old version leaves
the routes.

The GitOps repository is the run's source of truth. Its record is the ``canary`` entry of the
environment's scope metadata in ``.meshstage/state.json``, committed with every step:

    {"reviews": [{"stable": "v1", "canary": "v2", "steps": [10, 25, 50, 100],
                  "status": "progressing", "step": 2, "weight": 25,
                  "events": [{"event": "started", "step": 1, "weight": 10}, ...]}]}

Every run renders the environment through the record (``effective_intent``): while the
inventory's ``canary`` names the recorded pair of versions, the record's outcome is what is
rendered (the weight of a run in progress, 0% after a rollback, the promoted version), and a
warning says what to change in the inventory. So an interrupted run resumes from the
repository, and a later ``migrate.yml`` run cannot silently undo a step, a rollback or a
promotion; making the retired version stable again is refused.

Everything here is pure: plain data in, plain data out, no clock and no disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..errors import MeshstageError
from .queries import (
    Figures,
)

KEEP_RUNS = 5  # runs kept per service in the record; the latest decides what is rendered


class CanaryError(MeshstageError):
    """A canary run that cannot go on as asked, or a record that cannot be honoured."""


class Status(StrEnum):
    PROGRESSING = "progressing"
    HALTED = "halted"            # too few requests to judge: stopped without promoting
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


ACTIVE = (Status.PROGRESSING, Status.HALTED)  # a run that canary.yml resumes


class Decision(StrEnum):
    ADVANCE = "advance"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    WAIT = "wait"
    HALT = "halt"


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Event:
    """One thing that happened to a run, with the analysis that led to it."""

    event: str          # started | advanced | promoted | rolled_back | halted
    step: int           # the step the event concerns (1-based)
    weight: int         # the canary's weight after the event
    figures: Figures | None = None
    check: str | None = None   # the check that decided: "success rate", "p99 latency", ...
    reason: str | None = None  # the sentence: "success rate 79.47% is under 99%"

    def as_meta(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.event, "step": self.step, "weight": self.weight}
        if self.figures is not None:
            data["figures"] = _figures_meta(self.figures)
        if self.check:
            data["check"] = self.check
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class CanaryRun:
    """One canary run of one service: where it stands and what happened."""

    service: str
    stable: str
    canary: str
    steps: tuple[int, ...]
    status: Status
    step: int      # the step in force, 1-based (the failed or halted one when it ended so)
    weight: int    # what the canary gets now
    events: tuple[Event, ...] = ()

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def as_meta(self) -> dict[str, Any]:
        return {"stable": self.stable, "canary": self.canary, "steps": list(self.steps),
                "status": self.status.value, "step": self.step, "weight": self.weight,
                "events": [event.as_meta() for event in self.events]}

    def describe(self) -> str:
        """``progressing at step 2 of 4 (25% to v2)``."""
        where = f"step {self.step} of {len(self.steps)} ({self.weight}% to {self.canary})"
        return {Status.PROGRESSING: f"in progress at {where}",
                Status.HALTED: f"halted at {where}",
                Status.PROMOTED: f"promoted ({self.canary} stable, {self.stable} removed)",
                Status.ROLLED_BACK: f"rolled back at step {self.step} of {len(self.steps)} "
                                    f"(0% to {self.canary})"}[self.status]


@dataclass(frozen=True)
class CanaryState:
    """Every recorded run of an environment, per service, oldest first."""

    runs: Mapping[str, tuple[CanaryRun, ...]]

    @classmethod
    def from_meta(cls, data: Any) -> CanaryState:
        """The record as the scope metadata holds it; ``CanaryError`` when it is not valid."""
        if data is None:
            return cls({})
        if not isinstance(data, Mapping):
            raise CanaryError(f"the canary record of .meshstage/state.json is a "
                              f"{type(data).__name__}, not a mapping of service to runs")
        runs: dict[str, tuple[CanaryRun, ...]] = {}
        for service, items in sorted(data.items()):
            if not isinstance(items, list) or not items:
                raise CanaryError(f"the canary record of {service!r} in .meshstage/state.json "
                                  "is not a non-empty list of runs")
            runs[service] = tuple(_run_from_meta(service, item) for item in items)
        return cls(runs)

    def as_meta(self) -> dict[str, Any]:
        return {service: [run.as_meta() for run in runs]
                for service, runs in sorted(self.runs.items())}

    def latest(self, service: str) -> CanaryRun | None:
        runs = self.runs.get(service)
        return runs[-1] if runs else None

    def with_run(self, run: CanaryRun, new: bool) -> CanaryState:
        """The record with ``run`` as the service's latest: a new run, or the latest updated."""
        earlier = self.runs.get(run.service, ())
        runs = (*earlier, run) if new else (*earlier[:-1], run)
        return CanaryState({**self.runs, run.service: runs[-KEEP_RUNS:]})


def _run_from_meta(service: str, data: Any) -> CanaryRun:
    where = f"the canary record of {service!r} in .meshstage/state.json"
    try:
        events = tuple(Event(
            event=str(item["event"]), step=int(item["step"]), weight=int(item["weight"]),
            figures=_figures_from_meta(item.get("figures")), check=item.get("check"),
            reason=item.get("reason")) for item in data.get("events", ()))
        return CanaryRun(service=service, stable=str(data["stable"]), canary=str(data["canary"]),
                         steps=tuple(int(s) for s in data["steps"]),
                         status=Status(data["status"]), step=int(data["step"]),
                         weight=int(data["weight"]), events=events)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise CanaryError(f"{where} is not valid: {error!r}") from error


def _figures_meta(figures: Figures) -> dict[str, Any]:
    rate = figures.success_rate
    # the success rate is there for the reader; it is computed again from the counts
    return {"requests": round(figures.requests, 3), "errors": round(figures.errors, 3),
            "success_rate": None if rate is None else round(rate, 2),
            "latency_p99_ms": None if figures.latency_p99_ms is None
            else round(figures.latency_p99_ms, 1),
            "window_s": round(figures.window_s, 3)}


def _figures_from_meta(data: Any) -> Figures | None:
    if data is None:
        return None
    return Figures(requests=float(data["requests"]), errors=float(data["errors"]),
                   latency_p99_ms=None if data.get("latency_p99_ms") is None
                   else float(data["latency_p99_ms"]), window_s=float(data["window_s"]))


# --------------------------------------------------------------------------- decisions


# --------------------------------------------------------------------------- rendering


# --------------------------------------------------------------------------- messages


# --------------------------------------------------------------------------- runbook


