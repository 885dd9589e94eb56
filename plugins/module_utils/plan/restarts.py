"""The runbook's restart commands: pods get the mesh's proxy only when they are created, so
each wave's workloads are restarted once the wave is injected. A wave of namespaces restarts
its namespaces; a wave that names services restarts their workloads only, by their selector,
so the services that wait for a later wave (a database held back) are not restarted."""

from __future__ import annotations

from ..estate.estate import Estate
from ..intent.model import Intent
from ..kube import selector_text

KINDS = "deployment,statefulset,daemonset"


def restart_commands(intent: Intent, estate: Estate | None = None) -> list[str]:
    """``kubectl rollout restart`` for the workloads of the last wave injected (none before
    the first). For a wave of services, each workload the estate shows by name (``-l``
    matches a workload's own labels, not its pods'; an Argo Rollout restarts with
    ``kubectl argo rollouts restart``, which skips its steps); without the estate, by the
    service's selector, which the workloads' own labels must carry."""
    if not intent.injected_waves:
        return []
    wave = intent.injection_waves[intent.injected_waves - 1]
    if not wave.services:
        return [f"kubectl rollout restart {KINDS} -n {namespace}"
                for namespace in wave.namespaces]
    commands = []
    for name in wave.services:
        service = intent.by_name.get(name)
        if service is None or not service.inject:
            continue
        workloads = estate.index.workloads_matching(service.namespace, service.selector) \
            if estate is not None else []
        named = [w for w in workloads if w.kind in _RESTARTED]
        if not named:
            commands.append(f"kubectl rollout restart {KINDS} -n {service.namespace} "
                            f"-l {selector_text(service.selector)}")
        for workload in named:
            commands.append(_RESTARTED[workload.kind].format(
                name=workload.resource.name, namespace=service.namespace))
    return list(dict.fromkeys(commands))


# how each kind is restarted (https://argoproj.github.io/argo-rollouts/features/restart/)
_RESTARTED = {
    "Deployment": "kubectl rollout restart deployment/{name} -n {namespace}",
    "StatefulSet": "kubectl rollout restart statefulset/{name} -n {namespace}",
    "DaemonSet": "kubectl rollout restart daemonset/{name} -n {namespace}",
    "Rollout": "kubectl argo rollouts restart {name} -n {namespace}",
}


def restart_note(intent: Intent, proxy: str, check: str, estate: Estate | None = None) -> str:
    """The runbook's note on the waves: how many are injected, and how to give the last
    one's pods the proxy (``proxy``: "sidecars", "the proxy"; ``check``: the mesh's own
    check, with ``<namespace>``)."""
    waves = intent.injection_waves
    pending = [w.name for w in waves[intent.injected_waves:]]
    text = (f"Injected waves: {intent.injected_waves} of {len(waves)}"
            + (f"; still to come: {', '.join(pending)}." if pending else "."))
    commands = restart_commands(intent, estate)
    if not commands:
        return text + f" Pods get {proxy} only when restarted, once their wave is injected."
    wave = waves[intent.injected_waves - 1]
    which = ("its services' only, so that the services that wait for a later wave are not "
             "restarted" if wave.services else "every one of its namespaces")
    return (text + f" Pods get {proxy} only when restarted: restart the workloads of wave "
            f"`{wave.name}` ({which}): " + "; ".join(f"`{c}`" for c in commands)
            + f"; then check `{check}` before the next wave (Jobs and CronJobs take it "
            "with their next run).")
