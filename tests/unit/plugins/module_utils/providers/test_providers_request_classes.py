"""Issue 13's defect classes, in what meshstage renders: each test names its class and fails
on the code before the fix (every request that works before the stage still works after).

1. a plaintext hop meets an ALLOW by identity; 2. an uninjected caller of a STRICT service
(rendering; the gate is in gates/test_gates_strict_mtls.py); 3. a gateway in an application
namespace; 4. routes that ingress requests never meet; 5. objects the estate already has;
6. probes that are not HTTP GET; 7. the smaller ones.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from plan_helpers import find

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import (
    AnalysisError,
    IntentErrors,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    RenderedStage,
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry

LINKERD_ID = "{}.{}.serviceaccount.identity.linkerd.cluster.local"
BOOKINFO = "samples/istio-bookinfo"


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def shop(stage: str, provider: str = "istio", **extra: Any) -> dict[str, Any]:
    """A small estate: api calls cache (a TCP port) and orders; batch keeps no sidecar."""
    services = [
        {"name": "api", "namespace": "shop", "ports": [{"name": "http", "port": 8080}],
         "calls": ["cache", "orders"]},
        {"name": "cache", "namespace": "shop",
         "ports": [{"name": "tcp-redis", "port": 6379, "protocol": "TCP"}]},
        {"name": "orders", "namespace": "shop", "ports": [{"name": "http", "port": 8080}]},
        {"name": "batch", "namespace": "shop", "inject": False, "ports": [],
         "calls": ["orders"]},
    ]
    return {"mesh_environment": "test", "mesh_stage": stage, "mesh_provider": provider,
            "mesh_services": services, **extra}


def render(variables: dict[str, Any], registry: SchemaRegistry,
           estate: list[Path] | None = None) -> RenderedStage:
    return render_stage(variables, StageOptions(gitops_dir=Path("/nonexistent"),
                                                check_paths=estate or ()), registry)


def objects(stage: RenderedStage, kind: str) -> dict[str, dict[str, Any]]:
    return {o.obj["metadata"]["name"]: o.obj for o in stage.objects if o.obj["kind"] == kind}


def manifests(tmp_path: Path, *documents: dict[str, Any]) -> Path:
    path = tmp_path / "estate.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path


def deployment(name: str, namespace: str, containers: list[dict[str, Any]],
               annotations: dict[str, str] | None = None,
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    labels = labels or {"app": name}
    template: dict[str, Any] = {"labels": labels}
    if annotations:
        template["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": labels}, "template": {
                "metadata": template,
                "spec": {"serviceAccountName": name, "containers": containers}}}}


def shop_estate(tmp_path: Path, orders: list[dict[str, Any]] | None = None,
                annotations: dict[str, str] | None = None,
                orders_labels: dict[str, str] | None = None) -> Path:
    """The shop's Deployments (and Services), as a team would keep them."""
    def on(port: int) -> list[dict[str, Any]]:
        return [{"name": "app", "image": "app", "ports": [{"containerPort": port}]}]

    return manifests(
        tmp_path,
        deployment("api", "shop", on(8080)),
        deployment("cache", "shop", on(6379)),
        deployment("orders", "shop", orders or on(8080), annotations=annotations,
                   labels=orders_labels),
        deployment("batch", "shop", [{"name": "app", "image": "app"}],
                   annotations={"linkerd.io/inject": "disabled"},
                   labels={"app": "batch", "sidecar.istio.io/inject": "false"}))


# --------------------------------------------------------------------------- class 1


def test_class1_istio_admits_callers_of_a_disable_port_by_port(registry):
    """cache is under a DISABLE exception: its callers send it plaintext (its DestinationRule
    says DISABLE), so a rule naming their principals would refuse every connection."""
    variables = shop("authorization", mesh_mtls_exceptions=[
        {"service": "cache", "mode": "DISABLE", "reason": "redis speaks plaintext"}])
    allow = find(render(variables, registry), "AuthorizationPolicy", "cache-allow")
    assert allow["spec"]["rules"] == [{"to": [{"operation": {"ports": ["6379"]}}]}]


def test_class1_istio_admits_an_uninjected_caller_by_port(registry):
    rendered = render(shop("authorization"), registry)
    rules = find(rendered, "AuthorizationPolicy", "orders-allow")["spec"]["rules"]
    assert rules == [
        {"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/api"]}}]},
        {"to": [{"operation": {"ports": ["8080"]}}]},   # batch: no sidecar, no principal
    ]


def test_class1_istio_admits_an_unmeshed_host_by_its_address(registry, example_intent):
    variables = copy.deepcopy(example_intent("dev"))
    for service in variables["mesh_services"]:
        if service["name"] == "reconciler":
            service["calls"] = ["ledger", "order-service"]
    rules = find(render(variables, registry), "AuthorizationPolicy",
                 "order-service-allow")["spec"]["rules"]
    addresses = sorted(h["address"] for h in variables["mesh_hosts"].values()
                       if h["service"] == "reconciler")
    assert {"from": [{"source": {"ipBlocks": addresses}}]} in rules


def test_class1_linkerd_admits_plaintext_callers_by_network(registry, example_intent):
    rendered = render(shop("authorization", "linkerd"), registry)
    policies = objects(rendered, "AuthorizationPolicy")
    assert policies["orders-http-network"]["spec"]["requiredAuthenticationRefs"] == [
        {"group": "policy.linkerd.io", "kind": "NetworkAuthentication",
         "name": "meshstage-all-networks"}]
    # any network holds api's identity too: one policy says it all
    assert "orders-http" not in objects(rendered, "MeshTLSAuthentication")
    assert find(rendered, "MeshTLSAuthentication", "cache-tcp-redis")["spec"]["identities"] == [
        LINKERD_ID.format("api", "shop")]
    variables = copy.deepcopy(example_intent("dev", mesh_provider="linkerd"))
    for service in variables["mesh_services"]:
        if service["name"] == "reconciler":
            service["calls"] = ["ledger", "order-service"]
    hosts = find(render(variables, registry), "NetworkAuthentication", "order-service-http-hosts")
    assert hosts["spec"]["networks"] == [
        {"cidr": f"{h['address']}/32"} for h in sorted(
            variables["mesh_hosts"].values(), key=lambda h: h["address"])
        if h["service"] == "reconciler"]


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_class1_a_rule_naming_a_plaintext_caller_is_refused_with_the_fix(registry, provider):
    variables = shop("authorization", provider, mesh_authorization=[
        {"service": "orders", "allow": [{"from": ["api"]}, {"from": ["batch"]}]}])
    with pytest.raises(IntentErrors) as raised:
        render(variables, registry)
    assert "mesh_authorization[0].allow[1].from[0]: 'batch' can never match: service " \
        "shop/batch reaches shop/orders without a proxy (inject: false), so its requests " \
        "carry no identity; admit it by port (a rule with ports and no from)" in str(raised.value)


def test_class1_a_rule_by_identity_on_a_disable_service_is_refused(registry):
    variables = shop("authorization", mesh_mtls_exceptions=[
        {"service": "cache", "mode": "DISABLE", "reason": "redis"}],
        mesh_authorization=[{"service": "cache", "allow": [{"from": ["api"]}]}])
    with pytest.raises(IntentErrors) as raised:
        render(variables, registry)
    assert "mesh_authorization[0].allow[0].from: list ['api'] can never match: port(s) 6379 " \
        "of shop/cache are under a DISABLE mTLS exception" in str(raised.value)


# --------------------------------------------------------------------------- class 2


def test_class2_the_callee_of_an_uninjected_caller_accepts_plaintext_by_default(registry):
    rendered = render(shop("strict_mtls"), registry)
    exception = find(rendered, "PeerAuthentication", "orders-mtls-exception")
    assert exception["spec"]["mtls"] == {"mode": "PERMISSIVE"}
    assert "service shop/batch (inject: false)" in \
        exception["metadata"]["annotations"]["meshstage.io/reason"]
    # the caller's own exception would change nothing: none is rendered for it
    assert "batch-mtls-exception" not in objects(rendered, "PeerAuthentication")
    linkerd = render(shop("strict_mtls", "linkerd"), registry)
    assert find(linkerd, "Server", "orders-http")["spec"]["accessPolicy"] == \
        "all-unauthenticated"


# --------------------------------------------------------------------------- class 3


def gateway_api_intent(stage: str = "authorization", provider: str = "istio") -> dict[str, Any]:
    return {"mesh_environment": "test", "mesh_stage": stage, "mesh_provider": provider,
            "mesh_services": [{"name": "productpage", "namespace": "default",
                               "service_account": "bookinfo-productpage",
                               "ports": [{"name": "http", "port": 9080}], "ingress": True}]}


def test_class3_a_gateway_beside_the_apps_keeps_working_under_default_deny(registry):
    variables = {**gateway_api_intent(), "mesh_ingress_gateway": {
        "namespace": "default", "gateway": "bookinfo-gateway", "gateway_class": "istio"}}
    rendered = render(variables, registry)
    gateway = find(rendered, "AuthorizationPolicy", "bookinfo-gateway-ingress")
    assert gateway["spec"] == {
        "action": "ALLOW", "rules": [{}],
        "selector": {"matchLabels": {
            "gateway.networking.k8s.io/gateway-name": "bookinfo-gateway"}}}
    allow = find(rendered, "AuthorizationPolicy", "productpage-allow")
    assert allow["spec"]["rules"] == [{"from": [{"source": {"principals": [
        "cluster.local/ns/default/sa/bookinfo-gateway-istio"]}}]}]


def test_class3_a_gateway_of_the_estate_is_allowed_and_admitted(registry, reference_dir):
    rendered = render(gateway_api_intent(), registry, [
        reference_dir / BOOKINFO / "platform/kube/bookinfo.yaml",
        reference_dir / BOOKINFO / "gateway-api/bookinfo-gateway.yaml"])
    assert find(rendered, "AuthorizationPolicy", "bookinfo-gateway-ingress")["spec"][
        "selector"] == {"matchLabels": {
            "gateway.networking.k8s.io/gateway-name": "bookinfo-gateway"}}
    principals = find(rendered, "AuthorizationPolicy", "productpage-allow")["spec"]["rules"][
        0]["from"][0]["source"]["principals"]
    # the estate's HTTPRoute bookinfo sends the gateway's requests to productpage
    assert "cluster.local/ns/default/sa/bookinfo-gateway-istio" in principals


def test_class3_principals_of_generated_gateways_are_known(reference_dir):
    from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import analyze
    from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
        read_manifests,
    )

    gateway = read_manifests([reference_dir / BOOKINFO / "gateway-api/bookinfo-gateway.yaml"])
    policy = read_manifests([], default_namespace="default")
    from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import add_text
    add_text(policy, yaml.safe_dump_all([
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "productpage", "namespace": "default"},
         "spec": {"rules": [{"from": [{"source": {"principals": [
             "cluster.local/ns/default/sa/bookinfo-gateway-istio"]}}]}]}},
        {"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "MeshTLSAuthentication",
         "metadata": {"name": "productpage", "namespace": "default"},
         "spec": {"identities": [LINKERD_ID.format("bookinfo-gateway-istio", "default")]}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "bookinfo-productpage", "namespace": "default"}}]), "policy")
    report = analyze(gateway.resources + policy.resources, complete=True)
    assert not [f for f in report.findings if f.code in ("MST0103", "MST0206")], \
        [f.line() for f in report.findings]


# --------------------------------------------------------------------------- class 4


def canary_intent(provider: str = "istio", **gateway: Any) -> dict[str, Any]:
    variables = gateway_api_intent("traffic", provider)
    service = variables["mesh_services"][0]
    service.update(versions=["v1"], traffic={"timeout": "5s"},
                   ingress_hosts=["shop.example.com"] if gateway else [])
    if not gateway:
        del service["ingress_hosts"]
    if gateway:
        variables["mesh_ingress_gateway"] = gateway
    return variables


def test_class4_a_canary_reached_through_ingress_is_bound_to_the_gateway(registry):
    rendered = render(canary_intent(gateway="istio-system/public"), registry)
    spec = find(rendered, "VirtualService", "productpage")["spec"]
    assert spec["gateways"] == ["istio-system/public", "mesh"]
    assert spec["hosts"] == ["productpage", "shop.example.com"]
    gateway_api = render({**canary_intent(gateway="istio-system/public"),
                          "mesh_traffic_api": "gateway-api"}, registry)
    route = find(gateway_api, "HTTPRoute", "productpage-ingress")["spec"]
    assert route["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                    "name": "public", "namespace": "istio-system"}]
    assert route["hostnames"] == ["shop.example.com"]
    assert route["rules"][0]["timeouts"] == {"request": "5s"}
    linkerd = render(canary_intent("linkerd", gateway="istio-system/public"), registry)
    assert find(linkerd, "HTTPRoute", "productpage-ingress")["spec"]["hostnames"] == [
        "shop.example.com"]


def test_class4_without_the_gateway_a_warning_names_the_route_that_decides(registry,
                                                                           reference_dir):
    rendered = render(canary_intent(), registry, [
        reference_dir / BOOKINFO / "platform/kube/bookinfo.yaml",
        reference_dir / BOOKINFO / "networking/bookinfo-gateway.yaml"])
    (warning,) = [w for w in rendered.warnings if w.startswith("mesh_services[0].ingress")]
    assert "its VirtualService shapes requests from the mesh only; requests through the " \
        "ingress gateway follow VirtualService bookinfo" in warning
    assert "bookinfo-gateway.yaml" in warning


def test_class4_a_route_the_team_owns_on_the_same_gateway_is_refused(registry, reference_dir):
    variables = canary_intent(gateway="default/bookinfo-gateway")
    variables["mesh_services"][0]["ingress_hosts"] = ["bookinfo.example.com"]
    with pytest.raises(IntentErrors) as raised:
        render(variables, registry, [
            reference_dir / BOOKINFO / "platform/kube/bookinfo.yaml",
            reference_dir / BOOKINFO / "networking/bookinfo-gateway.yaml"])
    assert "mesh_services[0].ingress_hosts: list ['bookinfo.example.com'] are routed on gateway " \
        "default/bookinfo-gateway by VirtualService bookinfo" in str(raised.value)


# --------------------------------------------------------------------------- class 5


def test_class5_an_object_the_estate_already_has_stops_the_run(registry, tmp_path,
                                                               example_intent):
    estate = manifests(tmp_path, {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": "bookinfo"},
        "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}})
    with pytest.raises(AnalysisError) as raised:
        render(example_intent("dev"), registry, [estate])
    message = str(raised.value)
    assert "Error MST0001 DestinationRule bookinfo/reviews: DestinationRule bookinfo/reviews " \
        "is rendered to envs/dev/04-traffic/04-bookinfo/destinationrule.bookinfo.reviews.yaml " \
        f"and also defined in the estate's {estate}" in message


def test_class5_a_namespace_the_estate_has_is_shared_unless_its_keys_clash(registry, tmp_path,
                                                                          example_intent):
    estate = manifests(tmp_path, {"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": "bookinfo"}})
    rendered = render(example_intent("prod"), registry, [estate])
    assert [w for w in rendered.warnings if w.startswith("Warning MST0002 Namespace bookinfo")]
    clash = manifests(tmp_path, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "bookinfo", "labels": {"istio-injection": "disabled"}}})
    with pytest.raises(AnalysisError) as raised:
        render(example_intent("prod"), registry, [clash])
    assert "label istio-injection: 'enabled' here, 'disabled' there" in str(raised.value)


# --------------------------------------------------------------------------- class 6


def grpc_estate(tmp_path: Path, annotations: dict[str, str] | None = None) -> Path:
    return shop_estate(tmp_path, [{
        "name": "orders", "image": "orders",
        "ports": [{"name": "grpc", "containerPort": 8080}],
        "livenessProbe": {"grpc": {"port": 8080}},
        "readinessProbe": {"httpGet": {"path": "/ready?full=1", "port": 8080}}}],
        annotations=annotations)


def test_class6_linkerd_routes_grpc_probes_under_default_deny(registry, tmp_path):
    estate = grpc_estate(tmp_path)
    variables = shop("authorization", "linkerd",
                     mesh_linkerd={"probe_networks": ["10.0.0.0/8"]})   # the nodes
    variables["mesh_services"][2]["ports"] = [{"name": "grpc", "port": 8080,
                                               "protocol": "GRPC"}]
    variables["mesh_services"][3]["calls"] = []   # only api calls orders, by identity
    rendered = render(variables, registry, [estate])
    assert find(rendered, "Server", "orders-grpc")["spec"]["proxyProtocol"] == "HTTP/2"
    routes = [o for o in objects(rendered, "HTTPRoute").values()
              if o["spec"]["parentRefs"][0].get("name") == "orders-grpc"]
    probe = [r for r in routes if {"path": {"type": "Exact",
                                            "value": "/grpc.health.v1.Health/Check"},
                                   "method": "POST"} in r["spec"]["rules"][0]["matches"]]
    assert len(probe) == 1
    assert {"path": {"type": "Exact", "value": "/ready"}, "method": "GET"} in \
        probe[0]["spec"]["rules"][0]["matches"]
    policy = objects(rendered, "AuthorizationPolicy")[f"{probe[0]['metadata']['name']}-network"]
    assert policy["spec"]["requiredAuthenticationRefs"][0]["name"] == \
        "meshstage-probe-networks"
    assert find(rendered, "NetworkAuthentication", "meshstage-probe-networks")["spec"] == {
        "networks": [{"cidr": "10.0.0.0/8"}]}


def test_class6_linkerd_grpc_probes_at_strict_get_a_route_of_their_own(registry, tmp_path):
    variables = shop("strict_mtls", "linkerd")
    variables["mesh_services"][2]["ports"] = [{"name": "grpc", "port": 8080,
                                               "protocol": "GRPC"}]
    variables["mesh_services"][3]["calls"] = []   # no plaintext caller: orders stays strict
    rendered = render(variables, registry, [grpc_estate(tmp_path)])
    assert find(rendered, "Server", "orders-grpc")["spec"] == {
        "podSelector": {"matchLabels": {"app": "orders"}}, "port": 8080,
        "proxyProtocol": "HTTP/2", "accessPolicy": "all-authenticated"}
    probes = find(rendered, "HTTPRoute", "orders-grpc-probes")["spec"]["rules"][0]["matches"]
    assert {"path": {"type": "Exact", "value": "/grpc.health.v1.Health/Check"},
            "method": "POST"} in probes
    assert find(rendered, "HTTPRoute", "orders-grpc-all")["spec"]["rules"][0]["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/"}}]


def test_class6_istio_knows_unrewritten_probes(registry, tmp_path):
    estate = grpc_estate(tmp_path, {"sidecar.istio.io/rewriteAppHTTPProbers": "false"})
    variables = shop("strict_mtls")
    variables["mesh_services"][3]["calls"] = []
    strict = render(variables, registry, [estate])
    exception = find(strict, "PeerAuthentication", "orders-mtls-exception")["spec"]
    assert exception["portLevelMtls"] == {"8080": {"mode": "PERMISSIVE"}}
    assert exception["mtls"] == {"mode": "UNSET"}
    variables["mesh_stage"] = "authorization"
    rules = find(render(variables, registry, [estate]), "AuthorizationPolicy",
                 "orders-probes")["spec"]["rules"]
    assert {"to": [{"operation": {"ports": ["8080"], "methods": ["GET"],
                                  "paths": ["/ready"]}}]} in rules
    assert {"to": [{"operation": {"ports": ["8080"], "methods": ["POST"],
                                  "paths": ["/grpc.health.v1.Health/Check"]}}]} in rules
    rewritten = render(variables, registry, [grpc_estate(tmp_path)])
    assert "orders-probes" not in objects(rewritten, "AuthorizationPolicy")


# --------------------------------------------------------------------------- class 7


def test_class7_linkerd_keeps_grpc_retries(registry):
    variables = shop("traffic", "linkerd")
    variables["mesh_services"][2].update(
        ports=[{"name": "grpc", "port": 8080, "protocol": "GRPC"}],
        traffic={"retries": {"attempts": 2, "retry_on": "unavailable,cancelled,5xx"}})
    rendered = render(variables, registry)
    route = find(rendered, "GRPCRoute", "orders")
    assert route["metadata"]["annotations"] == {"retry.linkerd.io/grpc": "unavailable,cancelled",
                                                "retry.linkerd.io/limit": "2"}
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "orders",
                                            "port": 8080}]
    (gap,) = [w for w in rendered.warnings if ".retries.retry_on" in w]
    assert "'5xx' is not expressible with linkerd: retry.linkerd.io/grpc" in gap


def test_class7_the_disable_warning_says_what_the_stage_renders(registry):
    exception = [{"service": "orders", "mode": "DISABLE", "reason": "legacy"}]
    strict = render(shop("strict_mtls", "linkerd", mesh_mtls_exceptions=exception), registry)
    authz = render(shop("authorization", "linkerd", mesh_mtls_exceptions=exception), registry)
    (at_strict,) = [w for w in strict.warnings if w.startswith("mesh_mtls_exceptions[0].mode")]
    (at_authz,) = [w for w in authz.warnings if w.startswith("mesh_mtls_exceptions[0].mode")]
    assert "At strict_mtls, its Servers accept plaintext as well as mTLS" in at_strict
    assert "At authorization, its Servers refuse what no AuthorizationPolicy allows" in at_authz
    assert find(authz, "Server", "orders-http")["spec"]["accessPolicy"] == "deny"


def test_class7_the_proxy_admin_server_selects_the_pods_the_injector_will_mesh(
        registry, reference_dir):
    from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.context import (
        analyze_rendered,
    )

    variables = {"mesh_environment": "test", "mesh_stage": "authorization",
                 "mesh_provider": "linkerd", "mesh_services": [
                     {"name": "web-svc", "namespace": "emojivoto", "service_account": "web",
                      "ports": [{"name": "http", "port": 80, "target_port": 8080}]}]}
    estate = reference_dir / "samples/linkerd/website/run.linkerd.io/public/emojivoto.yml"
    rendered = render(variables, registry, [estate])
    report = analyze_rendered(rendered.intent, [o.obj for o in rendered.stage_objects],
                              [estate])
    assert not [f.line() for f in report.findings if f.code == "MST0202"]


def test_class7_the_short_form_of_versions_is_said_to_assume_labels(registry, tmp_path):
    variables = shop("traffic")
    variables["mesh_services"][2]["versions"] = ["v1", "v2"]
    (warning,) = [w for w in render(variables, registry).warnings
                  if w.startswith("mesh_services[].versions")]
    assert "assumes the pods of each version are labelled version: <name>" in warning
    assert "shop/orders" in warning
    estate = shop_estate(tmp_path, orders_labels={"app": "orders", "version": "v1"})
    assert not [w for w in render(variables, registry, [estate]).warnings
                if w.startswith("mesh_services[].versions")]
