"""Whether a service's routes shape the requests that come through the ingress gateway.

A VirtualService without ``gateways`` applies to sidecars only ("When this field is omitted,
the default gateway (mesh) will be used, which would apply the rule to all sidecars in the
mesh ... To apply the rules to both gateways and sidecars, specify mesh as one of the gateway
names":
https://istio.io/latest/docs/reference/config/networking/virtual-service/#VirtualService),
and a gateway applies a route only to the hosts its requests carry (the external host:
https://istio.io/latest/docs/ops/common-problems/network-issues/#route-rules-have-no-effect-on-ingress-gateway-requests).
An HTTPRoute whose parent is the Service shapes requests from sidecars (Linkerd: outbound
proxies) only; requests entering through a Gateway follow the routes attached to that Gateway
(https://gateway-api.sigs.k8s.io/geps/gep-1294/,
https://linkerd.io/2-edge/features/httproute/). So a canary of a service reached through the
ingress gateway is judged on requests its split does not shape, unless its routes are bound
to the gateway too.

``ingress_binding`` answers, per routed service: bind the routes to the gateway (the intent
names it, ``mesh_ingress_gateway.gateway``, and the hosts, ``ingress_hosts``), refuse when a
route the team owns already routes those hosts on that gateway, or warn, naming the route
that decides where ingress requests go.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import IntentError
from ..estate.estate import Estate
from ..estate.hosts import host_overlaps
from ..estate.objects import Resource, as_list, as_mapping
from ..intent.model import Intent, Service


@dataclass
class IngressBinding:
    gateway: tuple[str, str] | None = None    # (namespace, name) the routes bind to
    hosts: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    refusals: list[IntentError] = field(default_factory=list)


def _route_hosts(route: Resource) -> list[str]:
    key = "hosts" if route.kind == "VirtualService" else "hostnames"
    return [str(h) for h in as_list(route.spec.get(key))] or ["*"]


def _route_gateways(route: Resource) -> list[tuple[str, str]]:
    if route.kind == "VirtualService":
        refs = [str(g) for g in as_list(route.spec.get("gateways")) if g != "mesh"]
        return [(ref.rpartition("/")[0] or route.namespace, ref.rpartition("/")[2])
                for ref in refs]
    return [(str(as_mapping(p).get("namespace") or route.namespace), str(as_mapping(p)["name"]))
            for p in as_list(route.spec.get("parentRefs"))
            if str(as_mapping(p).get("kind") or "Gateway") == "Gateway"
            and as_mapping(p).get("name")]


def ingress_binding(intent: Intent, service: Service, estate: Estate | None,
                    api: str, can_bind: bool = True) -> IngressBinding:
    """How the routes of a routed ``service`` meet ingress requests (see the module
    docstring); ``api`` names what meshstage renders the routes with, for the messages;
    ``can_bind`` is false where that kind cannot be bound to a gateway (a TrafficSplit)."""
    binding = IngressBinding()
    owned = estate.ingress_routes(service.namespace, service.name,
                                  [v.service or f"{service.name}-{v.name}"
                                   for v in service.versions]) if estate is not None else []
    if not (service.ingress or owned):
        return binding
    path = intent.service_path(service)
    gateway = intent.ingress_gateway.gateway_ref()
    where = f"{service.namespace}/{service.name}"
    if can_bind and gateway is not None and service.ingress_hosts:
        for route in owned:
            shared = [host for host in _route_hosts(route) for ours in service.ingress_hosts
                      if host_overlaps(host, ours)]
            if gateway in _route_gateways(route) and shared:
                binding.refusals.append(IntentError(
                    f"{path}.ingress_hosts", list(service.ingress_hosts),
                    f"are routed on gateway {gateway[0]}/{gateway[1]} by {route.display} "
                    f"({route.source}) too, which meshstage does not own: two routes for one "
                    "host on one gateway leave it undefined which applies; remove that route "
                    "from the estate (meshstage binds the service's own), or leave "
                    "ingress_hosts out"))
        binding.gateway, binding.hosts = gateway, service.ingress_hosts
        return binding
    deciding = ", ".join(f"{route.display} ({route.source})" for route in owned) or \
        "the ingress gateway's own routes"
    binding.warnings.append(
        f"{path}.ingress (service {where}): its {api} shapes requests from the mesh only; "
        f"requests through the ingress gateway follow {deciding}, which meshstage does not "
        "own, to every version: a canary is judged on requests its split does not shape. "
        + ("Name the gateway (mesh_ingress_gateway.gateway) and the service's hosts "
           "(ingress_hosts) to bind its routes to the gateway too"
           + (", and remove the estate's route" if owned else "") if can_bind else
           "A TrafficSplit cannot be bound to a gateway: route with mesh_traffic_api "
           "gateway-api to bind the routes to it"))
    return binding
