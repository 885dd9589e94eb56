"""What a canary run says: the commit message of each step, and the runbook's section on each
canary (steps, thresholds, queries, where the run stands, its history)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..intent.model import Canary, CanaryAnalysis, Intent, Service
from ..stages import Stage
from .decisions import StepVerdict
from .queries import (
    Figures,
    VersionQueries,
    count_text,
    measured_on,
    ms_text,
    percent_text,
    seconds_text,
    version_queries,
)
from .record import CanaryRun, CanaryState, Event
from .shaping import pair_matches


@dataclass(frozen=True)
class CanaryCommit:
    """What a canary step records and how its commit is titled and explained."""

    state: Mapping[str, Any]   # the new ``canary`` entry of the scope metadata
    subject: str               # after ``meshstage(<env>): ``
    body: tuple[str, ...]      # paragraphs


def commit_for(intent: Intent, state: CanaryState, run: CanaryRun,
               verdict: StepVerdict | None = None) -> CanaryCommit:
    """The commit of a run's latest event."""
    service = intent.service(run.service)
    canary = service.canary
    assert canary is not None
    event = run.events[-1]
    steps = ", ".join(f"{s}%" for s in run.steps)
    lines = [f"Canary run of {run.service} in {intent.environment}: {run.stable} (stable) -> "
             f"{run.canary} (canary), steps {steps}."]
    total = len(run.steps)
    analysed = _analysis_sentence(event, canary.analysis, run.steps)
    if event.event == "started":
        subject = f"canary {run.service}: {run.canary} at {run.weight}% (step 1 of {total})"
        lines.append(f"Step 1 of {total}: {_split(run)}. playbooks/canary.yml analyzes it "
                     f"after {canary.analysis.interval}.")
    elif event.event == "advanced":
        subject = (f"canary {run.service}: {run.canary} at {run.weight}% "
                   f"(step {run.step} of {total})")
        lines += [analysed, f"Step {run.step} of {total}: {_split(run)}."]
    elif event.event == "promoted":
        subject = f"canary {run.service}: {run.canary} promoted, {run.stable} removed"
        lines += [analysed,
                  f"Promoted: {run.canary} is the stable version and gets 100% of the "
                  f"requests; {run.stable} leaves the routes (its subset, version Service or "
                  f"host cluster). In the inventory, remove canary from "
                  f"{intent.service_path(service)} and list {run.canary} first in its "
                  f"versions, without {run.stable}."]
    elif event.event == "rolled_back":
        failed = f"{event.check} {_figure_of(event)}" if event.figures else "by hand"
        subject = f"canary {run.service}: {run.canary} rolled back to 0%, {failed}"
        lines += [analysed if event.figures else "Rolled back by hand "
                  "(mesh_canary_rollback).",
                  f"Rolled back: {run.canary} gets 0%, {run.stable} 100%. Fix {run.canary} "
                  "and run playbooks/canary.yml again for a new run, or set canary.weight: 0 "
                  "in the inventory."]
    else:  # halted
        requests = count_text(event.figures.requests) if event.figures else "0"
        subject = (f"canary {run.service}: {run.canary} halted at {run.weight}%, too few "
                   f"requests ({requests} of {canary.analysis.min_requests})")
        lines += [analysed,
                  f"Halted without promoting: {run.canary} keeps {run.weight}%. Run "
                  "playbooks/canary.yml again to resume the analysis of this step, or with "
                  "-e mesh_canary_rollback=true to roll it back."]
    return CanaryCommit(state.as_meta(), subject, tuple(lines))


def _analysis_sentence(event: Event, analysis: CanaryAnalysis, steps: tuple[int, ...]) -> str:
    figures = event.figures
    if figures is None:
        return ""
    judged = f"Step {event.step} ({steps[event.step - 1]}%)"
    measured = _figures_line(figures, analysis)
    if event.event in ("advanced", "promoted"):
        return f"{judged} passed its analysis over {seconds_text(figures.window_s)}: {measured}."
    if event.event == "rolled_back":
        return (f"{judged} failed its analysis over {seconds_text(figures.window_s)}: "
                f"{event.reason}. Measured: {measured}.")
    return f"{judged} could not be judged: {event.reason}. Measured: {measured}."


def _figures_line(figures: Figures, analysis: CanaryAnalysis) -> str:
    rate = figures.success_rate
    return (f"{count_text(figures.requests)} requests (at least {analysis.min_requests}), "
            f"success rate {percent_text(rate) if rate is not None else 'n/a'} (at least "
            f"{analysis.success_rate:g}%), p99 latency "
            f"{ms_text(figures.latency_p99_ms) if figures.latency_p99_ms is not None else 'n/a'} "
            f"(at most {analysis.latency_p99})")


def _figure_of(event: Event) -> str:
    """The failed check's own figure and threshold, from the event's reason."""
    reason = event.reason or ""
    check = event.check or ""
    return reason[len(check):].strip() if reason.startswith(check) else reason


def _split(run: CanaryRun) -> str:
    return f"{run.weight}% of requests to {run.canary}, {100 - run.weight}% to {run.stable}"


def runbook_section(intent: Intent, state: CanaryState) -> list[str]:
    """The runbook's "Canary delivery" section: every canary, its settings, the queries that
    judge it, where its run stands and its history (steps, figures, decisions)."""
    if not intent.stage.reached(Stage.TRAFFIC):
        return []
    services = [s for s in intent.services if s.canary is not None
                or state.latest(s.name) is not None]
    if not services:
        return []
    env = intent.environment
    lines = [
        "## Canary delivery",
        "",
        "`playbooks/canary.yml` moves a canary along its steps, one commit per step; after",
        "each step it waits the analysis interval and judges the canary on Prometheus. The",
        "record of every run is in `.meshstage/state.json` (this environment's `canary`",
        "entry). While the inventory's `canary` names the versions of a recorded run, every",
        "run renders the record (the run's weight, 0% after a rollback, the promoted version),",
        "not `canary.weight`.",
        "",
    ]
    for service in services:
        lines += _service_section(intent, env, service, state)
    return lines


def _service_section(intent: Intent, env: str, service: Service,
                     state: CanaryState) -> list[str]:
    canary = service.canary
    run = state.latest(service.name)
    title = f"{canary.stable} -> {canary.subset}" if canary else \
        f"{run.stable} -> {run.canary}" if run else ""
    lines = [f"### {service.name}: {title}", ""]
    if canary is not None:
        analysis = canary.analysis
        queries = version_queries(intent, service, canary.subset)
        lines += [
            f"- steps: {' → '.join(f'{s}%' for s in canary.steps)}, then promotion",
            f"- analysis: {analysis.interval} after each step; at least "
            f"{analysis.min_requests} requests to {canary.subset} (waiting up to "
            f"{analysis.max_waits} more intervals for them), success rate at least "
            f"{analysis.success_rate:g}%, p99 latency at most {analysis.latency_p99}",
            f"- measured on {queries.source} ({measured_on(intent, service)})",
            f"- now: {_now(canary, run)}",
            "",
            "```sh",
            f"ansible-playbook -i inventories/{env} playbooks/canary.yml "
            f"-e mesh_canary_service={service.name} -e mesh_prometheus_url=<prometheus>",
            "```",
            "",
        ]
        lines += _query_lines(queries)
    runs = state.runs.get(service.name, ())
    for index, each in enumerate(reversed(runs)):
        heading = "History" if index == 0 else "An earlier run"
        lines += [f"{heading}: {each.stable} -> {each.canary}, {each.describe()}.", ""]
        lines += _history(each)
    return lines


def _now(canary: Canary, run: CanaryRun | None) -> str:
    if run is None or not pair_matches(canary, run):
        return (f"no run recorded for {canary.stable} -> {canary.subset}: the inventory's "
                f"weight is rendered, {canary.weight}% to {canary.subset}")
    return f"**{run.describe()}**"


def _query_lines(queries: VersionQueries) -> list[str]:
    window = "<window>"
    promql = queries.at_window(1)
    return ["Queries (the window is the time since the step, growing with each wait):", "",
            "```promql", *(promql[name].replace("[1s]", f"[{window}]")
                           for name in ("requests", "errors", "latency_p99")), "```", ""]


def _history(run: CanaryRun) -> list[str]:
    lines = ["| # | step judged | requests | success rate | p99 latency | decision | weight |",
             "|---|---|---|---|---|---|---|"]
    for number, event in enumerate(run.events, start=1):
        figures = event.figures
        rate = figures.success_rate if figures else None
        judged = f"{event.step} ({run.steps[event.step - 1]}%)" if figures else "—"
        decision = {
            "started": f"started at step {event.step}",
            "advanced": f"advanced to step {event.step + 1}",
            "promoted": f"promoted: {run.canary} stable, {run.stable} removed",
        }.get(event.event, f"{event.event.replace('_', ' ')}: {event.reason}")
        cells = [
            str(number), judged,
            (f"{count_text(figures.requests)} in {seconds_text(figures.window_s)}"
             if figures else "—"),
            percent_text(rate) if rate is not None else "—",
            ms_text(figures.latency_p99_ms) if figures and figures.latency_p99_ms is not None
            else "—",
            decision, f"{event.weight}%",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]
