"""Several Services over one workload (the Jaeger all-in-one Deployment behind its agent,
collector and query Services): each is a service of the catalogue, with its own calls, and
their pods get one Istio Sidecar with the egress of every one of them. Two Sidecars that
select the same workload leave the one Istio applies undefined (IST0110)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

JAEGER = {"app.kubernetes.io/name": "jaeger"}
ESTATE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: jaeger, namespace: tracing}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: jaeger}}
  template:
    metadata: {labels: {app.kubernetes.io/name: jaeger}}
    spec:
      serviceAccountName: jaeger
      containers:
      - name: jaeger
        image: jaegertracing/all-in-one
        ports: [{containerPort: 4317}, {containerPort: 16686}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: opensearch, namespace: tracing}
spec:
  selector: {matchLabels: {app: opensearch}}
  template:
    metadata: {labels: {app: opensearch}}
    spec:
      serviceAccountName: opensearch
      containers: [{name: opensearch, image: opensearch, ports: [{containerPort: 9200}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: grafana, namespace: tracing}
spec:
  selector: {matchLabels: {app: grafana}}
  template:
    metadata: {labels: {app: grafana}}
    spec:
      serviceAccountName: grafana
      containers: [{name: grafana, image: grafana, ports: [{containerPort: 3000}]}]
"""
SERVICES = [
    {"name": "jaeger-collector", "namespace": "tracing", "selector": JAEGER,
     "service_account": "jaeger", "ports": [{"name": "grpc-otlp", "port": 4317}],
     "calls": ["opensearch"]},
    {"name": "jaeger-query", "namespace": "tracing", "selector": JAEGER,
     "service_account": "jaeger", "ports": [{"name": "http-query", "port": 16686}],
     "calls": ["opensearch", "api.example.com"]},
    {"name": "opensearch", "namespace": "tracing", "ports": [{"name": "http", "port": 9200}]},
    {"name": "grafana", "namespace": "tracing", "ports": [{"name": "http", "port": 3000}],
     "calls": ["jaeger-query"]},
]


def render(tmp_path: Path, crd_dir: Path, stage: str, estate: bool = True) -> Any:
    check_paths = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    if estate:
        (tmp_path / "estate.yaml").write_text(ESTATE)
        check_paths = [tmp_path / "estate.yaml"]
    values = {"mesh_environment": "dev", "mesh_stage": stage, "mesh_services": SERVICES}
    return render_stage(values, StageOptions(gitops_dir=tmp_path / "gitops",
                                             crd_dirs=[crd_dir], check_paths=check_paths))


def sidecars(rendered: Any) -> dict[str, dict[str, Any]]:
    return {item.obj["metadata"]["name"]: item.obj for item in rendered.objects
            if item.obj["kind"] == "Sidecar"}


@pytest.mark.parametrize("estate", [True, False])
def test_services_over_the_same_pods_share_one_sidecar_with_every_call(tmp_path, crd_dir,
                                                                      estate):
    rendered = render(tmp_path, crd_dir, "traffic", estate)
    found = sidecars(rendered)
    assert sorted(found) == ["grafana", "jaeger-collector", "opensearch"]
    shared = found["jaeger-collector"]["spec"]
    assert shared["workloadSelector"] == {"labels": JAEGER}
    assert shared["egress"][0]["hosts"] == [
        "tracing/opensearch.tracing.svc.cluster.local", "tracing/api.example.com",
        "istio-system/*"]
    (runbook,) = [text for path, text in rendered.files.items() if path.endswith("RUNBOOK.md")]
    assert "Sidecar `tracing/jaeger-collector` serves the pods of `jaeger-collector`, " \
           "`jaeger-query`, which select the same pods" in runbook
    assert not [w for w in rendered.warnings if "IST0110" in w]
    assert rendered.flows.counts["breaks"] == 0 and rendered.flows.counts["refused"] == 0


def test_every_stage_renders_without_a_second_sidecar_on_the_pods(tmp_path, crd_dir):
    for stage in ("strict_mtls", "authorization"):
        rendered = render(tmp_path / stage, crd_dir, stage)
        assert len([s for s in sidecars(rendered).values()
                    if s["spec"]["workloadSelector"] == {"labels": JAEGER}]) == 1
        assert rendered.flows.counts["breaks"] == 0, stage


# A chart's Service and a second one over the same pods and container port (web on port 80,
# web-internal on 8080, both to the pods' 8080), each with callers of its own.
WEB = {"app": "web"}
TWINS = [
    {"name": "web", "namespace": "shop", "selector": WEB, "service_account": "web",
     "ports": [{"name": "http", "port": 80, "target_port": 8080}]},
    {"name": "web-internal", "namespace": "shop", "selector": WEB, "service_account": "web",
     "ports": [{"name": "http", "port": 8080}]},
    {"name": "front", "namespace": "shop", "ports": [{"name": "http", "port": 80}],
     "calls": ["web"]},
    {"name": "admin", "namespace": "ops", "ports": [{"name": "http", "port": 80}],
     "calls": ["web-internal"]},
]


def render_twins(tmp_path: Path, crd_dir: Path, provider: str, stage: str,
                 **values: Any) -> Any:
    return render_stage(
        {"mesh_environment": "dev", "mesh_stage": stage, "mesh_provider": provider,
         "mesh_services": TWINS, **values},  # values may replace the services
        StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir]))


def of_kind(rendered: Any, kind: str) -> dict[str, dict[str, Any]]:
    return {item.obj["metadata"]["name"]: item.obj for item in rendered.objects
            if item.obj["kind"] == kind}


def test_linkerd_serves_a_pod_port_of_two_services_with_one_server(tmp_path, crd_dir):
    """Linkerd's admission refuses a second Server with the same podSelector and port
    ("identical server spec already exists"): one Server, with each service's
    authorization on it, and both callers admitted."""
    rendered = render_twins(tmp_path, crd_dir, "linkerd", "authorization")
    servers = {name: obj["spec"] for name, obj in of_kind(rendered, "Server").items()
               if obj["spec"]["podSelector"] == {"matchLabels": WEB}}
    assert servers == {"web-http": {"podSelector": {"matchLabels": WEB}, "port": 8080,
                                    "proxyProtocol": "HTTP/1", "accessPolicy": "deny"}}
    policies = of_kind(rendered, "AuthorizationPolicy")
    assert policies["web-http-mesh"]["spec"]["targetRef"]["name"] == "web-http"
    assert policies["web-internal-http-mesh"]["spec"]["targetRef"]["name"] == "web-http"
    identities = {name: obj["spec"]["identities"]
                  for name, obj in of_kind(rendered, "MeshTLSAuthentication").items()}
    assert identities["web-http"] == ["front.shop.serviceaccount.identity.linkerd.cluster.local"]
    assert identities["web-internal-http"] == [
        "admin.ops.serviceaccount.identity.linkerd.cluster.local"]
    assert rendered.flows.counts["refused"] == 0 and rendered.flows.counts["breaks"] == 0
    # an Error of the analysis would have refused the render
    assert not [w for w in rendered.warnings if "MST0216" in w]


def test_linkerd_merges_the_access_of_services_over_the_same_pods(tmp_path, crd_dir):
    """web has rules of its own; web-internal, which no service calls, has none and stays
    PERMISSIVE, without default deny: the one Server admits what each asks (the PERMISSIVE
    exception's all-unauthenticated), and the run says web's authorization does not hold on
    that port."""
    rendered = render_twins(
        tmp_path, crd_dir, "linkerd", "authorization", mesh_default_deny=False,
        mesh_services=[{**s, "calls": []} if s["name"] == "admin" else s for s in TWINS],
        mesh_mtls_exceptions=[{"service": "web-internal", "mode": "PERMISSIVE",
                               "reason": "a legacy client"}],
        mesh_authorization=[{"service": "web", "allow": [{"from": ["front"]}]}])
    (server,) = [obj for obj in of_kind(rendered, "Server").values()
                 if obj["spec"]["podSelector"] == {"matchLabels": WEB}]
    assert server["metadata"]["name"] == "web-http"
    assert server["spec"]["accessPolicy"] == "all-unauthenticated"
    assert server["metadata"]["annotations"] == {"meshstage.io/reason": "a legacy client"}
    (warning,) = [w for w in rendered.warnings if "Server shop/web-http" in w]
    assert "pods of web, web-internal" in warning and "deny and all-unauthenticated" in warning
    assert rendered.flows.counts["refused"] == 0


@pytest.mark.parametrize("first,second,union", [
    ("deny", "all-authenticated", "all-authenticated"),
    ("all-authenticated", "cluster-unauthenticated", "all-unauthenticated"),
    ("cluster-authenticated", "all-authenticated", "all-authenticated"),
    ("cluster-authenticated", "cluster-unauthenticated", "cluster-unauthenticated"),
    ("audit", "deny", "audit"),
    ("deny", "deny", "deny"),
])
def test_linkerd_access_union_admits_what_each_admits(first, second, union):
    from ansible_collections.meshstage.mesh.plugins.module_utils.providers.linkerd.\
        authorization import access_union
    assert access_union(first, second) == union
    assert access_union(second, first) == union


def test_istio_merges_the_exceptions_of_services_over_the_same_pods(tmp_path, crd_dir):
    """Istio applies one workload PeerAuthentication per workload, the oldest (MST0102):
    the exceptions of both services become one, which accepts what each accepts."""
    rendered = render_twins(
        tmp_path, crd_dir, "istio", "strict_mtls", mesh_mtls_exceptions=[
            {"service": "web", "mode": "PERMISSIVE", "reason": "a legacy client",
             "ports": {8080: "STRICT"}},
            {"service": "web-internal", "mode": "DISABLE", "reason": "its own TLS"}])
    found = of_kind(rendered, "PeerAuthentication")
    assert sorted(found) == ["default", "web-mtls-exception"]
    exception = found["web-mtls-exception"]
    assert exception["spec"] == {"selector": {"matchLabels": WEB},
                                 "mtls": {"mode": "PERMISSIVE"},
                                 "portLevelMtls": {"8080": {"mode": "PERMISSIVE"}}}
    assert exception["metadata"]["annotations"]["meshstage.io/reason"] == \
        "web: a legacy client; web-internal: its own TLS"
    # MST0102, an Error of the analysis, would have refused the render
    (runbook,) = [text for path, text in rendered.files.items() if path.endswith("RUNBOOK.md")]
    assert "PeerAuthentication `shop/web-mtls-exception` holds the exceptions of `web`, " \
           "`web-internal`, which select the same pods" in runbook
    assert rendered.flows.counts["refused"] == 0 and rendered.flows.counts["breaks"] == 0


def test_merged_exceptions_keep_each_ports_mode_and_drop_no_wish():
    from ansible_collections.meshstage.mesh.plugins.module_utils.intent.model import (
        MtlsExemption,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.plan.callers import (
        merge_exemptions,
    )
    scraped = MtlsExemption("web", "UNSET", {9090: "PERMISSIVE"}, "scraped")
    legacy = MtlsExemption("web-internal", "UNSET", {8080: "DISABLE", 9090: "PERMISSIVE"},
                           "legacy", ("host ledger-1",))
    merged = merge_exemptions([scraped, legacy])
    assert (merged.service, merged.mode, dict(merged.ports)) == (
        "web", "UNSET", {8080: "DISABLE", 9090: "PERMISSIVE"})
    assert merged.derived_from == ("host ledger-1",)
    assert merge_exemptions([scraped]) is scraped
    whole = MtlsExemption("web-internal", "DISABLE", {}, "legacy")
    merged = merge_exemptions([scraped, whole])
    assert (merged.mode, dict(merged.ports)) == ("DISABLE", {9090: "PERMISSIVE"})


def test_linkerd_refuses_a_server_the_estate_already_has_under_another_name(tmp_path,
                                                                           crd_dir):
    """The estate's own Server on web's pod port, under another name: the API server would
    refuse meshstage's (Linkerd's admission, "identical server spec already exists"), so
    the run does, before anything is written (MST0215)."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.errors import AnalysisError
    estate = tmp_path / "estate.yaml"
    estate.write_text(
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\n"
        "metadata: {name: web-8080, namespace: shop}\n"
        "spec: {podSelector: {matchLabels: {app: web}}, port: 8080, "
        "accessPolicy: all-authenticated}\n")
    with pytest.raises(AnalysisError, match=r"MST0215 Server shop/web-http: Server web-8080 "
                                            r"has the same port \(8080\)"):
        render_stage({"mesh_environment": "dev", "mesh_stage": "authorization",
                      "mesh_provider": "linkerd", "mesh_services": TWINS},
                     StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir],
                                  check_paths=[estate]))
    assert not (tmp_path / "gitops").exists()


def test_istio_keeps_a_deny_to_its_own_ports_on_pods_another_service_shares(tmp_path,
                                                                           crd_dir):
    """An AuthorizationPolicy selects pods: jaeger-collector's deny_other_callers and its own
    DENY rule, without ports, would deny grafana's calls to jaeger-query, which runs on the
    same pods (MST0104 refused it). They are kept to the collector's port."""
    rendered = render_stage(
        {"mesh_environment": "dev", "mesh_stage": "authorization", "mesh_services": SERVICES,
         "mesh_authorization": [
             {"service": "jaeger-collector", "deny_other_callers": True,
              "allow": [{"from": ["grafana"], "methods": ["POST"]}],
              "deny": [{"paths": ["/admin/*"]}]},
             {"service": "jaeger-query", "allow": [{"from": ["grafana"], "methods": ["GET"]}]}]},
        StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir]))
    deny = of_kind(rendered, "AuthorizationPolicy")["jaeger-collector-deny"]["spec"]
    assert deny["rules"] == [
        {"to": [{"operation": {"ports": ["4317"], "paths": ["/admin/*"]}}]},
        {"from": [{"source": {"notPrincipals": ["cluster.local/ns/tracing/sa/grafana"]}}],
         "to": [{"operation": {"ports": ["4317"]}}]}]
    assert rendered.flows.counts["refused"] == 0 and rendered.flows.counts["breaks"] == 0


def test_a_deny_kept_to_its_ports_still_leaves_a_scrape_alone(tmp_path, crd_dir):
    """deny_other_callers on pods another service shares, with a Prometheus scraping without
    an identity: the DENY is kept to the service's port and, there, leaves the scrape's
    path alone."""
    services = [{**s, "calls": []} if s["name"] == "grafana" else s for s in SERVICES]
    rendered = render_stage(
        {"mesh_environment": "dev", "mesh_stage": "authorization", "mesh_services": services,
         "mesh_external_callers": [{"name": "prometheus", "kind": "prometheus",
                                    "namespace": "monitoring",
                                    "calls": ["jaeger-collector:4317/metrics"]}],
         "mesh_authorization": [{"service": "jaeger-collector", "deny_other_callers": True,
                                 "allow": [{"from": ["grafana"]}]}]},
        StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir]))
    deny = of_kind(rendered, "AuthorizationPolicy")["jaeger-collector-deny"]["spec"]
    assert deny["rules"][0]["to"] == [
        {"operation": {"ports": ["4317"], "notPorts": ["4317"]}},
        {"operation": {"ports": ["4317"], "notPaths": ["/metrics"]}}]
