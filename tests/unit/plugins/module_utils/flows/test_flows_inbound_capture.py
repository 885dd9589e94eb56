"""Istio: a pod whose annotations leave a port out of its sidecar's inbound redirection
(``traffic.sidecar.istio.io/includeInboundPorts``, ``excludeInboundPorts``) takes
connections to it directly: PeerAuthentication and AuthorizationPolicy never see them, so a
plaintext client keeps working under STRICT; a client's sidecar still sends Istio mTLS
there (auto mTLS goes by the pod), which the application cannot read. The analysis and the
flow proof judge both the same way (``providers/istio/ports.uncaptured_inbound``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flow_helpers import EXPOSED_WEB, STRICT_MESH, check_lines, manifest_resources

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import analyze
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import FlowProofError
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.istio.ports import (
    uncaptured_inbound,
)

INCLUDE = "traffic.sidecar.istio.io/includeInboundPorts"
EXCLUDE = "traffic.sidecar.istio.io/excludeInboundPorts"


@pytest.mark.parametrize("annotations,port,left_out", [
    ({}, 8080, False),                                   # the injector's default: "*"
    ({INCLUDE: "*"}, 8080, False),
    ({INCLUDE: ""}, 8080, True),                         # an empty list: none redirected
    ({INCLUDE: "  "}, 8080, True),
    ({INCLUDE: "8080, 9090"}, 9090, False),
    ({INCLUDE: "8080"}, 9090, True),
    ({EXCLUDE: "80,443"}, 443, True),                    # out of "*"
    ({EXCLUDE: "80,443"}, 8443, False),
    ({INCLUDE: "*", EXCLUDE: " 8080 "}, 8080, True),
    ({INCLUDE: "8080", EXCLUDE: "8080"}, 8080, False),   # exclude applies to "*" only
])
def test_the_ports_a_sidecar_leaves_alone(annotations, port, left_out):
    why = uncaptured_inbound(annotations, port)
    assert (why is not None) == left_out
    if left_out:
        assert why is not None and why.startswith("traffic.sidecar.istio.io/")


def exposed_web(annotations: str = "") -> str:
    """A LoadBalancer over web's pods in an injected namespace, under mesh-wide STRICT."""
    web = EXPOSED_WEB.replace("metadata: {labels: {app: web}}",
                              f"metadata: {{labels: {{app: web}}, annotations: {{{annotations}}}}}")
    return ("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: "
            "{istio-injection: enabled}}\n---" + web + STRICT_MESH)


def test_a_plaintext_client_reaches_a_port_the_sidecar_does_not_capture():
    (line,) = check_lines(exposed_web(), "istio")
    assert "a client outside the cluster -> web-external (shop/web:8080)" in line
    for marks in (f'{INCLUDE}: ""', f'{EXCLUDE}: "8080"', f'{INCLUDE}: "9090"'):
        assert check_lines(exposed_web(marks), "istio") == [], marks
    # a port the annotation does not name is still captured, and still STRICT
    assert len(check_lines(exposed_web(f'{EXCLUDE}: "9090"'), "istio")) == 1


@pytest.mark.parametrize("annotations,refused", [
    ("", True), (f'{INCLUDE}: ""', False), (f'{EXCLUDE}: "8080"', False),
    (f'{EXCLUDE}: "9090"', True)])
def test_the_analysis_takes_both_annotations(annotations, refused):
    """MST0121 (a client outside the cluster) took ``excludeInboundPorts`` only."""
    report = analyze(manifest_resources(exposed_web(annotations)), None, providers=("istio",))
    assert ("MST0121" in {finding.code for finding in report.findings}) == refused


def stage(tmp_path: Path, annotations: str, crd_dir: Path) -> Any:
    """web calls api, both injected at the injection stage; api's pods carry
    ``annotations``."""
    tmp_path.mkdir(exist_ok=True)
    estate = tmp_path / "estate.yaml"
    estate.write_text(f"""
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: shop}}
spec: {{selector: {{app: api}}, ports: [{{name: http, port: 8080}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}, annotations: {{{annotations}}}}}
    spec:
      serviceAccountName: api
      containers: [{{name: api, image: api, ports: [{{name: http, containerPort: 8080}}]}}]
""")
    variables = {
        "mesh_environment": "dev", "mesh_stage": "injection", "mesh_provider": "istio",
        "mesh_services": [
            {"name": "web", "namespace": "shop", "ports": [{"name": "http", "port": 80}],
             "calls": ["api"]},
            {"name": "api", "namespace": "shop", "ports": [{"name": "http", "port": 8080}]}],
    }
    return render_stage(variables, StageOptions(gitops_dir=tmp_path / "gitops",
                                                check_paths=[estate], crd_dirs=[crd_dir]))


def test_a_meshed_client_sends_istio_mtls_to_a_port_the_sidecar_does_not_capture(
        tmp_path, crd_dir):
    with pytest.raises(FlowProofError) as refused:
        stage(tmp_path, f'{EXCLUDE}: "8080"', crd_dir)
    text = str(refused.value)
    assert "web -> api (shop/api:8080)" in text
    assert f'port 8080 of api is not captured by its sidecar ({EXCLUDE}: "8080"), and ' \
           in text and "sends it Istio mTLS (auto mTLS)" in text
    assert "a DestinationRule with tls mode DISABLE for port 8080 of api" in text
    rendered = stage(tmp_path / "captured", "", crd_dir)  # the same call, captured: fine
    assert rendered.flows.counts["breaks"] == 0
