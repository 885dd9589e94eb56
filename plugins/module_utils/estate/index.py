"""The mesh index: every object of the estate and the rendered tree, looked up by what its
readers (the analyzers, the flow proof) ask for.

Built once, in one pass over the objects; every lookup after that is a dict access or a walk
over a short candidate list, so a reader stays linear in the number of objects (none scans
every object for every object). ``Resource`` and ``Workload`` are in ``objects.py``,
``HostEntry`` (a Service or ServiceEntry host) in ``hosts.py``; ``MeshConfig`` holds the mesh
settings readers need (root namespace, trust domain, providers).

``complete`` says the input is the whole cluster. Without it, a reference to a kind the
input holds no object of cannot be judged (``knows`` is false) and is reported as unchecked
rather than missing: a GitOps tree of mesh objects alone does not hold the workloads.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..kube import MANAGED_BY_LABEL, MANAGED_BY_VALUE, selector_matches
from .hosts import (
    HostEntry,
    NamedHost,
    entry_scopes,
    export_scopes,
    hosts_in_text,
    service_of_fqdn,
    service_scopes,
    to_fqdn,
)
from .installs import native_sidecars
from .objects import (
    AMBIENT_REDIRECTION,
    BUILTIN_NAMESPACES,
    CLUSTER_SCOPED,
    DATAPLANE_MODE,
    GATEWAY_API,
    INJECT,
    ISTIO_GATEWAY_CLASSES,
    ISTIO_GATEWAY_CONTROLLER,
    POD_KINDS,
    EnvValue,
    Resource,
    Workload,
    as_list,
    as_mapping,
    as_strings,
    generated_gateway_account,
    pod_template,
)


@dataclass(frozen=True)
class MeshConfig:
    """The MeshConfig fields analyzers read; the rest of a mesh config file is ignored."""

    root_namespace: str = "istio-system"
    trust_domain: str = "cluster.local"
    trust_domain_aliases: tuple[str, ...] = ()
    default_access_log_providers: tuple[str, ...] = ()
    extension_providers: tuple[str, ...] = ("prometheus", "stackdriver", "envoy")
    # Whether the mesh injects its proxy as a native sidecar where a pod does not say (the
    # pipeline knows what it rendered; else what the input's control-plane install says,
    # installs.py; None: cannot be told)
    native_sidecars: bool | None = None
    # Ports the control plane skips protocol detection on, beyond its default (the pipeline
    # renders the intent's server-first ports into Linkerd's proxy.opaquePorts)
    opaque_ports: tuple[int, ...] = ()
    # LabelSelectors of pods the injector leaves out: istiod's
    # sidecarInjectorWebhook.neverInjectSelector, Linkerd's proxyInjector.objectSelector (the
    # pipeline renders the intent's inject: false and held-back services into them)
    never_inject: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> MeshConfig:
        """From a MeshConfig mapping (``rootNamespace``, ``trustDomain``, ...)."""
        data = as_mapping(data)
        defaults = cls()
        providers = [str(as_mapping(p).get("name")) for p in as_list(data.get("extensionProviders"))
                     if as_mapping(p).get("name")]
        access = as_mapping(data.get("defaultProviders")).get("accessLogging")
        return cls(
            root_namespace=str(data.get("rootNamespace") or defaults.root_namespace),
            trust_domain=str(data.get("trustDomain") or defaults.trust_domain),
            trust_domain_aliases=tuple(str(a) for a in as_list(data.get("trustDomainAliases"))),
            default_access_log_providers=tuple(str(p) for p in as_list(access)),
            extension_providers=tuple(providers) or defaults.extension_providers,
        )


# --------------------------------------------------------------------------- hosts

# Kinds whose objects meshstage renders beside the user's (a StatefulSet's headless
# `<name>-peers` Service, Linkerd's version backends, ServiceEntries of external hosts) and
# that say whether the input holds a namespace's hosts.
_REGISTRY_KINDS = frozenset({"Service", "ServiceEntry"})


def _evidence(resource: Resource) -> bool:
    """Whether an object says the input holds the objects of its kind (in its namespace): a
    Service meshstage rendered in a tree says nothing of the namespace's own Services."""
    return (resource.kind not in _REGISTRY_KINDS
            or resource.labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE)


def merged_namespaces(resources: Sequence[Resource]) -> Sequence[Resource]:
    """The input with each Namespace defined more than once (the estate's own and the one
    meshstage renders to set its labels, given to ``meshstage check`` together) as one
    object holding every copy's labels and annotations, as the cluster ends up with both
    applied; where copies set a key otherwise, meshstage's copy wins (it is the one the
    stage applies; the pipeline's MST0001 refuses such a clash), else the later one. The
    verdicts no longer depend on the order the files are given in."""
    copies: dict[str, list[Resource]] = {}
    for resource in resources:
        if resource.kind == "Namespace":
            copies.setdefault(resource.name, []).append(resource)
    if all(len(found) == 1 for found in copies.values()):
        return resources
    merged: dict[int, Resource | None] = {}
    for found in copies.values():
        if len(found) == 1:
            continue
        ordered = sorted(found, key=lambda r: r.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE)
        metadata = dict(found[0].metadata)
        for field_name in ("labels", "annotations"):
            values: dict[str, Any] = {}
            for copy in ordered:
                values.update(as_mapping(copy.metadata.get(field_name)))
            if values:
                metadata[field_name] = values
        first = found[0]
        merged[id(first)] = replace(first, obj={**first.obj, "metadata": metadata})
        merged.update((id(other), None) for other in found[1:])
    kept: list[Resource] = []
    for resource in resources:
        one = merged.get(id(resource), resource)
        if one is not None:
            kept.append(one)
    return kept


# --------------------------------------------------------------------------- the index


@dataclass
class MeshIndex:
    """Every object of one analysis, indexed once."""

    resources: Sequence[Resource]
    mesh: MeshConfig = field(default_factory=MeshConfig)
    complete: bool = False

    def __post_init__(self) -> None:
        self.resources = merged_namespaces(self.resources)
        if self.mesh.native_sidecars is None:
            found = native_sidecars(self.resources)
            if found is not None:
                self.mesh = replace(self.mesh, native_sidecars=found)
        self.by_kind: dict[str, list[Resource]] = {}
        self._by_key: dict[tuple[str, str, str], Resource] = {}
        for resource in self.resources:
            self.by_kind.setdefault(resource.kind, []).append(resource)
            self._by_key.setdefault((resource.kind, resource.namespace, resource.name), resource)
        self._namespace_names: set[str] | None = None
        self._kinds_in: set[tuple[str, str]] | None = None
        self.workloads: list[Workload] = []
        self._workload_of: dict[Resource, Workload] = {}
        self._workloads_by_ns: dict[str, list[Workload]] = {}
        self._postings: dict[tuple[str, str, str], list[Workload]] = {}
        self._mesh_postings: dict[tuple[str, str], list[Workload]] = {}
        for resource in self.resources:
            if resource.kind in POD_KINDS:
                self._add_workload(resource)
        for canary in self.of_kind("Canary"):
            if canary.group == "flagger.app":
                self._add_primary(canary)
        self._hosts: dict[tuple[str, str], HostEntry] = {}
        self._wildcards: list[tuple[str, str, HostEntry]] = []
        self._services: dict[tuple[str, str], HostEntry] = {}
        self._selecting: dict[Workload, list[HostEntry]] | None = None
        # each workload's injection, asked by most analyzers and the flow proof: the index
        # does not change once built (a Workload hashes by identity)
        self._sidecar: dict[Workload, bool] = {}
        self._gateway_accounts: dict[str, set[str]] | None = None
        for resource in self.of_kind("ServiceEntry"):
            self._add_service_entry(resource)
        for resource in self.of_kind("Service"):
            self._add_service(resource)

    # ---- objects

    def of_kind(self, *kinds: str) -> list[Resource]:
        """Every object of the given kinds, in input order per kind."""
        return [r for kind in kinds for r in self.by_kind.get(kind, ())]

    def istio(self, *kinds: str) -> list[Resource]:
        """Objects of Istio's API groups (``*.istio.io``) of the given kinds: Linkerd and
        Gateway API have kinds of the same names (AuthorizationPolicy, Gateway)."""
        return [r for r in self.of_kind(*kinds) if r.group.endswith("istio.io")]

    def get(self, kind: str, namespace: str, name: str) -> Resource | None:
        return self._by_key.get((kind, namespace if kind not in CLUSTER_SCOPED else "", name))

    def knows(self, *kinds: str) -> bool:
        """True when a missing object of these kinds is really missing: the input is
        complete, or holds at least one object of one of the kinds (that meshstage did not
        render, for the host registry's kinds: see ``_evidence``)."""
        return self.complete or any(_evidence(r) for kind in kinds
                                    for r in self.by_kind.get(kind, ()))

    def knows_workloads(self) -> bool:
        return self.knows(*POD_KINDS)

    def knows_in(self, namespace: str, *kinds: str) -> bool:
        """Like ``knows``, for one namespace: the input holds an object of one of the kinds
        in that namespace. Inputs are often one namespace's slice of the cluster."""
        if self.complete:
            return True
        if self._kinds_in is None:
            self._kinds_in = {(r.kind, r.namespace) for r in self.resources if _evidence(r)}
        return any((kind, namespace) in self._kinds_in for kind in kinds)

    def namespace(self, name: str) -> Resource | None:
        return self._by_key.get(("Namespace", "", name))

    @property
    def namespace_names(self) -> set[str]:
        """Namespaces that exist: Namespace objects, namespaces objects of the input live
        in, and the namespaces every cluster has."""
        if self._namespace_names is None:
            self._namespace_names = {r.name for r in self.of_kind("Namespace")} | {
                r.namespace for r in self.resources if r.namespace} | BUILTIN_NAMESPACES
        return self._namespace_names

    def knows_namespaces(self) -> bool:
        return self.knows("Namespace")

    # ---- workloads

    def _add_workload(self, resource: Resource, template: Resource | None = None,
                      labels: Mapping[str, str] | None = None) -> None:
        """The pods of a workload object (of ``template``'s pod template, when given)."""
        if template is None and resource.kind == "Rollout" and not resource.spec.get(
                "template"):
            ref = as_mapping(resource.spec.get("workloadRef"))
            template = self._by_key.get((str(ref.get("kind") or "Deployment"),
                                         resource.namespace, str(ref.get("name"))))
        metadata, spec = pod_template(template or resource)
        labels = dict(labels) if labels is not None else as_strings(metadata.get("labels"))
        workload = Workload(resource=resource, namespace=resource.namespace, labels=labels,
                            annotations=as_strings(metadata.get("annotations")), pod_spec=spec)
        self.workloads.append(workload)
        self._workload_of[resource] = workload
        self._workloads_by_ns.setdefault(resource.namespace, []).append(workload)
        for key, value in labels.items():
            self._postings.setdefault((resource.namespace, key, value), []).append(workload)
            self._mesh_postings.setdefault((key, value), []).append(workload)

    def _add_primary(self, canary: Resource) -> None:
        """A Flagger Canary's primary: the pods Flagger copies from its target as
        ``<target>-primary``, the target's selector label (``app``, ``name`` or
        ``app.kubernetes.io/name``) suffixed ``-primary``.
        https://docs.flagger.app/usage/how-it-works"""
        ref = as_mapping(canary.spec.get("targetRef"))
        target = self._by_key.get((str(ref.get("kind") or "Deployment"), canary.namespace,
                                   str(ref.get("name"))))
        if target is None:
            return
        metadata, _ = pod_template(target)
        labels = as_strings(metadata.get("labels"))
        key = next((k for k in ("app", "name", "app.kubernetes.io/name") if k in labels), None)
        if key is not None:
            labels[key] = f"{labels[key]}-primary"
        self._add_workload(canary, target, labels)

    def workload_of(self, resource: Resource) -> Workload:
        """The workload of a Pod or workload controller of this index."""
        return self._workload_of[resource]

    def workload_for(self, resource: Resource) -> Workload | None:
        """The pods an object runs (a Flagger Canary: its primary), if any."""
        return self._workload_of.get(resource)

    def workloads_in(self, namespace: str) -> list[Workload]:
        return self._workloads_by_ns.get(namespace, [])

    def workloads_matching(self, namespace: str | None,
                           labels: Mapping[str, str]) -> list[Workload]:
        """Workloads whose labels include ``labels``, in a namespace or (None) anywhere."""
        if not labels:
            return list(self.workloads if namespace is None else self.workloads_in(namespace))
        lists = [self._mesh_postings.get((k, v), []) if namespace is None
                 else self._postings.get((namespace, k, v), []) for k, v in labels.items()]
        shortest = min(lists, key=len)
        return [w for w in shortest if all(w.labels.get(k) == v for k, v in labels.items())]

    def workloads_selected(self, namespace: str,
                           selector: Mapping[str, Any]) -> list[Workload]:
        """Workloads of a namespace a LabelSelector (with matchExpressions) selects."""
        base = self.workloads_matching(namespace, as_strings(selector.get("matchLabels")))
        if not selector.get("matchExpressions"):
            return base
        return [w for w in base if selector_matches(selector, w.labels)]

    def namespace_injection(self, namespace: str) -> str | None:
        """How a namespace's labels inject pods: "sidecar", "ambient", "off", or None."""
        obj = self.namespace(namespace)
        if obj is None:
            return None
        labels = obj.labels
        if labels.get("istio-injection") == "enabled" or (
                "istio.io/rev" in labels and labels.get("istio-injection") != "disabled"):
            return "sidecar"
        if labels.get(DATAPLANE_MODE) == "ambient":
            return "ambient"
        return "off"

    def has_sidecar(self, workload: Workload) -> bool:
        """True when the workload's pods run (or will get) an Istio sidecar
        (``_has_sidecar``), answered once per workload."""
        known = self._sidecar.get(workload)
        if known is None:
            known = self._sidecar[workload] = self._has_sidecar(workload)
        return known

    def _has_sidecar(self, workload: Workload) -> bool:
        """True when the workload's pods run (or will get) an Istio sidecar, by Istio's
        precedence: a namespace labelled ``istio-injection: disabled`` or a pod opting out
        wins; a pod without a marker that istiod's ``neverInjectSelector`` selects is left
        out; an enabled namespace injects; a pod of an unlabelled namespace is injected
        when it asks (``sidecar.istio.io/inject: "true"``, or an ``istio.io/rev`` label). A
        pod on the node's network is never injected (``injectRequired`` in istio/istio
        pkg/kube/inject/webhook.go skips ``hostNetwork`` pods: their iptables rules would be
        the node's).
        https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/
        #controlling-the-injection-policy"""
        if workload.has_istio_proxy:
            return True
        if workload.host_network:
            return False
        override = workload.injection_override
        namespace = self.namespace(workload.namespace)
        if override == "false" or (namespace is not None and namespace.labels.get(
                "istio-injection") == "disabled"):
            return False
        # with no marker of its own, a pod neverInjectSelector selects is left out
        # (https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/
        # #more-control-adding-exceptions)
        if override is None and any(selector_matches(selector, workload.labels)
                                    for selector in self.mesh.never_inject):
            return False
        injection = self.namespace_injection(workload.namespace)
        if injection == "sidecar":
            return True
        if injection == "ambient" and override is None:
            return False
        # outside an injected namespace the injector's webhook is called only for pods that
        # carry the label (its objectSelector matches labels, not the older annotation:
        # istio-discovery's object.sidecar-injector.istio.io webhook)
        return str(workload.labels.get(INJECT, "")).lower() == "true" \
            or "istio.io/rev" in workload.labels

    def in_mesh(self, workload: Workload) -> bool:
        """True when the workload is in the mesh: it has a sidecar, or runs in ambient mode."""
        if self.has_sidecar(workload):
            return True
        if workload.annotations.get(AMBIENT_REDIRECTION) == "enabled":
            return True
        return (workload.injection_override is None
                and self.namespace_injection(workload.namespace) == "ambient")

    # ---- the service registry

    def _add_service_entry(self, resource: Resource) -> None:
        ports = tuple(as_mapping(p) for p in as_list(resource.spec.get("ports")))
        selector = as_strings(as_mapping(resource.spec.get("workloadSelector")).get("labels"))
        for scope in entry_scopes(resource):
            for host in as_list(resource.spec.get("hosts")):
                entry = HostEntry(resource, to_fqdn(resource.namespace, str(host)), ports,
                                  selector)
                self._register(scope, entry)

    def _add_service(self, resource: Resource) -> None:
        ports = tuple({"number": p.get("port"), "name": p.get("name"),
                       "protocol": p.get("protocol"), "targetPort": p.get("targetPort"),
                       "appProtocol": p.get("appProtocol")}
                      for p in (as_mapping(p) for p in as_list(resource.spec.get("ports"))))
        entry = HostEntry(resource, to_fqdn(resource.namespace, resource.name), ports,
                          as_strings(resource.spec.get("selector")))
        self._services.setdefault((resource.namespace, resource.name), entry)
        for scope in service_scopes(resource):
            self._register(scope, entry)

    def _register(self, scope: str, entry: HostEntry) -> None:
        if entry.fqdn.startswith("*"):
            self._wildcards.append((scope, entry.fqdn[1:], entry))
        else:
            self._hosts.setdefault((scope, entry.fqdn), entry)

    def knows_hosts(self) -> bool:
        return self.knows("Service", "ServiceEntry")

    def knows_host(self, namespace: str, host: str) -> bool:
        """True when a host seen from ``namespace`` can be judged missing: the input is
        complete, or holds a Service or ServiceEntry in the namespace a cluster-local host
        names (a ServiceEntry anywhere, for other hosts)."""
        if self.complete:
            return True
        service = service_of_fqdn(to_fqdn(namespace, host))
        if service is None:
            return self.knows("ServiceEntry")
        return self.knows_in(service[0], "Service", "ServiceEntry")

    def service(self, namespace: str, name: str) -> HostEntry | None:
        """The Kubernetes Service ``namespace/name``."""
        return self._services.get((namespace, name))

    def resolve_host(self, namespace: str, host: str,
                     export_to: Sequence[str] = ()) -> HostEntry | None:
        """The registry entry a host names, seen from ``namespace`` (and the exportTo of the
        object naming it), or None."""
        fqdn = to_fqdn(namespace, host)
        found = self._hosts.get(("*", fqdn))
        if found is not None:
            return found
        scopes = export_scopes(export_to, namespace) if export_to else [namespace]
        for scope in scopes:
            found = self._hosts.get((scope, fqdn))
            if found is not None:
                return found
        bare = fqdn[1:] if fqdn.startswith("*") else fqdn
        for scope, suffix, entry in self._wildcards:
            if (scope == "*" or scope == namespace) and bare.endswith(suffix):
                return entry
        return None

    def selected_by_service(self, entry: HostEntry) -> list[Workload]:
        """The workloads behind a registry entry (none for an entry without a selector)."""
        if not entry.selector:
            return []
        return self.workloads_matching(entry.resource.namespace, entry.selector)

    def services_selecting(self, workload: Workload) -> list[HostEntry]:
        """Kubernetes Services of the workload's namespace whose selector matches it."""
        if self._selecting is None:
            self._selecting = {}
            for entry in self._services.values():
                for selected in self.selected_by_service(entry):
                    self._selecting.setdefault(selected, []).append(entry)
        return self._selecting.get(workload, [])

    # ---- what workloads are told

    def told(self, workload: Workload) -> list[tuple[EnvValue, str]]:
        """Every value the workload's containers are told (``Workload.environment``), with
        the ConfigMaps of the workload's namespace it reads looked up: (where, text) pairs,
        one per literal value or ConfigMap key."""
        found: list[tuple[EnvValue, str]] = []
        for entry in workload.environment():
            if entry.value is not None:
                found.append((entry, entry.value))
                continue
            config = self.get(entry.source_kind, workload.namespace, entry.config_map or "")
            data = _source_data(config) if config is not None else {}
            for key, text in data.items():
                if entry.key is None or entry.key == key:
                    found.append((replace(entry, key=key), text))
        return found

    def services_named_in(self, namespace: str, text: str,
                          whole: bool = False) -> list[tuple[HostEntry, NamedHost]]:
        """The Kubernetes Services a value names by their DNS name, seen from ``namespace``.
        A bare name (``web``) counts only with a scheme (``http://web``), with one of the
        Service's ports (``web:80``), or when it is the whole value (``whole``, for a
        variable whose name says it holds a host)."""
        found = []
        for named in hosts_in_text(text):
            entry = self.service(named.namespace or namespace, named.name)
            if entry is None:
                continue
            if named.namespace is None and not (
                    named.scheme or (whole and named.text == text.strip())
                    or named.port in {p.get("number") for p in entry.ports}):
                continue
            found.append((entry, named))
        return found

    # ---- identities

    def istio_gateway_classes(self) -> frozenset[str]:
        """``istio``, and every GatewayClass of the input that istiod's controller serves."""
        own = {r.name for r in self.of_kind("GatewayClass")
               if r.group == GATEWAY_API
               and r.spec.get("controllerName") == ISTIO_GATEWAY_CONTROLLER}
        return ISTIO_GATEWAY_CLASSES | own

    def gateway_accounts(self, namespace: str) -> set[str]:
        """The ServiceAccounts istiod creates for the input's Gateway API Gateways there."""
        if self._gateway_accounts is None:
            classes = self.istio_gateway_classes()
            self._gateway_accounts = {}
            for gateway in self.of_kind("Gateway"):
                account = generated_gateway_account(gateway, classes)
                if account is not None:
                    self._gateway_accounts.setdefault(gateway.namespace, set()).add(account)
        return self._gateway_accounts.get(namespace, set())

    def service_account_exists(self, namespace: str, name: str) -> bool:
        """A ServiceAccount object, a workload running as that account, or the account of a
        Gateway istiod deploys (``<gateway>-<class>``)."""
        if self.get("ServiceAccount", namespace, name) is not None:
            return True
        if name in self.gateway_accounts(namespace):
            return True
        return any(w.service_account == name for w in self.workloads_in(namespace))

    def account_problem(self, namespace: str, account: str) -> str | None:
        """Why no workload can run as ``namespace/account``; "" when that cannot be told
        (the input holds no ServiceAccount or workload in the namespace), None when it can.
        ``default`` exists in every namespace. A namespace the input shows nothing of is
        missing only when the input is complete: a cluster has namespaces (the mesh's
        extensions, say) that an application's manifests never show."""
        if self.complete and namespace not in self.namespace_names:
            return f"namespace {namespace} does not exist"
        if account == "default" or account in self.gateway_accounts(namespace):
            return None
        if not self.knows_in(namespace, "ServiceAccount", *POD_KINDS):
            return ""
        if self.service_account_exists(namespace, account):
            return None
        return f"no ServiceAccount {namespace}/{account} exists and no workload runs as it"


def _source_data(source: Resource) -> dict[str, str]:
    """A ConfigMap's ``data``; a Secret's ``stringData`` and its ``data`` decoded (base64,
    text only), as the kubelet gives them to the containers."""
    if source.kind != "Secret":
        return as_strings(source.obj.get("data"))
    found: dict[str, str] = {}
    for key, value in as_mapping(source.obj.get("data")).items():
        try:
            found[str(key)] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
    found.update(as_strings(source.obj.get("stringData")))
    return found
