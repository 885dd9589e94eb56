"""Clients outside the cluster: a NodePort or LoadBalancer Service (or its externalIPs) and a
container's hostPort take their connections, plaintext and without a mesh identity. The
estate shows them (``estate.callers``), the analysis (MST0121, MST0214) and the flow proof
refuse a stage that would cut them off, and ``mesh_external_callers`` of kind
``external-clients`` keeps them working (the import writes it: the inventory's tests). Both
meshes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flow_helpers import EXPOSED_WEB, STRICT_MESH, check_lines, manifest_resources

from ansible_collections.meshstage.mesh.plugins.module_utils import pipeline
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import (
    AnalysisError,
    FlowProofError,
    IntentErrors,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.callers import outside_calls
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import (
    MeshIndex,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

SHOP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop{meta}}
---""" + EXPOSED_WEB
ISTIO = ", labels: {istio-injection: enabled}"
LINKERD = (", annotations: {linkerd.io/inject: enabled, "
           "config.linkerd.io/default-inbound-policy: all-authenticated}")


# --------------------------------------------------------------------------- the estate


def test_the_estate_shows_every_way_in_from_outside_and_nothing_else():
    extra = """
---
apiVersion: v1
kind: Service
metadata: {name: web-node, namespace: shop}
spec: {type: NodePort, selector: {app: web}, ports: [{port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-ip, namespace: shop}
spec: {externalIPs: [198.51.100.7], selector: {app: web}, ports: [{port: 81, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: shop}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: a, image: a, ports: [{containerPort: 9100, hostPort: 9100}]}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-exporter, namespace: shop}
spec:
  selector: {matchLabels: {app: node-exporter}}
  template:
    metadata: {labels: {app: node-exporter}}
    spec:
      hostNetwork: true
      containers: [{name: e, image: e, ports: [{containerPort: 9101, hostPort: 9101}]}]
---
apiVersion: v1
kind: Service
metadata: {name: istio-ingressgateway, namespace: istio-system}
spec: {type: LoadBalancer, selector: {istio: ingressgateway}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: istio-ingressgateway, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  template:
    metadata: {labels: {istio: ingressgateway}}
    spec: {containers: [{name: istio-proxy, image: proxyv2, ports: [{containerPort: 8080}]}]}
"""
    calls = {(call.origin.display, call.via, call.target.resource.display, call.port)
             for call in outside_calls(MeshIndex(manifest_resources(
                 SHOP.replace("{meta}", "") + extra)))
             if call.kind == "exposed"}
    assert calls == {
        ("Service shop/web-external", "type LoadBalancer, port 80", "Deployment shop/web", 8080),
        ("Service shop/web-node", "type NodePort, port 80", "Deployment shop/web", 8080),
        ("Service shop/web-ip", "externalIPs, port 81", "Deployment shop/web", 8080),
        ("DaemonSet shop/agent", "hostPort 9100", "DaemonSet shop/agent", 9100),
    }  # the ClusterIP Service, the host-network pods and the mesh's gateway are not


# --------------------------------------------------------------------------- meshstage check


def test_istio_a_load_balancer_to_a_strict_port_is_refused_until_the_port_is_permissive():
    (line,) = check_lines(SHOP.replace("{meta}", ISTIO) + STRICT_MESH, "istio")
    assert "a client outside the cluster -> web-external (shop/web:8080) http [exposed: " \
           "Service shop/web-external (type LoadBalancer, port 80)]" in line
    assert "kind external-clients" in line
    permissive = """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  portLevelMtls: {8080: {mode: PERMISSIVE}}
"""
    assert check_lines(SHOP.replace("{meta}", ISTIO) + STRICT_MESH + permissive, "istio") == []


def test_linkerd_a_load_balancer_is_refused_by_all_authenticated_until_a_server_admits_it():
    (line,) = check_lines(SHOP.replace("{meta}", LINKERD), "linkerd")
    assert "a client outside the cluster -> web-external" in line and "403" in line
    server = """
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-http, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8080
  proxyProtocol: HTTP/1
  accessPolicy: all-unauthenticated
"""
    assert check_lines(SHOP.replace("{meta}", LINKERD) + server, "linkerd") == []


def test_a_meshed_prometheus_scrapes_by_annotation_with_its_identity_in_linkerd():
    """The estate's Prometheus runs in an injected namespace: its scrapes are mTLS with its
    identity, which all-authenticated admits (https://linkerd.io/2/features/server-policy/);
    an unmeshed one is refused."""
    def estate(prometheus_meta: str) -> str:
        return f"""
apiVersion: v1
kind: Namespace
metadata: {{name: shop{LINKERD}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: monitoring{prometheus_meta}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: prometheus, namespace: monitoring}}
spec:
  selector: {{matchLabels: {{app: prometheus}}}}
  template:
    metadata: {{labels: {{app: prometheus}}}}
    spec: {{serviceAccountName: prometheus, containers: [{{name: p, image: p}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: cache, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: cache}}}}
  template:
    metadata:
      labels: {{app: cache}}
      annotations: {{prometheus.io/scrape: "true", prometheus.io/port: "9121"}}
    spec: {{containers: [{{name: c, image: c, ports: [{{containerPort: 9121}}]}}]}}
"""
    meshed = ", annotations: {linkerd.io/inject: enabled}"
    assert check_lines(estate(meshed), "linkerd") == []
    (line,) = check_lines(estate(""), "linkerd")
    assert "monitoring/prometheus -> cache (shop/cache:9121) http GET /metrics" in line


# --------------------------------------------------------------------------- the stages


def stage(tmp_path: Path, provider: str, stage_name: str, callers: bool, crd_dir: Path) -> Any:
    """The stage rendered with the estate, validated against the upstream CRDs."""
    estate = tmp_path / "estate.yaml"
    estate.write_text(SHOP.replace("{meta}", ""))
    variables: dict[str, Any] = {
        "mesh_environment": "dev", "mesh_stage": stage_name, "mesh_provider": provider,
        "mesh_services": [{"name": "web", "namespace": "shop",
                           "ports": [{"name": "http", "port": 80, "target_port": 8080}]}],
    }
    if callers:
        variables["mesh_external_callers"] = [
            {"name": "web-external", "kind": "external-clients", "calls": ["web"]}]
    return render_stage(variables, StageOptions(gitops_dir=tmp_path / "gitops",
                                                check_paths=[estate], crd_dirs=[crd_dir]))


@pytest.mark.parametrize("provider,code", [("istio", "MST0121"), ("linkerd", "MST0214")])
@pytest.mark.parametrize("stage_name", ["strict_mtls", "authorization"])
def test_a_stage_that_cuts_outside_clients_off_is_refused(tmp_path, provider, code, stage_name,
                                                          crd_dir):
    with pytest.raises(AnalysisError) as refused:
        stage(tmp_path, provider, stage_name, callers=False, crd_dir=crd_dir)
    assert code in str(refused.value) and "Service shop/web-external" in str(refused.value)


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_the_flow_proof_refuses_it_too(tmp_path, provider, monkeypatch, crd_dir):
    monkeypatch.setattr(pipeline, "_analyze", lambda *args, **kwargs: [])
    with pytest.raises(FlowProofError) as refused:
        stage(tmp_path, provider, "strict_mtls", callers=False, crd_dir=crd_dir)
    text = str(refused.value)
    assert "a client outside the cluster -> web-external (shop/web:8080)" in text
    assert "mesh_external_callers (kind external-clients" in text


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
@pytest.mark.parametrize("stage_name", ["strict_mtls", "authorization"])
def test_external_clients_keep_working_at_every_stage(tmp_path, provider, stage_name, crd_dir):
    rendered = stage(tmp_path, provider, stage_name, callers=True, crd_dir=crd_dir)
    objects = [item.obj for item in rendered.objects]
    table = "\n".join(rendered.flows.section)
    assert "a client outside the cluster -> web (shop/web:8080)" in table.replace("→", "->")
    # the LoadBalancer of the estate and the entry that declares its clients: one flow,
    # named by the inventory's field
    (row,) = [line for line in rendered.flows.section if "a client outside the cluster" in line]
    assert "| exposed: mesh_external_callers[0].calls[0] |" in row
    if provider == "istio":
        (exception,) = [o for o in objects if o["kind"] == "PeerAuthentication"
                        and o["metadata"]["name"] == "web-mtls-exception"]
        assert exception["spec"]["portLevelMtls"] == {"8080": {"mode": "PERMISSIVE"}}
        if stage_name == "authorization":
            (allow,) = [o for o in objects if o["kind"] == "AuthorizationPolicy"
                        and o["metadata"]["name"] == "web-allow"]
            assert any("from" not in rule and rule.get("to") == [
                {"operation": {"ports": ["8080"]}}] for rule in allow["spec"]["rules"])
    else:
        servers = [o for o in objects if o["kind"] == "Server" and o["spec"]["port"] == 8080]
        assert servers
        if stage_name == "strict_mtls":
            assert {s["spec"]["accessPolicy"] for s in servers} == {"all-unauthenticated"}


# --------------------------------------------------------------------------- the intent


def test_external_clients_have_no_namespace_account_or_proxy():
    base: dict[str, Any] = {
        "mesh_environment": "dev", "mesh_stage": "strict_mtls",
        "mesh_services": [{"name": "web", "namespace": "shop"}],
        "mesh_external_callers": [{"name": "lb", "kind": "external-clients", "calls": ["web"],
                                   "namespace": "outside"}]}
    with pytest.raises(IntentErrors, match=r"mesh_external_callers\[0\]\.namespace: .outside. "
                                          r"is not for clients outside the cluster"):
        parse_intent(base)
    del base["mesh_external_callers"][0]["namespace"]
    intent, _ = parse_intent(base)
    (caller,) = intent.external_callers
    assert (caller.namespace, caller.inject, caller.title) == (
        None, False, "a client outside the cluster (through lb)")


# --------------------------------------------------------------------------- nobody calls it


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_a_service_nothing_calls_is_said_where_an_unknown_caller_breaks(tmp_path, crd_dir,
                                                                       provider):
    """The proof cannot see a caller nothing says (a configuration file the import could not
    read): a meshed service with ports that no flow reaches is a warning where such a caller
    would break. Under default deny, at authorization; with Istio from strict_mtls on
    already: a caller's Sidecar lists only its calls, and sends the rest through the
    passthrough cluster as plaintext, which STRICT refuses (istio/istio#41978)."""
    estate = tmp_path / "estate.yaml"
    estate.write_text(SHOP.replace("{meta}", "") + """
---
apiVersion: v1
kind: Service
metadata: {name: payment, namespace: shop}
spec: {selector: {app: payment}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: payment, namespace: shop}
spec:
  selector: {matchLabels: {app: payment}}
  template:
    metadata: {labels: {app: payment}}
    spec: {containers: [{name: payment, image: payment, ports: [{containerPort: 80}]}]}
""")
    services = [{"name": "web", "namespace": "shop",
                 "ports": [{"name": "http", "port": 80, "target_port": 8080}]},
                {"name": "payment", "namespace": "shop"}]

    def warnings(stage_name: str, **more: Any) -> list[str]:
        variables = {"mesh_environment": "dev", "mesh_stage": stage_name,
                     "mesh_provider": provider,
                     "mesh_services": services, "mesh_external_callers": [
                         {"name": "web-external", "kind": "external-clients",
                          "calls": ["web"]}], **more}
        rendered = render_stage(variables, StageOptions(gitops_dir=tmp_path / "gitops",
                                                        check_paths=[estate],
                                                        crd_dirs=[crd_dir]))
        return [w for w in rendered.warnings if "nothing calls" in w]

    (line,) = warnings("authorization")
    assert line.startswith("flow proof: nothing calls shop/payment as far as the inventory")
    assert "default deny refuses every request to it" in line
    strict = "from the strict_mtls stage on it refuses plaintext, which a caller sends " \
             "when its Sidecar does not list it (Istio's passthrough cluster)"
    assert (strict in line) is (provider == "istio")
    assert warnings("traffic") == []
    if provider == "istio":
        (line,) = warnings("strict_mtls")
        assert strict in line and "default deny" not in line
        assert len(warnings("authorization", mesh_default_deny=False)) == 1
        # a workload that stays PERMISSIVE takes plaintext
        assert warnings("strict_mtls", mesh_mtls_exceptions=[
            {"service": "payment", "mode": "PERMISSIVE", "reason": "legacy"}]) == []
    else:
        assert warnings("strict_mtls") == []
        assert warnings("authorization", mesh_default_deny=False) == []
    services[0]["calls"] = ["payment"]
    assert warnings("authorization") == []
