"""``import_estate``: an estate's manifests in, a commented starting inventory out.

The steps, each its own module: the settings meshstage's own objects show
(``settings.py``); the workloads as people name them and the catalogue of services with
ports, protocols, versions, probes and kinds (``workloads.py``, ``services.py``); calls from
what the workloads are told and from NetworkPolicies (``calls.py``); each mesh's objects,
read by the provider's ``estate_import`` (the Gateway API's routes by
``providers/gatewayapi/estate_import.py``); the callers Prometheus observed (``observed.py``,
given as ``Call`` records); then the decisions across all of them (which ALLOW policies
stay derived from calls, the stage the estate is at, the waves, default deny), and the text
(``commented.py``, ``layout.py``).

The inventory written parses (``parse_intent``): an importer that would write one that does
not is a bug, and raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import IntentErrors, MeshstageError
from ..estate.index import MeshIndex
from ..estate.objects import Resource
from ..gates.gate import Call
from ..intent.parse import intent_keys, parse_intent
from ..providers.gatewayapi.estate_import import import_gateway_routes
from ..providers.registry import MESHES
from ..stages import Stage
from .calls import calls_from_alerting, calls_from_environment, calls_from_network_policies
from .draft import Draft, ServiceDraft
from .observed import calls_observed
from .outside import (
    external_entries,
    external_principals,
    find_external_callers,
    forget_external_rules,
    principal_of,
)
from .services import build_catalogue
from .settings import estate_environment, read_settings
from .waves import ProposedWave, propose_waves
from .workload_fields import describe_workloads
from .workloads import HELM_HOOK, helm_test, injected_with, workload_groups

SERVICE_KEYS = ("name", "namespace", "selector", "service_account", "kind", "ports",
                "peer_ports", "pod_ports", "pod_addressed", "versions", "calls", "ingress",
                "inject", "init_network", "probe_paths", "canary", "traffic")
SHARED_KEYS = ("mesh_provider", "mesh_traffic_api", "mesh_trust_domain", "mesh_root_namespace",
               "mesh_revision", "mesh_linkerd", "mesh_injection_waves", "mesh_services",
               "mesh_mtls_exceptions", "mesh_telemetry", "mesh_authorization",
               "mesh_default_deny", "mesh_ingress_gateway", "mesh_proxy", "mesh_install",
               "mesh_gitops", "mesh_external_callers")


@dataclass(frozen=True)
class ImportOptions:
    """What ``meshstage import`` is told beside the manifests."""

    environment: str | None = None   # default: the estate's meshstage label, else "dev"
    provider: str | None = None      # default: the mesh the estate shows, else istio
    namespaces: tuple[str, ...] = ()          # only these (default: every application's)
    exclude_namespaces: tuple[str, ...] = ()
    check_paths: tuple[str, ...] = ()         # written as mesh_check_paths
    observed: Sequence[Call] = ()             # callers Prometheus observed
    observed_from: str = ""                   # "Prometheus <url> over the last 1h"


@dataclass
class Imported:
    """The inventory written from an estate: its variables, the notes on them, and what it
    could not say."""

    shared: dict[str, Any]
    environment: dict[str, Any]
    notes: dict[str, list[str]]
    draft: Draft
    warnings: list[str] = field(default_factory=list)

    @property
    def variables(self) -> dict[str, Any]:
        """Every variable of the environment, as Ansible merges them."""
        return {**self.shared, **self.environment}

    @property
    def intent_variables(self) -> dict[str, Any]:
        """The variables ``parse_intent`` reads (the run's own, like mesh_check_paths, out)."""
        return {k: v for k, v in self.variables.items() if k in intent_keys()}


def import_estate(resources: Sequence[Resource], options: ImportOptions = ImportOptions()
                  ) -> Imported:
    latest: dict[tuple[str, str, str, str], list[Resource]] = {}
    for resource in resources:
        key = (resource.group, resource.kind, resource.namespace, resource.name)
        latest.setdefault(key, []).append(resource)
    index = MeshIndex([found[-1] for found in latest.values()])
    draft = Draft(index)
    for found in latest.values():
        if len(found) > 1:  # as kubectl apply of the files in order: the last one stays
            draft.keep(found[-1], f"defined {len(found)} times in the input ("
                       + ", ".join(r.source for r in found) + "): the last one is read")
    read_settings(draft)
    draft.provider = options.provider or _guess_provider(draft)
    groups = []
    for group in workload_groups(index):
        if helm_test(group.root.resource):
            draft.keep(group.root.resource, "a Helm test hook (helm.sh/hook: "
                       f"{group.root.annotations.get(HELM_HOOK)}): it runs only in `helm "
                       "test`, not a workload of the estate's services")
        else:
            groups.append(group)
    build_catalogue(draft, groups, options.namespaces, options.exclude_namespaces)
    describe_workloads(draft)
    find_external_callers(draft)
    _backends(draft)
    calls_from_environment(draft)
    calls_from_network_policies(draft)
    calls_from_alerting(draft)
    import_gateway_routes(draft)
    for provider in MESHES.values():
        if provider.estate_import is not None:
            provider.estate_import(draft)
    calls_observed(draft, options.observed, options.observed_from)
    _idle_jobs(draft)
    _per_pod_injection(draft)
    _registry_notes(draft)
    return _finish(draft, options)


def _idle_jobs(draft: Draft) -> None:
    """Clients whose pods run to completion, call no service of the catalogue and reach no
    network from an init container (an ingress controller's admission Jobs, which make its
    certificates): nothing of the mesh is theirs to keep working, and a classic sidecar
    would keep them from completing, so they stay out of the catalogue and of its waves,
    and are listed."""
    for service in list(draft.services.values()):
        if service.service is None and not service.calls and service.workloads \
                and not service.fields.get("init_network") and all(
                    w.runs_to_completion for g in service.workloads for w in g.running):
            del draft.services[service.name]
            for group in service.workloads:
                draft.keep(group.root.resource, "runs to completion and calls no service of "
                           "the catalogue: left out of it and of its waves (a classic "
                           "sidecar would keep its pods from completing)")


# Service registries that hand out pod addresses: Consul, Eureka, Nacos; by a word of their
# name or image, or by the port they serve (Consul's HTTP API 8500, Eureka's 8761, Nacos'
# 8848), as a Spring estate's discovery-server shows only by its port
_REGISTRIES = ("consul", "eureka", "nacos")
_REGISTRY_PORTS = frozenset({8500, 8761, 8848})


def _registry_notes(draft: Draft) -> None:
    """A service that calls a service registry may be found there by its callers, at its
    pods' own addresses rather than its Service's: say so beside it (``pod_addressed``),
    which no manifest can tell."""
    registries = {s.name for s in draft.services.values()
                  if any(word in s.name for word in _REGISTRIES) or any(
                      word in str(c.get("image") or "") for g in s.workloads
                      for c in g.root.containers for word in _REGISTRIES)
                  or any(p.get("port") in _REGISTRY_PORTS for p in s.fields.get("ports") or ())}
    for service in draft.services.values():
        found = sorted(registries & set(service.calls))
        if found and service.name not in registries and service.fields.get("ports"):
            service.note("", f"it calls {', '.join(found)}, a service registry: if its "
                         "callers find it there, at its pods' own addresses, write "
                         "pod_addressed: true (Istio's STRICT refuses the plaintext its "
                         "callers' sidecars send to a pod address no Service declares)")


def _guess_provider(draft: Draft) -> str:
    counts = {name: 0 for name in MESHES}
    for resource in draft.index.resources:
        metadata = resource.obj.get("metadata") or {}
        text = "\0".join([resource.group, *(metadata.get("labels") or ()),
                          *(metadata.get("annotations") or ())])
        for name, provider in MESHES.items():
            if any(mark in text for mark in provider.marks):
                counts[name] += 1
    for workload in draft.index.workloads:
        for name, provider in MESHES.items():
            if provider.sidecar is not None and provider.sidecar.container in \
                    workload.container_names:
                counts[name] += 1
    best = max(counts, key=lambda n: (counts[n], n == "istio"))
    if counts[best]:
        draft.note("mesh_provider", f"the mesh the estate runs: {counts[best]} object(s) of "
                   f"{best}" + "".join(f", {counts[n]} of {n}" for n in counts
                                       if n != best and counts[n]))
    else:
        draft.note("mesh_provider", "no mesh in the estate: istio is the default; write "
                   "linkerd to adopt Linkerd")
    return best


def _backends(draft: Draft) -> None:
    """Services that carry one version of a catalogue service (meshstage's version Services
    and the team's own): their selector is the service's with version labels added."""
    for resource in draft.index.of_kind("Service"):
        selector = {str(k): str(v) for k, v in (resource.spec.get("selector") or {}).items()}
        service = draft.services.get(selector.get("app", ""))
        if service is None or service.namespace != resource.namespace \
                or resource.name == service.name:
            continue
        extra = {k: v for k, v in selector.items() if k != "app"}
        if extra:
            draft.backends[(resource.namespace, resource.name)] = (service, extra)


def _per_pod_injection(draft: Draft) -> None:
    for service in draft.services.values():
        for group in service.workloads:
            meshes = injected_with(group)
            if meshes and service.namespace not in draft.injected:
                service.note("", f"{group.display} runs {', '.join(meshes)}'s proxy already, "
                             "though its namespace is not labelled for injection")


# --------------------------------------------------------------------------- decisions


def _finish(draft: Draft, options: ImportOptions) -> Imported:
    _authorization(draft)
    stage, why = _stage(draft)
    waves, injected = propose_waves(draft)
    notes: dict[str, list[str]] = {}
    shared = _shared_variables(draft, waves, notes)
    environment = _environment_variables(draft, options, stage, why, injected, notes)
    imported = Imported(shared, environment, notes, draft)
    imported.warnings = _parse_warnings(imported)
    return imported


def _shared_variables(draft: Draft, waves: list[ProposedWave], notes: dict[str, list[str]]
                      ) -> dict[str, Any]:
    """mesh.yml's variables, in SHARED_KEYS' order, and their notes (the estate's own
    notes of mesh_* variables last)."""
    shared: dict[str, Any] = {"mesh_provider": draft.provider}
    services = _service_items(draft, notes)
    for key in SHARED_KEYS:
        if key in draft.shared and key not in shared:
            shared[key] = draft.shared[key]
    shared["mesh_injection_waves"] = [_wave_item(w) for w in waves]
    for number, wave in enumerate(waves):
        notes.setdefault(f"mesh_injection_waves[{number}]", []).append(wave.why)
    shared["mesh_services"] = services
    if draft.mtls_exceptions:
        shared["mesh_mtls_exceptions"] = draft.mtls_exceptions
    external = external_entries(draft, notes)
    if external:
        shared["mesh_external_callers"] = external
    entries = _authorization_entries(draft, notes)
    if entries:
        shared["mesh_authorization"] = entries
    shared["mesh_default_deny"] = _default_deny(draft, notes)
    for key, texts in draft.notes.items():
        if key.startswith("mesh_") and not key.startswith("mesh_authorization."):
            notes.setdefault(key, []).extend(texts)
    return {key: shared[key] for key in SHARED_KEYS if key in shared}


def _service_items(draft: Draft, notes: dict[str, list[str]]) -> list[dict[str, Any]]:
    """mesh_services, with each service's notes under its index."""
    items = []
    for number, service in enumerate(draft.services.values()):
        items.append(_service_item(draft, service))
        for path, texts in service.notes.items():
            key = f"mesh_services[{number}]" + (f".{path}" if path else "")
            notes.setdefault(key, []).extend(texts)
    return items


def _authorization_entries(draft: Draft, notes: dict[str, list[str]]
                           ) -> list[dict[str, Any]]:
    """mesh_authorization in the catalogue's order, each entry's notes under its index."""
    entries = [draft.authorization[s.name] for s in draft.services.values()
               if s.name in draft.authorization]
    for number, entry in enumerate(entries):
        notes[f"mesh_authorization[{number}]"] = draft.notes.get(
            f"mesh_authorization.{entry['service']}", [])
    return entries


def _environment_variables(draft: Draft, options: ImportOptions, stage: Stage, why: str,
                           injected: int, notes: dict[str, list[str]]) -> dict[str, Any]:
    """host_vars' variables: the environment, its stage and injected waves, its cluster, and
    the manifests every run checks against; and their notes."""
    environment_name = options.environment or estate_environment(draft) or "dev"
    environment: dict[str, Any] = {"mesh_environment": environment_name, "mesh_stage":
                                   stage.value, "mesh_injected_waves": injected}
    notes["mesh_stage"] = [why]
    notes["mesh_injected_waves"] = [
        "the first wave is injected in the estate already" if injected else
        "no namespace of the catalogue is injected in the estate yet"]
    if "mesh_cluster" in draft.environment:
        environment["mesh_cluster"] = draft.environment["mesh_cluster"]
    if options.check_paths:
        environment["mesh_check_paths"] = list(options.check_paths)
        notes["mesh_check_paths"] = ["the manifests this inventory was imported from: every "
                                     "run checks the inventory against them (docs/import.md)"]
    if draft.replaced:
        environment["mesh_replaced"] = list(draft.replaced)
        notes["mesh_replaced"] = [
            "the estate's mesh objects the intent now says: meshstage's own take their place, "
            "so every run leaves these out of the estate it judges; delete them once "
            "meshstage's are synced (the runbook says when)"]
    return environment


def _parse_warnings(imported: Imported) -> list[str]:
    """The warnings of the inventory written; it parses, or meshstage has a bug."""
    try:
        _, warnings = parse_intent(imported.intent_variables)
    except IntentErrors as error:
        raise MeshstageError(f"the inventory imported from the estate does not parse (a "
                             f"meshstage bug; please report it): {error}") from error
    return warnings


def _service_item(draft: Draft, service: ServiceDraft) -> dict[str, Any]:
    fields = dict(service.fields)
    fields["name"] = service.name
    if not fields.get("traffic"):
        fields.pop("traffic", None)
    if service.calls:
        fields["calls"] = sorted(service.calls)
        service.notes["calls"] = [f"{callee}: {'; '.join(sources)}" for callee, sources in
                                  sorted(service.calls.items())]
    if service.ingress_from:
        fields["ingress"] = True
        service.note("ingress", "; ".join(dict.fromkeys(service.ingress_from)))
    return {key: fields[key] for key in SERVICE_KEYS if key in fields}


def _wave_item(wave: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"name": wave.name}
    if wave.namespaces:
        item["namespaces"] = list(wave.namespaces)
    if wave.services:
        item["services"] = list(wave.services)
    return item


def _principal(draft: Draft, service: ServiceDraft) -> str:
    return principal_of(draft, service.namespace,
                        service.fields.get("service_account", service.name))


def _authorization(draft: Draft) -> None:
    """Keep a derived ALLOW derived when the calls found give back exactly the principals
    it admits; otherwise the existing policy becomes an explicit entry, so that meshstage
    renders what the estate enforces. A service that keeps its own policies gets an entry
    without rules (meshstage renders none for it)."""
    gateway = "{}/ns/{}/sa/{}".format(draft.trust_domain, *draft.ingress_gateway())
    forget_external_rules(draft)
    for service in draft.services.values():
        if service.keeps_own_policies:
            draft.authorization[service.name] = {"service": service.name}
            draft.note(f"mesh_authorization.{service.name}", "it keeps its own policies, "
                       "which the intent cannot say (listed at the end): no rules of "
                       "meshstage's")
            continue
        if service.admitted is None or service.name in draft.authorization:
            continue
        callers = [c for c in draft.services.values() if service.name in c.calls]
        expected = {_principal(draft, c) for c in callers}
        if service.ingress_from:
            expected.add(gateway)
        # the principals of its external callers and of its own peers are derived from
        # mesh_external_callers and peer_ports: rendered whether or not the estate has them
        others = external_principals(draft, service)
        if expected - others == set(service.admitted) - others:
            continue
        named, raw = draft.named_callers(service.admitted)
        rule = {**({"from": named} if named else {}), **({"principals": raw} if raw else {})}
        draft.authorization[service.name] = {"service": service.name, "allow": [rule]}
        draft.note(f"mesh_authorization.{service.name}", "from " + ", ".join(
            service.admitted_by) + ": the callers found elsewhere differ from the ones it "
            "admits, so its rule is written as it is")


def _stage(draft: Draft) -> tuple[Stage, str]:
    if not draft.stage_hints:
        return Stage.PERMISSIVE_MTLS, ("no mesh object of the estate shows a later stage: "
                                       "the first stage")
    stage = max((s for s, _ in draft.stage_hints), key=lambda s: s.number)
    reasons = list(dict.fromkeys(why for s, why in draft.stage_hints if s is stage))
    shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3
                                      else "")
    return stage, f"guessed from the estate: {shown}"


def _default_deny(draft: Draft, notes: dict[str, list[str]]) -> bool:
    if draft.default_deny:
        notes["mesh_default_deny"] = ["; ".join(draft.default_deny[:3])]
        return True
    if any(s is Stage.AUTHORIZATION or "dry run" in why for s, why in draft.stage_hints):
        notes["mesh_default_deny"] = ["the estate authorizes, but nothing denies by default"]
        return False
    notes["mesh_default_deny"] = ["the default: at the authorization stage, every request no "
                                  "ALLOW admits is denied"]
    return True
