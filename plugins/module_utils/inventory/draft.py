"""An inventory being written from an estate: its values, and what each was guessed from.

``Draft`` is what every reader of the estate fills in (the importer's own readers, and each
provider's, see ``Provider.estate_import``): the catalogue's services (``ServiceDraft``), the
calls between them with what says so, the shared and per-environment settings, the stage the
estate's mesh objects show, and the objects the intent cannot say (left as they are). A value
is plain inventory data; its notes (the comments the written inventory carries) are kept
beside it under its field path, e.g. ``mesh_services[2].ports[0].protocol``.

Nothing here reads files or queries anything: the estate comes in as a ``MeshIndex``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..estate.index import MeshIndex
from ..estate.objects import Resource, Workload
from ..kube import MANAGED_BY_LABEL, MANAGED_BY_VALUE, selector_matches
from ..stages import Stage


@dataclass(frozen=True, eq=False)
class WorkloadGroup:
    """One workload as a person names it: the controller that owns its pod template
    (``root``), its kind as written (``Deployment``, ``Argo Rollout``, ...) and the objects
    it owns in the estate (ReplicaSets, Jobs, Pods), which show what really runs."""

    root: Workload
    kind: str
    owned: tuple[Workload, ...] = ()

    @property
    def display(self) -> str:
        return f"{self.kind} {self.root.namespace}/{self.root.resource.name}"

    @property
    def labels(self) -> Mapping[str, str]:
        return self.root.labels

    @property
    def running(self) -> tuple[Workload, ...]:
        """The pods (or pod templates) of the workload: what is injected shows there."""
        return (self.root, *self.owned)

    @cached_property
    def containers(self) -> frozenset[str]:
        """The names of every container its pods run (a mesh's proxy among them)."""
        return frozenset(name for w in self.running for name in w.container_names)


@dataclass(eq=False)
class ServiceDraft:
    """One service of the catalogue being written."""

    name: str
    namespace: str
    service: Resource | None                      # its Kubernetes Service (None: a client)
    workloads: list[WorkloadGroup] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)   # intent keys, in writing order
    notes: dict[str, list[str]] = field(default_factory=dict)  # "ports[0].protocol" -> notes
    calls: dict[str, list[str]] = field(default_factory=dict)  # callee -> what says so
    # the principals (``<td>/ns/<ns>/sa/<sa>``) an existing ALLOW policy of the derived form
    # admits, and the objects that say so; None when no such policy governs the service
    admitted: list[str] | None = None
    admitted_by: list[str] = field(default_factory=list)
    ingress_from: list[str] = field(default_factory=list)   # what says it is ingress
    keeps_own_policies: bool = False   # its policies cannot be said: no derived ALLOW guess
    _pods: tuple[int, list[Workload]] | None = field(default=None, repr=False)
    _labels: set[tuple[str, str]] | None = field(default=None, repr=False)

    def note(self, path: str, text: str) -> None:
        """A comment on one of the service's fields (``""``: on the service itself)."""
        notes = self.notes.setdefault(path, [])
        if text not in notes:
            notes.append(text)

    def put(self, key: str, value: Any, note: str | None = None) -> None:
        self.fields[key] = value
        if note:
            self.note(key, note)

    def set_routes(self, found: dict[str, Any], source: str) -> None:
        """Routing read from ``source``: traffic fields, and a canary or a split (a later
        source replaces what an earlier one said of either)."""
        traffic = self.fields.setdefault("traffic", {})
        canary = found.pop("canary", None)
        if canary or found.get("split"):
            traffic.pop("split", None)
            self.fields.pop("canary", None)
        traffic.update(found)
        if canary:
            self.put("canary", canary, f"the weights of {source} (a canary of two versions; "
                     "write traffic.split if it is not one)")
        self.note("traffic", f"the routes of {source}")

    def version_names(self) -> list[str]:
        return [str(v["name"] if isinstance(v, dict) else v)
                for v in self.fields.get("versions") or []]

    @property
    def accounts(self) -> set[str]:
        return {group.root.service_account for group in self.workloads}

    def pods(self) -> list[Workload]:
        """Every pod and pod template of its workloads (read once: the catalogue is built
        whole before anything asks)."""
        if self._pods is None or self._pods[0] != len(self.workloads):
            self._pods = (len(self.workloads),
                          [w for group in self.workloads for w in group.running])
        return self._pods[1]

    def carries(self, key: str, value: str) -> bool:
        """True when one of its pods carries the label ``key: value``."""
        if self._labels is None:
            self._labels = {(k, v) for w in self.pods() for k, v in w.labels.items()}
        return (key, value) in self._labels


@dataclass(eq=False)
class ExternalCallerDraft:
    """A caller of the catalogue that is not a service of it (``mesh_external_callers``):
    what it is, where it runs, what it calls (service -> workload ports) and what says so."""

    name: str
    kind: str                              # intent.model.EXTERNAL_CALLER_KINDS
    namespace: str | None = None
    service_account: str | None = None
    pods: tuple[Workload, ...] = ()        # its pods the estate shows
    calls: dict[str, set[int]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    # the path a scrape GETs, per (service, workload port) it scrapes
    paths: dict[tuple[str, int], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def metrics_path(self) -> str:
        """The path most of its scrapes GET (``/metrics`` when as many GET another)."""
        counts = Counter(self.paths.values())
        return max(sorted(counts), key=lambda p: (counts[p], p == "/metrics"),
                   default="/metrics")


@dataclass(eq=False)
class Draft:
    """Everything one import has found so far."""

    index: MeshIndex
    provider: str = "istio"
    services: dict[str, ServiceDraft] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)        # mesh.yml variables
    environment: dict[str, Any] = field(default_factory=dict)   # host_vars variables
    notes: dict[str, list[str]] = field(default_factory=dict)   # "mesh_telemetry" -> notes
    stage_hints: list[tuple[Stage, str]] = field(default_factory=list)
    injected: dict[str, str] = field(default_factory=dict)  # namespace -> what injects it
    listed: list[tuple[str, str]] = field(default_factory=list)      # (object, why kept)
    converted: list[tuple[str, str]] = field(default_factory=list)   # (object, became what)
    # the objects of the estate meshstage's own replace, "Kind namespace/name": mesh_replaced
    replaced: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)   # callers and edges beyond the estate
    default_deny: list[str] = field(default_factory=list)   # what shows default deny
    no_default_deny: list[str] = field(default_factory=list)
    mtls_exceptions: list[dict[str, Any]] = field(default_factory=list)
    authorization: dict[str, dict[str, Any]] = field(default_factory=dict)  # by service
    held: set[str] = field(default_factory=set)    # services opted out of injection
    charts: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # chart -> values
    external: dict[str, ExternalCallerDraft] = field(default_factory=dict)  # by name
    _said: set[tuple[str, str, str]] = field(default_factory=set, repr=False)
    _said_of: set[str] = field(default_factory=set, repr=False)   # the objects listed
    _by_namespace: dict[str, list[ServiceDraft]] | None = field(default=None, repr=False)
    _by_account: dict[tuple[str, str], list[ServiceDraft]] | None = field(default=None,
                                                                         repr=False)
    _indexed: int = field(default=-1, repr=False)
    # a version's own Service (meshstage's, or the team's): (namespace, name) -> (the
    # service, the labels its selector adds)
    backends: dict[tuple[str, str], tuple[ServiceDraft, dict[str, str]]] = field(
        default_factory=dict)

    # ---- lookups

    def service_at(self, namespace: str, name: str) -> ServiceDraft | None:
        found = self.services.get(name)
        return found if found is not None and found.namespace == namespace else None

    def services_in(self, namespace: str) -> list[ServiceDraft]:
        """The catalogue's services of a namespace (indexed once the catalogue is read; the
        catalogue is not changed after)."""
        if self._by_namespace is None or self._indexed != len(self.services):
            self._by_namespace, self._by_account = {}, {}
            for service in self.services.values():
                self._by_namespace.setdefault(service.namespace, []).append(service)
                for account in service.accounts:
                    self._by_account.setdefault((service.namespace, account), []).append(
                        service)
            self._indexed = len(self.services)
        return self._by_namespace.get(namespace, [])

    def services_running_as(self, namespace: str, account: str) -> list[ServiceDraft]:
        self.services_in(namespace)
        assert self._by_account is not None
        return list(self._by_account.get((namespace, account), []))

    def services_selected(self, namespace: str,
                          selector: Mapping[str, Any]) -> list[ServiceDraft]:
        """Services of ``namespace`` whose pods a LabelSelector selects (every pod of one
        of them, so that a selector of one version still names the service)."""
        wanted = {str(k): str(v) for k, v in (selector.get("matchLabels") or {}).items()}
        return [s for s in self.services_in(namespace)
                if all(s.carries(k, v) for k, v in wanted.items())
                and any(selector_matches(selector, w.labels) for w in s.pods())]

    def services_with_label(self, namespace: str,
                            labels: Mapping[str, str]) -> list[ServiceDraft]:
        """Services whose pods all carry ``labels`` (the intent's selector, ``app: name``)."""
        items = labels.items()
        return [s for s in self.services_in(namespace)
                if all(s.carries(k, v) for k, v in items) and s.pods()
                and all(all(w.labels.get(k) == v for k, v in items) for w in s.pods())]

    def service_for_host(self, namespace: str, host: str) -> ServiceDraft | None:
        """The service a host names seen from ``namespace`` (``reviews``, ``reviews.shop``,
        its FQDN), or the service a version backend (``reviews-v1``) belongs to."""
        parts = host.lower().split(".")
        if len(parts) >= 3 and parts[2] != "svc":
            return None
        name, where = parts[0], parts[1] if len(parts) > 1 else namespace
        found = self.service_at(where, name)
        if found is None and (where, name) in self.backends:
            found = self.backends[(where, name)][0]
        return found

    def version_of_backend(self, namespace: str, name: str) -> str | None:
        """The version a backend Service carries (by its labels), or None."""
        entry = self.backends.get((namespace, name))
        if entry is None:
            return None
        service, labels = entry
        for version in service.fields.get("versions") or []:
            item = version if isinstance(version, dict) else {"name": version}
            own = item.get("labels") or {"version": item["name"]}
            if item.get("service") == name or own == labels:
                return str(item["name"])
        return None

    def ingress_gateway(self) -> tuple[str, str]:
        """(namespace, service account) of the ingress gateway whose principal ``ingress:
        true`` admits."""
        gateway = self.shared.get("mesh_ingress_gateway") or {}
        return (str(gateway.get("namespace") or "istio-system"),
                str(gateway.get("service_account") or "istio-ingressgateway-service-account"))

    # ---- findings

    def note(self, path: str, text: str) -> None:
        notes = self.notes.setdefault(path, [])
        if text not in notes:
            notes.append(text)

    def call(self, caller: ServiceDraft, callee: ServiceDraft, source: str,
             itself: bool = False) -> None:
        """``caller`` calls ``callee``, as ``source`` says; a service calls itself (through
        its Service, as a probe that curls its own URL does) only with ``itself``."""
        if caller is callee and not itself:
            return
        sources = caller.calls.setdefault(callee.name, [])
        if source not in sources:
            sources.append(source)

    def call_external(self, caller: ServiceDraft, host: str, source: str) -> None:
        """``caller`` calls ``host`` (``api.stripe.com``, ``host:port``) outside the
        cluster, as ``source`` says."""
        sources = caller.calls.setdefault(host, [])
        if source not in sources:
            sources.append(source)

    def hint_stage(self, stage: Stage, why: str) -> None:
        self.stage_hints.append((stage, why))

    def keep(self, resource: Resource | str, why: str) -> None:
        """An object of the estate the intent cannot say: it stays as it is."""
        name = resource if isinstance(resource, str) else resource.display
        if ("kept", name, why) not in self._said:
            self._said.add(("kept", name, why))
            self._said_of.add(name)
            self.listed.append((name, why))

    def became(self, resource: Resource, what: str) -> None:
        """An object of the estate the intent now says (meshstage renders its own)."""
        if ("became", resource.display, what) not in self._said:
            self._said.add(("became", resource.display, what))
            self._said_of.add(resource.display)
            self.converted.append((resource.display, what))
            key = f"{resource.kind} {resource.namespace}/{resource.name}" \
                if resource.namespace else f"{resource.kind} {resource.name}"
            if resource.labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE \
                    and key not in self.replaced:  # meshstage's own: it renders them again
                self.replaced.append(key)

    def said(self, resource: Resource) -> bool:
        """True when the object is listed already: kept as it is, or become intent."""
        return resource.display in self._said_of

    @property
    def trust_domain(self) -> str:
        return str(self.shared.get("mesh_trust_domain") or "cluster.local")

    def named_callers(self, principals: Iterable[str]) -> tuple[list[str], list[str]]:
        """Principals as a rule writes them: each that is one catalogue service's identity
        (in this trust domain) as that service's name, the rest as they are."""
        named: list[str] = []
        raw: list[str] = []
        for principal in principals:
            parts = principal.split("/")
            owners = self.services_running_as(parts[2], parts[4]) \
                if len(parts) == 5 and parts[0] == self.trust_domain else []
            if len(owners) == 1:
                if owners[0].name not in named:
                    named.append(owners[0].name)
            else:
                raw.append(principal)
        return named, raw

    def routed_from_gateway(self, route: Resource, gateways: Iterable[str],
                            hosts: Iterable[str]) -> None:
        """A gateway's route to ``hosts``: they are reached through the ingress; the route
        stays as it is (meshstage renders no gateway routes)."""
        through = ", ".join(gateways)
        self.reached_through(route, gateways, hosts)
        self.keep(route, f"it routes gateway {through}: meshstage renders no gateway routes "
                  "(what it routes to is marked ingress: true)")

    def reached_through(self, route: Resource, gateways: Iterable[str],
                        hosts: Iterable[str]) -> None:
        """What a gateway's route reaches is ``ingress: true``, whoever keeps the route."""
        through = ", ".join(gateways)
        for host in hosts:
            callee = self.service_for_host(route.namespace, host)
            if callee is not None:
                callee.ingress_from.append(f"{route.display} routes gateway {through} to it")

    def admit(self, callee: ServiceDraft, principals: Iterable[str], source: str) -> None:
        """An existing ALLOW policy admits exactly ``principals`` (``<td>/ns/<ns>/sa/<sa>``)
        to ``callee``, as the intent's derived ALLOW would: each principal's services call
        it, the ingress gateway's makes it ``ingress: true``."""
        callee.admitted = sorted(set(callee.admitted or ()) | set(principals))
        callee.admitted_by.append(source)
        gateway = self.ingress_gateway()
        for principal in principals:
            parts = principal.split("/")
            if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa":
                continue
            if (parts[2], parts[4]) == gateway:
                callee.ingress_from.append(f"{source} admits the ingress gateway")
            for caller in self.services_running_as(parts[2], parts[4]):
                self.call(caller, callee, f"{source} admits it")
