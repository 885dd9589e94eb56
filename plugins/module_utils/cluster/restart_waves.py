"""Restart waves: after a wave's namespaces are labelled, restart its workloads so their pods
get the sidecar, one wave at a time, waiting for each rollout, stopping at the first that
fails.

A restart follows kubectl's convention (``kubectl rollout restart``): the pod template gets
the annotation ``kubectl.kubernetes.io/restartedAt: <RFC 3339 time>``, and the workload's
controller replaces its pods. Rollout status follows ``kubectl rollout status`` for
Deployments, StatefulSets and DaemonSets; a Deployment whose ``Progressing`` condition has
the reason ``ProgressDeadlineExceeded`` has failed.

The sequencing (``run_waves``) talks to the cluster only through a ``WorkloadApi``; the
``meshstage.mesh.restart_waves`` module gives it one over the Kubernetes API, tests give it
recorded objects. Time comes in as functions too, so nothing here sleeps on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import MeshstageError
from ..kube import selector_matches
from .cluster_facts import counted, has_sidecar, opted_out

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
WORKLOAD_KINDS: tuple[str, ...] = ("Deployment", "StatefulSet", "DaemonSet")
RESTART_MODES: tuple[str, ...] = ("uninjected", "all")


class RolloutFailed(MeshstageError):
    """A wave's rollout failed or timed out; ``reports`` say how far the waves got."""

    def __init__(self, message: str, reports: list[WaveReport]) -> None:
        self.reports = reports
        super().__init__(message)


@dataclass(frozen=True)
class Rollout:
    state: str  # done | waiting | failed
    message: str


@dataclass(frozen=True)
class Wave:
    name: str
    namespaces: tuple[str, ...]


@dataclass(frozen=True)
class RestartSettings:
    provider: str
    mode: str = "uninjected"  # restart only workloads with pods lacking the sidecar; or "all"
    opt_outs: tuple[Mapping[str, str], ...] = ()
    timeout: float = 300.0  # seconds for one wave's rollouts
    poll: float = 5.0
    check_mode: bool = False


@dataclass
class WaveReport:
    name: str
    namespaces: list[str]
    status: str = "not started"  # restarted | would restart | nothing to restart | failed
    restarted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "namespaces": self.namespaces, "status": self.status,
                "restarted": self.restarted, "skipped": self.skipped}


class WorkloadApi(Protocol):
    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's Deployments, StatefulSets and DaemonSets."""

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's Pods."""

    def restart(self, workload: Mapping[str, Any], patch: Mapping[str, Any]) -> None:
        """Send ``patch`` (a strategic merge patch) to the workload."""

    def read(self, workload: Mapping[str, Any]) -> dict[str, Any]:
        """The workload as the API server has it now."""


def workload_name(workload: Mapping[str, Any]) -> str:
    meta = workload.get("metadata") or {}
    return f"{workload.get('kind')} {meta.get('namespace')}/{meta.get('name')}"


def restart_patch(restarted_at: str) -> dict[str, Any]:
    """The patch ``kubectl rollout restart`` sends: a pod-template annotation."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}}}


def rollout_status(workload: Mapping[str, Any]) -> Rollout:
    """Where the workload's rollout stands, as ``kubectl rollout status`` judges it."""
    kind = workload.get("kind")
    if kind == "Deployment":
        return _deployment_status(workload)
    if kind == "StatefulSet":
        return _statefulset_status(workload)
    if kind == "DaemonSet":
        return _daemonset_status(workload)
    raise MeshstageError(f"{workload_name(workload)}: no rollout status for kind {kind!r}")


def _generation(workload: Mapping[str, Any]) -> tuple[int, int]:
    meta = workload.get("metadata") or {}
    status = workload.get("status") or {}
    return int(meta.get("generation") or 0), int(status.get("observedGeneration") or 0)


def _deployment_status(deployment: Mapping[str, Any]) -> Rollout:
    generation, observed = _generation(deployment)
    if generation > observed:
        return Rollout("waiting", "waiting for the deployment spec update to be observed")
    status = deployment.get("status") or {}
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Progressing" and \
                condition.get("reason") == "ProgressDeadlineExceeded":
            return Rollout("failed", "exceeded its progress deadline (ProgressDeadlineExceeded: "
                           f"{condition.get('message', '')})")
    replicas = (deployment.get("spec") or {}).get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    if updated < replicas:
        return Rollout("waiting", f"{updated} out of {replicas} new replicas have been updated")
    if (status.get("replicas") or 0) > updated:
        return Rollout("waiting", f"{(status.get('replicas') or 0) - updated} old replicas "
                       "are pending termination")
    available = status.get("availableReplicas") or 0
    if available < updated:
        return Rollout("waiting", f"{available} of {updated} updated replicas are available")
    return Rollout("done", "successfully rolled out")


def _rolling(workload: Mapping[str, Any]) -> bool:
    strategy = ((workload.get("spec") or {}).get("updateStrategy") or {}).get("type")
    return strategy in (None, "RollingUpdate")


def _statefulset_status(statefulset: Mapping[str, Any]) -> Rollout:
    if not _rolling(statefulset):
        return Rollout("failed", "rollout status is only available for the RollingUpdate "
                       "strategy type")
    generation, observed = _generation(statefulset)
    if observed == 0 or generation > observed:
        return Rollout("waiting", "waiting for the statefulset spec update to be observed")
    spec = statefulset.get("spec") or {}
    status = statefulset.get("status") or {}
    replicas = spec.get("replicas", 1)
    if (status.get("readyReplicas") or 0) < replicas:
        return Rollout("waiting", f"waiting for {replicas - (status.get('readyReplicas') or 0)}"
                       " pods to be ready")
    partition = (((spec.get("updateStrategy") or {}).get("rollingUpdate") or {})
                 .get("partition"))
    if partition is not None:
        if (status.get("updatedReplicas") or 0) < replicas - partition:
            return Rollout("waiting", "waiting for the partitioned roll out to finish: "
                           f"{status.get('updatedReplicas') or 0} out of "
                           f"{replicas - partition} new pods have been updated")
        return Rollout("done", "partitioned roll out complete")
    if status.get("updateRevision") != status.get("currentRevision"):
        return Rollout("waiting", f"waiting for the rolling update to complete "
                       f"{status.get('updatedReplicas') or 0} pods at revision "
                       f"{status.get('updateRevision')}")
    return Rollout("done", "rolling update complete")


def _daemonset_status(daemonset: Mapping[str, Any]) -> Rollout:
    if not _rolling(daemonset):
        return Rollout("failed", "rollout status is only available for the RollingUpdate "
                       "strategy type")
    generation, observed = _generation(daemonset)
    if generation > observed:
        return Rollout("waiting", "waiting for the daemon set spec update to be observed")
    status = daemonset.get("status") or {}
    desired = status.get("desiredNumberScheduled") or 0
    updated = status.get("updatedNumberScheduled") or 0
    if updated < desired:
        return Rollout("waiting", f"{updated} out of {desired} new pods have been updated")
    available = status.get("numberAvailable") or 0
    if available < desired:
        return Rollout("waiting", f"{available} of {desired} updated pods are available")
    return Rollout("done", "successfully rolled out")


def restart_candidates(workloads: Iterable[Mapping[str, Any]],
                       pods: Sequence[Mapping[str, Any]],
                       settings: RestartSettings) -> tuple[list[Mapping[str, Any]], list[str]]:
    """Which workloads to restart, and why the others are skipped.

    Mode ``uninjected`` restarts a workload when one of its running pods lacks the sidecar;
    ``all`` restarts every workload (after a proxy upgrade, say). Never restarted: workloads
    opted out of injection, and those whose update strategy is ``OnDelete`` (a restart would
    not replace their pods).
    """
    if settings.mode not in RESTART_MODES:
        raise MeshstageError(f"restart mode {settings.mode!r} is not one of "
                             + ", ".join(RESTART_MODES))
    restart: list[Mapping[str, Any]] = []
    skipped: list[str] = []
    ordered = sorted((w for w in workloads if w.get("kind") in WORKLOAD_KINDS),
                     key=workload_name)
    for workload in ordered:
        name = workload_name(workload)
        spec = workload.get("spec") or {}
        template = spec.get("template") or {}
        if opted_out(template, settings.provider, settings.opt_outs):
            skipped.append(f"{name}: opted out of injection")
            continue
        if not _rolling(workload):
            skipped.append(f"{name}: updateStrategy OnDelete, a restart would not replace its "
                           "pods; delete them to inject")
            continue
        if settings.mode == "uninjected":
            namespace = (workload.get("metadata") or {}).get("namespace")
            own = [p for p in pods if counted(p)
                   and (p.get("metadata") or {}).get("namespace") == namespace
                   and selector_matches(spec.get("selector"),
                                        (p.get("metadata") or {}).get("labels") or {})]
            if not own:
                skipped.append(f"{name}: no running pods")
                continue
            if all(has_sidecar(p, settings.provider) for p in own):
                skipped.append(f"{name}: every pod has the sidecar")
                continue
        restart.append(workload)
    return restart, skipped


def run_waves(waves: Sequence[Wave], api: WorkloadApi, settings: RestartSettings,
              now: Callable[[], str], clock: Callable[[], float],
              sleep: Callable[[float], None]) -> list[WaveReport]:
    """Restart wave after wave; each waits for its rollouts before the next one starts.

    Raises ``RolloutFailed`` at the first rollout that fails or does not finish within
    ``settings.timeout`` seconds, naming the wave and the workload; later waves are not
    touched. In check mode nothing is restarted and nothing waited for.
    """
    reports = [WaveReport(wave.name, list(wave.namespaces)) for wave in waves]
    for wave, report in zip(waves, reports, strict=True):
        workloads: list[dict[str, Any]] = []
        pods: list[dict[str, Any]] = []
        for namespace in wave.namespaces:
            workloads.extend(api.workloads(namespace))
            if settings.mode == "uninjected":
                pods.extend(api.pods(namespace))
        restart, report.skipped = restart_candidates(workloads, pods, settings)
        report.restarted = [workload_name(w) for w in restart]
        if not restart:
            report.status = "nothing to restart"
            continue
        if settings.check_mode:
            report.status = "would restart"
            continue
        patch = restart_patch(now())
        for workload in restart:
            api.restart(workload, patch)
        report.status = "restarting"
        _wait(wave, report, restart, api, settings, clock, sleep, reports)
        report.status = "restarted"
    return reports


def _wait(wave: Wave, report: WaveReport, restarted: Sequence[Mapping[str, Any]],
          api: WorkloadApi, settings: RestartSettings, clock: Callable[[], float],
          sleep: Callable[[float], None], reports: list[WaveReport]) -> None:
    pending = {workload_name(w): w for w in restarted}
    last: dict[str, str] = {}
    deadline = clock() + settings.timeout
    while True:
        for name in sorted(pending):
            status = rollout_status(api.read(pending[name]))
            if status.state == "failed":
                report.status = "failed"
                raise RolloutFailed(f"wave {wave.name!r}: {name}: rollout failed: "
                                    f"{status.message}", reports)
            if status.state == "done":
                del pending[name]
            else:
                last[name] = status.message
        if not pending:
            return
        if clock() >= deadline:
            name = sorted(pending)[0]
            report.status = "failed"
            raise RolloutFailed(f"wave {wave.name!r}: {name}: rollout did not finish within "
                                f"{settings.timeout:g}s: {last[name]}", reports)
        sleep(settings.poll)
