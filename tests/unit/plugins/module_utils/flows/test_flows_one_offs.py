"""What the flow proof must not take for requests: a Service's UDP port (neither mesh
proxies UDP: Istio's protocol selection leaves it out, Linkerd proxies TCP only), and a
chart's test Pod that carries the labels of the pods it tests (run once by ``helm test``,
as an account of its own). Both made the OpenTelemetry demo's authorization stage refused
for requests nobody makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

ESTATE = """
apiVersion: v1
kind: Service
metadata: {name: collector, namespace: obs}
spec:
  selector: {app: collector}
  ports:
  - {name: otlp, port: 4317, appProtocol: grpc}
  - {name: jaeger-compact, port: 6831, protocol: UDP}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: collector, namespace: obs}
spec:
  selector: {matchLabels: {app: collector}}
  template:
    metadata: {labels: {app: collector}}
    spec:
      serviceAccountName: collector
      containers:
      - name: collector
        image: otelcol
        ports: [{containerPort: 4317}, {containerPort: 6831, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: grafana, namespace: obs}
spec:
  selector: {app: grafana}
  ports: [{name: http, port: 80, targetPort: 3000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: grafana, namespace: obs}
spec:
  selector: {matchLabels: {app: grafana}}
  template:
    metadata: {labels: {app: grafana}}
    spec:
      serviceAccountName: grafana
      containers: [{name: grafana, image: grafana, ports: [{containerPort: 3000}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: grafana-test, namespace: obs, labels: {app: grafana}}
spec:
  serviceAccountName: grafana-test
  containers: [{name: test, image: bats}]
"""
SERVICES = [
    {"name": "collector", "namespace": "obs",
     "ports": [{"name": "otlp", "port": 4317, "protocol": "GRPC"}]},
    {"name": "grafana", "namespace": "obs",
     "ports": [{"name": "http", "port": 80, "target_port": 3000}], "calls": ["collector"]},
]


def render(tmp_path: Path, crd_dir: Path, provider: str) -> Any:
    (tmp_path / "estate.yaml").write_text(ESTATE)
    values = {"mesh_environment": "dev", "mesh_stage": "authorization",
              "mesh_provider": provider, "mesh_services": SERVICES}
    return render_stage(values, StageOptions(gitops_dir=tmp_path / "gitops",
                                             crd_dirs=[crd_dir],
                                             check_paths=[tmp_path / "estate.yaml"]))


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_a_udp_port_and_a_test_pod_make_no_flow(tmp_path, crd_dir, provider):
    rendered = render(tmp_path, crd_dir, provider)
    rows = [row for row in rendered.flows.section if "| calls:" in row]
    assert len(rows) == 1 and "obs/grafana → collector (obs/collector:4317)" in rows[0]
    assert "| allowed |" in rows[0]
    assert not [row for row in rendered.flows.section if ":6831)" in row]
    assert not [row for row in rendered.flows.section if "grafana-test →" in row]
    assert rendered.flows.counts["refused"] == 0 and rendered.flows.counts["breaks"] == 0


# hotelReservation's Consul: a NodePort Service whose DNS port is UDP, and a UDP hostPort
EXPOSED_UDP = """
apiVersion: v1
kind: Service
metadata: {name: consul, namespace: hotel}
spec:
  type: NodePort
  selector: {app: consul}
  ports:
  - {name: http, port: 8500}
  - {name: dns, port: 8600, targetPort: 53, protocol: UDP}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: consul, namespace: hotel}
spec:
  selector: {matchLabels: {app: consul}}
  template:
    metadata: {labels: {app: consul}}
    spec:
      containers:
      - name: consul
        image: consul
        ports:
        - {containerPort: 8500}
        - {containerPort: 53, protocol: UDP}
        - {containerPort: 8301, hostPort: 8301, protocol: UDP}
"""


def test_a_udp_port_lets_no_outside_client_in_that_the_meshes_see():
    from flow_helpers import manifest_resources

    from ansible_collections.meshstage.mesh.plugins.module_utils.estate.callers import (
        outside_calls,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshIndex

    calls = outside_calls(MeshIndex(manifest_resources(EXPOSED_UDP)))
    assert [(c.kind, c.port) for c in calls] == [("exposed", 8500)]


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_strict_mtls_is_not_refused_for_a_udp_node_port(tmp_path, crd_dir, provider):
    (tmp_path / "estate.yaml").write_text(EXPOSED_UDP)
    values = {"mesh_environment": "dev", "mesh_stage": "authorization",
              "mesh_provider": provider,
              "mesh_services": [{"name": "consul", "namespace": "hotel",
                                 "service_account": "default",
                                 "ports": [{"name": "http", "port": 8500}]}],
              "mesh_external_callers": [{"name": "consul", "kind": "external-clients",
                                         "calls": ["consul"]}]}
    rendered = render_stage(values, StageOptions(gitops_dir=tmp_path / "gitops",
                                                 crd_dirs=[crd_dir],
                                                 check_paths=[tmp_path / "estate.yaml"]))
    assert rendered.flows.counts["refused"] == 0 and rendered.flows.counts["breaks"] == 0
    assert not [row for row in rendered.flows.section if ":53)" in row or ":8301)" in row]
