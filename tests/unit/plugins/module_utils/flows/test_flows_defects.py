"""The defect classes of issue 13, each shown to the evaluators as the configuration that
broke: the proof refuses it, naming the object and a fix that works (a rendering that gets
the class right makes the proof pass; these cases keep the broken shape on purpose)."""

from __future__ import annotations

from flow_helpers import OUTSIDE, deployment, peer, state, verdict

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshIndex
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.collect import (
    collect_flows,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.proof import judge

INJECTED = {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}}


def allow(name, selector, principals):
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"selector": {"matchLabels": selector},
                     "rules": [{"from": [{"source": {"principals": principals}}]}]}}


def mode(name, value, selector=None):
    spec = {"mtls": {"mode": value}}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": name, "namespace": "istio-system" if not selector
                         else "shop"}, "spec": spec}


def test_class_1_a_plaintext_hop_never_matches_an_allow_by_identity():
    """A cache under a DISABLE exception, admitted by its callers' principals."""
    mesh = state("istio", [INJECTED, deployment("shop", "web"), deployment("shop", "cache"),
                           mode("default", "STRICT"),
                           mode("cache-mtls-exception", "DISABLE", {"app": "cache"}),
                           allow("cache-allow", {"app": "cache"},
                                 ["cluster.local/ns/shop/sa/web"])])
    refused = verdict(mesh, ("shop", "web"), ("shop", "cache"))
    assert (refused.outcome, refused.by) == ("403", "AuthorizationPolicy shop/cache-allow")
    assert "port 8080 is DISABLE" in refused.fix and "limited to ports" in refused.fix


def test_class_2_an_uninjected_caller_needs_the_fix_on_the_callees_side():
    docs = [INJECTED, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "load"}},
            deployment("load", "tester"), deployment("shop", "api"), mode("default", "STRICT")]
    refused = verdict(state("istio", docs), ("load", "tester"), ("shop", "api"))
    assert refused.outcome == "reset"
    assert "PERMISSIVE exception for api" in refused.fix
    assert "an exception on the caller changes nothing" in refused.fix
    # the callee made PERMISSIVE: an ALLOW naming the caller's identity still refuses
    docs += [mode("api-mtls-exception", "PERMISSIVE", {"app": "api"}),
             allow("api-allow", {"app": "api"}, ["cluster.local/ns/load/sa/tester"])]
    assert verdict(state("istio", docs), ("load", "tester"), ("shop", "api")).outcome == "403"


def test_class_3_allow_nothing_in_the_gateways_namespace_refuses_at_the_gateway():
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"gatewayClassName": "istio",
                        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
    nothing = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
               "metadata": {"name": "allow-nothing", "namespace": "shop"}, "spec": {}}
    docs = [INJECTED, gateway, nothing, deployment(
        "shop", "web-istio", {"gateway.networking.k8s.io/gateway-name": "web"})]
    mesh = state("istio", docs)
    refused = verdict(mesh, OUTSIDE, ("shop", "web-istio"), 80, kind="gateway")
    assert (refused.outcome, refused.by) == ("403", "AuthorizationPolicy shop/allow-nothing")
    # the generated gateway's identity is <gateway>-<class>, even with no workload shown
    flows = collect_flows(None, MeshIndex([r for r in mesh.index.resources
                                           if r.kind != "Deployment"]))
    (outside,) = [f for f in flows if f.destination.kind == "gateway"]
    assert outside.destination.name == "web-istio"


def test_class_4_a_canary_through_the_gateway_is_not_split():
    docs = [INJECTED, deployment("shop", "reviews"),
            deployment("istio-system", "gw", {"istio": "ingressgateway"}),
            {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "reviews", "namespace": "shop"},
             "spec": {"hosts": ["reviews"], "http": [{"route": [
                 {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                 {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10}]}]}}]
    mesh = state("istio", docs)
    through = verdict(mesh, peer(mesh, "istio-system", "gw", gateway=True),
                      ("shop", "reviews"), origin="ingress")
    assert through.allowed
    assert through.routing.startswith("VirtualService shop/reviews shape(s) reviews for "
                                      "sidecars only")


def test_class_6_a_grpc_probe_under_linkerd_deny_keeps_the_pod_unready():
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "emojivoto", "annotations": {"linkerd.io/inject": "enabled",
                                             "config.linkerd.io/default-inbound-policy":
                                                 "all-authenticated"}}},
            deployment("emojivoto", "voting", probes={"livenessProbe": {"grpc": {
                "port": 8080}}})]
    mesh = state("linkerd", docs)
    (probe,) = [f for f in collect_flows(None, mesh.index) if f.origin == "probe"]
    refused = judge(probe, mesh)
    assert refused.outcome == "403" and "kubelet's networks" in refused.fix
