"""MST0210: a server-first (or pooled) protocol on a port Linkerd does not treat as opaque."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import SYSTEM_NAMESPACES, Resource, Workload
from ...estate.protocols import detect, service_ports
from ...providers.linkerd.api import DEFAULT_OPAQUE_PORTS
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._linkerd import linkerd_injected, linkerd_objects, server_port_numbers, server_workloads
from ._mtls import target_port

OPAQUE_PORTS = "config.linkerd.io/opaque-ports"
OPAQUE_APP_PROTOCOL = "linkerd.io/opaque"


def opaque_ports(text: str, names: Mapping[str, int] | None = None) -> set[int]:
    """The ports an opaque-ports annotation lists: numbers, ranges (``4000-4100``) and
    port names."""
    ports: set[int] = set()
    for item in (part.strip() for part in text.split(",")):
        low, _, high = item.partition("-")
        if low.isdigit() and (high.isdigit() or not high):
            ports.update(range(int(low), int(high or low) + 1))
        elif names and item in names:
            ports.add(names[item])
    return ports


class LinkerdOpaquePortsAnalyzer(Analyzer):
    """A Service port of meshed pods that carries MySQL, SMTP, NATS, PostgreSQL or memcached
    (by its name, ``appProtocol`` or well-known number) and that Linkerd does not treat as
    opaque on both sides: the Service (its ``config.linkerd.io/opaque-ports`` annotation or
    ``appProtocol: linkerd.io/opaque``, else the control plane's ``proxy.opaquePorts``) and
    the pods (their own or their namespace's annotation, else ``proxy.opaquePorts``, or a
    Server with ``proxyProtocol: opaque``). The proxies then wait up to 10 seconds for the
    client's first bytes on every connection, which a server-first protocol never sends
    first: connections are slow, and fail where clients time out sooner. The default
    ``proxy.opaquePorts`` holds 25, 587, 3306, 4444, 5432, 6379, 9300 and 11211.
    https://linkerd.io/2-edge/features/protocol-detection/

    Fails with MST0210::

        apiVersion: v1
        kind: Namespace
        metadata: {name: messaging, annotations: {linkerd.io/inject: enabled}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: nats, namespace: messaging}
        spec:
          selector: {app: nats}
          ports: [{name: client, port: 4222}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: nats, namespace: messaging}
        spec:
          selector: {matchLabels: {app: nats}}
          template:
            metadata: {labels: {app: nats}}
            spec:
              containers:
              - {name: nats, image: "nats:2.10", ports: [{name: client, containerPort: 4222}]}

    Passes::

        apiVersion: v1
        kind: Namespace
        metadata:
          name: messaging
          annotations: {linkerd.io/inject: enabled, config.linkerd.io/opaque-ports: "4222"}
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: nats
          namespace: messaging
          annotations: {config.linkerd.io/opaque-ports: "4222"}
        spec:
          selector: {app: nats}
          ports: [{name: client, port: 4222}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: nats, namespace: messaging}
        spec:
          selector: {matchLabels: {app: nats}}
          template:
            metadata: {labels: {app: nats}}
            spec:
              containers:
              - {name: nats, image: "nats:2.10", ports: [{name: client, containerPort: 4222}]}
    """

    name = "linkerd.OpaquePortsAnalyzer"
    provider = "linkerd"
    codes = {"MST0210": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        default = set(DEFAULT_OPAQUE_PORTS) | set(index.mesh.opaque_ports)
        opaque_servers = self._opaque_servers(index)
        for service in index.of_kind("Service"):
            if service.namespace in SYSTEM_NAMESPACES:
                continue
            entry = index.service(service.namespace, service.name)
            meshed = [(w, pod_level) for w in (index.selected_by_service(entry) if entry else [])
                      for injected, pod_level in [linkerd_injected(index, w)] if injected]
            if not meshed:
                continue
            for port in service_ports(service.spec):
                found = detect(port.get("name"), port.get("port"), port.get("appProtocol"))
                if found is None:
                    continue
                sides = []
                if not self._service_opaque(service, port, default):
                    sides.append(f"its Service ({OPAQUE_PORTS} or appProtocol "
                                 f"{OPAQUE_APP_PROTOCOL})")
                pods = [w for w, _ in meshed if not self._pod_opaque(
                    index, w, target_port(port, w), default, opaque_servers)]
                if pods:
                    sides.append(f"the pods of {pods[0].resource.display}")
                if not sides:
                    continue
                subject = self._subject(index, service, meshed)
                yield self.finding(
                    subject, "MST0210", f"Port {port.get('port')} of {service.display} carries "
                    f"{found.protocol} ({found.why}), but Linkerd does not treat it as opaque "
                    f"on {' nor on '.join(sides)}: the proxies wait up to 10 seconds for the "
                    "client's first bytes on every connection; list the port in "
                    f"{OPAQUE_PORTS} on the Service and the workload (or namespace), or in "
                    "the control plane's proxy.opaquePorts.")

    @staticmethod
    def _service_opaque(service: Resource, port: Mapping[str, Any], default: set[int]) -> bool:
        if port.get("appProtocol") == OPAQUE_APP_PROTOCOL:
            return True
        written = service.annotations.get(OPAQUE_PORTS)
        names = {str(p.get("name")): int(p["port"]) for p in service_ports(service.spec)
                 if isinstance(p.get("port"), int)}
        listed = opaque_ports(written, names) if written is not None else default
        return port.get("port") in listed

    @staticmethod
    def _pod_opaque(index: MeshIndex, workload: Workload, number: int | None,
                    default: set[int], servers: set[tuple[Workload, int]]) -> bool:
        if number is None or (workload, number) in servers:
            return True
        namespace = index.namespace(workload.namespace)
        written = workload.annotations.get(OPAQUE_PORTS)
        if written is None and namespace is not None:
            written = namespace.annotations.get(OPAQUE_PORTS)
        names = dict(workload.container_ports())
        return number in (opaque_ports(written, names) if written is not None else default)

    @staticmethod
    def _opaque_servers(index: MeshIndex) -> set[tuple[Workload, int]]:
        """(workload, port) pairs a Server with ``proxyProtocol: opaque`` selects."""
        pairs: set[tuple[Workload, int]] = set()
        for server in linkerd_objects(index, "Server"):
            if server.spec.get("proxyProtocol") != "opaque":
                continue
            workloads = server_workloads(index, server)
            for number in server_port_numbers(server, workloads):
                pairs.update((w, number) for w in workloads)
        return pairs

    @staticmethod
    def _subject(index: MeshIndex, service: Resource,
                 meshed: list[tuple[Workload, bool]]) -> Resource:
        if all(not pod_level for _, pod_level in meshed):
            return index.namespace(service.namespace) or service
        return service
