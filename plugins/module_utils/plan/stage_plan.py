"""The plan of one environment at one stage: its provider's planner for the Kubernetes
services, and the Envoy planner for the services its hosts carry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..errors import MeshstageError
from ..intent.model import Intent
from ..providers.envoy_hosts.plan import plan_envoy
from ..providers.istio.plan import plan_istio
from ..providers.linkerd.plan import plan_linkerd
from ..stages import Stage
from .model import StageContribution, StagePlan, assemble

# The planner of the plain hosts' Envoy sidecars: it runs beside the cluster provider's.
HOSTS_PLANNER = "envoy"


def _planners() -> dict[str, Callable[[Intent], dict[Stage, StageContribution]]]:
    return {"istio": plan_istio, "linkerd": plan_linkerd, HOSTS_PLANNER: plan_envoy}


def plan_stage(intent: Intent) -> StagePlan:
    """The plan of ``intent.environment`` at ``intent.stage``: its provider's planner for
    the Kubernetes services, and the Envoy planner for the services its hosts carry."""
    planners = _planners()
    planner = planners.get(intent.provider) if intent.provider != HOSTS_PLANNER else None
    if planner is None:
        available = sorted(name for name in planners if name != HOSTS_PLANNER)
        raise MeshstageError(
            f"environment {intent.environment}: mesh_provider {intent.provider!r} has no "
            f"renderer yet (available: {', '.join(available)})"
        )
    planned = [planner(cluster_intent(intent))]
    if intent.hosts:
        planned.append(planners[HOSTS_PLANNER](intent))
    return assemble(intent, *planned)


def cluster_intent(intent: Intent) -> Intent:
    """The intent as the cluster's planner sees it: without the services hosts carry.

    A service carried by hosts in this environment is no Kubernetes workload here, so no
    cluster planner may render workload policies for it (DestinationRule, Sidecar,
    AuthorizationPolicy, exceptions); calls from cluster services to it are left out of
    their egress, and namespaces that only host services use are not labelled. Principals
    of host services still resolve (``by_name`` keeps every service). The calls that cross
    between hosts and the cluster are warned about by the intent check.
    """
    on_hosts = intent.host_services
    if not on_hosts:
        return intent
    services = tuple(
        replace(s, calls=tuple(c for c in s.calls if c not in on_hosts))
        for s in intent.services if s.name not in on_hosts)
    namespaces = {s.namespace for s in services}
    waves = tuple(replace(w, namespaces=tuple(n for n in w.namespaces if n in namespaces))
                  for w in intent.injection_waves)
    return replace(
        intent, services=services, injection_waves=waves,
        mtls_exceptions=tuple(e for e in intent.mtls_exceptions if e.service not in on_hosts),
        authorization=tuple(a for a in intent.authorization if a.service not in on_hosts),
        by_name={**intent.by_name, **{s.name: s for s in services}})


