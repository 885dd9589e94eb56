"""Callers of the estate's workloads that are not workloads of the catalogue, found in the
manifests: ingress controllers (an ``Ingress``, or a Gateway API route on a Gateway), the
Kubernetes API server calling admission webhooks, Prometheus scraping application ports
(``ServiceMonitor``, ``PodMonitor``, ``prometheus.io/*`` annotations), and clients outside
the cluster (a ``NodePort`` or ``LoadBalancer`` Service, ``externalIPs``, a ``hostPort``).
Each call is one
``OutsideCall``: where the manifests say it (``origin``), the caller's pods when the input
shows them, and the pod port of the workload it reaches. The analyzers judge them against
each mesh's rules; the flow proof takes them as sources of requests.
https://kubernetes.io/docs/concepts/services-networking/ingress/,
https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/,
https://prometheus-operator.dev/docs/api-reference/api/,
https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..kube import selector_matches
from .index import MeshIndex
from .objects import Resource, Workload, as_list, as_mapping

# Ingress classes and Gateway controllers that are the mesh's own gateways (in the mesh)
MESH_INGRESS = frozenset({"istio.io/ingress-controller", "istio.io/gateway-controller"})
# The app.kubernetes.io/name of well-known ingress controllers, by IngressClass controller
CONTROLLER_NAMES: Mapping[str, tuple[str, ...]] = {
    "k8s.io/ingress-nginx": ("ingress-nginx",),
    "traefik.io/ingress-controller": ("traefik",),
    "haproxy.org/ingress-controller": ("kubernetes-ingress", "haproxy-ingress"),
    "projectcontour.io/contour": ("contour",),
    "ingress-controllers.konghq.com/kong": ("kong", "ingress"),
}
SCRAPE = "prometheus.io/scrape"
SCRAPE_PORT = "prometheus.io/port"
# Service types whose ports take connections from outside the cluster (kube-proxy forwards
# them to the pods): a node's port, and a cloud load balancer in front of it
EXPOSING_TYPES = ("NodePort", "LoadBalancer")
# The labels of a mesh gateway's own pods: Gateway API's generated deployment (and Istio's
# older name for the label)
_GATEWAY_LABELS = ("gateway.networking.k8s.io/gateway-name", "istio.io/gateway-name")


@dataclass(frozen=True)
class OutsideCall:
    kind: str                        # ingress | webhook | scrape | exposed
    origin: Resource                 # the object that makes the call
    via: str                         # what of it: "backend productpage:9080", "webhook ..."
    callers: tuple[Workload, ...]    # the caller's pods the input shows
    target: Workload
    port: int | None                 # the pod port it reaches
    caller_name: str = ""            # how to name the caller when the input lacks its pods
    path: str | None = None          # the HTTP path, where known (a scrape)
    fails_closed: bool = True        # a webhook with failurePolicy Ignore fails open
    tls: Mapping[str, Any] | None = None  # a monitor's tlsConfig
    service: str | None = None       # the Service it calls through, if any
    service_port: int | None = None  # and that Service's port

    @property
    def from_outside(self) -> bool:
        """The Kubernetes API server, or a client outside the cluster: never a pod of it,
        never with the mesh's proxy."""
        return self.kind in ("webhook", "exposed")


def outside_calls(index: MeshIndex) -> list[OutsideCall]:
    """Every call of the input's ingress objects, webhook configurations, monitors and
    exposed ports."""
    return [*_ingresses(index), *_routes(index), *_webhooks(index), *_aggregated_apis(index),
            *_scrapes(index), *_exposed(index)]


# --------------------------------------------------------------------------- helpers


def _pod_port(index: MeshIndex, namespace: str, name: str, port: Any,
              ) -> Iterator[tuple[Workload, int | None, int | None]]:
    """The workloads behind Service ``namespace/name``, the pod port its ``port`` (a number
    or a port name) sends to, and the Service port's number."""
    entry = index.service(namespace, name)
    if entry is None:
        return
    chosen = next((p for p in entry.ports if port in (p.get("number"), p.get("name"))), None)
    if chosen is None and len(entry.ports) == 1 and port is None:
        chosen = entry.ports[0]
    number = chosen.get("number") if chosen else None
    for workload in index.selected_by_service(entry):
        yield (workload, _target(chosen, workload) if chosen else None,
               number if isinstance(number, int) else None)


def _target(service_port: Mapping[str, Any], workload: Workload) -> int | None:
    target = service_port.get("targetPort")
    if isinstance(target, str) and not target.isdigit():
        return dict(workload.container_ports()).get(target)
    if target is not None:
        return int(target)
    number = service_port.get("number")
    return number if isinstance(number, int) else None


def _args(workload: Workload) -> str:
    return " ".join(str(a) for c in workload.containers
                    for a in as_list(c.get("args")) + as_list(c.get("command")))


# --------------------------------------------------------------------------- ingress


def ingress_class(index: MeshIndex, ingress: Resource) -> tuple[str, str]:
    """(class name, controller) of an Ingress: ``spec.ingressClassName``, the legacy
    annotation, or the default IngressClass."""
    name = str(ingress.spec.get("ingressClassName")
               or ingress.annotations.get("kubernetes.io/ingress.class") or "")
    classes = index.of_kind("IngressClass")
    if not name:
        default = next((c for c in classes if c.annotations.get(
            "ingressclass.kubernetes.io/is-default-class") == "true"), None)
        name = default.name if default else ""
    found = next((c for c in classes if c.name == name), None)
    controller = str(found.spec.get("controller") or "") if found else ""
    if not controller and name == "istio":
        controller = "istio.io/ingress-controller"
    return name, controller


def ingress_controllers(index: MeshIndex, name: str, controller: str) -> tuple[Workload, ...]:
    """The pods of an ingress class's controller the input shows: workloads started with
    ``--ingress-class=<name>`` or ``--controller-class=<controller>``; where none is, those
    labelled with the well-known name of that controller. Never pods that run to completion:
    ingress-nginx's admission Jobs carry its name label too."""
    known = CONTROLLER_NAMES.get(controller, ())
    running = [w for w in index.workloads if not w.runs_to_completion]
    by_args = []
    for workload in running:
        args = _args(workload)
        if (name and (f"--ingress-class={name}" in args or f"--ingress-class {name}" in args)) \
                or (controller and f"--controller-class={controller}" in args):
            by_args.append(workload)
    if by_args:
        return tuple(by_args)
    return tuple(w for w in running if w.labels.get("app.kubernetes.io/name") in known)


def _ingresses(index: MeshIndex) -> Iterator[OutsideCall]:
    for ingress in index.of_kind("Ingress"):
        name, controller = ingress_class(index, ingress)
        if controller in MESH_INGRESS:
            continue
        callers = ingress_controllers(index, name, controller)
        backends = [as_mapping(as_mapping(ingress.spec.get("defaultBackend")).get("service"))]
        for rule in as_list(ingress.spec.get("rules")):
            for path in as_list(as_mapping(as_mapping(rule).get("http")).get("paths")):
                backends.append(as_mapping(as_mapping(as_mapping(path).get("backend"))
                                           .get("service")))
        seen = set()
        for backend in backends:
            port = as_mapping(backend.get("port"))
            wanted = port.get("number", port.get("name"))
            key = (backend.get("name"), wanted)
            if not backend.get("name") or key in seen:
                continue
            seen.add(key)
            for workload, number, service_port in _pod_port(
                    index, ingress.namespace, str(backend["name"]), wanted):
                yield OutsideCall("ingress", ingress, f"backend {backend['name']}:{wanted}",
                                  callers, workload, number,
                                  caller_name=f"class {name or '(default)'}",
                                  service=str(backend["name"]), service_port=service_port)


def _routes(index: MeshIndex) -> Iterator[OutsideCall]:
    """Gateway API routes on a Gateway whose class is not the mesh's own."""
    for route in index.of_kind("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute"):
        if route.group != "gateway.networking.k8s.io":
            continue
        for parent in as_list(route.spec.get("parentRefs")):
            parent = as_mapping(parent)
            if parent.get("kind", "Gateway") != "Gateway":
                continue
            namespace = str(parent.get("namespace") or route.namespace)
            gateway = index.get("Gateway", namespace, str(parent.get("name")))
            if gateway is None or not gateway.group.startswith("gateway.networking.k8s.io"):
                continue
            klass = index.get("GatewayClass", "", str(gateway.spec.get("gatewayClassName")))
            controller = str(klass.spec.get("controllerName") or "") if klass else ""
            if controller in MESH_INGRESS or gateway.spec.get("gatewayClassName") == "istio":
                continue
            callers = tuple(index.workloads_matching(namespace, {
                "gateway.networking.k8s.io/gateway-name": gateway.name}))
            for rule in as_list(route.spec.get("rules")):
                for backend in as_list(as_mapping(rule).get("backendRefs")):
                    backend = as_mapping(backend)
                    if backend.get("kind", "Service") != "Service" or not backend.get("name"):
                        continue
                    for workload, number, service_port in _pod_port(
                            index, str(backend.get("namespace") or route.namespace),
                            str(backend["name"]), backend.get("port")):
                        yield OutsideCall(
                            "ingress", route, f"backend {backend['name']}:{backend.get('port')}"
                            f" through Gateway {namespace}/{gateway.name}", callers, workload,
                            number, caller_name=f"Gateway {namespace}/{gateway.name}",
                            service=str(backend["name"]), service_port=service_port)


# --------------------------------------------------------------------------- webhooks


def _webhooks(index: MeshIndex) -> Iterator[OutsideCall]:
    for configuration in index.of_kind("ValidatingWebhookConfiguration",
                                       "MutatingWebhookConfiguration"):
        for webhook in as_list(configuration.obj.get("webhooks")):
            webhook = as_mapping(webhook)
            service = as_mapping(as_mapping(webhook.get("clientConfig")).get("service"))
            if not service.get("name") or not service.get("namespace"):
                continue
            fails_closed = webhook.get("failurePolicy", "Fail") != "Ignore"
            for workload, number, service_port in _pod_port(
                    index, str(service["namespace"]), str(service["name"]),
                    service.get("port", 443)):
                yield OutsideCall("webhook", configuration, f"webhook {webhook.get('name')}, "
                                  f"failurePolicy {'Fail' if fails_closed else 'Ignore'}", (),
                                  workload, number, caller_name="the Kubernetes API server",
                                  fails_closed=fails_closed, service=str(service["name"]),
                                  service_port=service_port)


def _aggregated_apis(index: MeshIndex) -> Iterator[OutsideCall]:
    """The API server's requests to the services of aggregated APIs (an ``APIService`` with
    ``spec.service``: metrics-server, prometheus-adapter, KEDA's metrics server), as to a
    webhook's: over TLS, without a mesh identity, and ``kubectl top`` and the
    HorizontalPodAutoscaler fail when they are refused.
    https://kubernetes.io/docs/tasks/extend-kubernetes/configure-aggregation-layer/"""
    for api in index.of_kind("APIService"):
        service = as_mapping(api.spec.get("service"))
        if not service.get("name") or not service.get("namespace"):
            continue  # served by the API server itself (a built-in group)
        for workload, number, service_port in _pod_port(
                index, str(service["namespace"]), str(service["name"]),
                service.get("port", 443)):
            yield OutsideCall("webhook", api, "aggregated API", (), workload, number,
                              caller_name="the Kubernetes API server",
                              service=str(service["name"]), service_port=service_port)


# --------------------------------------------------------------------------- scrapes


def scrapers(index: MeshIndex) -> tuple[Workload, ...]:
    """Prometheus' pods the input shows (the operator's ``Prometheus`` objects' namespaces,
    or workloads named so)."""
    namespaces = {p.namespace for p in index.of_kind("Prometheus")}
    return tuple(w for w in index.workloads
                 if w.labels.get("app.kubernetes.io/name") == "prometheus"
                 or w.labels.get("app") == "prometheus"
                 or (w.namespace in namespaces and "prometheus" in w.labels))


def _namespaces(monitor: Resource, index: MeshIndex) -> set[str] | None:
    """The namespaces a monitor selects (None: every namespace)."""
    selector = as_mapping(monitor.spec.get("namespaceSelector"))
    if selector.get("any") is True:
        return None
    names = {str(n) for n in as_list(selector.get("matchNames"))}
    return names or {monitor.namespace}


def _scrapes(index: MeshIndex) -> Iterator[OutsideCall]:
    callers = scrapers(index)
    for monitor in index.of_kind("ServiceMonitor"):
        namespaces = _namespaces(monitor, index)
        selector = as_mapping(monitor.spec.get("selector"))
        for service in index.of_kind("Service"):
            if (namespaces is not None and service.namespace not in namespaces) or \
                    not selector_matches(selector, service.labels):
                continue
            for endpoint in as_list(monitor.spec.get("endpoints")):
                endpoint = as_mapping(endpoint)
                for workload, number, service_port in _pod_port(
                        index, service.namespace, service.name, endpoint.get("port")):
                    target = endpoint.get("targetPort")
                    if target is not None:
                        number = target if isinstance(target, int) else dict(
                            workload.container_ports()).get(str(target))
                    yield OutsideCall("scrape", monitor, f"endpoint {endpoint.get('port')} of "
                                      f"Service {service.namespace}/{service.name}", callers,
                                      workload, number, "Prometheus",
                                      str(endpoint.get("path") or "/metrics"),
                                      tls=as_mapping(endpoint.get("tlsConfig")) or None,
                                      service=service.name, service_port=service_port)
    for monitor in index.of_kind("PodMonitor"):
        namespaces = _namespaces(monitor, index)
        selector = as_mapping(monitor.spec.get("selector"))
        for workload in index.workloads:
            if (namespaces is not None and workload.namespace not in namespaces) or \
                    not selector_matches(selector, workload.labels):
                continue
            for endpoint in as_list(monitor.spec.get("podMetricsEndpoints")):
                endpoint = as_mapping(endpoint)
                port = endpoint.get("port", endpoint.get("targetPort"))
                # Prometheus's discovery makes a target of every container's port, a
                # native sidecar's too (``__meta_kubernetes_pod_container_init``)
                number = port if isinstance(port, int) else dict(
                    workload.container_ports(native_sidecars=True)).get(str(port))
                yield OutsideCall("scrape", monitor, f"endpoint {port}", callers, workload,
                                  number, "Prometheus", str(endpoint.get("path") or "/metrics"),
                                  tls=as_mapping(endpoint.get("tlsConfig")) or None)
    for workload in index.workloads:
        for port in annotation_scrape_ports(workload):
            yield OutsideCall("scrape", workload.resource, f"annotation {SCRAPE}", callers,
                              workload, port, "Prometheus",
                              workload.annotations.get("prometheus.io/path", "/metrics"))
    yield from _service_scrapes(index, callers)


def _service_scrapes(index: MeshIndex, callers: tuple[Workload, ...]) -> Iterator[OutsideCall]:
    """The scrapes of the endpoints of Services annotated ``prometheus.io/scrape``."""
    for service in index.of_kind("Service"):
        annotations = as_mapping(service.metadata.get("annotations"))
        if str(annotations.get(SCRAPE, "")) != "true":
            continue
        for workload, port in service_scrape_ports(index, service):
            yield OutsideCall("scrape", service, f"annotation {SCRAPE}, of its endpoints",
                              callers, workload, port, "Prometheus",
                              str(annotations.get("prometheus.io/path") or "/metrics"))


def service_scrape_ports(index: MeshIndex, service: Resource) -> Iterator[tuple[Workload, int]]:
    """The pods and pod ports Prometheus scrapes by the ``prometheus.io`` annotations of a
    Service: each endpoint of it, at the pod's address and the port ``prometheus.io/port``
    gives when it is a number, else each TCP target port of the Service. The example
    configuration's ``kubernetes-service-endpoints`` job (``role: endpoints``, which the
    prometheus-community chart keeps) keeps the endpoints whose Service's
    ``prometheus.io/scrape`` is ``true`` and rewrites the address's port from
    ``prometheus.io/port`` (``([^:]+)(?::\\d+)?;(\\d+)``); the targets are the endpoints'
    own addresses, so the scrapes reach the pods, not the Service."""
    entry = index.service(service.namespace, service.name)
    if entry is None:
        return
    given = str(as_mapping(service.metadata.get("annotations")).get(SCRAPE_PORT, ""))
    for workload in index.selected_by_service(entry):
        ports: list[int | None]
        if given.isdigit():
            ports = [int(given)] if 0 < int(given) < 65536 else []
        else:
            ports = [_target(p, workload) for p in entry.ports if is_tcp(p)]
        for port in dict.fromkeys(p for p in ports if p):
            yield workload, port


def annotation_scrape_ports(workload: Workload) -> list[int]:
    """The pod ports Prometheus scrapes by the ``prometheus.io`` annotations of a workload's
    pods: none unless ``prometheus.io/scrape`` is ``"true"``; the port ``prometheus.io/port``
    gives, when it is a number; else every TCP port the pod's containers (and its native
    sidecars) declare, one scrape each.

    The annotations are a convention of Prometheus's own example configuration (the
    ``kubernetes-pods`` job of ``documentation/examples/prometheus-kubernetes.yml`` in
    prometheus/prometheus, which the prometheus-community chart keeps): it keeps the pods
    whose ``prometheus.io/scrape`` is ``true`` and sets the target's port from
    ``prometheus.io/port`` only when that is digits (``([^:]+)(?::\\d+)?;(\\d+)``). Otherwise
    the targets stay as Kubernetes discovery made them: "For each declared port of a
    container, a single target is generated"
    (https://prometheus.io/docs/prometheus/latest/configuration/configuration/
    #kubernetes_sd_config, role ``pod``). A container that declares no port gives a target
    without one, scraped on the scheme's default port, which no declared port says the
    application serves: it is not taken as a call. A UDP or SCTP port is never one HTTP
    reaches."""
    if workload.annotations.get(SCRAPE) != "true":
        return []
    port = workload.annotations.get(SCRAPE_PORT, "")
    if port.isdigit():
        # a number that is no port makes an address Prometheus cannot scrape: no call
        return [int(port)] if 0 < int(port) < 65536 else []
    return list(dict.fromkeys(number for _name, number in workload.container_ports(
        native_sidecars=True, tcp_only=True)))


# --------------------------------------------------------------------------- exposed ports


def _exposed(index: MeshIndex) -> Iterator[OutsideCall]:
    """Clients outside the cluster: a Service of type ``NodePort`` or ``LoadBalancer``, or
    with ``externalIPs``, takes their connections on every port and kube-proxy forwards them
    to the selected pods' ``targetPort``; a container's ``hostPort`` takes them on the node.
    They come from outside the cluster's pods, without the mesh's proxy or identity. The
    mesh's own gateways are left out: their flows are the gateways'. A UDP or SCTP port is
    left out too: neither mesh's proxy takes it (Istio's traffic capture and Linkerd's
    proxy-init redirect TCP only), so STRICT and default deny never see it.
    https://kubernetes.io/docs/concepts/services-networking/service/#type-nodeport,
    https://kubernetes.io/docs/concepts/services-networking/service/#external-ips,
    https://kubernetes.io/docs/concepts/configuration/overview/#services (hostPort)
    """
    for service in index.of_kind("Service"):
        how = exposure(service.spec)
        if how is None:
            continue
        entry = index.service(service.namespace, service.name)
        for port in entry.ports if entry is not None else ():
            if not is_tcp(port):
                continue
            for workload, number, service_port in _pod_port(
                    index, service.namespace, service.name, port.get("number")):
                if is_gateway(workload.labels):
                    continue
                yield OutsideCall("exposed", service, f"{how}, port {port.get('number')}", (),
                                  workload, number, caller_name="a client outside the cluster",
                                  service=service.name, service_port=service_port)
    for workload in index.workloads:
        if workload.host_network or is_gateway(workload.labels):
            continue  # on the node's network the pod has no proxy to refuse anything
        for container in workload.containers:
            for port in as_list(container.get("ports")):
                port = as_mapping(port)
                if isinstance(port.get("hostPort"), int) and \
                        isinstance(port.get("containerPort"), int) and is_tcp(port):
                    yield OutsideCall("exposed", workload.resource,
                                      f"hostPort {port['hostPort']}", (), workload,
                                      port["containerPort"],
                                      caller_name="a client outside the cluster")


def is_tcp(port: Mapping[str, Any]) -> bool:
    """A Service or container port of protocol TCP (the default): the only one the meshes'
    proxies take."""
    return str(port.get("protocol") or "TCP").upper() == "TCP"


def is_gateway(labels: Mapping[str, str]) -> bool:
    """A mesh gateway's own Envoy: Gateway API's generated deployment, or the classic
    ``istio: ingressgateway``/``egressgateway`` pods. It takes outside traffic itself (the
    gateway flows' business, not an exposed workload's)."""
    return any(label in labels for label in _GATEWAY_LABELS) or \
        labels.get("istio") in ("ingressgateway", "egressgateway")


def exposure(spec: Mapping[str, Any]) -> str | None:
    """How a Service's spec takes connections from outside the cluster (``type NodePort``,
    ``type LoadBalancer``, ``externalIPs``), or None."""
    kind = str(spec.get("type") or "ClusterIP")
    if kind in EXPOSING_TYPES:
        return f"type {kind}"
    return "externalIPs" if as_list(spec.get("externalIPs")) else None
