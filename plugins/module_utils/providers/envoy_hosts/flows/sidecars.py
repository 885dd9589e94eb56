"""Which ends of a flow have a host sidecar, and what the caller's sidecar sends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ....estate.objects import as_list, as_mapping
from ....flows.evaluate import FlowRule, Step
from ....flows.model import NO_ROUTE, NOT_APPLICABLE, Verdict, refused
from .view import HostView

TRANSPORT_MATCH = "envoy.transport_socket_match"


class HostSidecars(FlowRule):
    """A plain host has a sidecar when meshstage renders its files (its injection wave is
    injected); a Kubernetes workload calling a host does not go through a host sidecar: its
    request arrives as its own plaintext (the cluster's mesh does not know the host).

    Follows the host plan (``providers/envoy_hosts/plan.py``: "Every injected host ...
    gets five files") and the intent's warning for calls between the cluster and hosts
    (``intent/hosts.py``: "the call is not meshed").
    """

    name = "hosts.Sidecars"

    def apply(self, step: Step) -> Verdict | None:
        view: HostView = step.view
        flow, facts = step.flow, step.facts
        facts.source_proxy = flow.source.kind == "host" and view.has_sidecar(flow.source.name)
        facts.destination_proxy = view.has_sidecar(flow.destination.name)
        return None


def _route_clusters(routes: Any) -> set[str]:
    names = set()
    for route in as_list(routes):
        action = as_mapping(as_mapping(route).get("route"))
        if action.get("cluster"):
            names.add(str(action["cluster"]))
        for weighted in as_list(as_mapping(action.get("weighted_clusters")).get("clusters")):
            weighted = as_mapping(weighted)
            if weighted.get("weight", 1):
                names.add(str(weighted.get("name")))
    return names


def _endpoint(cluster: Mapping[str, Any], address: str, port: int) -> Mapping[str, Any] | None:
    assignment = as_mapping(cluster.get("load_assignment"))
    for group in as_list(assignment.get("endpoints")):
        for item in as_list(as_mapping(group).get("lb_endpoints")):
            item = as_mapping(item)
            socket = as_mapping(as_mapping(as_mapping(item.get("endpoint")).get("address"))
                                .get("socket_address"))
            if socket.get("address") == address and socket.get("port_value") == port:
                return item
    return None


def _tls_for(cluster: Mapping[str, Any], endpoint: Mapping[str, Any]) -> bool:
    """Whether the cluster sends TLS to the endpoint: a transport socket whose match the
    endpoint's metadata satisfies (Envoy's transport_socket_matches), or the cluster's
    own transport socket."""
    metadata = as_mapping(as_mapping(as_mapping(endpoint.get("metadata"))
                                     .get("filter_metadata")).get(TRANSPORT_MATCH))
    for match in as_list(cluster.get("transport_socket_matches")):
        match = as_mapping(match)
        wanted = as_mapping(match.get("match"))
        if all(metadata.get(k) == v for k, v in wanted.items()):
            return bool(match.get("transport_socket"))
    return bool(cluster.get("transport_socket"))


class HostOutbound(FlowRule):
    """What a host sidecar sends for its application: its outbound listener routes a request
    by its Host header to the callee's virtual host (no virtual host: Envoy answers 404,
    "no route"), then to the clusters of the matching routes; the endpoint of the called
    host gets mTLS with the caller's certificate when the cluster's
    ``transport_socket_matches`` entry its metadata matches has a transport socket, else
    plaintext. A host whose routes send nothing to the called host (a retired version)
    receives nothing of the flow. A caller without a host sidecar sends plaintext.

    Follows https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/
    cluster.proto (``transport_socket_matches``: "the first socket that matches the
    endpoint's metadata is used") and https://www.envoyproxy.io/docs/envoy/latest/
    intro/arch_overview/http/http_routing (virtual hosts chosen by the Host header).
    """

    name = "hosts.Outbound"

    def apply(self, step: Step) -> Verdict | None:
        view: HostView = step.view
        flow, facts = step.flow, step.facts
        facts.sends, facts.identity = "plaintext", None
        if not facts.source_proxy:
            return None
        caller, destination = flow.source.name, flow.destination
        listener = view.listener(caller, "outbound")
        service = destination.service or destination.name
        routes = None
        for chain in as_list(as_mapping(listener).get("filter_chains")):
            for item in as_list(as_mapping(chain).get("filters")):
                config = as_mapping(as_mapping(as_mapping(item).get("typed_config"))
                                    .get("route_config"))
                for host in as_list(config.get("virtual_hosts")):
                    host = as_mapping(host)
                    if service in [str(d) for d in as_list(host.get("domains"))]:
                        routes = host.get("routes")
        if routes is None:
            return refused(NO_ROUTE, f"the sidecar of host {caller} has no route to "
                           f"{service}", view.where(caller, "lds.yaml"),
                           f"add {service} to the calls of {flow.source.service}")
        target = destination.host
        for name in sorted(_route_clusters(routes)):
            cluster = view.cluster(caller, name)
            endpoint = _endpoint(cluster, target.address, target.inbound_port) \
                if cluster is not None and target is not None else None
            if endpoint is not None and cluster is not None:
                if _tls_for(cluster, endpoint):
                    facts.sends = "mtls"
                    source = flow.source
                    facts.identity = (f"spiffe://{view.trust_domain}/ns/{source.namespace}"
                                      f"/sa/{source.service_account}")
                return None
        return Verdict(NOT_APPLICABLE, f"the routes of host {caller}'s sidecar send nothing "
                       f"to host {destination.name}", view.where(caller, "cds.yaml"))
