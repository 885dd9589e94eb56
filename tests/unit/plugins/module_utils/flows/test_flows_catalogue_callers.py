"""A Prometheus that runs beside services of the catalogue (Grafana, kube-state-metrics in
``monitoring``) and scrapes what the ``prometheus.io`` annotations of Services name, as Sock
Shop's does (the example configuration's ``kubernetes-service-endpoints`` job). Its pods are
a service of the catalogue (Grafana calls it) and a caller outside it (its scrapes reach pod
addresses); the injection waves decide its proxy. Before, the import dropped it from both,
and the scrapes of the Services' endpoints were no calls at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentErrors
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.callers import outside_calls
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshIndex
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.importer import (
    Imported,
    ImportOptions,
    import_estate,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

ESTATE = """
apiVersion: v1
kind: Service
metadata:
  name: carts
  namespace: shop
  annotations: {prometheus.io/scrape: "true"}
spec:
  selector: {app: carts}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: carts, namespace: shop}
spec:
  selector: {matchLabels: {app: carts}}
  template:
    metadata: {labels: {app: carts}}
    spec:
      serviceAccountName: carts
      containers: [{name: carts, image: carts, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata:
  name: rabbitmq
  namespace: shop
  annotations: {prometheus.io/scrape: "true", prometheus.io/port: "9090"}
spec:
  selector: {app: rabbitmq}
  ports: [{name: amqp, port: 5672}, {name: metrics, port: 9090}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: rabbitmq, namespace: shop}
spec:
  selector: {matchLabels: {app: rabbitmq}}
  template:
    metadata: {labels: {app: rabbitmq}}
    spec:
      serviceAccountName: rabbitmq
      containers:
      - {name: rabbitmq, image: rabbitmq, ports: [{containerPort: 5672}]}
      - {name: exporter, image: rabbitmq-exporter, ports: [{containerPort: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: prometheus, namespace: monitoring}
spec:
  selector: {app: prometheus}
  ports: [{name: http, port: 9090}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus, namespace: monitoring}
spec:
  selector: {matchLabels: {app: prometheus}}
  template:
    metadata: {labels: {app: prometheus}}
    spec:
      serviceAccountName: prometheus
      containers: [{name: prometheus, image: prom/prometheus, ports: [{containerPort: 9090}]}]
---
apiVersion: v1
kind: Service
metadata: {name: grafana, namespace: monitoring}
spec:
  selector: {app: grafana}
  ports: [{name: http, port: 80, targetPort: 3000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: grafana, namespace: monitoring}
spec:
  selector: {matchLabels: {app: grafana}}
  template:
    metadata: {labels: {app: grafana}}
    spec:
      serviceAccountName: grafana
      containers:
      - name: grafana
        image: grafana
        ports: [{containerPort: 3000}]
        env: [{name: PROMETHEUS_URL, value: "http://prometheus:9090"}]
"""


def _import() -> Imported:
    manifests = Manifests()
    add_text(manifests, ESTATE, "estate.yaml")
    return import_estate(manifests.resources, ImportOptions())


def render(tmp_path: Path, crd_dir: Path, values: dict[str, Any]) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "estate.yaml").write_text(ESTATE)
    return render_stage(values, StageOptions(gitops_dir=tmp_path / "gitops",
                                             crd_dirs=[crd_dir],
                                             check_paths=[tmp_path / "estate.yaml"]))


def test_the_endpoints_of_an_annotated_service_are_scraped_at_the_pods():
    manifests = Manifests()
    add_text(manifests, ESTATE, "estate.yaml")
    calls = [(c.target.resource.name, c.port, c.path) for c in
             outside_calls(MeshIndex(manifests.resources)) if c.origin.kind == "Service"]
    # carts: its target port; rabbitmq: the port prometheus.io/port names, not 5672
    assert calls == [("carts", 8080, "/metrics"), ("rabbitmq", 9090, "/metrics")]


def test_the_import_keeps_a_prometheus_beside_the_catalogue_as_a_service_and_a_caller():
    shared = _import().shared
    services = {s["name"]: s for s in shared["mesh_services"]}
    assert services["grafana"]["calls"] == ["prometheus"]
    assert "prometheus" in services   # Grafana calls it: it stays a service
    (caller,) = shared["mesh_external_callers"]
    assert caller == {"name": "prometheus", "kind": "prometheus", "namespace": "monitoring",
                      "calls": ["carts", "rabbitmq:9090"]}


def test_a_caller_in_a_namespace_of_the_catalogue_gets_the_proxy_with_its_wave():
    shared = _import().shared
    waves = [{"name": "apps", "namespaces": ["shop"]},
             {"name": "monitoring", "namespaces": ["monitoring"]}]
    for injected, proxy in ((1, False), (2, True)):
        intent, _ = parse_intent({**shared, "mesh_environment": "dev",
                                  "mesh_stage": "authorization",
                                  "mesh_injection_waves": waves,
                                  "mesh_injected_waves": injected})
        (caller,) = intent.external_callers
        assert caller.in_catalogue and caller.inject is proxy


def test_a_caller_in_a_namespace_of_the_catalogue_takes_no_inject():
    shared = _import().shared
    caller = {**shared["mesh_external_callers"][0], "inject": True}
    with pytest.raises(IntentErrors) as error:
        parse_intent({**shared, "mesh_environment": "dev", "mesh_stage": "injection",
                      "mesh_external_callers": [caller]})
    assert "mesh_external_callers[0].inject: True is not for a caller in monitoring, a " \
           "namespace of mesh_services: the injection waves decide" in str(error.value)


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_every_stage_keeps_the_scrapes_and_grafanas_queries(tmp_path, crd_dir, provider):
    shared = _import().shared
    for stage in ("injection", "strict_mtls", "authorization"):
        rendered = render(tmp_path / stage, crd_dir, {
            **shared, "mesh_environment": "dev", "mesh_stage": stage,
            "mesh_provider": provider})
        counts = rendered.flows.counts
        assert counts["breaks"] == 0 and counts["refused"] == 0, (stage, counts)
        rows = rendered.flows.section
        for wanted in ("(shop/carts:8080) http GET /metrics",
                       "(shop/rabbitmq:9090) http GET /metrics",
                       "monitoring/grafana → prometheus (monitoring/prometheus:9090)"):
            assert any(wanted in row and "| allowed |" in row for row in rows), (stage, wanted)
        namespaces = [item.obj["metadata"]["name"] for item in rendered.objects
                      if item.obj["kind"] == "Namespace"]
        assert len(namespaces) == len(set(namespaces)), namespaces


def test_without_the_caller_the_scrapes_of_the_endpoints_are_refused(tmp_path, crd_dir):
    """The Service annotations are scrapes Linkerd's default deny refuses: the analysis
    finds them, and names the Service."""
    shared = {**_import().shared, "mesh_external_callers": []}
    with pytest.raises(Exception) as error:
        render(tmp_path, crd_dir, {**shared, "mesh_environment": "dev",
                                   "mesh_stage": "authorization", "mesh_provider": "linkerd"})
    assert "MST0213" in str(error.value)
    assert "Service shop/carts (annotation prometheus.io/scrape, of its endpoints)" \
        in str(error.value)
