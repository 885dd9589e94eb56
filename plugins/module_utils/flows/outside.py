"""The flows of issue 14's sources: callers outside the catalogue and a StatefulSet's peers.

* ``webhook``: the Kubernetes API server calling each admission webhook of the estate's
  webhook configurations (TLS, from outside the cluster's pods, never with a proxy).
* ``ingress``: an ``Ingress``, from its class's controller pods when the estate shows them
  (the mesh decides their proxy), else from a controller outside the mesh; to the pods'
  addresses unless ``nginx.ingress.kubernetes.io/service-upstream`` sends them to the
  Service.
* ``scrape``: Prometheus scraping what a ``ServiceMonitor`` or ``PodMonitor`` selects, at
  the pods' addresses.
* ``exposed``: a client outside the cluster, through a ``NodePort`` or ``LoadBalancer``
  Service (or its ``externalIPs``) or a container's ``hostPort``: never with a proxy.
* the intent's ``mesh_external_callers``: each caller to the ports it calls (an ingress
  controller through the Service, Prometheus at the pods' addresses, the API server).
* ``peers``: a StatefulSet's pods calling each other on the intent's ``peer_ports``, at the
  pods' addresses (pod DNS names), through whichever Service declares the port, if any.

Pure, like ``collect.py``, whose collector it adds to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..estate.callers import OutsideCall, outside_calls, scrapers
from ..estate.index import MeshIndex
from ..estate.objects import Workload
from ..intent.model import ExternalCaller, Intent, Service
from .model import Destination, Flow, Peer, Request

APISERVER = Peer("apiserver", "", "the Kubernetes API server", proxy=False, address="outside")
OUTSIDE = Peer("external", "", "a client outside the cluster", proxy=False, address="outside")
SERVICE_UPSTREAM = "nginx.ingress.kubernetes.io/service-upstream"
_ORIGINS = {"ingress-controller": "ingress", "kube-apiserver": "webhook",
            "prometheus": "scrape", "external-clients": "exposed"}
# What a flow speaks on a port of the intent's protocol (any other: tcp)
INTENT_PROTOCOLS = {"HTTP": "http", "HTTP2": "http2", "GRPC": "grpc", "TLS": "tls",
                    "HTTPS": "tls"}


class Collector(Protocol):
    """What of the flow collector these sources use (``collect._Collector``)."""

    intent: Intent | None
    estate: MeshIndex
    flows: list[Flow]

    def add(self, flow: Flow, key: tuple[Any, ...] | None = None) -> None: ...

    def sources_of(self, service: Service) -> list[Peer]: ...

    def destinations_of(self, service: Service) -> list[Destination]: ...

    def workloads_of(self, service: Service) -> list[Workload]: ...

    def protocol(self, destination: Destination) -> str: ...


def outside_flows(collector: Collector) -> None:
    """The estate's webhooks, Ingresses, monitors and exposed ports (annotation scrapes and
    Gateway API routes are ``collect.py``'s)."""
    # a scrape the intent's Prometheus declares already is one flow (its calls name the
    # port): the estate's monitors and annotations say it again
    scraped = {(str(flow.source), flow.destination.namespace, flow.destination.name,
                flow.destination.port) for flow in collector.flows if flow.origin == "scrape"}
    for call in outside_calls(collector.estate):
        if call.port is None:
            continue
        if call.kind == "webhook":
            flow = Flow(APISERVER, _destination(call), "tls", "webhook",
                        via=f"{call.origin.display} ({call.via})")
            collector.add(flow, outside_key(flow))
        elif call.kind == "ingress" and call.origin.kind == "Ingress":
            _ingress(collector, call)
        elif call.kind == "exposed":
            destination = _destination(call)
            flow = Flow(OUTSIDE, destination, collector.protocol(destination)
                        if destination.service else "tcp", "exposed",
                        via=f"{call.origin.display} ({call.via})",
                        addressed="service" if call.service else "pod")
            collector.add(flow, outside_key(flow))
        elif call.kind == "scrape" and call.origin.kind in ("ServiceMonitor", "PodMonitor",
                                                             "Service"):
            for source in prometheus_peers(collector.estate):
                if (str(source), call.target.namespace, call.target.resource.name,
                        call.port) in scraped:
                    continue
                collector.add(Flow(source, _destination(call), "http", "scrape",
                                   Request("GET", call.path or "/metrics"),
                                   via=f"{call.origin.display} ({call.via})",
                                   addressed="pod"))


# callers that are never pods of the cluster: one flow however many things say it
OUTSIDE_ORIGINS = ("exposed", "webhook")


def outside_key(flow: Flow) -> tuple[Any, ...]:
    """A flow from outside the cluster, whatever says it: the estate's NodePort or
    LoadBalancer Service, webhook configuration or APIService, or the
    ``mesh_external_callers`` entry that declares its clients (listed first, so the flow
    names the inventory's field), is one flow."""
    return flow.key()[:-1]


def exposed_fix(flow: Flow) -> str:
    """What makes a flow from outside the cluster (origin ``exposed``) get through."""
    return (f"declare the clients in mesh_external_callers (kind external-clients, calling "
            f"port {flow.destination.port} of the service of {flow.destination.namespace}/"
            f"{flow.destination.name}): strict_mtls keeps the port open to plaintext and "
            "authorization admits it without an identity; or take the traffic in through "
            "the mesh's ingress instead")


def prometheus_peers(estate: MeshIndex) -> list[Peer]:
    """Who scrapes the pods: the estate's Prometheus (``estate.callers.scrapers``; the mesh
    decides its proxy, so a Prometheus in an injected namespace scrapes with its identity),
    else one the input does not show, taken to be unmeshed."""
    return _peers(scrapers(estate), "prometheus") or [
        Peer("prometheus", "", "Prometheus", proxy=False)]


def _ingress(collector: Collector, call: OutsideCall) -> None:
    ingress = call.origin
    klass = str(ingress.spec.get("ingressClassName") or "default")
    sources = _peers(call.callers, "ingress-controller") or [Peer(
        "ingress-controller", "", f"the {klass} ingress controller", proxy=False)]
    upstream = ingress.annotations.get(SERVICE_UPSTREAM, "").lower() == "true"
    destination = _destination(call)
    for source in sources:
        collector.add(Flow(source, destination, collector.protocol(destination)
                           if destination.service else "http", "ingress",
                           via=f"{ingress.display} ({call.via})",
                           addressed="service" if upstream else "pod"))


def _destination(call: OutsideCall) -> Destination:
    target = call.target
    return Destination("workload", target.namespace, target.resource.name, int(call.port or 0),
                       call.service, call.service_port, workload=target)


def _peers(workloads: tuple[Workload, ...] | list[Workload], kind: str) -> list[Peer]:
    """One peer per group of pods the mesh cannot tell apart (namespace and account)."""
    groups: dict[tuple[str, str], Peer] = {}
    for workload in workloads:
        key = (workload.namespace, workload.service_account)
        groups.setdefault(key, Peer(kind, workload.namespace, workload.resource.name,
                                    workload.service_account,
                                    labels=tuple(sorted(workload.labels.items())),
                                    workload=workload))
    return list(groups.values())


def caller_flows(collector: Collector, intent: Intent) -> None:
    """The intent's ``mesh_external_callers``, each to the workload ports it calls."""
    for number, caller in enumerate(intent.external_callers):
        sources = caller_peers(collector, caller)
        origin = _ORIGINS[caller.kind]
        for position, (name, ports) in enumerate(caller.calls):
            service = intent.by_name.get(name)
            if service is None:
                continue
            via = f"mesh_external_callers[{number}].calls[{position}]"
            on_pods = _pod_only_destinations(collector, service, ports)
            spoken = _pod_protocols(service) if caller.kind not in (
                "prometheus", "kube-apiserver") else {}
            for destination in [*collector.destinations_of(service), *on_pods]:
                if destination.kind != "workload" or destination.port not in ports:
                    continue
                protocol = "tls" if caller.kind == "kube-apiserver" else \
                    spoken[destination.port] if destination.service is None and \
                    destination.port in spoken else collector.protocol(destination)
                paths = caller.paths_at(name, destination.port)
                request = Request("GET", paths[0]) if paths else None
                for source in sources:
                    flow = Flow(source, destination, protocol, origin, request, via=via,
                                addressed="pod" if caller.kind == "prometheus" else "service")
                    collector.add(flow, outside_key(flow) if origin in OUTSIDE_ORIGINS
                                  else None)


def _pod_only_destinations(collector: Collector, service: Service,
                           ports: Sequence[int]) -> list[Destination]:
    """The service's workloads on the ports ``ports`` name that no port of its Service
    declares (its undeclared peer ports, its ``pod_ports``): reached at the pods' own
    addresses."""
    return _on_pods(collector, service, [p.port for p in service.pod_only_ports()
                                         if p.port in ports])


def _pod_protocols(service: Service) -> dict[int, str]:
    """What is spoken on the service's ``pod_ports`` and peer ports, as the intent says."""
    return {p.port: INTENT_PROTOCOLS.get(p.protocol, "tcp")
            for p in (*service.peer_ports, *service.pod_ports)}


def pod_destinations(collector: Collector, service: Service) -> list[Destination]:
    """A service's container ports at its pods' own addresses (``pod_addressed_ports``):
    what its catalogue callers reach when a registry (Eureka, Consul) hands out pod
    addresses."""
    return _on_pods(collector, service, [p.port for p in service.pod_addressed_ports()])


def _on_pods(collector: Collector, service: Service, ports: Sequence[int]) -> list[Destination]:
    """Each workload of ``service`` on each of ``ports``, at its pods' own addresses."""
    return [Destination("workload", workload.namespace, workload.resource.name, port,
                        _declaring(collector.estate, workload, port), workload=workload)
            for workload in collector.workloads_of(service) for port in ports]


def caller_peers(collector: Collector, caller: ExternalCaller) -> list[Peer]:
    """Who a ``mesh_external_callers`` entry is: the estate's pods of its namespace and
    service account, else a peer the intent describes."""
    if caller.kind == "external-clients":
        return [OUTSIDE]
    if caller.kind == "kube-apiserver" or caller.namespace is None:
        return [APISERVER]
    workloads = [w for w in collector.estate.workloads_in(caller.namespace)
                 if w.service_account == caller.service_account]
    return _peers(workloads, caller.kind) or [Peer(
        caller.kind, caller.namespace, caller.name, str(caller.service_account),
        proxy=caller.inject)]


def peer_flows(collector: Collector, intent: Intent) -> None:
    """A StatefulSet's pods calling each other on its ``peer_ports``, by pod address."""
    for number, service in enumerate(intent.services):
        if not service.peer_ports:
            continue
        protocols = {port.port: INTENT_PROTOCOLS.get(port.protocol, "tcp")
                     for port in service.peer_ports}
        destinations = _on_pods(collector, service, list(protocols))
        for source in collector.sources_of(service):
            for destination in destinations:
                collector.add(Flow(source, destination, protocols[destination.port], "peers",
                                   via=f"mesh_services[{number}].peer_ports", addressed="pod"))


def _declaring(index: MeshIndex, workload: Workload, port: int) -> str | None:
    """The estate's Service selecting the workload that declares ``port``, if any."""
    for entry in index.services_selecting(workload):
        if any(workload.port_number(p.get("targetPort") or p.get("number")) == port
               for p in entry.ports):
            return entry.resource.name
    return None
