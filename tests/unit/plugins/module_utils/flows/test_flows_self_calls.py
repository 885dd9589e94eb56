"""A service that calls itself through its Service (a liveness probe that curls its own
URL, as kompose's Spring estates write): the request leaves the pod through its proxy, so
it is a flow of its own, judged like any other. With Istio, a Sidecar that does not list
the service's own host sends it through the passthrough cluster as plaintext, which STRICT
refuses; meshstage lists it once ``calls`` names the service itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

ESTATE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: config-server, namespace: pc}
spec:
  selector: {matchLabels: {app: config-server}}
  template:
    metadata: {labels: {app: config-server}}
    spec:
      containers:
      - name: config
        image: config
        ports: [{containerPort: 8888}]
        livenessProbe: {exec: {command: [sh, -c, "curl -I http://config-server:8888"]}}
---
apiVersion: v1
kind: Service
metadata: {name: config-server, namespace: pc}
spec: {selector: {app: config-server}, ports: [{name: http, port: 8888}]}
"""


def render(tmp_path: Path, crd_dir: Path, provider: str, stage: str) -> Any:
    estate = tmp_path / "estate.yaml"
    estate.write_text(ESTATE)
    service = {"name": "config-server", "namespace": "pc", "service_account": "default",
               "ports": [{"name": "http", "port": 8888}], "calls": ["config-server"]}
    return render_stage(
        {"mesh_environment": "dev", "mesh_stage": stage, "mesh_provider": provider,
         "mesh_services": [service]},
        StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir],
                     check_paths=[estate]))


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
@pytest.mark.parametrize("stage", ["strict_mtls", "authorization"])
def test_a_service_that_calls_itself_is_a_flow_that_keeps_working(tmp_path, crd_dir,
                                                                  provider, stage):
    rendered = render(tmp_path, crd_dir, provider, stage)
    (own,) = [line for line in rendered.flows.section if "| calls: " in line]
    assert own.startswith("| pc/config-server → config-server (pc/config-server:8888) http "
                          "| calls: mesh_services[0].calls[0] | allowed |")
    assert rendered.flows.counts["refused"] == 0
    if provider == "istio":
        (sidecar,) = [o.obj for o in rendered.objects if o.obj["kind"] == "Sidecar"]
        assert "pc/config-server.pc.svc.cluster.local" in sidecar["spec"]["egress"][0]["hosts"]
