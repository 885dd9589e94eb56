"""Several Services over one workload, as train-ticket's Jaeger all-in-one Deployment has
(its own Service by ``app: jaeger``, jaeger-query and zipkin by the chart's labels): one
selector for all of them, so the mesh's objects select the pods once, and a call from
outside the catalogue goes to the Service that declares its port."""

from __future__ import annotations

from pathlib import Path

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

JAEGER = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: jaeger, namespace: tracing}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: jaeger}}
  template:
    metadata:
      labels: {app: jaeger, app.kubernetes.io/name: jaeger, app.kubernetes.io/component: all-in-one}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: "16686"}
    spec:
      containers:
      - name: jaeger
        image: jaegertracing/all-in-one
        ports: [{containerPort: 5778}, {containerPort: 16686}, {containerPort: 9411}]
---
apiVersion: v1
kind: Service
metadata: {name: jaeger, namespace: tracing}
spec:
  selector: {app: jaeger}
  ports: [{name: http-config, port: 5778}]
---
apiVersion: v1
kind: Service
metadata: {name: jaeger-query, namespace: tracing}
spec:
  selector: {app.kubernetes.io/name: jaeger, app.kubernetes.io/component: all-in-one}
  ports: [{name: http-query, port: 16686}]
---
apiVersion: v1
kind: Service
metadata: {name: zipkin, namespace: tracing}
spec:
  selector: {app.kubernetes.io/name: jaeger, app.kubernetes.io/component: all-in-one}
  ports: [{name: http-zipkin, port: 9411}]
"""
SHARED = {"app.kubernetes.io/name": "jaeger", "app.kubernetes.io/component": "all-in-one"}


def _imported():
    manifests = Manifests()
    add_text(manifests, JAEGER, "jaeger.yaml")
    return import_estate(manifests.resources, ImportOptions())


def test_services_over_one_workload_get_one_selector():
    imported = _imported()
    services = {s["name"]: s for s in imported.shared["mesh_services"]}
    assert {name: s.get("selector") for name, s in services.items()} == {
        "jaeger": SHARED, "jaeger-query": SHARED, "zipkin": SHARED}
    # written after the namespace, with why
    assert list(services["jaeger"])[:3] == ["name", "namespace", "selector"]
    index = [s["name"] for s in imported.shared["mesh_services"]].index("jaeger")
    assert "the selector of jaeger-query, whose Service selects the same pods" in " ".join(
        imported.notes[f"mesh_services[{index}].selector"])


def test_a_scrape_goes_to_the_service_that_declares_its_port():
    """Prometheus scrapes port 16686, which jaeger-query declares: a call to it, not a pod
    port of the service listed last."""
    imported = _imported()
    (prometheus,) = [c for c in imported.shared["mesh_external_callers"]
                     if c["kind"] == "prometheus"]
    assert prometheus["calls"] == ["jaeger-query"]
    assert not [s for s in imported.shared["mesh_services"] if s.get("pod_ports")]


def test_the_imported_workload_renders_one_sidecar_and_every_stage(tmp_path, crd_dir):
    estate = tmp_path / "jaeger.yaml"
    estate.write_text(JAEGER)
    variables = {**_imported().variables, "mesh_injected_waves": 1}
    for provider in ("istio", "linkerd"):
        for stage in ("traffic", "strict_mtls", "authorization"):
            rendered = render_stage(
                {**variables, "mesh_provider": provider, "mesh_stage": stage},
                StageOptions(gitops_dir=tmp_path / provider / stage, crd_dirs=[crd_dir],
                             check_paths=[Path(estate)]))
            assert rendered.flows.counts["refused"] == 0, (provider, stage)
            sidecars = [o for o in rendered.objects if o.obj["kind"] == "Sidecar"]
            assert len(sidecars) == (1 if provider == "istio" else 0)
