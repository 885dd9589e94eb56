"""MST0112: a server-first protocol on a Service port Istio will sniff."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ...estate.objects import SYSTEM_NAMESPACES, Resource
from ...estate.protocols import detect, service_ports
from ...providers.istio.ports import WELL_KNOWN_TCP, port_protocol
from ..analyzer import Analyzer, Results
from ..finding import Level


class ServerFirstAnalyzer(Analyzer):
    """A Service port that carries MySQL, SMTP or NATS (by its name, ``appProtocol`` or
    well-known number) while neither its name nor its ``appProtocol`` tells Istio its
    protocol (``tcp-``, ``mysql-``, ``appProtocol: tcp``), and its number is not one Istio
    takes as TCP anyway (25, 53, 3306, 27017). Istio then sniffs the first bytes of each
    connection: a server-first protocol sends none from the client, so once the pods have
    sidecars every connection stalls (an Error; a Warning while the pods have no sidecar
    yet). Name the port ``tcp-<name>`` (``mysql-<name>`` for MySQL) or set
    ``appProtocol: tcp``. PostgreSQL and memcached clients speak first: Istio waits for
    their first bytes, with no detection timeout by default (``protocolDetectionTimeout``
    0s), and then takes them for TCP, as upstream reproduced for PostgreSQL
    (istio/istio#24856), so their ports are left alone here (Linkerd, whose detection
    gives up after 10 seconds, gets them as opaque ports).
    https://istio.io/latest/docs/ops/deployment/application-requirements/
    #server-first-protocols,
    https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/

    Fails with MST0112::

        apiVersion: v1
        kind: Namespace
        metadata: {name: messaging, labels: {istio-injection: enabled}}
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
        metadata: {name: messaging, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: nats, namespace: messaging}
        spec:
          selector: {app: nats}
          ports: [{name: client, port: 4222, appProtocol: tcp}]
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

    name = "meshstage.ServerFirstAnalyzer"
    provider = "istio"
    codes = {"MST0112": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        for service in index.of_kind("Service"):
            if service.namespace in SYSTEM_NAMESPACES or service.spec.get("type") == \
                    "ExternalName":
                continue
            entry = index.service(service.namespace, service.name)
            workloads = index.selected_by_service(entry) if entry else []
            injected = [w for w in workloads if index.has_sidecar(w)]
            for number, port in enumerate(service_ports(service.spec)):
                if port_protocol(port) is not None or port.get("port") in WELL_KNOWN_TCP:
                    continue
                found = detect(port.get("name"), port.get("port"), port.get("appProtocol"))
                if found is None or not found.server_first:
                    continue
                breaks = bool(injected)
                subject = self._subject(index, service, injected)
                stalls = "the server speaks first, so every connection stalls"
                when = "" if injected else " once its pods have sidecars"
                yield self.finding(
                    subject, "MST0112", f"Port {port.get('port')} of {service.display} carries "
                    f"{found.protocol} ({found.why}), but neither its name nor its "
                    f"appProtocol tells Istio: Istio sniffs the first bytes{when}, and "
                    f"{stalls}; name it tcp-<name> or set appProtocol: tcp.",
                    f"spec.ports[{number}]" if subject is service else "",
                    level=None if breaks else Level.WARNING)

    @staticmethod
    def _subject(index: MeshIndex, service: Resource, injected: list) -> Resource:
        """What brings the sidecar to the port: its namespace (the label injects the pods),
        else the Service itself."""
        if injected and all(w.injection_override is None for w in injected):
            return index.namespace(service.namespace) or service
        return service
