"""Linkerd's flow rules, each on small cases from the linkerd.io page or linkerd/linkerd2
code it follows (the T-numbers are /work/notes/linkerd-semantics.md's; the URLs are in each
rule's docstring). The objects are those of the linkerd.io booksapp and emojivoto tasks."""

from __future__ import annotations

import yaml
from flow_helpers import KUBELET, OUTSIDE, deployment, flow, peer, state, verdict

from ansible_collections.meshstage.mesh.plugins.module_utils.flows.model import Peer, Request
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.proof import judge
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.registry import MESHES

POLICY = "policy.linkerd.io/v1alpha1"
PING = {"readinessProbe": {"httpGet": {"path": "/ping", "port": 7001}}}


def namespace(name, policy=None, inject="enabled"):
    annotations = {"linkerd.io/inject": inject}
    if policy:
        annotations["config.linkerd.io/default-inbound-policy"] = policy
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "annotations": annotations}}


def booksapp(*documents, policy=None, authors_annotations=None, values=None):
    docs = [namespace("booksapp", policy), namespace("plain", inject="disabled"),
            deployment("booksapp", "authors", {"app": "authors", "project": "booksapp"},
                       ports=(7001,), port_names={7001: "service"}, probes=PING,
                       annotations=authors_annotations),
            deployment("booksapp", "books", ports=(7002,)),
            deployment("booksapp", "webapp", ports=(7000,)),
            deployment("plain", "curl")]
    for part in documents:
        docs += [d for d in (yaml.safe_load_all(part) if isinstance(part, str) else [part])
                 if d]
    return state("linkerd", docs, install_values={"linkerd-control-plane": values or {}})


SERVER = """
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: authors-server, namespace: booksapp}
spec:
  podSelector: {matchLabels: {app: authors, project: booksapp}}
  port: service
"""
WEBAPP, BOOKS, CURL = ("booksapp", "webapp"), ("booksapp", "books"), ("plain", "curl")
AUTHORS = ("booksapp", "authors")


def authors(state_, source, request=None, origin="calls", protocol="http"):
    return verdict(state_, source, AUTHORS, 7001, request=request, origin=origin,
                   protocol=protocol)


def test_every_rule_is_registered_in_order_with_an_upstream_citation():
    rules = MESHES["linkerd"].flows.rules
    assert next(iter(rules)) == "linkerd.Injection"
    for rule in rules.values():
        assert "linkerd.io" in rule.__doc__ or "linkerd" in rule.__doc__


# ---- §1 default inbound policy (reference/authorization-policy, Default policies)


def test_t1_1_a_namespace_deny_refuses_a_meshed_client_with_403():
    refused = authors(booksapp(policy="deny"), WEBAPP)
    assert refused.outcome == "403"
    assert refused.by == ("config.linkerd.io/default-inbound-policy: deny on namespace "
                          "booksapp")


def test_t1_2_the_pods_own_annotation_wins_over_the_namespace():
    state_ = booksapp(policy="deny", authors_annotations={
        "config.linkerd.io/default-inbound-policy": "all-unauthenticated"})
    assert authors(state_, CURL).allowed


def test_t1_3_t1_4_cluster_and_authenticated_defaults():
    cluster = booksapp(values={"proxy": {"defaultInboundPolicy": "cluster-unauthenticated"}})
    assert authors(cluster, CURL).allowed
    assert authors(cluster, OUTSIDE).outcome == "403"
    authenticated = booksapp(policy="all-authenticated")
    assert authors(authenticated, WEBAPP).allowed
    refused = authors(authenticated, CURL)
    assert refused.outcome == "403" and "without a mesh identity" in refused.fix


# ---- §2 Server (reference/authorization-policy#server)


def test_t2_1_a_server_denies_what_nothing_authorizes():
    refused = authors(booksapp(SERVER), WEBAPP)
    assert (refused.outcome, refused.by) == ("403", "Server booksapp/authors-server")


def test_t2_2_t2_3_access_policy_authorizes_like_a_default_policy():
    authenticated = booksapp(SERVER.replace("port: service", "port: service\n  accessPolicy: "
                                            "all-authenticated"))
    assert authors(authenticated, WEBAPP).allowed
    assert authors(authenticated, CURL).outcome == "403"
    audit = booksapp(SERVER.replace("port: service", "port: service\n  accessPolicy: audit"))
    assert authors(audit, CURL).allowed


def test_t2_4_httpget_probes_stay_authorized_on_a_server_without_routes():
    probe = authors(booksapp(SERVER, policy="deny"), KUBELET, Request("GET", "/ping"), "probe")
    assert probe.allowed and probe.by == "the probe route"


# ---- §3 to §5 AuthorizationPolicy, MeshTLSAuthentication, NetworkAuthentication


def policy(name, target, *refs, kind="Server"):
    return {"apiVersion": POLICY, "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": "booksapp"},
            "spec": {"targetRef": {"group": "policy.linkerd.io" if kind != "Namespace" else "",
                                   "kind": kind, "name": target},
                     "requiredAuthenticationRefs": list(refs)}}


def meshtls(name, **spec):
    return {"apiVersion": POLICY, "kind": "MeshTLSAuthentication",
            "metadata": {"name": name, "namespace": "booksapp"}, "spec": spec}


def network(name, *networks):
    return {"apiVersion": POLICY, "kind": "NetworkAuthentication",
            "metadata": {"name": name, "namespace": "booksapp"},
            "spec": {"networks": list(networks)}}


WEBAPP_SA = {"name": "webapp", "kind": "ServiceAccount"}
MESH_ANY = {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "any"}
PRIVATE = {"group": "policy.linkerd.io", "kind": "NetworkAuthentication", "name": "private"}


def test_t3_1_a_service_account_reference_admits_that_identity_only():
    state_ = booksapp(SERVER, policy("authors-policy", "authors-server", WEBAPP_SA))
    assert authors(state_, WEBAPP).by == "AuthorizationPolicy booksapp/authors-policy"
    assert authors(state_, BOOKS).outcome == "403"
    refused = authors(state_, CURL)
    assert refused.outcome == "403" and "no MeshTLSAuthentication matches" in refused.fix


def test_t3_2_every_required_authentication_must_match():
    state_ = booksapp(SERVER, meshtls("any", identities=["*"]),
                      network("private", {"cidr": "10.0.0.0/8"}),
                      policy("both", "authors-server", MESH_ANY, PRIVATE))
    assert authors(state_, WEBAPP).allowed
    assert authors(state_, CURL).outcome == "403"
    far = Peer("workload", "booksapp", "far", "webapp", proxy=True, address="192.168.1.5")
    assert authors(state_, far).outcome == "403"


def test_t3_3_a_policy_with_a_missing_reference_is_ignored():
    state_ = booksapp(SERVER, policy("broken", "authors-server", PRIVATE))
    assert authors(state_, WEBAPP).outcome == "403"


def test_t3_4_policies_on_one_target_are_ored():
    books = {"name": "books", "kind": "ServiceAccount"}
    state_ = booksapp(SERVER, policy("a", "authors-server", WEBAPP_SA),
                      policy("b", "authors-server", books))
    assert authors(state_, WEBAPP).allowed and authors(state_, BOOKS).allowed


def test_t3_5_a_namespace_policy_reaches_servers_not_default_ports():
    namespaced = policy("ns", "booksapp", WEBAPP_SA, kind="Namespace")
    with_server = booksapp(SERVER, namespaced, policy="deny")
    assert authors(with_server, WEBAPP).allowed
    without = booksapp(namespaced, policy="deny")
    assert authors(without, WEBAPP).outcome == "403"


def test_t4_3_identity_refs_of_a_namespace():
    state_ = booksapp(SERVER, meshtls("any", identityRefs=[{"kind": "Namespace",
                                                            "name": "booksapp"}]),
                      policy("ns-only", "authors-server", MESH_ANY),
                      namespace("emojivoto"), deployment("emojivoto", "web"))
    assert authors(state_, WEBAPP).allowed
    assert authors(state_, ("emojivoto", "web")).outcome == "403"


def test_t5_networks_and_their_exceptions_by_address():
    state_ = booksapp(SERVER, network("private", {"cidr": "10.0.0.0/8",
                                                  "except": ["10.9.0.0/16"]}),
                      policy("net", "authors-server", PRIVATE))
    inside = Peer("host", "", "vm", proxy=False, address="10.8.1.1")
    excepted = Peer("host", "", "vm", proxy=False, address="10.9.1.1")
    public = Peer("host", "", "vm", proxy=False, address="198.51.100.7")
    assert authors(state_, inside).allowed
    assert authors(state_, excepted).outcome == "403"
    assert authors(state_, public).outcome == "403"


# ---- §6 routes on a Server (tasks/configuring-per-route-policy)


ROUTE = """
apiVersion: policy.linkerd.io/v1beta1
kind: HTTPRoute
metadata: {name: authors-get-route, namespace: booksapp}
spec:
  parentRefs: [{name: authors-server, kind: Server, group: policy.linkerd.io}]
  rules:
  - matches:
    - path: {value: "/authors.json"}
      method: GET
    - path: {value: "/authors/", type: "PathPrefix"}
      method: GET
"""


def test_t6_a_route_admits_its_requests_others_get_404_probes_too():
    authn = meshtls("authors-get-authn", identityRefs=[
        {"kind": "ServiceAccount", "name": "books"}, {"kind": "ServiceAccount",
                                                      "name": "webapp"}])
    get_policy = policy("authors-get-policy", "authors-get-route",
                        {"name": "authors-get-authn", "kind": "MeshTLSAuthentication",
                         "group": "policy.linkerd.io"}, kind="HTTPRoute")
    state_ = booksapp(SERVER, ROUTE, authn, get_policy)
    assert authors(state_, BOOKS, Request("GET", "/authors/1.json")).allowed
    missing = authors(state_, WEBAPP, Request("DELETE", "/authors/1"))
    assert (missing.outcome, missing.by) == ("404", "Server booksapp/authors-server")
    assert authors(state_, KUBELET, Request("GET", "/ping"), "probe").outcome == "404"
    partly = authors(state_, WEBAPP)
    assert partly.allowed and partly.partial


# ---- §7 probes (features/server-policy#default-authorizations)


def grpc_probed(policy_=None):
    docs = [namespace("emojivoto", policy_), deployment(
        "emojivoto", "voting", ports=(8080,),
        probes={"livenessProbe": {"grpc": {"port": 8080}}})]
    return state("linkerd", docs)


def test_t7_4_a_grpc_probe_is_not_auto_authorized():
    grpc = Request("POST", "/grpc.health.v1.Health/Check")
    assert verdict(grpc_probed("deny"), KUBELET, ("emojivoto", "voting"), request=grpc,
                   origin="probe", protocol="grpc").outcome == "403"
    assert verdict(grpc_probed("all-unauthenticated"), KUBELET, ("emojivoto", "voting"),
                   request=grpc, origin="probe", protocol="grpc").allowed


def test_t7_5_a_tcp_probe_of_a_meshed_pod_always_passes():
    assert verdict(grpc_probed("deny"), KUBELET, ("emojivoto", "voting"), origin="probe",
                   protocol="tcp").allowed


# ---- §8 skip ports (features/protocol-detection)


def test_t8_4_a_skipped_inbound_port_bypasses_the_proxy():
    state_ = booksapp(policy="deny", authors_annotations={
        "config.linkerd.io/skip-inbound-ports": "7001"})
    assert authors(state_, OUTSIDE).allowed


def test_t12_3_a_client_skipping_its_proxy_has_no_identity():
    docs = [namespace("booksapp", "all-authenticated"),
            deployment("booksapp", "authors", ports=(7001,)),
            deployment("booksapp", "webapp", annotations={
                "config.linkerd.io/skip-outbound-ports": "7001"})]
    assert verdict(state("linkerd", docs), WEBAPP, AUTHORS, 7001).outcome == "403"


# ---- §9 injection (features/proxy-injection)


def test_t9_1_a_pod_that_opts_out_is_not_meshed_and_enforces_nothing():
    docs = [namespace("booksapp", "deny"), deployment("booksapp", "authors", ports=(7001,),
                                                      annotations={"linkerd.io/inject":
                                                                   "disabled"})]
    assert verdict(state("linkerd", docs), OUTSIDE, AUTHORS, 7001).allowed


def test_the_injectors_object_selector_from_the_helm_values_leaves_pods_out():
    values = {"proxyInjector": {"objectSelector": {"matchExpressions": [
        {"key": "app", "operator": "NotIn", "values": ["authors"]}]}}}
    assert authors(booksapp(policy="deny", values=values), OUTSIDE).allowed


# ---- gRPC Servers route with GRPCRoutes (policy-controller grpc/src/inbound.rs)


def test_httproutes_do_not_apply_to_a_grpc_server():
    server = SERVER.replace("port: service", "port: service\n  proxyProtocol: gRPC")
    get_policy = policy("p", "authors-get-route", WEBAPP_SA, kind="HTTPRoute")
    refused = authors(booksapp(server, ROUTE, get_policy), WEBAPP,
                      Request("GET", "/authors.json"), protocol="grpc")
    assert refused.outcome == "403"


# ---- §11 splits (features/httproute)


def test_t11_2_a_service_route_does_not_shape_an_unmeshed_client():
    split = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: authors-split, namespace: booksapp}
spec:
  parentRefs: [{name: authors, kind: Service, group: core, port: 7001}]
  rules:
  - backendRefs:
    - {name: authors-v1, port: 7001, weight: 90}
    - {name: authors-v2, port: 7001, weight: 10}
"""
    state_ = booksapp(split)
    unshaped = judge(flow(state_, CURL, AUTHORS, 7001, service="authors"), state_)
    assert "does not shape" in unshaped.routing
    assert not judge(flow(state_, WEBAPP, AUTHORS, 7001, service="authors"), state_).routing
    assert peer(state_, *WEBAPP).identity == "booksapp/webapp"
