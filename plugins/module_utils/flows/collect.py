"""The flows of an environment: every request its estate makes that must keep working.

Sources, each flow saying which (``origin``):

* ``calls``: each service's declared ``calls``, from every workload that runs it (grouped
  by namespace, service account and injection markers: the mesh cannot tell them apart),
  or from each plain host that carries it, to every workload or host of the callee, on
  every port of the callee's Service.
* ``ingress``: through the intent's ingress gateway to each ``ingress: true`` service, and
  through the estate's own gateways: Gateway API Gateways and their HTTPRoutes, Istio
  Gateways and the VirtualServices bound to them, Ingresses; and from outside the cluster
  to each gateway's own proxy.
* ``probe``: every kubelet probe of every workload (httpGet, grpc, tcpSocket; an exec probe
  sends nothing over the network); for a stand-in workload, the intent's ``probe_paths``.
* ``scrape``: the mesh's Prometheus scraping each workload's proxy (the evaluator's
  ``scrape``), and the pods that ask to be scraped (``prometheus.io/scrape``).
* ``observed``: the caller/callee edges Prometheus observed (``gates/observe.py``).
* the API server calling webhooks, ingress controllers, monitors, the intent's
  ``mesh_external_callers`` and a StatefulSet's ``peers``: ``outside.py``.

The estate's manifests are the source for workloads, labels, ports and probes; the intent
only for what it alone says (which services call which, ingress, the hosts). Everything
here is pure: the index of the estate and the intent in, the flows out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..estate.callers import annotation_scrape_ports, is_tcp
from ..estate.index import MeshIndex
from ..estate.objects import Resource, Workload, as_list, as_mapping, without_one_offs
from ..estate.stand_in import STAND_IN
from ..gates.gate import Call
from ..intent.model import Intent, Service
from .evaluate import FlowSettings, Scrape
from .model import Destination, Flow, Peer, Request
from .outside import (
    INTENT_PROTOCOLS,
    OUTSIDE,
    caller_flows,
    caller_peers,
    outside_flows,
    peer_flows,
    pod_destinations,
    prometheus_peers,
)

GATEWAY_NAME = "gateway.networking.k8s.io/gateway-name"
GATEWAY_CLASS = "gateway.networking.k8s.io/gateway-class-name"
WAYPOINT = "istio-waypoint"
GRPC_HEALTH = Request("POST", "/grpc.health.v1.Health/Check")
INJECTION_MARKS = ("sidecar.istio.io/inject", "istio.io/rev", "linkerd.io/inject")
# The protocol a Service port name or appProtocol names (Istio's ConvertProtocol prefixes).
_PROTOCOLS = {"http": "http", "http2": "http2", "grpc": "grpc", "grpc-web": "http",
              "h2c": "http2", "tcp": "tcp", "tls": "tls", "https": "tls", "mongo": "tcp",
              "mysql": "tcp", "redis": "tcp", "udp": "udp"}
# The classic ingress gateway's container port for HTTP (istio-ingressgateway's 8080).
GATEWAY_PORT = 8080


def collect_flows(intent: Intent | None, estate: MeshIndex, scrape: Scrape | None = None,
                  observed: Sequence[Call] = (), settings: FlowSettings | None = None,
                  ) -> list[Flow]:
    """Every flow of the environment, once each, in a stable order. Without an intent
    (``meshstage check`` of manifests), the flows the estate alone shows: its gateways'
    and ingresses' routes, probes and scrapes."""
    if settings is None:
        settings = FlowSettings.from_intent(intent) if intent is not None else FlowSettings()
    collector = _Collector(intent, estate)
    if intent is not None:
        collector.calls()
        collector.intent_ingress(intent)
        caller_flows(collector, intent)
        peer_flows(collector, intent)
    collector.estate_ingress()
    outside_flows(collector)
    collector.probes()
    collector.scrapes(scrape, settings)
    if intent is not None:
        collector.observed(observed)
    return collector.flows


class _Collector:
    def __init__(self, intent: Intent | None, estate: MeshIndex) -> None:
        self.intent, self.estate = intent, estate
        self.flows: list[Flow] = []
        self._seen: set[tuple[Any, ...]] = set()
        self._destinations: dict[str, list[Destination]] = {}
        self._sources: dict[str, list[Peer]] = {}
        self._protocols: dict[tuple[str, str, int], str] = {}
        self._declared: set[tuple[str, str, str, int]] = set()

    def add(self, flow: Flow, key: tuple[Any, ...] | None = None) -> None:
        key = key or flow.key()
        if key not in self._seen:
            self._seen.add(key)
            self.flows.append(flow)

    # ---- who runs a catalogue service

    def sources_of(self, service: Service) -> list[Peer]:
        found = self._sources.get(service.name)
        if found is None:
            hosts = self.intent.hosts_of(service.name) if self.intent is not None else ()
            if hosts:
                found = [Peer("host", service.namespace, host.name, service.service_account,
                              service.name, address=host.address) for host in hosts]
            else:
                found = peers_of(without_one_offs(self.workloads_of(service)), service.name)
            self._sources[service.name] = found
        return found

    def workloads_of(self, service: Service) -> list[Workload]:
        entry = self.estate.service(service.namespace, service.name)
        selector = entry.selector if entry is not None and entry.selector else service.selector
        return self.estate.workloads_matching(service.namespace, selector)

    def destinations_of(self, service: Service) -> list[Destination]:
        found = self._destinations.get(service.name)
        if found is None:
            hosts = self.intent.hosts_of(service.name) if self.intent is not None else ()
            if hosts:
                found = [Destination("host", service.namespace, host.name, host.inbound_port,
                                     service.name, host.inbound_port, host=host)
                         for host in hosts]
            else:
                found = self.service_destinations(service.namespace, service.name,
                                                  service.selector, service)
            self._destinations[service.name] = found
        return found

    def service_destinations(self, namespace: str, name: str, selector: Mapping[str, str],
                             service: Service | None = None, only_port: Any = None,
                             ) -> list[Destination]:
        """Each workload behind a Service and each of its ports (``only_port``: the one a
        route names, by number or name)."""
        entry = self.estate.service(namespace, name)
        if entry is not None:
            # UDP and SCTP pass by the proxies of both meshes: no request of theirs
            ports = [(p.get("number"), p.get("name"), p.get("targetPort"),
                      _protocol_of(p.get("appProtocol") or p.get("name"), None))
                     for p in entry.ports if is_tcp(p)]
            selector = entry.selector or selector
        elif service is not None:
            ports = [(p.port, p.name, p.target_port, INTENT_PROTOCOLS.get(p.protocol, "tcp"))
                     for p in service.ports]
        else:
            return []
        if service is not None:  # the intent says the protocol the catalogue speaks
            declared: dict[Any, str] = {p.port: INTENT_PROTOCOLS.get(p.protocol, "tcp")
                                        for p in service.ports}
            ports = [(n, pn, t, declared.get(n, proto) if proto is None and isinstance(n, int)
                      else proto) for n, pn, t, proto in ports]
        if only_port is not None:
            ports = [p for p in ports if only_port in (p[0], p[1])]
        found = []
        for workload in self.estate.workloads_matching(namespace, selector):
            for number, port_name, target, protocol in ports:
                container = resolve_port(workload, target if target is not None else number)
                if container is None:
                    continue
                found.append(Destination(
                    "workload", namespace, workload.resource.name, container, name,
                    number if isinstance(number, int) else None,
                    str(port_name) if port_name else None, workload=workload))
                self._protocols[(namespace, workload.resource.name, container)] = \
                    protocol or "http"
        return found

    def protocol(self, destination: Destination) -> str:
        return self._protocols.get((destination.namespace, destination.name,
                                    destination.port), "http")

    # ---- the origins

    def calls(self) -> None:
        intent = self.intent
        assert intent is not None
        for number, service in enumerate(intent.services):
            path = f"mesh_services[{number}]"
            for index, callee_name in enumerate(service.calls):
                callee = intent.by_name.get(callee_name)
                if callee is None:
                    continue
                destinations = self.destinations_of(callee)
                spoken: dict[int, str] = {}   # the protocols at the pods, when reached there
                if callee.called_at_pods and not intent.hosts_of(callee.name):
                    # its callers reach its pods' own addresses (a registry such as Eureka
                    # or Consul hands them out)
                    destinations = pod_destinations(self, callee)
                    spoken = {p.port: INTENT_PROTOCOLS.get(p.protocol, "tcp")
                              for p in callee.pod_addressed_ports()}
                for source in self.sources_of(service):
                    for destination in destinations:
                        # a service that calls itself does so through its Service, out
                        # of the pod and through its proxy (a probe that curls its URL)
                        if destination.kind == "workload" and source.workload is not None \
                                and destination.workload is source.workload \
                                and callee is not service:
                            continue
                        self._declared.add((str(source), destination.namespace,
                                            destination.name, destination.port))
                        protocol = spoken[destination.port] if spoken \
                            else self._flow_protocol(destination)
                        self.add(Flow(source, destination, protocol, "calls",
                                      via=f"{path}.calls[{index}]",
                                      addressed="pod" if spoken else "service"))

    def _flow_protocol(self, destination: Destination) -> str:
        if destination.kind == "host":
            return "http"
        return self.protocol(destination)

    def intent_ingress(self, intent: Intent) -> None:
        gateway = intent.ingress_gateway
        workloads = [w for w in self.estate.workloads_in(gateway.namespace)
                     if w.service_account == gateway.service_account]
        peers = [gateway_peer(w) for w in workloads] or [Peer(
            "gateway", gateway.namespace, "ingress gateway", gateway.service_account,
            proxy=True)]
        ingress = [s for s in intent.services if s.ingress]
        if ingress:
            for workload in workloads:  # the ports its pods listen on, when the intent says
                self._from_outside(workload, list(gateway.ports)
                                   or self._gateway_ports(workload), "mesh_ingress_gateway")
        paths = {s.name: f"mesh_services[{n}]" for n, s in enumerate(intent.services)}
        for service in ingress:
            via = f"{paths[service.name]}.ingress"
            for peer in peers:
                for destination in self.destinations_of(service):
                    self.add(Flow(peer, destination, self._flow_protocol(destination),
                                  "ingress", via=via))

    def estate_ingress(self) -> None:
        """Gateways and their routes (Ingresses: ``outside.py``, with their controllers)."""
        self._gateway_api()
        self._istio_gateways()

    def _from_outside(self, workload: Workload, ports: Iterable[int], via: str) -> None:
        for port in ports:
            destination = Destination("gateway", workload.namespace, workload.resource.name,
                                      port, workload.resource.name, workload=workload)
            self.add(Flow(OUTSIDE, destination, "http", "ingress", via=via))

    def _gateway_ports(self, workload: Workload) -> list[int]:
        ports = [resolve_port(workload, p.get("targetPort") or p.get("number"))
                 for entry in self.estate.services_selecting(workload) for p in entry.ports]
        return sorted({p for p in ports if p is not None}) or [GATEWAY_PORT]

    def _gateway_api(self) -> None:
        routes = [r for r in self.estate.of_kind("HTTPRoute", "GRPCRoute")
                  if r.group == "gateway.networking.k8s.io"]
        for gateway in self.estate.of_kind("Gateway"):
            if gateway.group != "gateway.networking.k8s.io":
                continue
            name, namespace = gateway.name, gateway.namespace
            klass = str(gateway.spec.get("gatewayClassName") or "")
            if klass == WAYPOINT or any(str(as_mapping(item).get("protocol")) == "HBONE"
                                        for item in as_list(gateway.spec.get("listeners"))):
                continue  # an ambient waypoint, not an ingress (sidecar mode only)
            workloads = self.estate.workloads_matching(namespace, {GATEWAY_NAME: name})
            generated = f"{name}-{klass}"
            peers = [gateway_peer(w) for w in workloads] or [Peer(
                "gateway", namespace, generated, generated,
                labels=((GATEWAY_CLASS, klass), (GATEWAY_NAME, name)))]
            listeners = [as_mapping(item).get("port") for item in
                         as_list(gateway.spec.get("listeners"))]
            ports = [p for p in listeners if isinstance(p, int)]
            for workload in workloads:
                self._from_outside(workload, ports, f"Gateway {namespace}/{name}")
            if not workloads:
                for port in ports:
                    self.add(Flow(OUTSIDE, Destination(
                        "gateway", namespace, generated, port, generated), "http", "ingress",
                        via=f"Gateway {namespace}/{name}"))
            for route in routes:
                if not _route_parent(route, namespace, name):
                    continue
                for backend in _route_backends(route):
                    self._route_flows(peers, backend, route)

    def _route_flows(self, peers: list[Peer], backend: tuple[str, str, Any],
                     route: Resource) -> None:
        namespace, name, port = backend
        service = self.intent.by_name.get(name) if self.intent is not None else None
        if service is not None and service.namespace != namespace:
            service = None
        destinations = self.service_destinations(
            namespace, name, service.selector if service is not None else {"app": name},
            service, port)
        for peer in peers:
            for destination in destinations:
                self.add(Flow(peer, destination, self.protocol(destination), "ingress",
                              via=route.display))

    def _istio_gateways(self) -> None:
        services = [r for r in self.estate.istio("VirtualService")]
        for gateway in self.estate.istio("Gateway"):
            selector = {str(k): str(v) for k, v in
                        as_mapping(gateway.spec.get("selector")).items()}
            workloads = self.estate.workloads_matching(None, selector) if selector else []
            peers = [gateway_peer(w) for w in workloads]
            ports = [as_mapping(as_mapping(s).get("port")).get("targetPort")
                     or as_mapping(as_mapping(s).get("port")).get("number")
                     for s in as_list(gateway.spec.get("servers"))]
            for workload in workloads:
                self._from_outside(workload, [p for p in ports if isinstance(p, int)],
                                   gateway.display)
            for virtual_service in services:
                bound = [str(g) for g in as_list(virtual_service.spec.get("gateways"))]
                if not any(_names_gateway(g, virtual_service.namespace, gateway)
                           for g in bound):
                    continue
                for backend in _virtual_service_backends(virtual_service):
                    self._route_flows(peers, backend, virtual_service)

    def probes(self) -> None:
        kubelet = Peer("kubelet", "", "kubelet", proxy=False)
        probed = [(n, s) for n, s in enumerate(self.intent.services) if s.probe_paths] \
            if self.intent is not None else []
        for workload in self.estate.workloads:
            probes = workload.probes()
            for probe in probes:
                if probe.port is None or probe.action == "exec":
                    continue
                protocol, request = {"httpGet": ("tls" if probe.scheme == "HTTPS" else "http",
                                                 Request("GET", (probe.path or "/")
                                                         .split("?")[0])),
                                     "grpc": ("grpc", GRPC_HEALTH)}.get(
                    probe.action, ("tcp", None))
                self.add(Flow(kubelet, _probed(workload, probe.port), protocol, "probe",
                              request, via=f"{probe.kind} {probe.action} of container "
                              f"{probe.container}"))
            if not probes and probed and STAND_IN in workload.resource.annotations:
                self._intent_probes(probed, kubelet, workload)

    def _intent_probes(self, probed: list[tuple[int, Service]], kubelet: Peer,
                       workload: Workload) -> None:
        """A stand-in's probes: the intent's ``probe_paths``, on the service's first port."""
        for number, service in probed:
            if service.namespace != workload.namespace or not all(
                    workload.labels.get(k) == v for k, v in service.selector.items()):
                continue
            port = service.ports[0].target_port or service.ports[0].port
            for path in service.probe_paths:
                self.add(Flow(kubelet, _probed(workload, port), "http", "probe",
                              Request("GET", path.split("?")[0]),
                              via=f"mesh_services[{number}].probe_paths"))

    def scrapes(self, scrape: Scrape | None, settings: FlowSettings) -> None:
        namespaces = {s.namespace for s in self.intent.services} \
            if self.intent is not None else None
        prometheus = scrape.source(settings) if scrape is not None else None
        # Who scrapes by the prometheus.io annotations: the Prometheus mesh_external_callers
        # declares, else the estate's own Prometheus (with its identity where its namespace
        # is injected), else one the estate does not show, taken to be unmeshed. A declared
        # one's calls are flows already (``caller_flows``); the annotations add the pod
        # ports its calls do not name (a metrics port no Service port sends to). The mesh's
        # own Prometheus scrapes the proxies only (linkerd-viz's scrape jobs:
        # viz/charts/linkerd-viz/templates/prometheus.yaml in linkerd/linkerd2).
        declared = [caller for caller in self.intent.external_callers
                    if caller.kind == "prometheus"] if self.intent is not None else []
        scrapers = [peer for caller in declared for peer in caller_peers(self, caller)] \
            if declared else prometheus_peers(self.estate)
        called = {(str(flow.source), flow.destination.namespace, flow.destination.name,
                   flow.destination.port) for flow in self.flows if flow.origin == "scrape"}
        for workload in self.estate.workloads:
            if namespaces is not None and workload.namespace not in namespaces:
                continue
            if scrape is not None and prometheus is not None:
                self.add(Flow(prometheus, _probed(workload, scrape.port), "http", "scrape",
                              Request("GET", scrape.path), via=scrape.port_name))
            path = workload.annotations.get("prometheus.io/path") or "/metrics"
            for port in annotation_scrape_ports(workload):
                for source in scrapers:
                    if (str(source), workload.namespace, workload.resource.name,
                            port) in called:
                        continue
                    self.add(Flow(source, _probed(workload, port), "http", "scrape",
                                  Request("GET", path), via="prometheus.io/scrape",
                                  addressed="pod"))

    def observed(self, calls: Sequence[Call]) -> None:
        intent = self.intent
        assert intent is not None
        for call in calls:
            callee = intent.by_name.get(call.callee)
            if callee is None or callee.namespace != call.callee_namespace:
                continue
            caller = intent.by_name.get(call.caller_service or "")
            parts = call.caller.split("/")
            if caller is not None and caller.name in intent.host_services:
                sources = self.sources_of(caller)
            elif len(parts) == 5:
                namespace, account = parts[2], parts[4]
                workloads = [w for w in self.estate.workloads_in(namespace)
                             if w.service_account == account]
                sources = peers_of(workloads, caller.name if caller else None) or [
                    Peer("workload", namespace, account, account, proxy=True)]
            else:
                continue
            via = f"observed by {call.seen_by}"
            for source in sources:
                for destination in self.destinations_of(callee):
                    if (str(source), destination.namespace, destination.name,
                            destination.port) not in self._declared:
                        self.add(Flow(source, destination, self._flow_protocol(destination),
                                      "observed", via=via))


# --------------------------------------------------------------------------- helpers


def peers_of(workloads: Iterable[Workload], service: str | None) -> list[Peer]:
    """One peer per group of workloads the mesh cannot tell apart: same namespace, service
    account and injection markers (so the same proxy and the same identity)."""
    groups: dict[tuple[Any, ...], Peer] = {}
    for workload in workloads:
        marks = tuple((k, workload.labels.get(k), workload.annotations.get(k))
                      for k in INJECTION_MARKS)
        key = (workload.namespace, workload.service_account, marks,
               workload.has_istio_proxy, workload.host_network)
        if key not in groups:
            groups[key] = Peer("workload", workload.namespace, workload.resource.name,
                               workload.service_account, service,
                               labels=tuple(sorted(workload.labels.items())),
                               workload=workload)
    return list(groups.values())


def gateway_peer(workload: Workload) -> Peer:
    """A gateway's workload as a source. Whether it has a proxy is the mesh's to say; a
    stand-in for the intent's ingress gateway has one (the intent names its identity)."""
    return Peer("gateway", workload.namespace, workload.resource.name,
                workload.service_account,
                proxy=True if STAND_IN in workload.resource.annotations else None,
                labels=tuple(sorted(workload.labels.items())), workload=workload)


def resolve_port(workload: Workload, port: Any) -> int | None:
    """A Service's ``targetPort`` (a number, or a container port's name) as the number."""
    return workload.port_number(port)


def _probed(workload: Workload, port: int) -> Destination:
    return Destination("workload", workload.namespace, workload.resource.name, port,
                       workload=workload)


def _protocol_of(name: Any, default: str | None) -> str | None:
    if not name:
        return default
    text = str(name).lower()
    if text in _PROTOCOLS:
        return _PROTOCOLS[text]
    return _PROTOCOLS.get(text.split("-")[0], default)


def _route_parent(route: Resource, namespace: str, name: str) -> bool:
    for ref in as_list(route.spec.get("parentRefs")):
        ref = as_mapping(ref)
        if str(ref.get("kind") or "Gateway") == "Gateway" \
                and str(ref.get("group") or "gateway.networking.k8s.io") \
                == "gateway.networking.k8s.io" \
                and str(ref.get("namespace") or route.namespace) == namespace \
                and str(ref.get("name")) == name:
            return True
    return False


def _route_backends(route: Resource) -> list[tuple[str, str, Any]]:
    found = []
    for rule in as_list(route.spec.get("rules")):
        for backend in as_list(as_mapping(rule).get("backendRefs")):
            backend = as_mapping(backend)
            if str(backend.get("kind") or "Service") == "Service" and backend.get("name"):
                found.append((str(backend.get("namespace") or route.namespace),
                              str(backend["name"]), backend.get("port")))
    return found


def _names_gateway(bound: str, namespace: str, gateway: Resource) -> bool:
    ns, _, name = bound.rpartition("/")
    return name == gateway.name and (ns or namespace) == gateway.namespace


def _virtual_service_backends(virtual_service: Resource) -> list[tuple[str, str, Any]]:
    found = []
    for section in ("http", "tcp", "tls"):
        for route in as_list(virtual_service.spec.get(section)):
            for destination in as_list(as_mapping(route).get("route")):
                target = as_mapping(as_mapping(destination).get("destination"))
                host = str(target.get("host") or "")
                if not host:
                    continue
                parts = host.split(".")
                namespace = parts[1] if len(parts) > 1 else virtual_service.namespace
                found.append((namespace, parts[0],
                              as_mapping(target.get("port")).get("number")))
    return found
