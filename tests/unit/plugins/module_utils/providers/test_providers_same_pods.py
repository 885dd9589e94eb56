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
