"""The host plan: which files each injected host gets, and how each stage shapes them.

Also the hosts in the intent (``mesh_hosts``: every error pinned) and what the cluster
planner is left with (no workload policies for services that hosts carry)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentErrors
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.plan.stage_plan import (
    cluster_intent,
    plan_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.envoy_hosts.plan import (
    host_files,
    plan_envoy,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.envoy_hosts.validate import (
    check_rendered,
    find_envoy,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import Renderer
from ansible_collections.meshstage.mesh.plugins.module_utils.render.tree import (
    render_host_files as render,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.stages import STAGE_NAMES, Stage

ESTATE: dict[str, Any] = {
    "mesh_environment": "dev",
    "mesh_stage": "authorization",
    "mesh_trust_domain": "corp.test",
    "mesh_injection_waves": [{"name": "payments", "namespaces": ["payments"]},
                             {"name": "shop", "namespaces": ["shop"]},
                             {"name": "web", "namespaces": ["web"]}],
    "mesh_services": [
        {"name": "payment-service", "namespace": "payments", "ports": [{"port": 8080}],
         "versions": ["v1"]},
        {"name": "order-service", "namespace": "payments", "ports": [{"port": 8080}],
         "calls": ["payment-service", "reviews", "web"]},
        {"name": "reviews", "namespace": "shop", "ports": [{"port": 9080}],
         "versions": ["v1", "v2"], "canary": {"subset": "v2", "weight": 10},
         "traffic": {"header_routes": [{"headers": {"end-user": {"exact": "test-user"}},
                                        "subset": "v2"}],
                     "timeout": "1s",
                     "retries": {"attempts": 3, "per_try_timeout": "250ms",
                                 "retry_on": "5xx,reset"},
                     "connection_pool": {"max_connections": 10, "max_retries": 3},
                     "outlier_detection": {"consecutive_5xx_errors": 5, "interval": "1m30s"}}},
        {"name": "web", "namespace": "web", "ports": [{"port": 80}], "calls": ["reviews"]},
    ],
    "mesh_authorization": [{
        "service": "payment-service",
        "allow": [{"from": ["order-service"], "methods": ["POST", "GET"],
                   "paths": ["/api/v1/*"]}],
        "deny": [{"namespaces": ["shop"], "paths": ["/admin"]}],
        "deny_other_callers": True}],
    "mesh_hosts": {
        "pay-1": {"environment": "dev", "service": "payment-service", "address": "10.0.0.1",
                  "app_port": 18080},
        "order-1": {"environment": "dev", "service": "order-service", "address": "10.0.0.2",
                    "app_port": 18080},
        "rev-1": {"environment": "dev", "service": "reviews", "address": "10.0.0.3",
                  "app_port": 19080},
        "rev-2": {"environment": "dev", "service": "reviews", "address": "10.0.0.4",
                  "app_port": 19080, "version": "v2", "root": "/srv/sim/rev-2"},
        "staging-pay-1": {"environment": "staging", "service": "nonsense"},
    },
}


def intent(stage: str = "authorization", **changes: Any):
    variables = copy.deepcopy(ESTATE)
    variables["mesh_stage"] = stage
    variables.update(changes)
    return parse_intent(variables)


def files_of(host: str, stage: str = "authorization", **changes: Any) -> dict[str, Any]:
    parsed, _ = intent(stage, **changes)
    (one,) = [h for h in parsed.hosts if h.name == host]
    renderer = Renderer()
    return {name: renderer.render_object(template, context)
            for name, (template, context) in host_files(parsed, one).items()}


def listener(files: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [r for r in files["lds.yaml"]["resources"] if r["name"] == name]
    return found


def chains(files: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in listener(files, "inbound")["filter_chains"]}


def hcm(chain: dict[str, Any]) -> dict[str, Any]:
    return chain["filters"][0]["typed_config"]


# --------------------------------------------------------------------------- the intent


def test_hosts_of_other_environments_are_left_to_them():
    parsed, _ = intent()
    assert [h.name for h in parsed.hosts] == ["order-1", "pay-1", "rev-1", "rev-2"]
    assert parsed.host_services == {"payment-service", "order-service", "reviews"}
    rev2 = parsed.hosts[3]
    assert (rev2.version, rev2.wave, rev2.inbound_port, rev2.admin_port) == ("v2", "shop",
                                                                             9080, 15000)
    assert rev2.config_dir == "/srv/sim/rev-2/etc/meshstage/envoy"
    assert parsed.hosts[1].config_dir == "/etc/meshstage/envoy"


def bad_host(**fields: Any) -> dict[str, Any]:
    host = {"environment": "dev", "service": "payment-service", "address": "10.0.0.9",
            "app_port": 18080, **fields}
    return {"mesh_hosts": {**ESTATE["mesh_hosts"], "bad": host}}


@pytest.mark.parametrize(("changes", "message"), [
    (bad_host(service="payments"),
     "mesh_hosts.bad.service: 'payments' is not a service in mesh_services (did you mean "
     "'payment-service'?)"),
    (bad_host(address="pay.example"), "mesh_hosts.bad.address: 'pay.example' is not an IP "
     "address"),
    (bad_host(app_port=0), "mesh_hosts.bad.app_port: 0 is under 1"),
    (bad_host(version="v9"), "mesh_hosts.bad.version: 'v9' is not among the service's "
     "versions (v1)"),
    (bad_host(wave="later"), "mesh_hosts.bad.wave: 'later' is not an injection wave (waves: "
     "payments, shop, web)"),
    (bad_host(admin_port=8080), "mesh_hosts.bad.admin_port: 8080 is the same port as "
     "inbound_port"),
    (bad_host(root="relative/dir"), "mesh_hosts.bad.root: 'relative/dir' is not an absolute "
     "path without spaces"),
    (bad_host(app_prot=1), "mesh_hosts.bad.app_prot: 1 is not a known key here; known: address, "
     "admin_port, app_address, app_port, environment, inbound_port, outbound_port, root, "
     "service, stats_port, version, wave (did you mean 'app_port'?)"),
    (bad_host(address="10.0.0.1"), "mesh_hosts.pay-1.inbound_port: 8080 on 10.0.0.1 is host "
     "'bad''s inbound port too"),
    ({"mesh_hosts": {"bad": {"environment": "dev", "service": "payment-service"}}},
     "mesh_hosts.bad.address: None is required"),
    ({"mesh_hosts": {"bad": None}},
     "mesh_hosts.bad: None is not a mapping (the host's mesh_host variable)"),
    ({"mesh_hosts": ["pay-1"]},
     "mesh_hosts: list ['pay-1'] is not a mapping of host name to its mesh_host"),
])
def test_host_errors_name_the_field_and_value(changes, message):
    with pytest.raises(IntentErrors) as raised:
        intent(**changes)
    assert message in [str(e) for e in raised.value.errors]


def test_a_host_cannot_carry_an_opted_out_service():
    services = copy.deepcopy(ESTATE["mesh_services"])
    services[0]["inject"] = False
    with pytest.raises(IntentErrors, match=r"mesh_hosts\.pay-1\.service: 'payment-service' has "
                       r"inject: false; a host that carries it gets a sidecar"):
        intent(mesh_services=services)


def test_calls_between_cluster_and_hosts_are_warned_about():
    _, warnings = intent()
    assert ("mesh_services[1] (order-service).calls[2]: 'web' is a Kubernetes service "
            "called from host "
            "service 'order-service': the host sidecar has no route to it, so the call is "
            "not meshed (no mTLS, no routing); call it through the cluster's ingress") \
        in warnings
    assert any(w.startswith("mesh_services[3] (web).calls[0]: 'reviews' runs on hosts and "
                            "is called from Kubernetes service 'web': the call is not meshed")
               for w in warnings)


def test_a_host_whose_namespace_is_in_no_wave_is_warned_about():
    waves = [{"name": "payments", "namespaces": ["payments"]},
             {"name": "web", "namespaces": ["web"]}]
    parsed, warnings = intent(mesh_injection_waves=waves)
    assert "mesh_hosts.rev-1.wave: None is not set and no injection wave holds namespace " \
        "'shop': host rev-1 never gets its sidecar" in warnings
    assert "rev-1" not in [h.name for h in parsed.injected_hosts()]


# --------------------------------------------------------------------------- the planners


def test_cluster_planner_renders_no_workload_policy_for_host_services():
    parsed, _ = intent()
    cluster = cluster_intent(parsed)
    assert [s.name for s in cluster.services] == ["web"]
    assert cluster.services[0].calls == ()
    assert cluster.authorization == ()
    assert cluster.injected_namespaces() == ("web",)
    plan = plan_stage(parsed)
    names = {(o.kind, o.namespace, o.name) for o in plan.objects}
    assert not {n for n in names if n[2] in parsed.host_services}
    assert ("Namespace", None, "payments") not in names  # no cluster workload there
    assert ("AuthorizationPolicy", "web", "allow-nothing") in names
    assert "hosts/dev/pay-1/lds.yaml" in plan.host_files


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_every_injected_host_gets_five_files_from_injection_on(stage):
    parsed, _ = intent(stage)
    contributions = plan_envoy(parsed)
    files = {p for c in contributions.values() for p in c.host_files}
    if Stage(stage).reached(Stage.INJECTION):
        assert {p.split("/")[2] for p in files if p.count("/") == 3} == \
            {"pay-1", "order-1", "rev-1", "rev-2"}
        assert len([p for p in files if p.count("/") == 3]) == 4 * 5
    else:
        assert files == set()
    assert ("hosts/dev/prometheus-scrape-configs.yaml" in files) == \
        Stage(stage).reached(Stage.OBSERVABILITY)


def test_hosts_of_a_pending_wave_get_no_sidecar():
    parsed, _ = intent("traffic", mesh_injected_waves=1)
    assert [h.name for h in parsed.injected_hosts()] == ["order-1", "pay-1"]
    notes = [n for c in plan_envoy(parsed).values() for n in c.notes]
    assert any("2 of 4 hosts injected; still to come: rev-1, rev-2." in n for n in notes)


def test_bootstrap_admin_on_loopback_and_file_based_xds():
    bootstrap = files_of("rev-2")["bootstrap.yaml"]
    assert bootstrap["admin"]["address"]["socket_address"] == {"address": "127.0.0.1",
                                                               "port_value": 15000}
    assert bootstrap["dynamic_resources"]["lds_config"]["path_config_source"]["path"] == \
        "/srv/sim/rev-2/etc/meshstage/envoy/lds.yaml"
    assert bootstrap["node"]["metadata"]["identity"] == "spiffe://corp.test/ns/shop/sa/reviews"
    # histograms (the canary analysis' p99) reach the stats endpoint at each flush
    assert bootstrap["stats_flush_interval"] == "1s"


def test_permissive_listener_accepts_mtls_and_plaintext():
    inbound = chains(files_of("pay-1", "injection"))
    assert set(inbound) == {"inbound_mtls", "inbound_plaintext"}
    assert inbound["inbound_mtls"]["filter_chain_match"] == {"transport_protocol": "tls"}
    assert inbound["inbound_plaintext"]["filter_chain_match"] == \
        {"transport_protocol": "raw_buffer"}
    tls = inbound["inbound_mtls"]["transport_socket"]["typed_config"]
    assert tls["require_client_certificate"] is False
    assert listener(files_of("pay-1", "injection"), "inbound")["listener_filters"][0]["name"] \
        == "envoy.filters.listener.tls_inspector"


def test_strict_requires_client_certificates_and_drops_plaintext():
    inbound = chains(files_of("pay-1", "strict_mtls"))
    assert set(inbound) == {"inbound_mtls"}
    tls = inbound["inbound_mtls"]["transport_socket"]["typed_config"]
    assert tls["require_client_certificate"] is True
    context = tls["common_tls_context"]
    assert context["combined_validation_context"]["default_validation_context"] == {
        "match_typed_subject_alt_names": [{"san_type": "URI",
                                           "matcher": {"prefix": "spiffe://corp.test/"}}]}


def test_strict_runs_authorization_in_shadow_then_enforces_it():
    shadow = hcm(chains(files_of("pay-1", "strict_mtls"))["inbound_mtls"])["http_filters"]
    assert [f["typed_config"].get("shadow_rules_stat_prefix") for f in shadow[:2]] == \
        ["authz_dry_run_deny_", "authz_dry_run_allow_"]
    assert all("rules" not in f["typed_config"] for f in shadow[:2])
    enforced = hcm(chains(files_of("pay-1"))["inbound_mtls"])["http_filters"]
    assert [f["typed_config"]["rules"]["action"] for f in enforced[:2]] == ["DENY", "ALLOW"]


def test_seed_style_policy_becomes_rbac_on_principals_methods_and_paths():
    filters = hcm(chains(files_of("pay-1"))["inbound_mtls"])["http_filters"]
    deny, allow = (f["typed_config"]["rules"]["policies"] for f in filters[:2])
    assert deny["deny-other-callers"]["principals"] == [{"not_id": {"or_ids": {"ids": [
        {"authenticated": {"principal_name": {
            "exact": "spiffe://corp.test/ns/payments/sa/order-service"}}}]}}}]
    assert deny["deny-0"]["principals"] == [{"authenticated": {"principal_name": {
        "prefix": "spiffe://corp.test/ns/shop/sa/"}}}]
    assert deny["deny-0"]["permissions"] == [{"or_rules": {"rules": [
        {"url_path": {"path": {"exact": "/admin"}}}]}}]
    assert allow["allow-0"]["permissions"] == [{"and_rules": {"rules": [
        {"or_rules": {"rules": [
            {"header": {"name": ":method", "string_match": {"exact": "POST"}}},
            {"header": {"name": ":method", "string_match": {"exact": "GET"}}}]}},
        {"or_rules": {"rules": [{"url_path": {"path": {"prefix": "/api/v1/"}}}]}}]}}]


def test_a_rule_with_principals_and_namespaces_needs_both_as_in_istio():
    authorization = [{"service": "payment-service",
                      "allow": [{"from": ["order-service", "web"], "namespaces": ["payments"]},
                                {"principals": ["corp.test/ns/ops/sa/admin"]}]}]
    files = files_of("pay-1", mesh_authorization=authorization)
    filters = hcm(chains(files)["inbound_mtls"])["http_filters"]
    allow = filters[0]["typed_config"]["rules"]["policies"]
    assert allow["allow-0"]["principals"] == [{"and_ids": {"ids": [
        {"or_ids": {"ids": [
            {"authenticated": {"principal_name": {
                "exact": "spiffe://corp.test/ns/payments/sa/order-service"}}},
            {"authenticated": {"principal_name": {"exact": "spiffe://corp.test/ns/web/sa/web"}}},
        ]}},
        {"authenticated": {"principal_name": {"prefix": "spiffe://corp.test/ns/payments/sa/"}}},
    ]}}]
    assert allow["allow-1"]["principals"] == [{"authenticated": {"principal_name": {
        "exact": "spiffe://corp.test/ns/ops/sa/admin"}}}]
    # and the real Envoy takes it
    parsed, _ = intent(mesh_authorization=authorization)
    (host,) = [h for h in parsed.hosts if h.name == "pay-1"]
    check_rendered("dev/pay-1", host.config_dir, host.log_dir, files, find_envoy(None))


@pytest.mark.parametrize(("ports", "kept"), [
    pytest.param([8080], True, id="the-served-port-keeps-the-rule"),
    pytest.param([8443], False, id="another-port-matches-nothing-on-the-host"),
])
def test_a_rule_limited_to_ports_applies_on_the_port_the_host_serves_only(ports, kept):
    services = copy.deepcopy(ESTATE["mesh_services"])
    services[0]["ports"] = [{"port": 8080}, {"port": 8443, "protocol": "HTTPS"}]
    authorization = [{"service": "payment-service",
                      "allow": [{"from": ["order-service"], "ports": ports}],
                      "deny": [{"namespaces": ["shop"], "ports": ports}]}]
    filters = hcm(chains(files_of("pay-1", mesh_authorization=authorization,
                                  mesh_services=services))["inbound_mtls"])["http_filters"]
    rbac = [f["typed_config"]["rules"] for f in filters
            if f["name"] == "envoy.filters.http.rbac"]
    if kept:
        assert [(r["action"], sorted(r["policies"])) for r in rbac] == [
            ("DENY", ["deny-0"]), ("ALLOW", ["allow-0"])]
    else:
        # the ALLOW policy stays and matches nothing: as Istio's, it denies every request
        assert rbac == [{"action": "ALLOW", "policies": {}}]


def test_derived_allow_and_default_deny():
    rbac = hcm(chains(files_of("rev-1"))["inbound_mtls"])["http_filters"][0]["typed_config"]
    assert rbac["rules"]["policies"]["allow-callers"]["principals"] == [
        {"authenticated": {"principal_name": {"exact": f"spiffe://corp.test/ns/{ns}/sa/{sa}"}}}
        for ns, sa in (("payments", "order-service"), ("web", "web"))]
    # nobody calls order-service: under default deny its ALLOW filter has no policy at all
    order = hcm(chains(files_of("order-1"))["inbound_mtls"])["http_filters"][0]
    assert order["typed_config"]["rules"] == {"action": "ALLOW", "policies": {}}


def test_traffic_routes_per_version_with_timeout_retries_breakers_and_outliers():
    files = files_of("order-1", "traffic")
    (reviews,) = [v for v in hcm(listener(files, "outbound")["filter_chains"][0])
                  ["route_config"]["virtual_hosts"] if v["name"] == "reviews"]
    header, default = reviews["routes"]
    assert header["match"]["headers"] == [{"name": "end-user",
                                           "string_match": {"exact": "test-user"}}]
    assert header["route"]["cluster"] == "outbound_reviews_v2"
    assert default["route"]["weighted_clusters"]["clusters"] == [
        {"name": "outbound_reviews_v1", "weight": 90},
        {"name": "outbound_reviews_v2", "weight": 10}]
    assert default["route"]["timeout"] == "1s"
    assert default["route"]["retry_policy"] == {
        "num_retries": 3, "per_try_timeout": "0.25s",
        "retry_on": "5xx,reset,reset-before-request"}
    clusters = {c["name"]: c for c in files["cds.yaml"]["resources"]}
    v2 = clusters["outbound_reviews_v2"]
    assert [e["endpoint"]["address"]["socket_address"] for e in
            v2["load_assignment"]["endpoints"][0]["lb_endpoints"]] == [
        {"address": "10.0.0.4", "port_value": 9080}]
    assert v2["circuit_breakers"] == {"thresholds": [{"max_connections": 10,
                                                      "max_retries": 3}]}
    assert v2["outlier_detection"] == {"consecutive_5xx": 5, "interval": "90s"}
    tls = v2["transport_socket_matches"][0]["transport_socket"]["typed_config"]
    assert tls["common_tls_context"]["combined_validation_context"][
        "default_validation_context"]["match_typed_subject_alt_names"][0]["matcher"] == \
        {"exact": "spiffe://corp.test/ns/shop/sa/reviews"}


def test_before_traffic_one_cluster_per_service_and_safe_retries():
    files = files_of("order-1", "observability")
    names = sorted(c["name"] for c in files["cds.yaml"]["resources"])
    assert names == ["inbound_app", "outbound_payment-service", "outbound_reviews",
                     "prometheus_admin"]
    route = hcm(listener(files, "outbound")["filter_chains"][0])["route_config"][
        "virtual_hosts"][1]["routes"][0]["route"]
    assert route["retry_policy"] == {
        "num_retries": 2, "retry_on": "connect-failure,refused-stream,reset-before-request"}


def test_observability_access_logs_request_ids_and_a_stats_listener():
    files = files_of("pay-1", "observability")
    manager = hcm(chains(files)["inbound_mtls"])
    assert manager["preserve_external_request_id"] is True
    assert manager["access_log"][0]["typed_config"]["path"] == \
        "/var/log/meshstage/envoy/access.log"
    stats = listener(files, "prometheus_stats")
    assert stats["address"]["socket_address"] == {"address": "10.0.0.1", "port_value": 15090}
    assert hcm(stats["filter_chains"][0])["route_config"]["virtual_hosts"][0]["routes"] == [
        {"match": {"path": "/stats/prometheus"}, "route": {"cluster": "prometheus_admin"}}]
    assert "access_log" not in hcm(chains(files_of("pay-1", "injection"))["inbound_mtls"])


def test_mtls_exception_keeps_plaintext_on_a_host():
    exceptions = [{"service": "payment-service", "mode": "PERMISSIVE", "reason": "legacy"}]
    assert set(chains(files_of("pay-1", "strict_mtls", mesh_mtls_exceptions=exceptions))) \
        == {"inbound_mtls", "inbound_plaintext"}
    exceptions[0]["mode"] = "DISABLE"
    assert set(chains(files_of("pay-1", "strict_mtls", mesh_mtls_exceptions=exceptions))) \
        == {"inbound_plaintext"}


def test_scrape_configs_name_every_injected_host():
    parsed, _ = intent("observability")
    plan = plan_stage(parsed)
    rendered = render(plan, Renderer())
    import yaml

    jobs = yaml.safe_load(rendered["hosts/dev/prometheus-scrape-configs.yaml"])
    (job,) = jobs["scrape_configs"]
    assert job["job_name"] == "meshstage-hosts-dev"
    assert [c["targets"] for c in job["static_configs"]] == [
        ["10.0.0.2:15090"], ["10.0.0.1:15090"], ["10.0.0.3:15090"], ["10.0.0.4:15090"]]
    assert job["static_configs"][3]["labels"]["mesh_version"] == "v2"
