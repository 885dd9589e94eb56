"""Kubelet probes of meshed pods, and ports the proxy does not take."""

from __future__ import annotations

from ....flows.evaluate import FlowRule, Step
from ....flows.model import NOT_APPLICABLE, Verdict, allowed
from .view import PROXY_PORTS, ports_of

SKIP_INBOUND = "config.linkerd.io/skip-inbound-ports"
SKIP_OUTBOUND = "config.linkerd.io/skip-outbound-ports"


class Probes(FlowRule):
    """A kubelet probe of a meshed pod goes through its proxy: a ``tcpSocket`` probe always
    succeeds (the proxy accepts the connection itself); an ``httpGet`` or ``grpc`` probe is
    a plaintext request from the node with no identity, which the rules after this one
    judge (the default policy's probe route admits ``httpGet`` paths only). An ``exec``
    probe sends nothing over the network. A pod without a proxy is probed directly.

    Follows https://linkerd.io/2-edge/features/server-policy/#default-authorizations
    ("Linkerd automatically authorizes probes to pods. These default authorizations apply
    only when no Server is configured for a port, or when a Server is configured but no
    HTTPRoutes are configured for that Server"), ``policy-controller/k8s/index/src/inbound/
    workload.rs`` (``container_http_probe_paths``: httpGet only) and linkerd/linkerd2#7777
    ("TcpSocket probes are meaningless with meshed pods") and #9595 (gRPC probes refused).
    """

    name = "linkerd.Probes"

    def apply(self, step: Step) -> Verdict | None:
        flow, facts = step.flow, step.facts
        if flow.origin != "probe":
            return None
        if not facts.destination_proxy:
            return allowed("the pod has no proxy: the kubelet probes the container directly")
        if flow.protocol == "tcp":
            return allowed("the proxy accepts the probe's connection itself (the probe no "
                           "longer tells the app's health)")
        return None


class Scrapes(FlowRule):
    """Prometheus scraping a pod's proxy (``linkerd-admin``, 4191): the admin server is
    subject to inbound policy like any port, so the rules after this one judge the scrape
    (linkerd-viz's Prometheus is meshed, with its own identity). A pod without a proxy has
    no proxy metrics to scrape.

    Follows ``viz/cmd/allow-scrapes.go`` ("Output Kubernetes resources to authorize
    Prometheus scrapes in a namespace or cluster with config.linkerd.io/
    default-inbound-policy: deny") and linkerd/linkerd2#7143 (the admin server's
    ``Request denied``).
    """

    name = "linkerd.Scrapes"

    def apply(self, step: Step) -> Verdict | None:
        flow, facts = step.flow, step.facts
        if flow.origin == "scrape" and not facts.destination_proxy:
            if flow.destination.port in dict(PROXY_PORTS).values():
                return Verdict(NOT_APPLICABLE, "the pod has no proxy, so no proxy metrics")
            return allowed("the pod has no proxy: Prometheus scrapes it directly")
        return None


class SkipPorts(FlowRule):
    """Ports the proxy does not take: the destination pod's
    ``config.linkerd.io/skip-inbound-ports`` (the chart's ``proxyInit.ignoreInboundPorts``,
    4567 and 4568, too) reach the application without the proxy, so no policy applies; a
    client whose ``skip-outbound-ports`` hold the port bypasses its own proxy and arrives
    in plaintext with no identity.

    Follows https://linkerd.io/2-edge/features/protocol-detection/ ("Skip ports bypass
    the proxy entirely") and ``charts/linkerd-control-plane/values.yaml``
    (``ignoreInboundPorts: "4567,4568"``).
    """

    name = "linkerd.SkipPorts"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        destination = flow.destination
        workload = destination.workload
        if facts.destination_proxy and workload is not None:
            skipped = ports_of(view.pod_annotation(workload, SKIP_INBOUND) or "") | \
                ports_of(view.ignored_inbound)
            if destination.port in skipped:
                return allowed(f"port {destination.port} skips the proxy "
                               f"({SKIP_INBOUND}): no policy applies")
        source = flow.source.workload
        if facts.source_proxy and source is not None:
            port = destination.service_port or destination.port
            if port in ports_of(view.pod_annotation(source, SKIP_OUTBOUND) or ""):
                facts.extra["skipped_outbound"] = True
                facts.notes.append(f"{flow.source} skips its proxy for port {port}")
        return None
