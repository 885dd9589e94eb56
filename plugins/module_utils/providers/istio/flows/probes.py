"""Kubelet probes and Prometheus scrapes of workloads with an Istio sidecar."""

from __future__ import annotations

from ....flows.evaluate import FlowRule, Step
from ....flows.model import NOT_APPLICABLE, Verdict, allowed

REWRITE = "sidecar.istio.io/rewriteAppHTTPProbers"
MERGE = "prometheus.istio.io/merge-metrics"
AGENT_PORTS = (15020, 15021, 15090)


class Probes(FlowRule):
    """A kubelet probe of a pod with a sidecar is rewritten to the agent on port 15020,
    which is outside the traffic capture, so no PeerAuthentication or AuthorizationPolicy
    applies: httpGet always, tcpSocket since 1.12, grpc since 1.13. The pod annotation
    ``sidecar.istio.io/rewriteAppHTTPProbers: "false"`` turns the rewrite off: an httpGet or
    grpc probe then reaches the app port as a plaintext request from the node, with no
    identity, and the rules after this one judge it (STRICT resets it; an ALLOW by principal
    refuses it); a tcpSocket probe then always succeeds, since Envoy accepts the connection.
    A pod without a sidecar is probed directly.

    Follows https://istio.io/latest/docs/ops/configuration/mesh/app-health-check/
    ("This becomes a problem when mutual TLS is enabled, because the Kubelet does not have
    an Istio issued certificate"; "TCP probe checks need special handling, because Istio
    redirects all incoming traffic into the sidecar, and so all TCP ports appear open"),
    https://istio.io/latest/news/releases/1.12.x/announcing-1.12/upgrade-notes/ and
    https://istio.io/latest/news/releases/1.13.x/announcing-1.13/change-notes/.
    """

    name = "istio.Probes"

    def apply(self, step: Step) -> Verdict | None:
        flow, facts = step.flow, step.facts
        if flow.origin != "probe":
            return None
        if not facts.destination_proxy:
            return allowed("the pod has no sidecar: the kubelet probes the container directly")
        workload = flow.destination.workload
        rewrite = (workload.annotations.get(REWRITE, "true") if workload is not None
                   else "true").lower() != "false"
        if rewrite:
            return allowed("the sidecar rewrites the probe to the agent on port 15020, "
                           "outside PeerAuthentication and AuthorizationPolicy")
        if flow.protocol == "tcp":
            return allowed("probe rewriting is off, and Envoy accepts the probe's "
                           "connection itself (the probe no longer tells the app's health)")
        facts.notes.append(f"{REWRITE}: \"false\" on the pod: the probe reaches port "
                           f"{flow.destination.port} through the sidecar")
        return None


class Scrapes(FlowRule):
    """Prometheus scraping a pod with a sidecar: with metrics merging (on by default) the
    injector points the ``prometheus.io`` annotations at the agent's
    ``:15020/stats/prometheus``, which is outside the traffic capture, so the scrape works
    under STRICT and any AuthorizationPolicy. With merging off
    (``prometheus.istio.io/merge-metrics: "false"``) a scrape of an application port is a
    request like any other (the rules after this one judge it). A pod without a sidecar has
    no proxy metrics to scrape.

    Follows https://istio.io/latest/docs/ops/integrations/prometheus/
    #option-1-metrics-merging ("The merged metrics will be scraped from
    :15020/stats/prometheus") and #tls-settings, and the port table of
    https://istio.io/latest/docs/ops/deployment/application-requirements/
    #ports-used-by-istio.
    """

    name = "istio.Scrapes"

    def apply(self, step: Step) -> Verdict | None:
        flow, facts = step.flow, step.facts
        if flow.origin != "scrape":
            return None
        port = flow.destination.port
        if not facts.destination_proxy:
            if port in AGENT_PORTS:
                return Verdict(NOT_APPLICABLE, "the pod has no sidecar, so no proxy metrics")
            return allowed("the pod has no sidecar: Prometheus scrapes it directly")
        workload = flow.destination.workload
        # merging rewrites the prometheus.io annotations; a ServiceMonitor or PodMonitor
        # scrapes the application's port as it says
        merged = flow.via == "prometheus.io/scrape" and (
            workload.annotations.get(MERGE, "true") if workload is not None
            else "true").lower() != "false"
        if port in AGENT_PORTS or merged:
            return allowed("scraped on the agent's port 15020, outside the traffic capture")
        return None
