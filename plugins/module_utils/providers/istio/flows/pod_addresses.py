"""Requests a client's sidecar sends to a pod's own address: matched only on a port a headless
Service declares."""

from __future__ import annotations

from ....estate.objects import Resource, as_list, as_mapping, as_strings
from ....flows.evaluate import FlowRule, Step
from ....flows.model import Destination, Verdict
from .sidecar_egress import effective_sidecar, imports, unmatched
from .view import DOMAIN, IstioView


def headless_services(view: IstioView,
                      destination: Destination) -> list[tuple[Resource, int]]:
    """The headless Services selecting the destination's pods that declare its port, and
    each one's Service port number."""
    workload = destination.workload
    if workload is None:
        return []
    key = ("headless", id(workload), destination.port)
    if key not in view.memo:
        found = []
        for service in view.index.of_kind("Service"):  # the state's: rendered ones too
            selector = as_strings(service.spec.get("selector"))
            if service.namespace != destination.namespace or not selector or \
                    service.spec.get("clusterIP") != "None" or \
                    any(workload.labels.get(k) != v for k, v in selector.items()):
                continue
            for port in as_list(service.spec.get("ports")):
                port = as_mapping(port)
                if isinstance(port.get("port"), int) and workload.port_number(
                        port.get("targetPort") or port["port"]) == destination.port:
                    found.append((service, int(port["port"])))
                    break
        view.memo[key] = found
    return list(view.memo[key])


def _fqdn(service: Resource) -> str:
    return f"{service.name}.{service.namespace}.{DOMAIN}"


class PodAddresses(FlowRule):
    """A request a client's sidecar sends to a pod's own address (a StatefulSet's peers by
    pod DNS name, Prometheus scraping endpoints, an ingress controller that sends to the
    endpoints) is matched only when a headless Service selecting the pod declares the port:
    its sidecar then has a listener for that pod address and port, and the request gets the
    Service's routing and mTLS. Otherwise it is unmatched: ``ALLOW_ANY`` passes it through
    as plaintext with no identity, ``REGISTRY_ONLY`` drops it.

    Follows https://istio.io/latest/docs/ops/configuration/traffic-management/
    traffic-routing/#headless-services ("with Istio the port must be declared in the
    Service, or it will not be matched") and https://istio.io/latest/docs/ops/deployment/
    application-requirements/#outbound-traffic ("direct calls to pods (for example, curl
    <POD_IP>), rather than Services, will not be matched. While the traffic may be passed
    through, it will not get the full Istio functionality including mTLS encryption").
    """

    name = "istio.PodAddresses"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        destination = flow.destination
        if flow.addressed != "pod" or not facts.source_proxy or \
                flow.source.kind == "gateway" or destination.kind != "workload":
            return None
        found = headless_services(view, destination)
        sidecar = effective_sidecar(view, flow.source.namespace, flow.source.labels)
        if found:
            # of several that declare the port, the sidecar matches the address through
            # one its Sidecar imports
            imported = [(s, n) for s, n in found if sidecar is None or imports(
                sidecar, flow.source.namespace, s.namespace, _fqdn(s), n)]
            service, number = (imported or found)[0]
            facts.extra["fqdn"] = _fqdn(service)
            facts.extra["service_port"] = number
            return None
        return unmatched(step, sidecar, f"{flow.source} calls the pod address of "
                         f"{destination}, whose port no headless Service declares",
                         "declare the port in a headless Service (peer_ports)")
