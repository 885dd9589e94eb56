"""A canary step's decision on Prometheus' figures (advance, promote, roll back, wait, halt),
and the run it leads to. Pure: plain data in, plain data out, no clock and no disk."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..intent.checker import duration_seconds
from ..intent.model import Canary, CanaryAnalysis
from .queries import (
    Figures,
    count_text,
    ms_text,
    percent_text,
    seconds_text,
)
from .record import CanaryError, CanaryRun, Decision, Event, Status


@dataclass(frozen=True)
class StepVerdict:
    """What an analysis decided, the check that decided it, and why."""

    decision: Decision
    check: str
    reason: str


def judge_step(figures: Figures, analysis: CanaryAnalysis, waits: int,
               last_step: bool) -> StepVerdict:
    """Advance, promote, roll back, wait or halt, from the canary's figures.

    Too few requests (under ``min_requests``): wait, and halt once ``waits`` reaches
    ``max_waits``. Then the success rate must be at least ``success_rate`` and the p99 latency
    at most ``latency_p99``; the first check that fails rolls back. A step that passes
    advances, the last one promotes. Enough requests without a latency figure wait too (the
    histogram lags the counters by a flush interval), and halt after ``max_waits``.
    """
    if figures.requests < analysis.min_requests:
        reason = (f"too few requests: {count_text(figures.requests)} in "
                  f"{seconds_text(figures.window_s)}, at least {analysis.min_requests} needed")
        if waits < analysis.max_waits:
            return StepVerdict(Decision.WAIT, "request count", reason)
        return StepVerdict(Decision.HALT, "request count",
                           f"{reason}, after {waits} wait(s)")
    rate = figures.success_rate
    assert rate is not None  # requests >= min_requests >= 1
    if rate < analysis.success_rate:
        return StepVerdict(Decision.ROLLBACK, "success rate",
                           f"success rate {percent_text(rate)} is under {analysis.success_rate:g}%")
    limit_ms = duration_seconds(analysis.latency_p99) * 1000
    if figures.latency_p99_ms is None:
        # Envoy and the meshes publish histograms at their flush interval, counters at once:
        # the latency can lag the request count. Wait for it, as for too few requests.
        reason = (f"{count_text(figures.requests)} requests but no p99 latency: the latency "
                  "histogram has no data yet")
        if waits < analysis.max_waits:
            return StepVerdict(Decision.WAIT, "p99 latency", reason)
        return StepVerdict(Decision.HALT, "p99 latency",
                           f"{reason}, after {waits} wait(s); the analysis cannot decide")
    if figures.latency_p99_ms > limit_ms:
        return StepVerdict(Decision.ROLLBACK, "p99 latency",
                           f"p99 latency {ms_text(figures.latency_p99_ms)} is over "
                           f"{analysis.latency_p99}")
    decision = Decision.PROMOTE if last_step else Decision.ADVANCE
    return StepVerdict(decision, "all checks",
                       f"{count_text(figures.requests)} requests, success rate "
                       f"{percent_text(rate)}, p99 latency {ms_text(figures.latency_p99_ms)}: "
                       "within the thresholds")


def start(service: str, canary: Canary) -> CanaryRun:
    """A new run at its first step."""
    first = canary.steps[0]
    return CanaryRun(service, canary.stable, canary.subset, canary.steps, Status.PROGRESSING,
                     1, first, (Event("started", 1, first),))


def decide(run: CanaryRun, verdict: StepVerdict, figures: Figures) -> CanaryRun:
    """The run after the analysis of its current step (not for WAIT)."""
    step = run.step
    if verdict.decision is Decision.ADVANCE:
        weight = run.steps[step]
        return replace(run, status=Status.PROGRESSING, step=step + 1, weight=weight,
                       events=(*run.events, Event("advanced", step, weight, figures,
                                                  verdict.check, verdict.reason)))
    if verdict.decision is Decision.PROMOTE:
        return replace(run, status=Status.PROMOTED, weight=100,
                       events=(*run.events, Event("promoted", step, 100, figures,
                                                  verdict.check, verdict.reason)))
    if verdict.decision is Decision.ROLLBACK:
        return replace(run, status=Status.ROLLED_BACK, weight=0,
                       events=(*run.events, Event("rolled_back", step, 0, figures,
                                                  verdict.check, verdict.reason)))
    if verdict.decision is Decision.HALT:
        return replace(run, status=Status.HALTED,
                       events=(*run.events, Event("halted", step, run.weight, figures,
                                                  verdict.check, verdict.reason)))
    raise CanaryError(f"a {verdict.decision.value} verdict changes no run")


def roll_back_by_hand(run: CanaryRun) -> CanaryRun:
    return replace(run, status=Status.ROLLED_BACK, weight=0, events=(
        *run.events, Event("rolled_back", run.step, 0, None, "by hand",
                           "rolled back by hand (mesh_canary_rollback)")))
