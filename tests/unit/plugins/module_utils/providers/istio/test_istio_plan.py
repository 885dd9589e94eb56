"""The Istio plan, rendered: reference equivalence with upstream samples, and each stage."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from plan_helpers import find, kinds, render, with_service

from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry

BOOKINFO = "samples/istio-bookinfo/networking"


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def service(name: str, versions: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "bookinfo", "ports": [{"name": "http", "port": 9080}],
            "versions": versions, **extra}


def bookinfo(stage: str, **overrides: Any) -> dict[str, Any]:
    """The bookinfo catalogue with the versions upstream's samples use."""
    variables = {
        "mesh_environment": "test",
        "mesh_stage": stage,
        "mesh_services": [
            service("productpage", ["v1"], calls=["details", "reviews"]),
            service("reviews", ["v1", "v2", "v3"], calls=["ratings"]),
            service("ratings", ["v1", "v2", "v2-mysql", "v2-mysql-vm"]),
            service("details", ["v1", "v2"]),
        ],
    }
    variables.update(overrides)
    return variables


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """What the reference comparison looks at: meshstage adds namespace and labels."""
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "name": obj["metadata"]["name"], "spec": obj["spec"]}


def reference(reference_dir: Path, filename: str) -> list[dict[str, Any]]:
    with open(reference_dir / BOOKINFO / filename) as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


# --------------------------------------------------------------------------- references


def test_reviews_canary_equals_upstream_90_10(reference_dir, registry):
    variables = with_service(bookinfo("traffic"), "reviews",
                             canary={"stable": "v1", "subset": "v2", "weight": 10})
    rendered = find(render(variables, registry), "VirtualService", "reviews")
    (expected,) = reference(reference_dir, "virtual-service-reviews-90-10.yaml")
    assert comparable(rendered) == comparable(expected)


def test_header_match_equals_upstream_test_v2(reference_dir, registry):
    variables = with_service(bookinfo("traffic"), "reviews", traffic={
        "header_routes": [{"headers": {"end-user": {"exact": "jason"}}, "subset": "v2"}]})
    rendered = find(render(variables, registry), "VirtualService", "reviews")
    (expected,) = reference(reference_dir, "virtual-service-reviews-test-v2.yaml")
    assert comparable(rendered) == comparable(expected)


@pytest.mark.parametrize(("stage", "filename"), [
    ("strict_mtls", "destination-rule-all-mtls.yaml"),
    ("authorization", "destination-rule-all-mtls.yaml"),
    ("traffic", "destination-rule-all.yaml"),
])
def test_destination_rules_equal_upstream(reference_dir, registry, stage, filename):
    stage_objects = render(bookinfo(stage), registry)
    for expected in reference(reference_dir, filename):
        rendered = find(stage_objects, "DestinationRule", expected["metadata"]["name"])
        assert comparable(rendered) == comparable(expected)


def test_example_reviews_route_is_header_match_then_the_90_10_canary(
        reference_dir, registry, example_intent):
    rendered = find(render(example_intent("dev"), registry), "VirtualService", "reviews")
    (canary,) = reference(reference_dir, "virtual-service-reviews-90-10.yaml")
    header, default = rendered["spec"]["http"]
    assert header["match"] == [{"headers": {"end-user": {"exact": "test-user"}}}]
    assert header["route"] == [{"destination": {"host": "reviews", "subset": "v2"}}]
    assert default["route"] == canary["spec"]["http"][0]["route"]
    assert default["timeout"] == "10s"
    assert default["retries"] == {"attempts": 3, "perTryTimeout": "2s",
                                  "retryOn": "5xx,reset,connect-failure"}


def test_example_destination_rule_for_reviews_equals_upstream_after_strict(
        reference_dir, registry, example_intent):
    rendered = find(render(example_intent("staging"), registry), "DestinationRule", "reviews")
    expected = next(doc for doc in reference(reference_dir, "destination-rule-all-mtls.yaml")
                    if doc["metadata"]["name"] == "reviews")
    spec = copy.deepcopy(rendered["spec"])
    # the example adds outlier detection to reviews; the rest is upstream's
    assert spec["trafficPolicy"].pop("outlierDetection") == {
        "consecutive5xxErrors": 5, "interval": "30s", "baseEjectionTime": "60s",
        "maxEjectionPercent": 50}
    assert spec == expected["spec"]


def test_payment_service_policies_equal_the_seed(registry, example_intent):
    stage = render(example_intent("dev"), registry)
    order = "cluster.local/ns/payments/sa/order-service"
    admin = "cluster.local/ns/payments/sa/admin-service"
    allow = find(stage, "AuthorizationPolicy", "payment-service-allow")
    deny = find(stage, "AuthorizationPolicy", "payment-service-deny")
    assert allow["apiVersion"] == deny["apiVersion"] == "security.istio.io/v1"
    assert allow["spec"] == {
        "selector": {"matchLabels": {"app": "payment-service"}},
        "action": "ALLOW",
        "rules": [
            {"from": [{"source": {"principals": [order]}}],
             "to": [{"operation": {"methods": ["POST", "GET", "PUT"],
                                   "paths": ["/api/v1/*"]}}]},
            {"from": [{"source": {"principals": [admin]}}]},
        ],
    }
    assert deny["spec"] == {
        "selector": {"matchLabels": {"app": "payment-service"}},
        "action": "DENY",
        "rules": [{"from": [{"source": {"notPrincipals": [order, admin]}}]}],
    }


# --------------------------------------------------------------------------- stages

STAGE_KINDS = [
    ("permissive_mtls", {"PeerAuthentication"}),
    # ratings-db's peers Service, from the first sidecar on
    ("injection", {"PeerAuthentication", "Namespace", "ProxyConfig", "Service"}),
    ("observability", {"PeerAuthentication", "Namespace", "ProxyConfig", "Telemetry",
                       "ConfigMap", "Service"}),
    ("traffic", {"PeerAuthentication", "Namespace", "ProxyConfig", "Telemetry", "ConfigMap",
                 "DestinationRule", "VirtualService", "Sidecar", "Service"}),
    # the authorization policies as a dry run (istio.io/dry-run)
    ("strict_mtls", {"PeerAuthentication", "Namespace", "ProxyConfig", "Telemetry",
                     "ConfigMap", "DestinationRule", "VirtualService", "Sidecar",
                     "AuthorizationPolicy", "Service"}),
    ("authorization", {"PeerAuthentication", "Namespace", "ProxyConfig", "Telemetry",
                       "ConfigMap", "DestinationRule", "VirtualService", "Sidecar",
                       "AuthorizationPolicy", "Service"}),
]


@pytest.mark.parametrize(("stage", "expected"), STAGE_KINDS, ids=[s for s, _ in STAGE_KINDS])
def test_stages_are_cumulative(registry, example_intent, stage, expected):
    assert kinds(render(example_intent("dev", mesh_stage=stage), registry)) == expected


def test_strict_mtls_renders_the_authorization_policies_as_a_dry_run(registry, example_intent):
    """The same policies as the authorization stage, annotated istio.io/dry-run, in the
    strict_mtls folder; at authorization they enforce (no annotation, their own folder)."""
    def policies(stage: str) -> dict[str, dict]:
        rendered = render(example_intent("dev", mesh_stage=stage), registry)
        return {f"{o.obj['metadata']['namespace']}/{o.obj['metadata']['name']}": o
                for o in rendered.objects if o.obj["kind"] == "AuthorizationPolicy"}

    dry_run, enforced = policies("strict_mtls"), policies("authorization")
    assert set(dry_run) == set(enforced)
    assert "payments/payment-service-deny" in dry_run
    for key, item in dry_run.items():
        assert item.obj["metadata"]["annotations"] == {"istio.io/dry-run": "true"}, key
        assert item.path.split("/")[2] == "05-strict-mtls"
        assert item.obj["spec"] == enforced[key].obj["spec"]
        assert "annotations" not in enforced[key].obj["metadata"]
        assert enforced[key].path.split("/")[2] == "06-authorization"


def test_the_sidecar_scrape_job_labels_namespace_pod_and_app(registry, example_intent):
    """The authorization gate reads Istio's dry-run stats per namespace and app."""
    rendered = render(example_intent("dev", mesh_stage="observability"), registry)
    (config,) = [o.obj for o in rendered.objects if o.obj["kind"] == "ConfigMap"]
    jobs = yaml.safe_load(config["data"]["istio-scrape-configs.yaml"])["scrape_configs"]
    (envoy,) = [job for job in jobs if job["job_name"] == "envoy-stats"]
    assert {(r["source_labels"][0], r["target_label"]) for r in envoy["relabel_configs"]
            if "target_label" in r} == {("__meta_kubernetes_namespace", "namespace"),
                                        ("__meta_kubernetes_pod_name", "pod"),
                                        ("__meta_kubernetes_pod_label_app", "app")}


@pytest.mark.parametrize(("stage", "mode", "owner", "unit"), [
    ("permissive_mtls", "PERMISSIVE", "permissive_mtls", "06-istio-system"),
    ("traffic", "PERMISSIVE", "permissive_mtls", "06-istio-system"),
    ("strict_mtls", "STRICT", "strict_mtls", "07-istio-system"),
    ("authorization", "STRICT", "strict_mtls", "07-istio-system"),
])
def test_mesh_wide_peer_authentication_strict_replaces_permissive(
        registry, example_intent, stage, mode, owner, unit):
    """strict_mtls reshapes the object where stage 1 put it; its unit is its place in the
    apply order (PERMISSIVE before the exceptions, STRICT after them)."""
    rendered = render(example_intent("dev", mesh_stage=stage), registry)
    (item,) = [o for o in rendered.objects if o.obj["kind"] == "PeerAuthentication"
               and o.obj["metadata"]["name"] == "default"]
    assert item.obj["metadata"]["namespace"] == "istio-system"
    assert item.obj["spec"] == {"mtls": {"mode": mode}}
    assert item.planned.stage.value == owner
    assert item.path == \
        f"envs/dev/01-permissive-mtls/{unit}/peerauthentication.istio-system.default.yaml"


def test_mtls_exception_is_a_workload_peer_authentication_with_its_reason(
        registry, example_intent):
    rendered = render(example_intent("staging"), registry)
    exception = find(rendered, "PeerAuthentication", "legacy-billing-mtls-exception")
    assert exception["metadata"]["namespace"] == "payments"
    assert exception["metadata"]["annotations"]["meshstage.io/reason"].startswith("vendor")
    assert exception["spec"] == {"selector": {"matchLabels": {"app": "legacy-billing"}},
                                 "mtls": {"mode": "DISABLE"}}
    # clients must not originate mTLS towards it either
    rule = find(rendered, "DestinationRule", "legacy-billing")
    assert rule["spec"]["trafficPolicy"]["tls"] == {"mode": "DISABLE"}
    assert find(rendered, "DestinationRule", "payment-service")["spec"]["trafficPolicy"][
        "tls"] == {"mode": "ISTIO_MUTUAL"}


def test_port_level_exception(registry, example_intent):
    variables = example_intent("staging", mesh_mtls_exceptions=[{
        "service": "payment-service", "mode": "PERMISSIVE", "reason": "probe port",
        "ports": {8080: "DISABLE"}}])
    exception = find(render(variables, registry), "PeerAuthentication",
                     "payment-service-mtls-exception")
    assert exception["spec"]["portLevelMtls"] == {"8080": {"mode": "DISABLE"}}
    assert exception["spec"]["mtls"] == {"mode": "PERMISSIVE"}
    rule = find(render(variables, registry), "DestinationRule", "payment-service")
    assert rule["spec"]["trafficPolicy"] == {
        "tls": {"mode": "ISTIO_MUTUAL"},
        "portLevelSettings": [{"port": {"number": 8080}, "tls": {"mode": "DISABLE"}}]}


def test_clients_send_plaintext_to_a_service_without_sidecar(registry, example_intent):
    # legacy-billing has inject: false: Istio mTLS would reach its application as TLS it
    # cannot read, whatever exception it has
    variables = example_intent("staging", mesh_mtls_exceptions=[{
        "service": "legacy-billing", "mode": "PERMISSIVE", "reason": "probe port",
        "ports": {7000: "DISABLE"}}])
    rule = find(render(variables, registry), "DestinationRule", "legacy-billing")
    assert rule["spec"]["trafficPolicy"]["tls"] == {"mode": "DISABLE"}


def test_injection_waves_label_only_injected_namespaces(registry, example_intent):
    rendered = render(example_intent("prod"), registry)  # prod: 1 of 2 waves
    namespaces = [o.obj for o in rendered.objects if o.obj["kind"] == "Namespace"]
    # and the injected ingress controller's namespace (mesh_external_callers)
    assert [ns["metadata"]["name"] for ns in namespaces] == ["bookinfo", "ingress-nginx"]
    assert namespaces[0]["metadata"]["labels"] == {"istio-injection": "enabled"}
    annotations = namespaces[0]["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
    assert annotations["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
    assert "still to come: payments" in rendered.files["envs/prod/RUNBOOK.md"]


def test_revision_label_replaces_istio_injection(registry, example_intent):
    rendered = render(example_intent("prod", mesh_revision="1-28"), registry)
    namespace = find(rendered, "Namespace", "bookinfo")
    assert namespace["metadata"]["labels"] == {"istio.io/rev": "1-28"}
    values = yaml.safe_load(rendered.files["envs/prod/00-install/values/istiod.yaml"])
    assert values["revision"] == "1-28"


def test_opt_out_is_a_never_inject_selector(registry, example_intent):
    rendered = render(example_intent("prod"), registry)
    values = yaml.safe_load(rendered.files["envs/prod/00-install/values/istiod.yaml"])
    assert values["sidecarInjectorWebhook"]["neverInjectSelector"] == [
        {"matchLabels": {"app": "legacy-billing"}}]
    assert "legacy-billing" in rendered.files["envs/prod/RUNBOOK.md"]


def test_telemetry_metrics_tracing_access_logs(registry, example_intent):
    variables = example_intent("dev", mesh_telemetry={
        "tracing_provider": "otel", "sampling_percentage": 2.5,
        "access_log_provider": "envoy", "access_log_filter": "response.code >= 500"})
    telemetry = find(render(variables, registry), "Telemetry", "mesh-default", "istio-system")
    assert telemetry["apiVersion"] == "telemetry.istio.io/v1"
    assert telemetry["spec"] == {
        "metrics": [{"providers": [{"name": "prometheus"}]}],
        "tracing": [{"providers": [{"name": "otel"}], "randomSamplingPercentage": 2.5}],
        "accessLogging": [{"providers": [{"name": "envoy"}],
                           "filter": {"expression": "response.code >= 500"}}],
    }


def test_scrape_configs_are_prometheus_jobs(registry, example_intent):
    config = find(render(example_intent("dev"), registry), "ConfigMap",
                  "meshstage-scrape-configs")
    jobs = yaml.safe_load(config["data"]["istio-scrape-configs.yaml"])["scrape_configs"]
    assert [job["job_name"] for job in jobs] == ["istiod", "envoy-stats"]
    assert jobs[1]["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["bookinfo",
                                                                          "payments"]


def test_destination_rule_policies(registry, example_intent):
    rule = find(render(example_intent("dev", mesh_stage="traffic"), registry),
                "DestinationRule", "ratings")
    assert rule["spec"]["trafficPolicy"] == {
        "connectionPool": {"tcp": {"maxConnections": 100},
                           "http": {"http1MaxPendingRequests": 32,
                                    "maxRequestsPerConnection": 10}},
        "loadBalancer": {"simple": "LEAST_REQUEST"},
    }


def test_sidecars_scope_egress_to_the_services_called(registry, example_intent):
    rendered = render(example_intent("dev"), registry)
    sidecar = find(rendered, "Sidecar", "productpage")
    assert sidecar["spec"] == {
        "workloadSelector": {"labels": {"app": "productpage"}},
        "egress": [{"hosts": ["bookinfo/details.bookinfo.svc.cluster.local",
                              "bookinfo/reviews.bookinfo.svc.cluster.local",
                              "istio-system/*"]}],
    }
    names = {o.obj["metadata"]["name"] for o in rendered.objects if o.obj["kind"] == "Sidecar"}
    assert "legacy-billing" not in names  # no proxy to configure


def test_default_deny_and_derived_allow(registry, example_intent):
    rendered = render(example_intent("dev"), registry)
    for namespace in ("bookinfo", "payments"):
        assert find(rendered, "AuthorizationPolicy", "allow-nothing", namespace)["spec"] == {}
    reviews = find(rendered, "AuthorizationPolicy", "reviews-allow")
    assert reviews["spec"]["rules"] == [{"from": [{"source": {"principals": [
        "cluster.local/ns/bookinfo/sa/bookinfo-productpage"]}}]}]
    productpage = find(rendered, "AuthorizationPolicy", "productpage-allow")
    assert productpage["spec"]["rules"][0]["from"][0]["source"]["principals"] == [
        "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]
    names = {o.obj["metadata"]["name"] for o in rendered.objects}
    assert "legacy-billing-allow" not in names
    assert "admin-service-allow" not in names  # nobody calls it: default deny covers it
    no_deny = render(example_intent("dev", mesh_default_deny=False), registry)
    assert "allow-nothing" not in {o.obj["metadata"]["name"] for o in no_deny.objects}


def test_trust_domain_shapes_principals(registry, example_intent):
    rendered = render(example_intent("dev", mesh_trust_domain="corp.example"), registry)
    deny = find(rendered, "AuthorizationPolicy", "payment-service-deny")
    assert deny["spec"]["rules"][0]["from"][0]["source"]["notPrincipals"][0] == \
        "corp.example/ns/payments/sa/order-service"


def test_objects_carry_ownership_labels(registry, example_intent):
    for item in render(example_intent("dev"), registry).objects:
        if item.obj["kind"] == "Namespace":
            continue  # namespaces are not meshstage's: only their injection label is
        labels = item.obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "meshstage", item.path
        assert labels["meshstage.io/environment"] == "dev", item.path


def test_rendering_is_deterministic(registry, example_intent):
    first = render(example_intent("dev"), registry).files
    second = render(example_intent("dev"), registry).files
    assert first == second


def test_explicit_deny_rules_by_principal_namespace_method_and_path(registry, example_intent):
    variables = example_intent("dev", mesh_authorization=[{
        "service": "details",
        "allow": [{"from": ["productpage"], "methods": ["GET"]}],
        "deny": [{"principals": ["cluster.local/ns/legacy/sa/batch"]},
                 {"namespaces": ["payments"], "methods": ["DELETE"], "paths": ["/admin/*"]}],
    }])
    deny = find(render(variables, registry), "AuthorizationPolicy", "details-deny")
    assert deny["spec"] == {
        "selector": {"matchLabels": {"app": "details"}},
        "action": "DENY",
        "rules": [
            {"from": [{"source": {"principals": ["cluster.local/ns/legacy/sa/batch"]}}]},
            {"from": [{"source": {"namespaces": ["payments"]}}],
             "to": [{"operation": {"methods": ["DELETE"], "paths": ["/admin/*"]}}]},
        ],
    }


def test_proxy_settings_become_a_proxy_config_and_istiod_values(registry, example_intent):
    rendered = render(example_intent("prod", mesh_proxy={
        "concurrency": 4, "image_type": "distroless", "cpu": "50m", "memory_limit": "512Mi"}),
        registry)
    proxy = find(rendered, "ProxyConfig", "mesh-default", "istio-system")
    assert proxy["apiVersion"] == "networking.istio.io/v1beta1"
    assert proxy["spec"] == {"concurrency": 4, "image": {"imageType": "distroless"}}
    values = yaml.safe_load(rendered.files["envs/prod/00-install/values/istiod.yaml"])
    assert values["global"]["proxy"]["resources"] == {"requests": {"cpu": "50m"},
                                                      "limits": {"memory": "512Mi"}}
    plain = render(example_intent("prod", mesh_proxy=None), registry)
    assert "ProxyConfig" not in kinds(plain)


def test_rule_ports_become_operation_ports(registry, example_intent):
    variables = example_intent("dev", mesh_authorization=[{
        "service": "details", "allow": [{"from": ["productpage"], "ports": [9080]}]}])
    allow = find(render(variables, registry), "AuthorizationPolicy", "details-allow")
    assert allow["spec"]["rules"] == [{
        "from": [{"source": {"principals": [
            "cluster.local/ns/bookinfo/sa/bookinfo-productpage"]}}],
        "to": [{"operation": {"ports": ["9080"]}}]}]


# --------------------------------------------------------------------------- Gateway API

GATEWAY_API = "samples/istio-bookinfo/gateway-api"


def gateway_reference(reference_dir: Path, filename: str, name: str) -> dict[str, Any]:
    with open(reference_dir / GATEWAY_API / filename) as handle:
        (found,) = [d for d in yaml.safe_load_all(handle) if d and d["metadata"]["name"] == name]
    return found


ROUTES = [
    ("route-reviews-90-10.yaml", "reviews", {"canary": {"stable": "v1", "subset": "v2",
                                                        "weight": 10}}),
    ("route-reviews-50-v3.yaml", "reviews", {"traffic": {"split": {"v1": 50, "v3": 50}}}),
    ("route-reviews-v1.yaml", "reviews", {"traffic": {"split": {"v1": 100}}}),
    ("route-reviews-v3.yaml", "reviews", {"traffic": {"split": {"v3": 100}}}),
    ("route-all-v1.yaml", "productpage", {"traffic": {"split": {"v1": 100}}}),
    ("route-all-v1.yaml", "details", {"traffic": {"split": {"v1": 100}}}),
    ("route-all-v1.yaml", "ratings", {"traffic": {"split": {"v1": 100}}}),
]


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
@pytest.mark.parametrize(("filename", "name", "fields"), ROUTES,
                         ids=[f"{f}:{n}" for f, n, _ in ROUTES])
def test_gateway_api_routes_equal_upstream(reference_dir, registry, provider, filename, name,
                                           fields):
    """Istio's samples/bookinfo/gateway-api routes, from intent, for both meshes."""
    variables = with_service(bookinfo("traffic", mesh_provider=provider,
                                      mesh_traffic_api="gateway-api"), name, **fields)
    rendered = find(render(variables, registry), "HTTPRoute", name)
    expected = gateway_reference(reference_dir, filename, name)
    assert comparable(rendered) == comparable(expected)


def test_version_services_equal_upstream_bookinfo_versions(reference_dir, registry):
    variables = bookinfo("traffic", mesh_traffic_api="gateway-api")
    for name in ("productpage", "reviews", "ratings", "details"):
        variables = with_service(variables, name, traffic={"split": {"v1": 100}})
    rendered = render(variables, registry)
    with open(reference_dir / "samples/istio-bookinfo/platform/kube/bookinfo-versions.yaml") \
            as handle:
        expected = [d for d in yaml.safe_load_all(handle) if d]
    for service in expected:
        ours = find(rendered, "Service", service["metadata"]["name"])
        assert ours["apiVersion"] == "v1"
        assert ours["spec"] == service["spec"]


def test_gateway_api_option_replaces_virtual_services(registry, example_intent):
    rendered = render(example_intent("dev", mesh_traffic_api="gateway-api"), registry)
    assert "VirtualService" not in kinds(rendered)
    route = find(rendered, "HTTPRoute", "reviews")
    assert route["spec"]["rules"][0] == {
        "matches": [{"headers": [{"name": "end-user", "value": "test-user"}]}],
        "backendRefs": [{"name": "reviews-v2", "port": 9080}],
        "timeouts": {"request": "10s"}}
    # subsets serve VirtualServices only; the version hosts get the traffic policy
    assert "subsets" not in find(rendered, "DestinationRule", "reviews")["spec"]
    for host in ("reviews-v1", "reviews-v2", "reviews-v3"):
        rule = find(rendered, "DestinationRule", host)
        assert rule["spec"]["host"] == host
        assert rule["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"] == 5
    # productpage's egress reaches the version Services the route sends to
    hosts = find(rendered, "Sidecar", "productpage")["spec"]["egress"][0]["hosts"]
    assert "bookinfo/reviews-v2.bookinfo.svc.cluster.local" in hosts
    assert "bookinfo/reviews.bookinfo.svc.cluster.local" in hosts


def test_a_service_with_several_http_ports_is_routed_per_port(registry, example_intent):
    """Istio cannot tell which port a destination means when the service has several
    (istioctl analyze IST0112): each port gets its own routes, matched and named."""
    variables = with_service(example_intent("dev", mesh_stage="traffic"), "reviews", ports=[
        {"name": "http", "port": 9080}, {"name": "http-admin", "port": 9081},
        {"name": "tcp-db", "port": 5432, "protocol": "TCP"}])
    rendered = render(variables, registry)  # the analyzers ran: no IST0112
    http = find(rendered, "VirtualService", "reviews")["spec"]["http"]
    assert [route["match"] for route in http] == [
        [{"headers": {"end-user": {"exact": "test-user"}}, "port": 9080}], [{"port": 9080}],
        [{"headers": {"end-user": {"exact": "test-user"}}, "port": 9081}], [{"port": 9081}]]
    assert http[1]["route"] == [
        {"destination": {"host": "reviews", "subset": "v1", "port": {"number": 9080}},
         "weight": 90},
        {"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9080}},
         "weight": 10}]
    assert http[2]["route"] == [
        {"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9081}}}]
    assert all(route["timeout"] == "10s" for route in http)


def test_an_http_port_beside_a_tcp_port_names_its_port(registry, example_intent):
    """The bug of issue 14: payment-service with an HTTP and a TCP port, and a timeout and
    retries, rendered a VirtualService whose destination named no port, and meshstage's own
    analyzer stopped the run with IST0112."""
    variables = with_service(example_intent("dev", mesh_stage="traffic"), "payment-service",
                             ports=[{"name": "http", "port": 8080},
                                    {"name": "tcp-admin", "port": 9090, "protocol": "TCP"}])
    rendered = render(variables, registry)  # raised AnalysisError (IST0112) before the fix
    http = find(rendered, "VirtualService", "payment-service")["spec"]["http"]
    assert [route["match"] for route in http] == [[{"port": 8080}]]
    assert http[0]["route"] == [{"destination": {"host": "payment-service",
                                                 "port": {"number": 8080}}}]
    assert http[0]["timeout"] == "5s" and http[0]["retries"]["attempts"] == 2


def test_a_single_port_service_keeps_its_routes_unmatched(registry, example_intent):
    rendered = render(example_intent("dev"), registry)
    http = find(rendered, "VirtualService", "payment-service")["spec"]["http"]
    assert http == [{"route": [{"destination": {"host": "payment-service"}}],
                     "timeout": "5s", "retries": {"attempts": 2, "perTryTimeout": "2s",
                                                  "retryOn": "connect-failure,refused-stream"}}]
