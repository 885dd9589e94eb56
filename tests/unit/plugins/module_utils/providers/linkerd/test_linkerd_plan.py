"""The Linkerd plan, rendered: each stage, current API versions, and the gaps it reports.

Reference equivalence with upstream's Linkerd examples is in test_linkerd_reference.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from plan_helpers import find, kinds, render, with_service

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import RenderedStage
from ansible_collections.meshstage.mesh.plugins.module_utils.render.control_plane import (
    SCHEMA_OPTIONAL,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry

ID = "{}.{}.serviceaccount.identity.linkerd.{}"
VALUES = "00-install/values/linkerd-control-plane.yaml"


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


@pytest.fixture
def linkerd(example_intent):
    """``linkerd("dev", mesh_stage=...)``: an example inventory rendered for Linkerd."""

    def make(environment: str, **overrides: Any) -> dict[str, Any]:
        return example_intent(environment, mesh_provider="linkerd", **overrides)

    return make


def path_of(stage: RenderedStage, kind: str, name: str) -> str:
    (path,) = [o.path for o in stage.objects if o.obj["kind"] == kind
               and o.obj["metadata"]["name"] == name]
    return path


def owner_of(stage: RenderedStage, kind: str, name: str) -> str:
    """The stage that gave the object its current shape (its file stays where it was made)."""
    (owner,) = [o.planned.stage.value for o in stage.objects if o.obj["kind"] == kind
                and o.obj["metadata"]["name"] == name]
    return owner


def names(stage: RenderedStage, kind: str) -> list[str]:
    return sorted(o.obj["metadata"]["name"] for o in stage.objects if o.obj["kind"] == kind)


def values(stage: RenderedStage, environment: str = "dev") -> dict[str, Any]:
    return yaml.safe_load(stage.files[f"envs/{environment}/{VALUES}"])


def warnings_about(stage: RenderedStage, text: str) -> list[str]:
    return [w for w in stage.warnings if text in w]


# --------------------------------------------------------------------------- every stage

STAGE_KINDS = [
    ("permissive_mtls", {"Namespace"}),
    ("injection", {"Namespace"}),
    ("observability", {"Namespace", "ConfigMap"}),
    ("traffic", {"Namespace", "ConfigMap", "HTTPRoute", "Service"}),
    # the Server that keeps payment-policy's webhook port open to the API server
    ("strict_mtls", {"Namespace", "ConfigMap", "HTTPRoute", "Service", "Server"}),
    ("authorization", {"Namespace", "ConfigMap", "HTTPRoute", "Service", "Server",
                       "AuthorizationPolicy", "MeshTLSAuthentication",
                       "NetworkAuthentication"}),
]


@pytest.mark.parametrize(("stage", "expected"), STAGE_KINDS, ids=[s for s, _ in STAGE_KINDS])
def test_stages_are_cumulative(registry, linkerd, stage, expected):
    assert kinds(render(linkerd("dev", mesh_stage=stage), registry)) == expected


@pytest.fixture(scope="module")
def undeprecated(crd_dir: Path) -> dict[tuple[str, str, str], bool]:
    """(group, version, kind) -> served and not deprecated, from the reference CRDs."""
    served: dict[tuple[str, str, str], bool] = {}
    for path in crd_dir.rglob("*.yaml"):
        for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                for version in doc["spec"]["versions"]:
                    key = (doc["spec"]["group"], version["name"], doc["spec"]["names"]["kind"])
                    served[key] = version["served"] and not version.get("deprecated", False)
    return served


@pytest.mark.parametrize("stage", [s for s, _ in STAGE_KINDS])
def test_api_versions_are_stored_or_served_without_deprecation(registry, linkerd, undeprecated,
                                                               stage):
    """Every custom resource at a version its CRD serves, and does not deprecate."""
    served = undeprecated
    rendered = render(linkerd("dev", mesh_stage=stage, mesh_traffic_api="smi"
                              if stage == "traffic" else None), registry)
    for item in rendered.objects:
        group, _, version = item.obj["apiVersion"].rpartition("/")
        if (item.obj["apiVersion"], item.obj["kind"]) in SCHEMA_OPTIONAL:
            continue  # Flux's HelmRelease: no reference CRD to judge its version by
        if group:
            assert served[(group, version, item.obj["kind"])], item.path


def test_rendering_is_deterministic(registry, linkerd):
    assert render(linkerd("dev"), registry).files == render(linkerd("dev"), registry).files


def test_objects_carry_ownership_labels(registry, linkerd):
    for item in render(linkerd("dev"), registry).objects:
        if item.obj["kind"] == "Namespace":
            continue  # namespaces are not meshstage's: only their annotations are
        labels = item.obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "meshstage", item.path


# --------------------------------------------------------------------------- 1 permissive


def test_permissive_is_the_all_unauthenticated_default(registry, linkerd):
    rendered = render(linkerd("prod", mesh_stage="permissive_mtls"), registry)
    for namespace in ("bookinfo", "payments"):
        annotations = find(rendered, "Namespace", namespace)["metadata"]["annotations"]
        assert annotations["config.linkerd.io/default-inbound-policy"] == "all-unauthenticated"
        assert annotations["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
        assert "linkerd.io/inject" not in annotations
    assert path_of(rendered, "Namespace", "payments") == \
        "envs/prod/01-permissive-mtls/01-cluster/namespace.cluster.payments.yaml"
    assert values(rendered, "prod")["proxy"]["defaultInboundPolicy"] == "all-unauthenticated"


def test_control_plane_values_carry_trust_domain_and_probe_networks(registry, linkerd):
    rendered = render(linkerd("prod", mesh_trust_domain="corp.example",
                              mesh_linkerd={"probe_networks": ["10.0.0.0/8"]}), registry)
    found = values(rendered, "prod")
    assert found["identityTrustDomain"] == "corp.example"
    assert found["clusterDomain"] == "cluster.local"
    assert found["policyController"]["probeNetworks"] == ["10.0.0.0/8"]


# --------------------------------------------------------------------------- 2 injection


def test_injection_annotates_only_the_injected_waves(registry, linkerd):
    rendered = render(linkerd("prod"), registry)  # prod: 1 of 2 waves
    bookinfo = find(rendered, "Namespace", "bookinfo")["metadata"]["annotations"]
    payments = find(rendered, "Namespace", "payments")["metadata"]["annotations"]
    assert bookinfo["linkerd.io/inject"] == "enabled"
    assert "linkerd.io/inject" not in payments
    assert owner_of(rendered, "Namespace", "bookinfo") == "injection"
    assert owner_of(rendered, "Namespace", "payments") == "permissive_mtls"
    # reshaped where stage 1 made it: a stage move never hands it to another sync unit
    assert path_of(rendered, "Namespace", "bookinfo") == \
        "envs/prod/01-permissive-mtls/01-cluster/namespace.cluster.bookinfo.yaml"
    runbook = rendered.files["envs/prod/RUNBOOK.md"]
    assert "still to come: payments" in runbook
    assert "linkerd check --proxy" in runbook


def test_opt_outs_leave_the_proxy_injector_selector(registry, linkerd):
    rendered = render(linkerd("prod"), registry)
    selector = values(rendered, "prod")["proxyInjector"]["objectSelector"]
    assert selector["matchExpressions"][-1] == {
        "key": "app", "operator": "NotIn", "values": ["legacy-billing"]}
    # the chart's own expressions are kept: Helm replaces the list as a whole
    assert {"key": "linkerd.io/control-plane-component", "operator": "DoesNotExist"} in \
        selector["matchExpressions"]
    assert "Opt-out: `payments/legacy-billing`" in rendered.files["envs/prod/RUNBOOK.md"]


def test_proxy_settings_become_control_plane_values(registry, linkerd):
    rendered = render(linkerd("prod", mesh_proxy={"concurrency": 4, "cpu": "50m",
                                                  "memory_limit": "512Mi"}), registry)
    proxy = values(rendered, "prod")["proxy"]
    assert proxy["resources"] == {"cpu": {"request": "50m"}, "memory": {"limit": "512Mi"}}
    assert proxy["runtime"] == {"workers": {"minimum": 4, "maximum": 4}}
    one_per_core = render(linkerd("prod", mesh_proxy={"concurrency": 0}), registry)
    assert values(one_per_core, "prod")["proxy"]["runtime"] == {
        "workers": {"maximumCPURatio": 1.0}}


# --------------------------------------------------------------------------- 3 observability


def test_trace_collector_and_access_logs_are_namespace_annotations(registry, linkerd):
    rendered = render(linkerd("dev", mesh_stage="observability", mesh_linkerd={
        "trace_collector": "collector.linkerd-jaeger:55678",
        "trace_collector_service_account": "collector", "access_log_format": "json"}),
        registry)
    annotations = find(rendered, "Namespace", "bookinfo")["metadata"]["annotations"]
    assert annotations["config.linkerd.io/trace-collector"] == \
        "collector.linkerd-jaeger:55678"
    assert annotations["config.alpha.linkerd.io/trace-collector-service-account"] == \
        "collector"
    assert annotations["config.linkerd.io/access-log"] == "json"
    assert owner_of(rendered, "Namespace", "bookinfo") == "observability"
    no_logs = render(linkerd("dev", mesh_stage="observability",
                             mesh_telemetry={"access_log_provider": None}), registry)
    assert "config.linkerd.io/access-log" not in \
        find(no_logs, "Namespace", "bookinfo")["metadata"]["annotations"]


def test_a_sampling_rate_is_warned_of_only_when_the_inventory_asks_for_one(registry, linkerd):
    """Linkerd has no sampling setting: a rate the inventory writes is a gap; the default,
    which nobody wrote, is not."""
    said = "mesh_telemetry.sampling_percentage"
    written = render(linkerd("dev", mesh_stage="observability",
                             mesh_telemetry={"sampling_percentage": 5.0}), registry)
    assert warnings_about(written, said)
    unwritten = render(linkerd("dev", mesh_stage="observability",
                               mesh_telemetry={"scrape_interval": "30s"}), registry)
    assert warnings_about(unwritten, said) == []


def test_scrape_configs_are_the_documented_linkerd_jobs(registry, linkerd):
    config = find(render(linkerd("dev"), registry), "ConfigMap", "meshstage-scrape-configs")
    jobs = yaml.safe_load(config["data"]["linkerd-scrape-configs.yaml"])["scrape_configs"]
    assert [job["job_name"] for job in jobs] == ["linkerd-controller", "linkerd-proxy"]
    assert jobs[0]["kubernetes_sd_configs"][0]["namespaces"]["names"] == [
        "linkerd", "linkerd-viz"]
    assert jobs[1]["relabel_configs"][0]["regex"] == "^linkerd-proxy;linkerd-admin;linkerd$"
    assert jobs[1]["kubernetes_sd_configs"][0]["namespaces"]["names"] == [
        "bookinfo", "payments"]


# --------------------------------------------------------------------------- 4 traffic


def test_canary_and_header_route_are_one_httproute(registry, linkerd):
    rendered = render(linkerd("dev", mesh_stage="traffic"), registry)
    route = find(rendered, "HTTPRoute", "reviews")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"] == {
        "parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}],
        "rules": [
            {"matches": [{"headers": [{"name": "end-user", "value": "test-user"}]}],
             "backendRefs": [{"name": "reviews-v2", "port": 9080}]},
            {"backendRefs": [{"name": "reviews-v1", "port": 9080, "weight": 90},
                             {"name": "reviews-v2", "port": 9080, "weight": 10}]},
        ],
    }
    # retries and timeout: Linkerd's annotations; 'reset,connect-failure' have no form
    assert route["metadata"]["annotations"] == {
        "retry.linkerd.io/http": "5xx", "retry.linkerd.io/limit": "3",
        "retry.linkerd.io/timeout": "2s", "timeout.linkerd.io/request": "10s"}


def test_version_services_carry_failure_accrual(registry, linkerd):
    rendered = render(linkerd("dev", mesh_stage="traffic"), registry)
    assert names(rendered, "Service") == ["reviews-v1", "reviews-v2", "reviews-v3"]
    service = find(rendered, "Service", "reviews-v2")
    assert service["spec"] == {"ports": [{"name": "http", "port": 9080}],
                               "selector": {"app": "reviews", "version": "v2"}}
    assert service["metadata"]["annotations"] == {
        "balancer.linkerd.io/failure-accrual": "consecutive",
        "balancer.linkerd.io/failure-accrual-consecutive-max-failures": "5",
        "balancer.linkerd.io/failure-accrual-consecutive-min-penalty": "1m"}


def test_prefix_and_regex_header_matches_are_regular_expressions(registry, linkerd):
    variables = with_service(linkerd("dev", mesh_stage="traffic"), "reviews", traffic={
        "header_routes": [{"headers": {"x-user": {"prefix": "qa.team"},
                                       "x-tier": {"regex": "gold|silver"}}, "subset": "v3"}]})
    route = find(render(variables, registry), "HTTPRoute", "reviews")
    assert route["spec"]["rules"][0]["matches"] == [{"headers": [
        {"name": "x-tier", "type": "RegularExpression", "value": "gold|silver"},
        {"name": "x-user", "type": "RegularExpression", "value": r"^qa\.team.*"}]}]


def test_fractional_durations_become_whole_milliseconds(registry, linkerd):
    variables = with_service(linkerd("dev", mesh_stage="traffic"), "reviews", traffic={
        "timeout": "1.5s", "retries": {"attempts": 2, "per_try_timeout": "1m30s",
                                       "retry_on": "5xx,503,500-504"}})
    route = find(render(variables, registry), "HTTPRoute", "reviews")
    assert route["metadata"]["annotations"] == {
        "timeout.linkerd.io/request": "1500ms", "retry.linkerd.io/limit": "2",
        "retry.linkerd.io/http": "5xx,503,500-504", "retry.linkerd.io/timeout": "90s"}


def test_named_version_services_are_routed_to_and_not_rendered(registry, linkerd):
    variables = with_service(linkerd("dev", mesh_stage="traffic"), "reviews", versions=[
        {"name": "v1", "service": "reviews"}, {"name": "v2", "service": "reviews-canary"},
        "v3"])
    rendered = render(variables, registry)
    rule = find(rendered, "HTTPRoute", "reviews")["spec"]["rules"][-1]
    assert rule["backendRefs"] == [{"name": "reviews", "port": 9080, "weight": 90},
                                   {"name": "reviews-canary", "port": 9080, "weight": 10}]
    assert names(rendered, "Service") == ["reviews-v3"]


def test_smi_option_is_a_linkerd_smi_traffic_split(registry, linkerd):
    rendered = render(linkerd("dev", mesh_stage="traffic", mesh_traffic_api="smi"), registry)
    split = find(rendered, "TrafficSplit", "reviews")
    assert split["apiVersion"] == "split.smi-spec.io/v1alpha1"
    assert split["spec"] == {"service": "reviews", "backends": [
        {"service": "reviews-v1", "weight": "900m"},
        {"service": "reviews-v2", "weight": "100m"}]}
    assert "HTTPRoute" not in kinds(rendered)
    assert names(rendered, "Service") == ["reviews-v1", "reviews-v2", "reviews-v3"]


def test_timeout_only_route_sends_to_the_service_itself(registry, linkerd):
    route = find(render(linkerd("dev", mesh_stage="traffic"), registry), "HTTPRoute",
                 "payment-service")
    assert route["spec"]["rules"] == [
        {"backendRefs": [{"name": "payment-service", "port": 8080}]}]
    assert route["metadata"]["annotations"] == {"timeout.linkerd.io/request": "5s"}


# --------------------------------------------------------------------------- 5 strict mTLS


def test_strict_is_the_all_authenticated_default(registry, linkerd):
    rendered = render(linkerd("staging"), registry)  # staging: strict_mtls
    for namespace in ("bookinfo", "payments"):
        namespace_object = find(rendered, "Namespace", namespace)
        assert namespace_object["metadata"]["annotations"][
            "config.linkerd.io/default-inbound-policy"] == "all-authenticated"
        assert owner_of(rendered, "Namespace", namespace) == "strict_mtls"
    assert values(rendered, "staging")["proxy"]["defaultInboundPolicy"] == "all-authenticated"
    assert "restart the workloads" in rendered.files["envs/staging/RUNBOOK.md"]


def test_permissive_exception_is_a_server_per_port(registry, linkerd):
    variables = linkerd("staging", mesh_mtls_exceptions=[{
        "service": "details", "mode": "PERMISSIVE", "reason": "batch jobs without a proxy",
        "ports": {9080: "STRICT"}}])
    variables = with_service(variables, "details", ports=[
        {"name": "http", "port": 9080}, {"name": "metrics", "port": 9102}])
    rendered = render(variables, registry)
    http = find(rendered, "Server", "details-http")
    metrics = find(rendered, "Server", "details-metrics")
    assert http["apiVersion"] == "policy.linkerd.io/v1beta3"
    assert http["spec"] == {"podSelector": {"matchLabels": {"app": "details"}}, "port": 9080,
                            "proxyProtocol": "HTTP/1", "accessPolicy": "all-authenticated"}
    assert metrics["spec"]["accessPolicy"] == "all-unauthenticated"
    assert metrics["metadata"]["annotations"] == {
        "meshstage.io/reason": "batch jobs without a proxy"}


def test_exception_for_a_workload_without_proxy_needs_no_object(registry, linkerd):
    rendered = render(linkerd("staging"), registry)  # legacy-billing: DISABLE, inject false
    assert not [o for o in rendered.objects if o.obj["kind"] == "Server"
                and o.obj["metadata"]["name"].startswith("legacy-billing")]
    assert "`payments/legacy-billing` has no proxy" in rendered.files[
        "envs/staging/RUNBOOK.md"]
    assert not [w for w in rendered.warnings if w.startswith("mesh_mtls_exceptions")]


# --------------------------------------------------------------------------- 6 authorization


def test_derived_allow_is_a_server_and_mesh_identities(registry, linkerd):
    rendered = render(linkerd("dev"), registry)
    server = find(rendered, "Server", "reviews-http")
    assert server["spec"] == {"podSelector": {"matchLabels": {"app": "reviews"}},
                              "port": 9080, "proxyProtocol": "HTTP/1", "accessPolicy": "deny"}
    policy = find(rendered, "AuthorizationPolicy", "reviews-http-mesh")
    assert policy["spec"] == {
        "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "reviews-http"},
        "requiredAuthenticationRefs": [{"group": "policy.linkerd.io",
                                        "kind": "MeshTLSAuthentication",
                                        "name": "reviews-http"}]}
    authn = find(rendered, "MeshTLSAuthentication", "reviews-http")
    assert authn["spec"] == {"identities": [
        ID.format("bookinfo-productpage", "bookinfo", "cluster.local")]}
    gateway = find(rendered, "MeshTLSAuthentication", "productpage-http")
    assert gateway["spec"]["identities"] == [  # and the example's ingress-nginx controller
        ID.format("ingress-nginx", "ingress-nginx", "cluster.local"),
        ID.format("istio-ingressgateway-service-account", "istio-system", "cluster.local")]


def test_trust_domain_shapes_identities(registry, linkerd):
    rendered = render(linkerd("dev", mesh_trust_domain="corp.example"), registry)
    assert find(rendered, "MeshTLSAuthentication", "reviews-http")["spec"]["identities"] == [
        ID.format("bookinfo-productpage", "bookinfo", "corp.example")]


def test_payment_service_seed_is_per_route_with_deny_other_callers(registry, linkerd):
    """POST/GET/PUT on /api/v1/* from order-service, everything from admin-service."""
    rendered = render(linkerd("dev"), registry)
    order = ID.format("order-service", "payments", "cluster.local")
    admin = ID.format("admin-service", "payments", "cluster.local")
    routes = {name: find(rendered, "HTTPRoute", name)["spec"] for name in names(
        rendered, "HTTPRoute") if name.startswith("payment-service-http-")}
    granted = {name: find(rendered, "MeshTLSAuthentication", name)["spec"]["identities"]
               for name in routes if f"{name}-mesh" in names(rendered, "AuthorizationPolicy")}
    by_matches = {tuple(str(m) for m in spec["rules"][0]["matches"]): granted.get(name)
                  for name, spec in routes.items()}
    api = tuple(str({"method": method, "path": {"type": "PathPrefix", "value": "/api/v1/"}})
                for method in ("GET", "POST", "PUT"))
    anything = (str({"path": {"type": "PathPrefix", "value": "/"}}),)
    probes = (str({"method": "GET", "path": {"type": "Exact", "value": "/healthz"}}),)
    assert by_matches[api] == [admin, order]
    assert by_matches[anything] == [admin]
    assert by_matches[probes] is None  # the kubelet's: no mesh identity
    for name, spec in routes.items():
        assert spec["parentRefs"] == [{"group": "policy.linkerd.io", "kind": "Server",
                                       "name": "payment-service-http"}], name
    probe_route = next(n for n, spec in routes.items()
                       if tuple(str(m) for m in spec["rules"][0]["matches"]) == probes)
    assert find(rendered, "AuthorizationPolicy", f"{probe_route}-network")["spec"][
        "requiredAuthenticationRefs"] == [{"group": "policy.linkerd.io",
                                           "kind": "NetworkAuthentication",
                                           "name": "meshstage-all-networks"}]


def test_default_deny_annotates_namespaces_and_opens_the_proxy_admin_port(registry, linkerd):
    rendered = render(linkerd("dev"), registry)
    for namespace in ("bookinfo", "payments"):
        assert find(rendered, "Namespace", namespace)["metadata"]["annotations"][
            "config.linkerd.io/default-inbound-policy"] == "deny"
        admin = find(rendered, "Server", "meshstage-proxy-admin", namespace)
        assert admin["spec"]["port"] == "linkerd-admin"
        scrapers = find(rendered, "MeshTLSAuthentication", "meshstage-prometheus", namespace)
        assert ID.format("prometheus", "linkerd-viz", "cluster.local") in \
            scrapers["spec"]["identities"]
        probes = find(rendered, "NetworkAuthentication", "meshstage-probe-networks",
                      namespace)
        assert probes["spec"] == {"networks": [{"cidr": "0.0.0.0/0"}, {"cidr": "::/0"}]}
    # nobody calls admin-service: its Server denies everything
    assert find(rendered, "Server", "admin-service-http")["spec"]["accessPolicy"] == "deny"
    assert not [n for n in names(rendered, "AuthorizationPolicy") if "admin-service" in n]
    assert "Server" not in [o.obj["kind"] for o in rendered.objects
                            if o.obj["metadata"]["name"].startswith("legacy-billing")]


def test_without_default_deny_only_services_with_rules_get_servers(registry, linkerd):
    rendered = render(linkerd("dev", mesh_default_deny=False), registry)
    assert "admin-service-http" not in names(rendered, "Server")
    assert "reviews-http" in names(rendered, "Server")
    assert find(rendered, "Namespace", "bookinfo")["metadata"]["annotations"][
        "config.linkerd.io/default-inbound-policy"] == "all-authenticated"
    assert "meshstage-proxy-admin" not in names(rendered, "Server")


def test_explicit_deny_by_principal_is_cut_out_of_named_callers(registry, linkerd):
    variables = linkerd("dev", mesh_authorization=[{
        "service": "details",
        "allow": [{"from": ["productpage", "reviews"]}],
        "deny": [{"from": ["reviews"], "methods": ["DELETE"]}],
    }])
    rendered = render(variables, registry)
    routes = [n for n in names(rendered, "HTTPRoute") if n.startswith("details-http-")]
    granted = {}
    for name in routes:
        for match in find(rendered, "HTTPRoute", name)["spec"]["rules"][0]["matches"]:
            granted[(match.get("method"), match["path"]["value"])] = find(
                rendered, "MeshTLSAuthentication", name)["spec"]["identities"]
    product = ID.format("bookinfo-productpage", "bookinfo", "cluster.local")
    reviews = ID.format("bookinfo-reviews", "bookinfo", "cluster.local")
    assert granted == {("DELETE", "/"): [product], (None, "/"): [product, reviews]}
    assert not warnings_about(rendered, "has no DENY")


def test_rule_ports_limit_a_rule_to_its_servers(registry, linkerd):
    variables = with_service(linkerd("dev"), "details", ports=[
        {"name": "http", "port": 9080}, {"name": "metrics", "port": 9102}])
    variables["mesh_authorization"] = [{"service": "details", "allow": [
        {"from": ["productpage"], "ports": [9080]}, {"ports": [9102]}]}]
    rendered = render(variables, registry)
    assert find(rendered, "AuthorizationPolicy", "details-http-mesh")["spec"]["targetRef"][
        "name"] == "details-http"
    assert "details-http-network" not in names(rendered, "AuthorizationPolicy")
    assert find(rendered, "AuthorizationPolicy", "details-metrics-network")["spec"][
        "requiredAuthenticationRefs"][0]["name"] == "meshstage-all-networks"
    assert "details-metrics-mesh" not in names(rendered, "AuthorizationPolicy")


def test_overlapping_rules_are_split_at_their_intersection(registry, linkerd):
    """GET on /api/* for one caller, anything on /api/v1/* for another: GET /api/v1/*
    must admit both, as Istio's OR of rules does."""
    variables = linkerd("dev", mesh_authorization=[{"service": "details", "allow": [
        {"from": ["productpage"], "methods": ["GET"], "paths": ["/api/*"]},
        {"from": ["reviews"], "paths": ["/api/v1/*"]}]}])
    rendered = render(variables, registry)
    granted = {}
    for name in names(rendered, "HTTPRoute"):
        if name.startswith("details-http-"):
            for match in find(rendered, "HTTPRoute", name)["spec"]["rules"][0]["matches"]:
                granted[(match.get("method"), match["path"]["value"])] = find(
                    rendered, "MeshTLSAuthentication", name)["spec"]["identities"]
    product = ID.format("bookinfo-productpage", "bookinfo", "cluster.local")
    reviews = ID.format("bookinfo-reviews", "bookinfo", "cluster.local")
    assert granted == {("GET", "/api/"): [product], (None, "/api/v1/"): [reviews],
                       ("GET", "/api/v1/"): [product, reviews]}


def test_probe_paths_get_a_route_for_the_probe_networks(registry, linkerd):
    variables = linkerd("dev", mesh_linkerd={"probe_networks": ["10.0.0.0/8"]})
    variables = with_service(variables, "payment-service", probe_paths=["/ready", "/live"])
    rendered = render(variables, registry)
    probe_routes = [n for n in names(rendered, "HTTPRoute") if n.startswith(
        "payment-service-http-") and any(m["path"].get("value") == "/ready" for m in find(
            rendered, "HTTPRoute", n)["spec"]["rules"][0]["matches"])]
    (route,) = probe_routes
    policy = find(rendered, "AuthorizationPolicy", f"{route}-network")
    assert policy["spec"]["requiredAuthenticationRefs"][0]["name"] == \
        "meshstage-probe-networks"
    assert find(rendered, "NetworkAuthentication", "meshstage-probe-networks",
                "payments")["spec"] == {"networks": [{"cidr": "10.0.0.0/8"}]}
    # admin-service may call anything, the probe paths included
    assert f"{route}-mesh" in names(rendered, "AuthorizationPolicy")
    assert not warnings_about(rendered, "probe_paths")


def test_per_route_rules_without_probe_paths_warn_about_probes(registry, linkerd):
    rendered = render(with_service(linkerd("dev"), "payment-service", probe_paths=[]),
                      registry)
    (warning,) = warnings_about(rendered, "probe_paths")
    at = [s.name for s in rendered.intent.services].index("payment-service")
    assert warning.startswith(f"mesh_services[{at}].probe_paths (service payments/payment-service)"
                              ": none listed, and port 8080 has per-route rules")
    assert warning in rendered.files["envs/dev/RUNBOOK.md"]


# --------------------------------------------------------------------------- the runbook


def test_runbook_is_linkerd_s_and_lists_what_is_not_expressible(registry, linkerd):
    runbook = render(linkerd("dev"), registry).files["envs/dev/RUNBOOK.md"]
    assert "- provider: **linkerd**" in runbook
    assert "control plane namespace: `linkerd`; traffic API: `gateway-api`" in runbook
    assert "linkerd viz authz -n <namespace> deploy/<workload>" in runbook
    assert "istioctl" not in runbook
    assert "## Not expressible with linkerd" in runbook
    assert "- mesh_services[3].traffic.connection_pool (service bookinfo/ratings)" in runbook


@pytest.mark.parametrize(("provider", "api"), [
    ("istio", "virtualservice"), ("istio", "gateway-api"), ("linkerd", "gateway-api"),
    ("linkerd", "smi")])
def test_the_documented_complete_example_renders_for_every_provider(registry, repo_root,
                                                                    provider, api):
    import re

    page = (repo_root / "docs" / "intent.md").read_text()
    block = re.search(r"<!-- example: begin -->\n```yaml\n(.*?)```", page, re.S).group(1)
    variables = {**yaml.safe_load(block), "mesh_provider": provider, "mesh_traffic_api": api}
    # validated strictly against the CRDs, and proved: every request flow still gets through
    rendered = render(variables, registry)
    assert rendered.files["envs/staging/RUNBOOK.md"].startswith("# Runbook: staging")
    if provider == "linkerd":
        # payment-service's gRPC port: a Server of proxyProtocol gRPC takes GRPCRoutes only,
        # so its per-route HTTPRoutes (method and path prefix) attach to an HTTP/2 Server
        # (the flow proof refused the gRPC Server with HTTPRoutes)
        (server,) = [yaml.safe_load(text) for path, text in rendered.files.items()
                     if path.endswith("/server.payments.payment-service-grpc-api.yaml")]
        assert server["spec"]["proxyProtocol"] == "HTTP/2"
        assert any(path.endswith("/httproute.payments.payment-service-grpc-api-2.yaml")
                   for path in rendered.files)


def test_linkerd_prometheus_is_vizs_unless_told_otherwise(registry, linkerd):
    rendered = render(linkerd("dev"), registry)
    assert rendered.intent.telemetry.prometheus_namespace == "linkerd-viz"
    assert "envs/dev/03-observability/02-linkerd-viz/" \
        "configmap.linkerd-viz.meshstage-scrape-configs.yaml" in rendered.files
    told = linkerd("dev", mesh_telemetry={"prometheus_namespace": "monitoring"})
    assert render(told, registry).intent.telemetry.prometheus_namespace == "monitoring"
