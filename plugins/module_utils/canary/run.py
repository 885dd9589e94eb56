"""Canary delivery by commit: a canary run's record, its decisions and what it renders.

A canary run (``playbooks/canary.yml``) moves one service's canary along its steps
(``canary.steps``, e.g. 10 -> 25 -> 50 -> 100), one commit per step. After each step it waits
``canary.analysis.interval`` and judges the canary on Prometheus' figures (``judge``): too
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
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ..errors import MeshstageError
from ..intent.checker import duration_seconds
from ..intent.model import Canary, CanaryAnalysis, Intent, Service, WeightedSubset
from ..stages import Stage
from .queries import Figures, VersionQueries, measured_on, version_queries

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


@dataclass(frozen=True)
class Verdict:
    """What an analysis decided, the check that decided it, and why."""

    decision: Decision
    check: str
    reason: str


def judge(figures: Figures, analysis: CanaryAnalysis, waits: int, last_step: bool) -> Verdict:
    """Advance, promote, roll back, wait or halt, from the canary's figures.

    Too few requests (under ``min_requests``): wait, and halt once ``waits`` reaches
    ``max_waits``. Then the success rate must be at least ``success_rate`` and the p99 latency
    at most ``latency_p99``; the first check that fails rolls back. A step that passes
    advances, the last one promotes. Enough requests without a latency figure wait too (the
    histogram lags the counters by a flush interval), and halt after ``max_waits``.
    """
    if figures.requests < analysis.min_requests:
        reason = (f"too few requests: {_count(figures.requests)} in "
                  f"{_seconds(figures.window_s)}, at least {analysis.min_requests} needed")
        if waits < analysis.max_waits:
            return Verdict(Decision.WAIT, "request count", reason)
        return Verdict(Decision.HALT, "request count",
                       f"{reason}, after {waits} wait(s)")
    rate = figures.success_rate
    assert rate is not None  # requests >= min_requests >= 1
    if rate < analysis.success_rate:
        return Verdict(Decision.ROLLBACK, "success rate",
                       f"success rate {_percent(rate)} is under {analysis.success_rate:g}%")
    limit_ms = duration_seconds(analysis.latency_p99) * 1000
    if figures.latency_p99_ms is None:
        # Envoy and the meshes publish histograms at their flush interval, counters at once:
        # the latency can lag the request count. Wait for it, as for too few requests.
        reason = (f"{_count(figures.requests)} requests but no p99 latency: the latency "
                  "histogram has no data yet")
        if waits < analysis.max_waits:
            return Verdict(Decision.WAIT, "p99 latency", reason)
        return Verdict(Decision.HALT, "p99 latency",
                       f"{reason}, after {waits} wait(s); the analysis cannot decide")
    if figures.latency_p99_ms > limit_ms:
        return Verdict(Decision.ROLLBACK, "p99 latency",
                       f"p99 latency {_ms(figures.latency_p99_ms)} is over "
                       f"{analysis.latency_p99}")
    decision = Decision.PROMOTE if last_step else Decision.ADVANCE
    return Verdict(decision, "all checks",
                   f"{_count(figures.requests)} requests, success rate {_percent(rate)}, "
                   f"p99 latency {_ms(figures.latency_p99_ms)}: within the thresholds")


def start(service: str, canary: Canary) -> CanaryRun:
    """A new run at its first step."""
    first = canary.steps[0]
    return CanaryRun(service, canary.stable, canary.subset, canary.steps, Status.PROGRESSING,
                     1, first, (Event("started", 1, first),))


def decide(run: CanaryRun, verdict: Verdict, figures: Figures) -> CanaryRun:
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


# --------------------------------------------------------------------------- rendering


def pair_matches(canary: Canary | None, run: CanaryRun) -> bool:
    """True when the inventory's canary names the run's versions: the record then wins."""
    return canary is not None and (canary.stable, canary.subset) == (run.stable, run.canary)


def effective_intent(intent: Intent, state: CanaryState) -> tuple[Intent, list[str]]:
    """The intent as the GitOps repository's canary record shapes it, and the warnings that
    tell where the inventory says otherwise. Raises ``CanaryError`` when the inventory would
    make a version that a recorded promotion retired the stable one again."""
    if not state.runs:
        return intent, []
    services: list[Service] = []
    warnings: list[str] = []
    for service in intent.services:
        run = state.latest(service.name)
        if run is None:
            services.append(service)
        elif pair_matches(service.canary, run):
            services.append(_shaped(intent, service, run, warnings))
        else:
            _refuse_undoing(intent, service, run)
            if run.active:
                warnings.append(
                    f"{intent.service_path(service)}.canary: the GitOps repository records a "
                    f"canary run of {service.name} ({run.stable} -> {run.canary}) "
                    f"{run.describe()}, and the inventory no longer names that pair: the "
                    "inventory is rendered, and playbooks/canary.yml cannot resume the run")
            services.append(service)
    shaped = replace(intent, services=tuple(services),
                     by_name={service.name: service for service in services})
    return shaped, warnings


def _shaped(intent: Intent, service: Service, run: CanaryRun, warnings: list[str]) -> Service:
    canary = service.canary
    assert canary is not None
    path = f"{intent.service_path(service)}.canary"
    if run.status is Status.PROMOTED:
        return _promoted(intent, service, run, warnings)
    weight = run.weight
    if weight != canary.weight:
        advice = ("set canary.weight: 0 in the inventory, or run playbooks/canary.yml again "
                  "to start a new run" if run.status is Status.ROLLED_BACK else
                  "playbooks/canary.yml resumes the run (-e mesh_canary_rollback=true rolls "
                  "it back)")
        warnings.append(f"{path}.weight: {canary.weight} is not rendered for {service.name}: "
                        f"the GitOps repository records its canary run ({run.stable} -> "
                        f"{run.canary}) {run.describe()}, so {run.canary} gets {weight}%; "
                        f"{advice}")
    return replace(service, traffic=replace(service.traffic, split=canary.split(weight)))


def _promoted(intent: Intent, service: Service, run: CanaryRun,
              warnings: list[str]) -> Service:
    path = intent.service_path(service)
    versions = [v for v in service.versions if v.name == run.canary] + \
        [v for v in service.versions if v.name not in (run.canary, run.stable)]
    routes = []
    for index, route in enumerate(service.traffic.header_routes):
        if route.subset == run.stable:
            warnings.append(f"{path}.traffic.header_routes[{index}].subset: {run.stable!r} is "
                            f"not rendered: the canary run promoted {run.canary} and retired "
                            f"{run.stable}; remove the route from the inventory")
        else:
            routes.append(route)
    hosts = [host.name for host in intent.hosts_of(service.name) if host.version == run.stable]
    retire = f", and retire the hosts that run {run.stable} ({', '.join(hosts)})" if hosts \
        else ""
    warnings.append(f"{path}.canary: {service.name} {run.stable} -> {run.canary} is not "
                    f"rendered as written: the GitOps repository records {run.canary} "
                    f"promoted over {run.stable}, "
                    f"so {run.canary} gets 100% and {run.stable} is removed; in the inventory, "
                    f"remove canary and list {run.canary} first in {path}.versions, without "
                    f"{run.stable}{retire}")
    return replace(service, versions=tuple(versions), traffic=replace(
        service.traffic, split=(WeightedSubset(run.canary, 100),), header_routes=tuple(routes)))


def stable_version(service: Service) -> tuple[str | None, str]:
    """The version that gets the default route's traffic, and the field that says so."""
    if service.canary is not None:
        return service.canary.stable, "canary.stable"
    if service.traffic.split or not service.versions:
        return None, ""
    return service.versions[0].name, "versions[0]"


def _refuse_undoing(intent: Intent, service: Service, run: CanaryRun) -> None:
    if run.status is not Status.PROMOTED:
        return
    stable, field = stable_version(service)
    if stable != run.stable:
        return
    raise CanaryError(
        f"{intent.environment}: {intent.service_path(service)}.{field}: {stable!r} would undo "
        f"the canary promotion the GitOps repository records for {service.name} "
        f"({run.canary} promoted over {run.stable}): list {run.canary} first in versions "
        f"and drop {run.stable}; to bring {run.stable} back on purpose, make it the canary "
        f"of {run.canary} (canary: {{stable: {run.canary}, subset: {run.stable}, weight: ...}})")


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class CanaryCommit:
    """What a canary step records and how its commit is titled and explained."""

    state: Mapping[str, Any]   # the new ``canary`` entry of the scope metadata
    subject: str               # after ``meshstage(<env>): ``
    body: tuple[str, ...]      # paragraphs


def commit_for(intent: Intent, state: CanaryState, run: CanaryRun,
               verdict: Verdict | None = None) -> CanaryCommit:
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
        requests = _count(event.figures.requests) if event.figures else "0"
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
        return f"{judged} passed its analysis over {_seconds(figures.window_s)}: {measured}."
    if event.event == "rolled_back":
        return (f"{judged} failed its analysis over {_seconds(figures.window_s)}: "
                f"{event.reason}. Measured: {measured}.")
    return f"{judged} could not be judged: {event.reason}. Measured: {measured}."


def _figures_line(figures: Figures, analysis: CanaryAnalysis) -> str:
    rate = figures.success_rate
    return (f"{_count(figures.requests)} requests (at least {analysis.min_requests}), "
            f"success rate {_percent(rate) if rate is not None else 'n/a'} (at least "
            f"{analysis.success_rate:g}%), p99 latency "
            f"{_ms(figures.latency_p99_ms) if figures.latency_p99_ms is not None else 'n/a'} "
            f"(at most {analysis.latency_p99})")


def _figure_of(event: Event) -> str:
    """The failed check's own figure and threshold, from the event's reason."""
    reason = event.reason or ""
    check = event.check or ""
    return reason[len(check):].strip() if reason.startswith(check) else reason


def _split(run: CanaryRun) -> str:
    return f"{run.weight}% of requests to {run.canary}, {100 - run.weight}% to {run.stable}"


def _count(value: float) -> str:
    return str(round(value))


def _percent(value: float) -> str:
    return f"{value:.2f}%"


def _ms(value: float) -> str:
    return f"{value:.1f}ms"


def _seconds(value: float) -> str:
    return f"{value:g}s"


# --------------------------------------------------------------------------- runbook


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
        lines += _queries(queries)
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


def _queries(queries: VersionQueries) -> list[str]:
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
            f"{_count(figures.requests)} in {_seconds(figures.window_s)}" if figures else "—",
            _percent(rate) if rate is not None else "—",
            _ms(figures.latency_p99_ms) if figures and figures.latency_p99_ms is not None
            else "—",
            decision, f"{event.weight}%",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]
