"""The plan of one environment at one stage: its provider's planner for the Kubernetes
services, and the Envoy planner for the services its hosts carry."""

from __future__ import annotations

from dataclasses import replace

from ..intent.model import Intent
from ..providers.registry import HOSTS, mesh
from .model import StagePlan, assemble


def plan_stage(intent: Intent) -> StagePlan:
    """The plan of ``intent.environment`` at ``intent.stage``: its provider's planner for
    the Kubernetes services, and the Envoy planner for the services its hosts carry."""
    planned = [mesh(intent.provider).plan(cluster_intent(intent))]
    if intent.hosts:
        planned.append(HOSTS.plan(intent))
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
        external_callers=tuple(
            replace(c, calls=tuple((name, ports) for name, ports in c.calls
                                   if name not in on_hosts))
            for c in intent.external_callers),
        by_name={**intent.by_name, **{s.name: s for s in services}})


