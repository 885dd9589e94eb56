"""Which Server takes the destination port, and the default policy where none does."""

from __future__ import annotations

from ....estate.objects import Resource
from ....flows.evaluate import FlowRule, Step
from ....flows.model import FORBIDDEN, RESET, Verdict, allowed, refused
from ....flows.outside import exposed_fix
from ....kube import selector_matches
from .authentication import admitted, default_authz
from .view import (
    LinkerdView,
    container_port_names,
    ports_of,
    probe_path,
    selector_of,
    server_port_matches,
)

INBOUND_POLICY = "config.linkerd.io/default-inbound-policy"
OPAQUE = "config.linkerd.io/opaque-ports"
REQUIRE_IDENTITY = "config.linkerd.io/proxy-require-identity-inbound-ports"
HTTP = ("http", "http2", "grpc")


def server_for(view: LinkerdView, step: Step) -> Resource | None:
    destination = step.flow.destination
    workload = destination.workload
    if workload is None:
        return None
    labels = view.pod_labels(workload)
    names = container_port_names(workload, True)
    for server in view.servers.get(destination.namespace, []):
        if selector_matches(selector_of(server), labels) and \
                server_port_matches(server, destination.port, names):
            return server
    return None


class Servers(FlowRule):
    """The Server that selects the destination pod (``podSelector``) and port (a number,
    or a container port's name, the proxy's own ``linkerd-admin`` included). Once a Server
    takes a port, the default policy no longer applies to it: only what authorizes the
    Server (or its routes) admits a request. Its ``proxyProtocol`` says how the proxy
    handles the bytes: ``opaque`` and ``TLS`` as TCP, the others as HTTP.

    Follows https://linkerd.io/2-edge/reference/authorization-policy/#server ("When a
    Server resource is present, all traffic to the port on its pods will be denied unless
    explicitly authorized or audit mode is enabled"; "port: A port name or number";
    "accessPolicy ... defaults to deny") and ``policy-controller/k8s/index/src/inbound/
    index.rs`` (``select_ports``).
    """

    name = "linkerd.Servers"

    def apply(self, step: Step) -> Verdict | None:
        server = server_for(step.view, step)
        step.facts.extra["server"] = server
        if server is not None:
            protocol = str(server.spec.get("proxyProtocol") or "unknown")
            tcp = protocol in ("opaque", "TLS") or (
                protocol == "unknown" and step.flow.protocol not in HTTP)
            step.facts.server_protocol = "tcp" if tcp else \
                "grpc" if protocol == "gRPC" else "http"
        return None


class DefaultPolicy(FlowRule):
    """A port no Server takes gets the pod's default inbound policy: its own
    ``config.linkerd.io/default-inbound-policy`` annotation (the namespace's is copied onto
    a pod when it is injected), else the cluster's ``proxy.defaultInboundPolicy``.
    ``all-unauthenticated`` and ``audit`` admit everyone; ``cluster-unauthenticated`` the
    cluster's networks; ``all-authenticated`` any mesh identity; ``cluster-authenticated``
    both; ``deny`` nobody. Under every one of them the kubelet's ``httpGet`` probe paths
    stay authorized from ``policyController.probeNetworks``. Ports listed in
    ``config.linkerd.io/proxy-require-identity-inbound-ports`` need an identity. A denied
    HTTP request gets 403, anything else a refused connection.

    Follows https://linkerd.io/2-edge/reference/authorization-policy/ (Default policies),
    https://linkerd.io/2-edge/features/server-policy/ ("the default policy is fixed at
    proxy initialization time"; "Any traffic that is known to be HTTP ... that is denied by
    policy will result in the proxy returning an HTTP 403. All other traffic will be denied
    at the TCP level") and ``policy-controller/k8s/index/src/defaults.rs``.
    """

    name = "linkerd.DefaultPolicy"

    def apply(self, step: Step) -> Verdict | None:
        view: LinkerdView = step.view
        flow, facts = step.flow, step.facts
        if facts.extra.get("server") is not None:
            return None
        destination = flow.destination
        workload = destination.workload
        policy, by = view.default_policy, f"proxy.defaultInboundPolicy: {view.default_policy}"
        if workload is not None:
            own = workload.annotations.get(INBOUND_POLICY)
            spaced = view.namespace_annotations(destination.namespace).get(INBOUND_POLICY)
            if own:
                policy, by = own, f"{INBOUND_POLICY}: {own} on {workload.resource.display}"
            elif spaced:
                policy, by = spaced, (f"{INBOUND_POLICY}: {spaced} on namespace "
                                      f"{destination.namespace}")
            required = ports_of(workload.annotations.get(REQUIRE_IDENTITY, ""))
            if destination.port in required and policy.endswith("-unauthenticated"):
                policy = policy.replace("-unauthenticated", "-authenticated")
        opaque = workload is not None and destination.port in ports_of(
            view.pod_annotation(workload, OPAQUE) or view.opaque_ports)
        http = flow.protocol in HTTP and not opaque
        address = facts.extra.get("address")
        if http and flow.origin == "probe" and flow.request is not None \
                and probe_path(flow, flow.request) \
                and view.in_networks(address, view.probe_networks):
            return allowed("the default policy's probe route admits the kubelet's httpGet "
                           f"probe from the probe networks ({by})", by)
        if admitted(view, default_authz(view, policy, by), facts.identity, address):
            return allowed(f"the default policy {policy} admits it", by)
        return refused(FORBIDDEN if http else RESET,
                       f"the default policy {policy} refuses "
                       + ("a request without a mesh identity" if facts.identity is None
                          else "it"), by, _fix(step, policy))


def _fix(step: Step, policy: str) -> str:
    flow = step.flow
    if flow.origin == "probe":
        return ("a Server for the port with a route for the probe and an AuthorizationPolicy "
                "with a NetworkAuthentication of the kubelet's networks "
                "(mesh_linkerd.probe_networks)")
    if step.facts.identity is None and flow.origin == "exposed":
        return exposed_fix(flow)
    if step.facts.identity is None:
        return (f"{flow.source} reaches it without a mesh identity: admit it with a "
                "NetworkAuthentication of its networks (a Server and AuthorizationPolicy for "
                "the port), or mesh the caller")
    return f"a Server for the port and an AuthorizationPolicy that admits {step.facts.identity}"
