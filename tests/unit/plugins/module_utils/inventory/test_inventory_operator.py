"""kube-prometheus's monitoring stack: the manifests hold prometheus-operator's Prometheus and
Alertmanager resources, the cluster the StatefulSets the operator runs for them. meshstage
takes those pods as the estate's (stand-ins: their labels, account and ports), so a Sidecar
that selects them is no IST0101, the Prometheus is the caller with its own account, and its
alerts go to the Alertmanager's pods' own addresses (``spec.alerting``)."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.stand_in import generated
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.importer import (
    ImportOptions,
    import_estate,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

STACK = """
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: k8s, namespace: monitoring}
spec:
  podMetadata:
    labels: {app.kubernetes.io/component: prometheus,
             app.kubernetes.io/part-of: kube-prometheus}
  serviceAccountName: prometheus-k8s
  alerting:
    alertmanagers: [{name: alertmanager-main, namespace: monitoring, port: web}]
  serviceMonitorSelector: {}
---
apiVersion: monitoring.coreos.com/v1
kind: Alertmanager
metadata: {name: main, namespace: monitoring}
spec:
  podMetadata: {labels: {app.kubernetes.io/component: alert-router}}
  serviceAccountName: alertmanager-main
---
apiVersion: v1
kind: Service
metadata: {name: prometheus-k8s, namespace: monitoring}
spec:
  selector: {app.kubernetes.io/component: prometheus, app.kubernetes.io/instance: k8s,
             app.kubernetes.io/name: prometheus, app.kubernetes.io/part-of: kube-prometheus}
  ports: [{name: web, port: 9090, targetPort: web}]
---
apiVersion: v1
kind: Service
metadata: {name: alertmanager-main, namespace: monitoring,
           labels: {app.kubernetes.io/name: alertmanager}}
spec:
  selector: {app.kubernetes.io/component: alert-router, app.kubernetes.io/instance: main,
             app.kubernetes.io/name: alertmanager}
  ports: [{name: web, port: 9093, targetPort: web}]
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: alertmanager-main, namespace: monitoring}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: alertmanager}}
  endpoints: [{port: web, interval: 30s}]
"""


def _imported():
    manifests = Manifests()
    add_text(manifests, STACK, "stack.yaml")
    resources = [*manifests.resources, *generated(manifests.resources)]
    return import_estate(resources, ImportOptions())


def test_the_operators_statefulsets_stand_in_for_its_resources():
    manifests = Manifests()
    add_text(manifests, STACK, "stack.yaml")
    found = {(r.kind, r.name): r for r in generated(manifests.resources)}
    assert set(found) == {("StatefulSet", "prometheus-k8s"), ("Service", "prometheus-operated"),
                          ("StatefulSet", "alertmanager-main"),
                          ("Service", "alertmanager-operated")}
    labels = found[("StatefulSet", "prometheus-k8s")].obj["spec"]["template"]["metadata"][
        "labels"]
    assert labels["prometheus"] == "k8s" and labels["app.kubernetes.io/name"] == "prometheus"
    assert labels["app.kubernetes.io/part-of"] == "kube-prometheus"  # podMetadata's


def test_the_import_knows_the_prometheus_and_where_its_alerts_go():
    imported = _imported()
    services = {s["name"]: s for s in imported.shared["mesh_services"]}
    assert services["prometheus-k8s"]["kind"] == "StatefulSet"
    # its pods run as the service's own name: meshstage's default, not written
    assert "service_account" not in services["prometheus-k8s"]
    assert services["prometheus-k8s"]["calls"] == ["alertmanager-main"]
    assert services["alertmanager-main"]["pod_addressed"] is True
    (prometheus,) = [c for c in imported.shared["mesh_external_callers"]
                     if c["kind"] == "prometheus"]
    assert prometheus["service_account"] == "prometheus-k8s"
    assert not [w for w in imported.warnings if "placeholders" in w]


def test_the_stack_renders_every_stage_with_its_pods_selected(tmp_path, crd_dir):
    estate = tmp_path / "stack.yaml"
    estate.write_text(STACK)
    variables = {**_imported().variables, "mesh_injected_waves": 1}
    for provider in ("istio", "linkerd"):
        for stage in ("traffic", "strict_mtls", "authorization"):
            rendered = render_stage(
                {**variables, "mesh_provider": provider, "mesh_stage": stage},
                StageOptions(gitops_dir=tmp_path / provider / stage, crd_dirs=[crd_dir],
                             check_paths=[Path(estate)]))
            assert rendered.flows.counts["refused"] == 0, (provider, stage)
