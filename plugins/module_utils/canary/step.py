"""One step of a canary run: read the record, judge the step in force, commit the next one.

``run_canary_step`` is what the ``meshstage.mesh.canary_step`` action calls, once per round
of ``playbooks/canary.yml``. It reads the run from the GitOps repository (never from the
previous call), so a run that was interrupted resumes where its last commit left it:

    no run (or the last one rolled back)   start: commit the first step
    in progress, or halted                 wait the interval, measure, judge (waiting more
                                           intervals while there are too few requests), then
                                           commit the next step, the promotion, the rollback
                                           or the halt
    promoted                               nothing to do
    mesh_canary_rollback                   commit the rollback of the run in progress

Every commit goes through ``pipeline.run_stage``: the environment is rendered with the new
record, validated and analyzed like any run, and committed with the step's message. The
decisions themselves are pure (``decisions.judge_step``, ``decisions.decide``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import IntentError
from ..gitops.repo import GitOpsRepo
from ..intent.checker import duration_seconds
from ..intent.model import Intent, Service
from ..intent.parse import parse_intent
from ..pipeline import StageOptions, StageResult, run_stage
from ..prometheus import PrometheusClient
from ..stages import Stage
from .decisions import decide, judge_step, roll_back_by_hand, start
from .messages import commit_for
from .queries import Figures, measure, measured_on, version_queries
from .record import CanaryError, CanaryRun, CanaryState, Decision, Status
from .shaping import pair_matches


@dataclass(frozen=True)
class CanaryOptions:
    """What the playbook asks of one round."""

    service: str
    prometheus_url: str | None = None
    rollback: bool = False       # roll the run in progress back by hand
    check_pending: bool = True   # refuse when the inventory has changes not yet committed
    preview: bool = False        # only say where the run stands and what it needs


@dataclass
class CanaryStepResult:
    environment: str
    service: str
    decision: str       # preview | started | advance | promote | rollback | halt | nothing
    status: str         # the run's status after the round ("none" without a run)
    step: int
    steps: list[int]
    weight: int
    done: bool          # the run is over (or there is nothing to do)
    changed: bool
    commit: str | None
    message: str
    figures: dict[str, Any] | None = None
    waits: int = 0
    hosts: list[str] = field(default_factory=list)
    rounds: int = 0
    warnings: list[str] = field(default_factory=list)
    commit_message: str = ""
    diff: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("diff")
        return data


def run_canary_step(variables: Mapping[str, Any], options: StageOptions,
                    canary: CanaryOptions, client: PrometheusClient | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> CanaryStepResult:
    """One round of the canary run of ``canary.service`` in the variables' environment."""
    intent, _warnings = parse_intent(variables)
    service = _canary_service(intent, canary.service)
    config = service.canary
    assert config is not None
    repo = GitOpsRepo(options.gitops_dir)
    meta = repo.scope_meta(intent.environment)
    _check_recorded(intent, service, meta)
    state = CanaryState.from_meta(meta.get("canary"))
    latest = state.latest(service.name)
    run = latest if latest is not None and pair_matches(config, latest) else None
    if canary.rollback and (run is None or not run.active):
        raise CanaryError(f"{intent.environment}: no canary run of {service.name} "
                          f"({config.stable} -> {config.subset}) is in progress to roll back"
                          + (f"; it is {run.describe()}" if run else ""))
    if canary.preview:
        return _preview(intent, service, run, canary)
    if run is not None and run.status is Status.PROMOTED:
        return _result(intent, service, run, "nothing", done=True, message=(
            f"{service.name}: {run.canary} was promoted over {run.stable} already; nothing to "
            "do (update the inventory as the runbook says)"))
    if canary.check_pending:
        _refuse_pending(variables, options, intent)
    figures: Figures | None = None
    waits = 0
    verdict = None
    if canary.rollback:
        assert run is not None
        after, new = roll_back_by_hand(run), False
    elif run is None or run.status is Status.ROLLED_BACK:
        after, new = start(service.name, config), True
    else:
        url = canary.prometheus_url or intent.gates.prometheus
        if not url and client is None:
            raise CanaryError(f"{intent.environment}: the canary run of {service.name} needs "
                              "Prometheus to analyze its step: set mesh_gates.prometheus (or "
                              "mesh_prometheus_url for this run)")
        client = client or PrometheusClient(str(url))
        figures, verdict, waits = _measure_step(intent, service, run, client, sleep)
        after, new = decide(run, verdict, figures), False
    state = state.with_run(after, new)
    stage = run_stage(variables, options, canary=commit_for(intent, state, after, verdict))
    decision = "started" if new else verdict.decision.value if verdict else "rollback"
    result = _result(intent, service, after, decision,
                     done=after.status is not Status.PROGRESSING or options.check_mode,
                     message=stage.message.splitlines()[0], stage=stage)
    result.figures = after.events[-1].as_meta().get("figures")
    result.waits = waits
    return result


def _measure_step(intent: Intent, service: Service, run: CanaryRun, client: PrometheusClient,
             sleep: Callable[[float], None]) -> tuple[Figures, Any, int]:
    """Wait the interval, measure and judge; wait again while there are too few requests."""
    config = service.canary
    assert config is not None
    queries = version_queries(intent, service, run.canary)
    interval = duration_seconds(config.analysis.interval)
    waits = 0
    while True:
        sleep(interval)
        figures = measure(client, queries, interval * (waits + 1))
        verdict = judge_step(figures, config.analysis, waits, last_step=run.step == len(run.steps))
        if verdict.decision is not Decision.WAIT:
            return figures, verdict, waits
        waits += 1


def _canary_service(intent: Intent, name: str) -> Service:
    service = intent.by_name.get(name)
    if service is None:
        raise IntentError("mesh_canary_service", name, "is not a service in mesh_services")
    if service.canary is None:
        raise IntentError(f"{intent.service_path(service)}.canary", None,
                          f"is required for a canary run of {name} (mesh_canary_service)")
    return service


def _check_recorded(intent: Intent, service: Service, meta: Mapping[str, Any]) -> None:
    """The repository must hold the environment at the inventory's stage, traffic or later."""
    refused = f"canary run of {service.name} in {intent.environment} refused"
    if not intent.stage.reached(Stage.TRAFFIC):
        raise CanaryError(f"{refused}: the environment is at {intent.stage.value!r}, and "
                          "canary weights are rendered from the traffic stage on")
    if not meta:
        raise CanaryError(f"{refused}: the GitOps repository records nothing for "
                          f"{intent.environment}; run playbooks/migrate.yml first")
    recorded = (meta.get("stage"), meta.get("provider"))
    if recorded != (intent.stage.value, intent.provider):
        raise CanaryError(f"{refused}: the GitOps repository records {intent.environment} at "
                          f"{recorded[0]!r} ({recorded[1]}), the inventory says "
                          f"{intent.stage.value!r} ({intent.provider}); run "
                          "playbooks/migrate.yml first")


def _refuse_pending(variables: Mapping[str, Any], options: StageOptions,
                    intent: Intent) -> None:
    """Each step's commit must hold the step only: refuse inventory changes not committed."""
    probe = run_stage(variables, replace(options, check_mode=True))
    if probe.changed:
        changed = sum(len(names) for names in probe.objects.values())
        raise CanaryError(
            f"{intent.environment}: the inventory has changes the GitOps repository does not "
            f"have yet ({changed} object(s)); commit them with playbooks/migrate.yml first, "
            "so that each canary step commits its step only")


def _preview(intent: Intent, service: Service, run: CanaryRun | None,
             canary: CanaryOptions) -> CanaryStepResult:
    config = service.canary
    assert config is not None
    if canary.rollback:
        rounds = 1
    elif run is None or run.status is Status.ROLLED_BACK:
        rounds = 1 + len(config.steps)   # start, then one analysis per step
    elif run.active:
        rounds = len(run.steps) - run.step + 1
    else:
        rounds = 0
    where = run.describe() if run else "not started"
    result = _result(intent, service, run, "preview", done=rounds == 0, message=(
        f"{service.name} ({config.stable} -> {config.subset}) in {intent.environment}: "
        f"{where}; measured on {measured_on(intent, service)}"))
    result.rounds = rounds
    result.hosts = caller_hosts(intent, service)
    return result


def caller_hosts(intent: Intent, service: Service) -> list[str]:
    """The environment's hosts whose sidecars route to the service (their routes carry its
    weights)."""
    return sorted(host.name for host in intent.injected_hosts()
                  if service.name in intent.service(host.service).calls)


def _result(intent: Intent, service: Service, run: CanaryRun | None, decision: str,
            done: bool, message: str, stage: StageResult | None = None) -> CanaryStepResult:
    config = service.canary
    assert config is not None
    return CanaryStepResult(
        environment=intent.environment, service=service.name, decision=decision,
        status=run.status.value if run else "none", step=run.step if run else 0,
        steps=list(run.steps if run else config.steps), weight=run.weight if run else 0,
        done=done, changed=bool(stage and stage.changed), commit=stage.commit if stage else None,
        message=message, hosts=_changed_hosts(stage) if stage else [],
        warnings=list(stage.warnings) if stage else [],
        commit_message=stage.message if stage else "", diff=list(stage.diff) if stage else [])


def _changed_hosts(stage: StageResult) -> list[str]:
    """Hosts whose sidecar files the commit changed (``EnvoyConfig <env>/<host>/<file>``)."""
    hosts = set()
    for names in stage.objects.values():
        for name in names:
            kind, _, path = name.partition(" ")
            parts = path.split("/")
            if kind == "EnvoyConfig" and len(parts) == 3:
                hosts.add(parts[1])
    return sorted(hosts)
