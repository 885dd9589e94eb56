"""An aggregated API (KEDA's metrics server behind an APIService): the Kubernetes API server
calls its Service over TLS, without a mesh identity, as it calls a webhook. STRICT refuses
it, and the HorizontalPodAutoscaler and ``kubectl top`` fail, unless the port stays
PERMISSIVE for it (``mesh_external_callers``, kind ``kube-apiserver``), which the import
writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import AnalysisError
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.importer import (
    ImportOptions,
    import_estate,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

ESTATE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: metrics-apiserver, namespace: keda}
spec:
  selector: {matchLabels: {app: metrics-apiserver}}
  template:
    metadata: {labels: {app: metrics-apiserver}}
    spec:
      serviceAccountName: keda-operator
      containers:
      - {name: server, image: keda-metrics-apiserver, ports: [{name: https, containerPort: 6443}]}
---
apiVersion: v1
kind: Service
metadata: {name: metrics-apiserver, namespace: keda}
spec:
  selector: {app: metrics-apiserver}
  ports: [{name: https, port: 443, targetPort: 6443}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  service: {name: metrics-apiserver, namespace: keda}
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
"""


def _variables() -> dict:
    manifests = Manifests()
    add_text(manifests, ESTATE, "estate.yaml")
    return {**import_estate(manifests.resources, ImportOptions()).variables,
            "mesh_injected_waves": 1}


def test_the_import_declares_the_api_server_as_its_caller():
    (caller,) = _variables()["mesh_external_callers"]
    assert caller == {"name": "kube-apiserver", "kind": "kube-apiserver",
                      "calls": ["metrics-apiserver"]}


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_strict_mtls_keeps_the_aggregated_api_reachable_or_refuses(tmp_path, crd_dir,
                                                                  provider):
    estate = tmp_path / "estate.yaml"
    estate.write_text(ESTATE)
    variables = {**_variables(), "mesh_provider": provider, "mesh_stage": "strict_mtls"}
    rendered = render_stage(variables, StageOptions(
        gitops_dir=tmp_path / "declared", crd_dirs=[crd_dir], check_paths=[Path(estate)]))
    (row,) = [line for line in rendered.flows.section if "APIService" in line
              or "mesh_external_callers" in line]
    assert "| allowed |" in row
    undeclared = {k: v for k, v in variables.items() if k != "mesh_external_callers"}
    with pytest.raises(AnalysisError, match="APIService v1beta1.external.metrics.k8s.io "
                                            r"\(aggregated API\)"):
        render_stage(undeclared, StageOptions(gitops_dir=tmp_path / "undeclared",
                                               crd_dirs=[crd_dir], check_paths=[Path(estate)]))
