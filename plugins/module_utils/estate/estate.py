"""The estate as the planners read it: the workloads behind a catalogue service and their
kubelet probes, the ingress gateways that run in the catalogue's namespaces, and the ingress
routes the team owns. Read from the estate's real manifests (``mesh_check_paths``); a run
given none plans from the intent alone (``Estate`` is then None).

Gateway API gateways are found as istiod deploys them: a Gateway ``G`` of class ``C`` runs as
the Deployment and ServiceAccount ``G-C`` in the Gateway's namespace, its pods labelled
``gateway.networking.k8s.io/gateway-name: G`` (the annotation
``gateway.istio.io/service-account`` names another account).
https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/#automated-deployment,
``manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml`` (istio/istio).
Istio's classic gateways are found by their pods: the ``istio`` label of the istioctl and
Helm gateways, or the ``inject.istio.io/templates: gateway`` annotation the Helm gateway chart
sets. https://istio.io/latest/docs/setup/additional-setup/gateway/
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .index import MeshIndex
from .manifests import SourcePath, read_manifests
from .objects import (
    GATEWAY_API,
    Probe,
    Resource,
    Workload,
    as_list,
    as_mapping,
    generated_gateway_account,
)

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
INJECT_TEMPLATES = "inject.istio.io/templates"
# The ``istio`` label values of the gateways istioctl and the Helm gateway chart install.
CLASSIC_GATEWAY_LABELS = frozenset({"ingressgateway", "ingress", "egressgateway",
                                    "eastwestgateway"})


@dataclass(frozen=True)
class GatewayWorkload:
    """An ingress gateway's pods: where they run, as whom, and the labels that select them."""

    namespace: str
    name: str                    # the Gateway's (or the Deployment's) name
    service_account: str
    labels: Mapping[str, str]    # a selector for its pods
    shown_as: str                # "Gateway default/bookinfo-gateway" (what the input holds)
    source: str = ""             # the file it was read from


def classic_gateway_labels(workload: Workload) -> dict[str, str] | None:
    """The labels that select an Istio classic gateway's pods, or None for another workload."""
    istio = workload.labels.get("istio")
    templates = workload.annotations.get(INJECT_TEMPLATES, "")
    if istio in CLASSIC_GATEWAY_LABELS or (istio and "gateway" in templates.split(",")):
        return {"istio": istio}
    if "gateway" in templates.split(","):
        app = workload.labels.get("app")
        return {"app": app} if app else None
    return None


def without_replaced(resources: Sequence[Resource],
                     replaced: Collection[tuple[str, str, str]]) -> list[Resource]:
    """The estate without the objects meshstage's own replace (``mesh_replaced``: what the
    import turned into intent). They go once its objects are synced, so neither the
    analysis nor the flow proof judges the stage with them; meanwhile, of two that conflict,
    the mesh applies the older, theirs."""
    if not replaced:
        return list(resources)
    gone = set(replaced)
    return [r for r in resources if (r.kind, r.namespace, r.name) not in gone]


class Estate:
    """The estate's manifests, indexed once, with what the planners ask of them."""

    def __init__(self, resources: Sequence[Resource]) -> None:
        self.resources = list(resources)
        self.index = MeshIndex(self.resources)

    @classmethod
    def read(cls, paths: Sequence[SourcePath],
             replaced: Collection[tuple[str, str, str]] = ()) -> Estate:
        """The manifests at ``paths``, without the objects meshstage's own replace."""
        return cls(without_replaced(read_manifests(paths, context=True).resources, replaced))

    # ---- a service's workloads

    def selector(self, namespace: str, name: str, fallback: Mapping[str, str]) -> dict[str, str]:
        """The selector of the Service ``namespace/name`` in the estate, else ``fallback``."""
        entry = self.index.service(namespace, name)
        return dict(entry.selector) if entry is not None and entry.selector else dict(fallback)

    def workloads(self, namespace: str, selector: Mapping[str, str]) -> list[Workload]:
        return self.index.workloads_matching(namespace, selector)

    def probes(self, namespace: str, selector: Mapping[str, str],
               ) -> list[tuple[Workload, Probe]]:
        """Every kubelet probe of the workloads ``selector`` selects in ``namespace``."""
        return [(workload, probe) for workload in self.workloads(namespace, selector)
                for probe in workload.probes()]

    # ---- gateways

    def gateways(self, namespaces: Iterable[str]) -> list[GatewayWorkload]:
        """The ingress gateways whose pods run in ``namespaces``: Gateway API Gateways that
        istiod deploys, and Istio's classic gateways (by their pods)."""
        wanted = set(namespaces)
        classes = self.index.istio_gateway_classes()
        found: dict[tuple[str, str], GatewayWorkload] = {}
        for gateway in self.index.of_kind("Gateway"):
            account = generated_gateway_account(gateway, classes)
            if account is None or gateway.namespace not in wanted:
                continue
            found.setdefault((gateway.namespace, account), GatewayWorkload(
                namespace=gateway.namespace, name=gateway.name, service_account=account,
                labels={GATEWAY_NAME_LABEL: gateway.name}, shown_as=gateway.display,
                source=gateway.source))
        for workload in self.index.workloads:
            labels = classic_gateway_labels(workload)
            if labels is None or workload.namespace not in wanted:
                continue
            found.setdefault((workload.namespace, workload.service_account), GatewayWorkload(
                namespace=workload.namespace, name=workload.resource.name,
                service_account=workload.service_account, labels=labels,
                shown_as=workload.resource.display, source=workload.resource.source))
        return [found[key] for key in sorted(found)]

    # ---- routes the team owns

    def ingress_routes(self, namespace: str, service: str,
                       backends: Iterable[str] = ()) -> list[Resource]:
        """The estate's routes that send a gateway's requests to ``namespace/service`` (or to
        one of its version ``backends``): VirtualServices bound to a gateway other than
        ``mesh``, and HTTPRoutes and GRPCRoutes attached to a Gateway. Whoever owns them
        decides where ingress requests go."""
        names = {service, *backends}
        hosts = {f"{name}.{namespace}.svc.cluster.local" for name in names}
        found = []
        for route in self.index.of_kind("VirtualService"):
            gateways = [str(g) for g in as_list(route.spec.get("gateways"))]
            if not [g for g in gateways if g != "mesh"]:
                continue
            if any(_fqdn(route.namespace, host) in hosts for host in _destinations(route)):
                found.append(route)
        for route in self.index.of_kind("HTTPRoute", "GRPCRoute"):
            if route.group != GATEWAY_API or not any(
                    str(as_mapping(p).get("kind") or "Gateway") == "Gateway"
                    for p in as_list(route.spec.get("parentRefs"))):
                continue
            for rule in as_list(route.spec.get("rules")):
                for backend in as_list(as_mapping(rule).get("backendRefs")):
                    backend = as_mapping(backend)
                    if str(backend.get("kind") or "Service") == "Service" and str(
                            backend.get("namespace") or route.namespace) == namespace \
                            and str(backend.get("name")) in names:
                        found.append(route)
                        break
                else:
                    continue
                break
        return found


    def route_gateway_accounts(self, route: Resource) -> list[tuple[str, str]]:
        """(namespace, service account) of the gateways a route binds to, as far as the
        estate shows them: a Gateway API parent istiod deploys, or the pods an Istio
        Gateway's selector selects."""
        accounts: list[tuple[str, str]] = []
        if route.kind == "VirtualService":
            for ref in as_list(route.spec.get("gateways")):
                namespace, _, name = str(ref).rpartition("/")
                if name == "mesh":
                    continue
                gateway = self.index.get("Gateway", namespace or route.namespace, name)
                if gateway is None or not gateway.group.endswith("istio.io"):
                    continue
                selector = {str(k): str(v) for k, v in
                            as_mapping(gateway.spec.get("selector")).items()}
                accounts += [(w.namespace, w.service_account)
                             for w in self.index.workloads_matching(None, selector)]
            return list(dict.fromkeys(accounts))
        classes = self.index.istio_gateway_classes()
        for parent in as_list(route.spec.get("parentRefs")):
            parent = as_mapping(parent)
            if str(parent.get("kind") or "Gateway") != "Gateway":
                continue
            gateway = self.index.get("Gateway", str(parent.get("namespace") or route.namespace),
                                     str(parent.get("name")))
            account = generated_gateway_account(gateway, classes) if gateway else None
            if gateway is not None and account is not None:
                accounts.append((gateway.namespace, account))
        return list(dict.fromkeys(accounts))


def _destinations(route: Resource) -> list[str]:
    hosts = []
    for kind in ("http", "tcp", "tls"):
        for item in as_list(route.spec.get(kind)):
            for destination in as_list(as_mapping(item).get("route")):
                host = as_mapping(as_mapping(destination).get("destination")).get("host")
                if host:
                    hosts.append(str(host))
    return hosts


def _fqdn(namespace: str, host: str) -> str:
    if "." not in host:
        return f"{host}.{namespace}.svc.cluster.local"
    parts = host.split(".")
    if len(parts) == 2:  # name.namespace
        return f"{host}.svc.cluster.local"
    return host
