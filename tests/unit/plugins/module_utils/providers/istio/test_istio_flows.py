"""Istio's flow rules, each on small cases from the istio.io page or istio/istio code it
follows (the section numbers are /work/notes/istio-semantics.md's; the URLs are in each
rule's docstring)."""

from __future__ import annotations

import yaml
from flow_helpers import KUBELET, deployment, flow, peer, state, verdict

from ansible_collections.meshstage.mesh.plugins.module_utils.flows.model import Request
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.proof import judge
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.registry import MESHES

NS = """
apiVersion: v1
kind: Namespace
metadata: {name: foo, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy}
"""


def mesh(*documents: str | dict):
    docs = [d for part in (NS, *documents) for d in (
        yaml.safe_load_all(part) if isinstance(part, str) else [part]) if d]
    docs += [deployment("foo", "finance"), deployment("foo", "other"),
             deployment("foo", "client"), deployment("legacy", "curl")]
    return state("istio", docs)


def pa(name, namespace, mode=None, selector=None, ports=None, created=None):
    spec = {}
    if mode:
        spec["mtls"] = {"mode": mode}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    if ports:
        spec["portLevelMtls"] = {port: {"mode": m} for port, m in ports.items()}
    meta = {"name": name, "namespace": namespace}
    if created:
        meta["creationTimestamp"] = created
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": meta, "spec": spec}


PLAINTEXT = ("legacy", "curl")   # no sidecar: its namespace is not injected
MESHED = ("foo", "client")


def test_every_rule_is_registered_in_order_with_an_upstream_citation():
    rules = MESHES["istio"].flows.rules
    assert next(iter(rules)) == "istio.Sidecars"
    assert list(rules)[-1] == "istio.AuthorizationPolicies"
    for rule in rules.values():
        assert "istio.io" in rule.__doc__ or "istio/" in rule.__doc__ or ".go" in rule.__doc__


# ---- §1 PeerAuthentication (peer_authentication reference page, concepts/security)


def test_1a_1b_a_workload_policy_makes_one_app_strict_in_a_permissive_namespace():
    state_ = mesh(pa("default", "foo", "PERMISSIVE"),
                  pa("finance", "foo", "STRICT", {"app": "finance"}))
    refused = verdict(state_, PLAINTEXT, ("foo", "finance"))
    assert (refused.outcome, refused.by) == ("reset", "PeerAuthentication foo/finance")
    assert "PERMISSIVE exception for finance" in refused.fix
    assert verdict(state_, PLAINTEXT, ("foo", "other")).allowed


def test_1c_1d_1e_port_level_mtls_is_keyed_by_the_workload_port():
    state_ = mesh(pa("default", "foo", "STRICT"),
                  pa("finance-8080", "foo", "UNSET", {"app": "finance"}, {8080: "DISABLE"}))
    assert verdict(state_, PLAINTEXT, ("foo", "finance"), 8080).allowed
    assert verdict(state_, PLAINTEXT, ("foo", "finance"), 9090).outcome == "reset"
    service_port = mesh(pa("default", "foo", "STRICT"),
                        pa("finance-80", "foo", "UNSET", {"app": "finance"}, {80: "DISABLE"}))
    assert verdict(service_port, PLAINTEXT, ("foo", "finance"), 8080).outcome == "reset"


def test_1f_the_oldest_namespace_policy_wins():
    state_ = mesh(pa("newer", "foo", "PERMISSIVE", created="2024-02-01T00:00:00Z"),
                  pa("older", "foo", "STRICT", created="2024-01-01T00:00:00Z"))
    assert verdict(state_, PLAINTEXT, ("foo", "finance")).by == "PeerAuthentication foo/older"


def test_1g_a_selector_in_the_root_namespace_is_ignored():
    state_ = mesh(pa("default", "istio-system", "STRICT"),
                  pa("finance", "istio-system", "DISABLE", {"app": "finance"}))
    assert verdict(state_, PLAINTEXT, ("foo", "finance")).outcome == "reset"


# ---- §2 what the client sends (tls-configuration#auto-mtls, destination-rule reference)


def dr(name, namespace, host, mode=None, port_settings=None):
    policy = {}
    if mode:
        policy["tls"] = {"mode": mode}
    if port_settings:
        policy["portLevelSettings"] = port_settings
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"host": host, "trafficPolicy": policy}}


def test_2e_2f_an_uninjected_server_gets_plaintext_unless_a_rule_forces_istio_mtls():
    assert verdict(mesh(), MESHED, ("legacy", "curl")).allowed
    forced = verdict(mesh(dr("curl", "legacy", "curl", "ISTIO_MUTUAL")), MESHED,
                     ("legacy", "curl"))
    assert (forced.outcome, forced.by) == ("reset", "DestinationRule legacy/curl")


def test_d2_a_disable_rule_towards_a_strict_server_is_the_classic_503():
    state_ = mesh(pa("default", "foo", "STRICT"),
                  dr("finance", "foo", "finance.foo.svc.cluster.local", "DISABLE"))
    assert verdict(state_, MESHED, ("foo", "finance")).outcome == "reset"


def test_2a_a_rule_off_the_lookup_path_is_not_applied():
    state_ = mesh(pa("default", "foo", "STRICT"), {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": "ns1"}},
                  dr("finance", "ns1", "finance.foo.svc.cluster.local", "DISABLE"))
    assert verdict(state_, MESHED, ("foo", "finance")).allowed


def test_d3_port_level_settings_do_not_inherit_the_top_level_tls():
    state_ = mesh(pa("default", "foo", "STRICT"),
                  dr("finance", "foo", "finance", "DISABLE",
                     [{"port": {"number": 9080}, "connectionPool": {"tcp": {
                         "maxConnections": 10}}}]))
    assert verdict(state_, MESHED, ("foo", "finance"), 8080, service_port=9080).allowed
    assert verdict(state_, MESHED, ("foo", "finance"), 8080,
                   service_port=9081).outcome == "reset"


def test_2g_the_lookup_path_sees_export_to_and_the_client_s_workload_selector():
    other = {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "ns1", "labels": {"istio-injection": "enabled"}}}
    outsider = deployment("ns1", "caller")
    strict = pa("default", "foo", "STRICT")
    # the client's namespace first, then the service's (cross-namespace-configuration)
    own = dr("finance-plain", "ns1", "finance.foo.svc.cluster.local", "DISABLE")
    service_side = dr("finance", "foo", "finance.foo.svc.cluster.local", "ISTIO_MUTUAL")
    state_ = mesh(strict, other, outsider, own, service_side)
    refused = verdict(state_, ("ns1", "caller"), ("foo", "finance"))
    assert (refused.outcome, refused.by) == ("reset", "PeerAuthentication foo/default")
    assert "sends plaintext" in refused.reason and "has no sidecar" not in refused.reason
    assert verdict(mesh(strict, other, outsider, service_side), ("ns1", "caller"),
                   ("foo", "finance")).allowed
    # a rule the service's namespace keeps to itself (exportTo ".") is not seen from ns1
    private = dr("finance", "foo", "finance.foo.svc.cluster.local", "DISABLE")
    private["spec"]["exportTo"] = ["."]
    assert verdict(mesh(strict, other, outsider, private), ("ns1", "caller"),
                   ("foo", "finance")).allowed
    assert verdict(mesh(strict, private), MESHED, ("foo", "finance")).outcome == "reset"
    # a rule whose workloadSelector picks other clients leaves this one to auto mTLS
    selected = dr("finance", "foo", "finance.foo.svc.cluster.local", "DISABLE")
    selected["spec"]["workloadSelector"] = {"matchLabels": {"app": "other"}}
    assert verdict(mesh(strict, selected), MESHED, ("foo", "finance")).allowed
    assert verdict(mesh(strict, selected), ("foo", "other"),
                   ("foo", "finance")).outcome == "reset"


def test_2h_the_rule_of_the_host_itself_wins_over_an_older_wildcard():
    # MostSpecificHostMatch (pilot/pkg/model/config.go): the host's own rule, else the
    # longest wildcard, whatever their age
    def aged(rule, created):
        rule["metadata"]["creationTimestamp"] = created
        return rule
    strict = pa("default", "foo", "STRICT")
    wildcard = aged(dr("all-plain", "foo", "*.foo.svc.cluster.local", "DISABLE"),
                    "2024-01-01T00:00:00Z")
    own = aged(dr("finance", "foo", "finance.foo.svc.cluster.local", "ISTIO_MUTUAL"),
               "2024-02-01T00:00:00Z")
    assert verdict(mesh(strict, own, wildcard), MESHED, ("foo", "finance")).allowed
    refused = verdict(mesh(strict, own, wildcard), MESHED, ("foo", "other"))
    assert refused.outcome == "reset" and "(DestinationRule foo/all-plain)" in refused.reason
    wider = aged(dr("everything-plain", "foo", "*.svc.cluster.local", "DISABLE"),
                 "2024-01-01T00:00:00Z")
    narrower = aged(dr("foo-mtls", "foo", "*.foo.svc.cluster.local", "ISTIO_MUTUAL"),
                    "2024-02-01T00:00:00Z")
    assert verdict(mesh(strict, wider, narrower), MESHED, ("foo", "finance")).allowed


def ns1():
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "ns1", "labels": {"istio-injection": "enabled"}}}, deployment("ns1", "caller")]


def selecting(rule, app, created=None):
    rule["spec"]["workloadSelector"] = {"matchLabels": {"app": app}}
    if created:
        rule["metadata"]["creationTimestamp"] = created
    return rule


def subsets_only(name, created):
    """A rule of foo's finance with a subset and no traffic policy, made at ``created``."""
    rule = dr(name, "foo", "finance")
    del rule["spec"]["trafficPolicy"]
    rule["spec"]["subsets"] = [{"name": "v1", "labels": {"version": "v1"}}]
    rule["metadata"]["creationTimestamp"] = created
    return rule


def test_2i_the_lookup_ends_at_the_first_namespace_and_host_with_rules():
    # PushContext.destinationRule (pilot/pkg/model/push_context.go) returns one host's
    # rules from one namespace, and SidecarScope.DestinationRule (sidecar.go) picks among
    # them only: none for this client is no rule, and auto mTLS sends Istio mTLS
    strict = pa("default", "foo", "STRICT")
    plain = dr("finance", "foo", "finance.foo.svc.cluster.local", "DISABLE")
    for_others = selecting(dr("finance-x", "ns1", "finance.foo.svc.cluster.local",
                              "ISTIO_MUTUAL"), "someone-else")
    assert verdict(mesh(strict, *ns1(), plain), ("ns1", "caller"),
                   ("foo", "finance")).outcome == "reset"
    assert verdict(mesh(strict, *ns1(), plain, for_others), ("ns1", "caller"),
                   ("foo", "finance")).allowed  # ns1 has rules of the host: foo's not read
    # nor a wider host of the same namespace
    wildcard = dr("all-plain", "foo", "*.foo.svc.cluster.local", "DISABLE")
    own_for_others = selecting(dr("finance", "foo", "finance.foo.svc.cluster.local",
                                  "DISABLE"), "someone-else")
    assert verdict(mesh(strict, wildcard, own_for_others), MESHED, ("foo", "finance")).allowed
    assert verdict(mesh(strict, wildcard, own_for_others), MESHED,
                   ("foo", "other")).outcome == "reset"
    # the service's namespace: its most specific exported host, then whether the client
    # sees it (getExportedDestinationRuleFromNamespace); not seen, the root namespace next
    elsewhere = dr("finance", "foo", "finance.foo.svc.cluster.local", "ISTIO_MUTUAL")
    elsewhere["spec"]["exportTo"] = ["ns2"]
    assert verdict(mesh(strict, *ns1(), wildcard, elsewhere), ("ns1", "caller"),
                   ("foo", "finance")).allowed
    assert verdict(mesh(strict, *ns1(), wildcard), ("ns1", "caller"),
                   ("foo", "finance")).outcome == "reset"


def test_2j_a_rule_that_selects_the_client_in_its_namespace_wins_over_every_client_s():
    strict = pa("default", "foo", "STRICT")
    older = dr("finance-all", "foo", "finance", "DISABLE")
    older["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    mine = selecting(dr("finance-client", "foo", "finance", "ISTIO_MUTUAL"), "client",
                     "2024-02-01T00:00:00Z")
    assert verdict(mesh(strict, older, mine), MESHED, ("foo", "finance")).allowed
    refused = verdict(mesh(strict, older, mine), ("foo", "other"), ("foo", "finance"))
    assert refused.outcome == "reset" and "(DestinationRule foo/finance-all)" in refused.reason
    # a selector is honoured only in the client's own namespace (sidecar.go): foo's rule
    # for app caller is not ns1's caller's, and nothing else of the host is there
    theirs = selecting(dr("finance", "foo", "finance.foo.svc.cluster.local", "DISABLE"),
                       "caller")
    assert verdict(mesh(strict, *ns1(), theirs), ("ns1", "caller"), ("foo", "finance")).allowed


def test_2k_rules_of_one_host_merge_the_oldest_policy_first():
    # mergeDestinationRule (pilot/pkg/model/destination_rule.go): subsets are added up, and
    # the traffic policy is the first rule's, or the next one's where it has none
    strict = pa("default", "foo", "STRICT")
    subsets = subsets_only("finance-subsets", "2024-01-01T00:00:00Z")
    policy = dr("finance-tls", "foo", "finance", "DISABLE")
    policy["metadata"]["creationTimestamp"] = "2024-02-01T00:00:00Z"
    refused = verdict(mesh(strict, subsets, policy), MESHED, ("foo", "finance"))
    assert refused.outcome == "reset" and "(DestinationRule foo/finance-tls)" in refused.reason
    first = dr("finance-first", "foo", "finance", "ISTIO_MUTUAL")
    first["metadata"]["creationTimestamp"] = "2023-01-01T00:00:00Z"
    assert verdict(mesh(strict, subsets, policy, first), MESHED, ("foo", "finance")).allowed


def test_2l_a_selector_rule_s_policy_fills_an_older_rule_for_every_client_that_has_none():
    # mergeDestinationRule: an entry without a traffic policy takes the next rule's, even a
    # rule with a selector; that rule stands as an entry of its own too
    strict = pa("default", "foo", "STRICT")
    subsets = subsets_only("finance", "2024-01-01T00:00:00Z")
    others = selecting(dr("finance-other", "foo", "finance", "DISABLE"), "other",
                       "2024-02-01T00:00:00Z")
    refused = verdict(mesh(strict, subsets, others), MESHED, ("foo", "finance"))
    assert refused.outcome == "reset" and "(DestinationRule foo/finance-other)" in refused.reason
    # the other way round, the rule for every client keeps no policy: auto mTLS
    subsets["metadata"]["creationTimestamp"] = "2024-03-01T00:00:00Z"
    assert verdict(mesh(strict, subsets, others), MESHED, ("foo", "finance")).allowed
    assert verdict(mesh(strict, subsets, others), ("foo", "other"),
                   ("foo", "finance")).outcome == "reset"


def test_2m_rules_of_one_host_with_other_export_to_stay_apart_the_last_for_every_client():
    # ENABLE_ENHANCED_DESTINATIONRULE_MERGE (on since Istio 1.24): no merge across
    # different exportTo; SidecarScope.DestinationRule takes the last entry without a selector
    strict = pa("default", "foo", "STRICT")
    shared = dr("finance", "foo", "finance", "ISTIO_MUTUAL")
    shared["spec"]["exportTo"] = ["*"]
    shared["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    own = dr("finance-local", "foo", "finance", "DISABLE")
    own["spec"]["exportTo"] = ["."]
    own["metadata"]["creationTimestamp"] = "2024-02-01T00:00:00Z"
    refused = verdict(mesh(strict, shared, own), MESHED, ("foo", "finance"))
    assert refused.outcome == "reset" and "(DestinationRule foo/finance-local)" in refused.reason
    # from ns1 only the exported one is there
    assert verdict(mesh(strict, *ns1(), shared, own), ("ns1", "caller"), ("foo", "finance")).allowed


def test_2n_the_merge_keeps_the_entries_istiod_keeps():
    # the rules and entries of TestSetDestinationRuleWithWorkloadSelector in istio/istio's
    # pilot/pkg/model/push_context_test.go: same-selector rules merge, the rule for every
    # client merges into each and stands on its own, an entry per selector
    from ansible_collections.meshstage.mesh.plugins.module_utils.estate.objects import (
        make_resource,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.providers.istio.flows import (
        client_tls,
    )

    def rule(name, export_to, app=None):
        made = dr(name, "test", "httpbin.org", "SIMPLE")
        made["spec"]["exportTo"] = export_to
        return make_resource(selecting(made, app) if app else made)
    app1 = rule("nsRule1", ["test2", "."], "app1")
    app2 = rule("nsRule2", ["test2", "."], "app2")
    app3 = rule("nsRule3", ["test2", "."], "app2")
    every = rule("nsRule5", [".", "test2"])
    merged = client_tls._merged
    assert [e.rule.name for e in merged([app1, app2, app3, every])] == \
        ["nsRule1", "nsRule2", "nsRule5"]
    assert [e.rule.name for e in merged([app1, app2, app3])] == ["nsRule1", "nsRule2"]


# ---- §3 what the server takes (concepts/security#peer-authentication)


def test_3a_3b_3c_strict_refuses_plaintext_permissive_takes_it():
    assert verdict(mesh(pa("default", "foo", "STRICT")), PLAINTEXT,
                   ("foo", "finance")).outcome == "reset"
    assert verdict(mesh(pa("default", "foo", "PERMISSIVE")), PLAINTEXT,
                   ("foo", "finance")).allowed
    assert verdict(mesh(pa("default", "foo", "STRICT")), MESHED, ("legacy", "curl")).allowed


def test_3d_3e_istio_mtls_into_a_disable_workload_fails_auto_mtls_avoids_it():
    disabled = pa("finance", "foo", "DISABLE", {"app": "finance"})
    forced = mesh(disabled, dr("finance", "foo", "finance", "ISTIO_MUTUAL"))
    assert verdict(forced, MESHED, ("foo", "finance")).outcome == "reset"
    assert verdict(mesh(disabled), MESHED, ("foo", "finance")).allowed


# ---- §4 AuthorizationPolicy (authorization-policy reference page)


def ap(name, namespace, spec, annotations=None):
    meta = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": meta, "spec": spec}


def test_4a_4b_allow_nothing_then_an_allow_from_a_namespace():
    nothing = ap("allow-nothing", "foo", {})
    refused = verdict(mesh(nothing), MESHED, ("foo", "finance"))
    assert (refused.outcome, refused.by) == ("403", "AuthorizationPolicy foo/allow-nothing")
    from_foo = ap("from-foo", "foo", {"rules": [{"from": [{"source": {
        "namespaces": ["foo"]}}]}]})
    assert verdict(mesh(nothing, from_foo), MESHED, ("foo", "finance")).allowed


def test_4c_deny_comes_before_allow():
    state_ = mesh(ap("deny-all", "foo", {"action": "DENY", "rules": [{}]}),
                  ap("allow-all", "foo", {"rules": [{}]}))
    assert verdict(state_, MESHED, ("foo", "finance")).by == "AuthorizationPolicy foo/deny-all"


def test_4d_4e_a_root_namespace_selector_selects_in_every_namespace():
    docs = [ap("allow-nothing", "istio-system", {"selector": {"matchLabels": {
        "version": "v1"}}}), deployment("foo", "v1", {"app": "r", "version": "v1"}),
        deployment("foo", "v2", {"app": "r", "version": "v2"})]
    state_ = mesh(*docs)
    assert verdict(state_, MESHED, ("foo", "v1")).outcome == "403"
    assert verdict(state_, MESHED, ("foo", "v2")).allowed


def test_4k_a_refusal_names_the_first_deny_the_root_namespace_s_then_the_oldest():
    def deny(name, namespace, created, selector=None):
        policy = ap(name, namespace, {"action": "DENY", "rules": [{}], **(
            {"selector": {"matchLabels": selector}} if selector else {})})
        policy["metadata"]["creationTimestamp"] = created
        return policy
    newer = deny("newer", "foo", "2024-02-01T00:00:00Z", {"app": "finance"})
    older = deny("older", "foo", "2024-01-01T00:00:00Z")
    mesh_wide = deny("mesh-wide", "istio-system", "2024-03-01T00:00:00Z")
    assert verdict(mesh(newer, older), MESHED,
                   ("foo", "finance")).by == "AuthorizationPolicy foo/older"
    assert verdict(mesh(newer, older, mesh_wide), MESHED,
                   ("foo", "finance")).by == "AuthorizationPolicy istio-system/mesh-wide"


def gateway_state(*documents):
    web = deployment("ingress", "web-istio", {"gateway.networking.k8s.io/gateway-name": "web"})
    return mesh({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ingress"}},
                web, *documents)


def test_4f_4g_target_refs_attach_to_the_named_gateway_only():
    deny_post = ap("gw-deny-post", "ingress", {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                        "name": "web"}],
        "action": "DENY", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]})
    state_ = gateway_state(deny_post)
    post = Request("POST", "/")
    outside = peer(state_, "foo", "client")
    assert verdict(state_, outside, ("ingress", "web-istio"), kind="gateway",
                   request=post).outcome == "403"
    assert verdict(state_, outside, ("foo", "finance"), request=post).allowed


def test_4h_allow_nothing_in_the_gateways_namespace_refuses_at_the_gateway():
    state_ = gateway_state(ap("allow-nothing", "ingress", {}))
    refused = verdict(state_, MESHED, ("ingress", "web-istio"), kind="gateway")
    assert refused.outcome == "403"
    assert "selects the gateway's own proxy" in refused.fix


def test_4i_a_dry_run_policy_is_not_enforced():
    dry = ap("deny-path-headers", "foo", {
        "selector": {"matchLabels": {"app": "finance"}}, "action": "DENY",
        "rules": [{"to": [{"operation": {"paths": ["/headers"]}}]}]},
        {"istio.io/dry-run": "true"})
    assert verdict(mesh(dry), MESHED, ("foo", "finance"),
                   request=Request("GET", "/headers")).allowed


def test_4j_a_service_target_ref_is_for_waypoints_only():
    waypoint = ap("deny", "foo", {"targetRefs": [{"kind": "Service", "group": "",
                                                  "name": "finance"}],
                                  "action": "DENY", "rules": [{}]})
    assert verdict(mesh(waypoint), MESHED, ("foo", "finance")).allowed


# ---- §5 identity fields need mTLS (concepts/security#dependency-on-mutual-tls)


def test_5a_5b_deny_not_principals_star_refuses_plaintext_only():
    state_ = mesh(pa("default", "foo", "PERMISSIVE"), ap("require-mtls", "foo", {
        "action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}]}]}))
    assert verdict(state_, PLAINTEXT, ("foo", "finance")).outcome == "403"
    assert verdict(state_, MESHED, ("foo", "finance")).allowed


def test_5c_5d_principals_star_needs_an_identity_and_says_why():
    state_ = mesh(ap("authn-only", "foo", {
        "selector": {"matchLabels": {"app": "finance"}},
        "rules": [{"from": [{"source": {"principals": ["*"]}}]}]}))
    refused = verdict(state_, PLAINTEXT, ("foo", "finance"))
    assert refused.outcome == "403"
    assert "arrives without mTLS" in refused.fix and "curl has no sidecar" in refused.fix
    assert verdict(state_, MESHED, ("foo", "finance")).allowed


def test_5e_a_deny_by_namespace_is_bypassed_in_plaintext():
    state_ = mesh(pa("default", "foo", "PERMISSIVE"), ap("deny-legacy", "foo", {
        "action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["legacy"]}}]}]}))
    assert verdict(state_, PLAINTEXT, ("foo", "finance")).allowed


# ---- §6 HTTP-only fields on TCP (tasks/security/authorization/authz-tcp)


def test_6a_to_6f_http_fields_on_tcp():
    allow_get = ap("tcp-policy", "foo", {"selector": {"matchLabels": {"app": "finance"}},
                                         "rules": [{"to": [{"operation": {
                                             "methods": ["GET"], "ports": ["9000"]}}]}]})
    assert verdict(mesh(allow_get), MESHED, ("foo", "finance"), 9000,
                   protocol="tcp").outcome == "reset"
    deny_get = {"selector": {"matchLabels": {"app": "finance"}}, "action": "DENY",
                "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}
    assert verdict(mesh(ap("tcp-policy", "foo", deny_get)), MESHED, ("foo", "finance"),
                   9001, protocol="tcp").outcome == "reset"
    deny_get["rules"][0]["to"][0]["operation"]["ports"] = ["9000"]
    assert verdict(mesh(ap("tcp-policy", "foo", deny_get)), MESHED, ("foo", "finance"),
                   9001, protocol="tcp").allowed
    ports = ap("ports", "foo", {"rules": [{"to": [{"operation": {"ports": ["9000", "9001"]}}]}]})
    assert verdict(mesh(ports), MESHED, ("foo", "finance"), 9002,
                   protocol="tcp").outcome == "reset"


def test_an_allow_by_method_and_path_lets_some_requests_through():
    state_ = mesh(ap("allow", "foo", {"selector": {"matchLabels": {"app": "finance"}},
                                      "rules": [{"to": [{"operation": {
                                          "methods": ["GET"], "paths": ["/api/*"]}}]}]}))
    partly = verdict(state_, MESHED, ("foo", "finance"))
    assert partly.allowed and partly.partial == "GET /api/x"


def test_an_operations_hosts_are_the_called_service_s_names_in_any_case():
    # ``hosts`` and ``notHosts`` match the request's Host, case-insensitively (the
    # authorization-policy reference page, Operation): the service's names as a client
    # writes them (FQDN, short, with the port)
    by_host = ap("by-host", "foo", {"rules": [{"to": [{"operation": {
        "hosts": ["FINANCE.foo.svc.cluster.local"]}}]}]})
    assert verdict(mesh(by_host), MESHED, ("foo", "finance")).allowed
    assert verdict(mesh(by_host), MESHED, ("foo", "other")).outcome == "403"
    deny_others = ap("deny-others", "foo", {"action": "DENY", "rules": [{"to": [{
        "operation": {"notHosts": ["finance*"]}}]}]})
    assert verdict(mesh(deny_others), MESHED, ("foo", "finance")).allowed
    refused = verdict(mesh(deny_others), MESHED, ("foo", "other"))
    assert (refused.outcome, refused.by) == ("403", "AuthorizationPolicy foo/deny-others")


# ---- §7 kubelet probes (ops/configuration/mesh/app-health-check)


def probed(annotations=None, probe=None):
    docs = [pa("default", "foo", "STRICT"),
            deployment("foo", "health", annotations=annotations, probes={
                "livenessProbe": probe or {"httpGet": {"path": "/foo", "port": 8001}}},
                ports=(8001,))]
    return mesh(*docs)


def probe(state_, protocol="http"):
    return judge(flow(state_, KUBELET, ("foo", "health"), 8001, protocol,
                      Request("GET", "/foo") if protocol == "http" else None, "probe"),
                 state_)


OFF = {"sidecar.istio.io/rewriteAppHTTPProbers": "false"}


def test_7a_7b_a_rewritten_probe_passes_strict_one_not_rewritten_does_not():
    assert probe(probed()).allowed
    assert probe(probed(OFF)).outcome == "reset"


def test_7c_7d_without_rewriting_allow_nothing_refuses_tcp_probes_always_pass():
    state_ = probed(OFF)
    state_ = mesh(pa("default", "foo", "PERMISSIVE"), ap("allow-nothing", "foo", {}),
                  *[r.obj for r in state_.index.resources if r.kind == "Deployment"
                    and r.name == "health"])
    assert probe(state_).outcome == "403"
    assert probe(probed(OFF, {"tcpSocket": {"port": 8001}}), "tcp").allowed


# ---- §9 which routes shape the flow (virtual-service reference)


def vs(gateways=None):
    spec = {"hosts": ["finance"], "http": [{"route": [
        {"destination": {"host": "finance", "subset": "v1"}, "weight": 90},
        {"destination": {"host": "finance", "subset": "v2"}, "weight": 10}]}]}
    if gateways:
        spec["gateways"] = gateways
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "finance", "namespace": "foo"}, "spec": spec}


def test_9a_9b_9c_a_mesh_route_does_not_shape_gateway_requests_and_back():
    state_ = gateway_state(vs())
    through = verdict(state_, peer(state_, "ingress", "web-istio", gateway=True),
                      ("foo", "finance"), origin="ingress")
    assert through.allowed and "for sidecars only" in through.routing
    assert not verdict(state_, MESHED, ("foo", "finance")).routing
    bound = gateway_state(vs(["web"]))
    assert "gateways only" in verdict(bound, MESHED, ("foo", "finance")).routing
    both = gateway_state(vs(["mesh", "web"]))
    assert not verdict(both, peer(both, "ingress", "web-istio", gateway=True),
                       ("foo", "finance"), origin="ingress").routing


# ---- §13 Sidecar egress (sidecar reference, OutboundTrafficPolicy)


def sidecar(mode=None):
    spec = {"egress": [{"hosts": ["./*", "istio-system/*"]}]}
    if mode:
        spec["outboundTrafficPolicy"] = {"mode": mode}
    return {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
            "metadata": {"name": "default", "namespace": "shop"}, "spec": spec}


def shop(*documents):
    return mesh({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "shop", "labels": {"istio-injection": "enabled"}}},
        deployment("shop", "web"), *documents)


def test_13a_13b_13c_a_host_the_sidecar_does_not_import_goes_plaintext_or_nowhere():
    strict = shop(sidecar(), pa("default", "foo", "STRICT"))
    assert verdict(strict, ("shop", "web"), ("foo", "finance")).outcome == "reset"
    by_principal = shop(sidecar(), ap("allow", "foo", {"rules": [{"from": [{"source": {
        "principals": ["cluster.local/ns/shop/sa/web"]}}]}]}))
    assert verdict(by_principal, ("shop", "web"), ("foo", "finance")).outcome == "403"
    registry_only = shop(sidecar("REGISTRY_ONLY"))
    dropped = verdict(registry_only, ("shop", "web"), ("foo", "finance"))
    assert (dropped.outcome, dropped.by) == ("reset", "Sidecar shop/default")


def test_13d_a_client_s_sidecar_its_own_then_the_namespace_s_then_the_root_s():
    # the Sidecar whose workloadSelector selects the workload, else its namespace's
    # selector-less one, else the root namespace's (sidecar reference, Sidecar)
    def named(name, namespace, mode, selector=None, hosts=("./*",)):
        spec = {"egress": [{"hosts": list(hosts)}], "outboundTrafficPolicy": {"mode": mode}}
        if selector:
            spec["workloadSelector"] = {"labels": selector}
        return {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    root = named("default", "istio-system", "REGISTRY_ONLY")
    dropped = verdict(shop(root), ("shop", "web"), ("foo", "finance"))
    assert (dropped.outcome, dropped.by) == ("reset", "Sidecar istio-system/default")
    own = named("web", "shop", "REGISTRY_ONLY", {"app": "web"}, ("foo/*",))
    assert verdict(shop(root, own), ("shop", "web"), ("foo", "finance")).allowed
    other = named("other", "shop", "ALLOW_ANY", {"app": "other"})
    namespace_wide = named("default", "shop", "ALLOW_ANY")
    assert verdict(shop(root, other, namespace_wide), ("shop", "web"),
                   ("foo", "finance")).allowed
    assert verdict(shop(root, other), ("shop", "web"),
                   ("foo", "finance")).by == "Sidecar istio-system/default"
