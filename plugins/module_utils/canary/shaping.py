"""What every run renders through a canary record: the weight of a run in progress, 0% after a
rollback, the promoted version; and the refusal to undo a promotion silently."""

from __future__ import annotations

from dataclasses import replace

from ..intent.model import Canary, Intent, Service, WeightedSubset
from .record import CanaryError, CanaryRun, CanaryState, Status


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
