"""A server-first protocol on a Service port that Istio sniffs: the connection stalls."""

from __future__ import annotations

from ....estate.protocols import detect
from ....flows.evaluate import FlowRule, Step
from ....flows.model import RESET, Verdict, refused
from ..ports import WELL_KNOWN_TCP, port_protocol


class ServerFirst(FlowRule):
    """A flow to a Service port that carries a server-first protocol (MySQL, SMTP, NATS: by
    the port's name, ``appProtocol`` or well-known number) while neither its name nor its
    ``appProtocol`` tells Istio the protocol, and its number is not one Istio takes as TCP
    (25, 53, 3306, 27017): once either end has a sidecar, the proxy sniffs the first bytes
    of the connection, which the client never sends first, and the connection stalls.

    Follows https://istio.io/latest/docs/ops/deployment/application-requirements/
    #server-first-protocols ("Both of these features work by inspecting the initial bytes
    of a connection to determine the protocol, which is incompatible with server first
    protocols") and ``wellKnownPorts`` in istio/istio pkg/config/kube/conversion.go.
    """

    name = "istio.ServerFirst"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        destination = flow.destination
        if not (facts.source_proxy or facts.destination_proxy) or \
                destination.kind != "workload" or not destination.service:
            return None
        entry = view.index.service(destination.namespace, destination.service)
        if entry is None:
            return None
        port = next((p for p in entry.ports if p.get("number") == destination.service_port),
                    None)
        if port is None or port_protocol(port) is not None or \
                port.get("number") in WELL_KNOWN_TCP:
            return None
        found = detect(port.get("name"), port.get("number"), port.get("appProtocol"))
        if found is None or not found.server_first:
            return None
        return refused(RESET, f"port {port.get('number')} of {entry.resource.display} carries "
                       f"{found.protocol} ({found.why}), whose server speaks first, and "
                       "Istio sniffs the port: the connection stalls", entry.resource.display,
                       "name the port tcp-<name> (mysql-<name> for MySQL) or set "
                       "appProtocol: tcp")
