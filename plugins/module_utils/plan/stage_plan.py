"""The plan of one environment at one stage: its provider's planner for the Kubernetes
services, and the Envoy planner for the services its hosts carry."""

from __future__ import annotations

from dataclasses import replace

from ..errors import IntentErrors
from ..estate.estate import Estate
from ..intent.model import Intent
from ..providers.registry import HOSTS, mesh
from ..stages import Stage
from .callers import with_plaintext_exceptions
from .model import Note, StagePlan, assemble


def plan_stage(intent: Intent, estate: Estate | None = None) -> StagePlan:
    """The plan of ``intent.environment`` at ``intent.stage``: its provider's planner for
    the Kubernetes services, and the Envoy planner for the services its hosts carry.
    ``estate``: the estate's manifests (``mesh_check_paths``), when the run was given them.

    Raises ``IntentErrors`` first for what the intent asks that the mesh would apply more
    widely than meant (the provider's ``refusals``)."""
    provider = mesh(intent.provider)
    refused = list(provider.refusals(intent))
    if refused:
        raise IntentErrors(refused)
    planned = [provider.plan(with_plaintext_exceptions(cluster_intent(intent)), estate)]
    if intent.hosts:
        planned.append(HOSTS.plan(intent, estate))
    plan = assemble(intent, *planned)
    if plan.refusals:
        raise IntentErrors(plan.refusals)
    if estate is None:
        plan.warnings.extend(assumed_versions(intent))
    if intent.replaced:
        plan.notes.append(Note(intent.stage, replaced_note(intent)))
    return plan


def replaced_note(intent: Intent) -> str:
    """The runbook's hand-over of the estate's objects meshstage's own replace."""
    names = ", ".join(f"`{kind} {namespace}/{name}`" if namespace else f"`{kind} {name}`"
                      for kind, namespace, name in intent.replaced)
    return (f"Replaced: {names} (`mesh_replaced`): meshstage's objects say what they said, "
            "so this run judged the stage without them. Delete them, from the cluster and "
            "from the repository that applies them, once this commit is synced; until then, "
            "of two objects that conflict (two VirtualServices or PeerAuthentications of one "
            "host or workload), Istio applies the older, theirs. Linkerd refuses a second "
            "Server of the same pods and port at admission: delete such a Server first.")


def assumed_versions(intent: Intent) -> list[str]:
    """The short form of ``versions`` (``[v1, v2]``) assumes each version's pods carry the label
    ``version: <name>``; only the estate's manifests can tell. Said once, with no estate."""
    if not intent.stage.reached(Stage.TRAFFIC):
        return []
    short = [f"{s.namespace}/{s.name}" for s in intent.services  # hosts name their version
             if s.name not in intent.host_services
             and any(version.assumed for version in s.versions)]
    if not short:
        return []
    return [f"mesh_services[].versions: the short form (versions: [v1, ...]) assumes the "
            f"pods of each version are labelled version: <name>, and no estate was given "
            f"(mesh_check_paths) to check it, for {', '.join(short)}: write each version's "
            "labels, or give the estate's manifests"]


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


