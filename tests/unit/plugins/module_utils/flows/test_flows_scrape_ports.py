"""Prometheus scraping by the ``prometheus.io`` annotations without a port number: Kubernetes
discovery makes one target per port the pod's containers declare, and the example
configuration's ``prometheus.io/port`` rewrite applies only to digits
(``estate.callers.annotation_scrape_ports``). Each such scrape is a call: the estate shows it,
the import declares its scraper, and the check and the flow proof judge it, on both
meshes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flow_helpers import STRICT_MESH, check_lines, manifest_resources

from ansible_collections.meshstage.mesh.plugins.module_utils import pipeline
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import FlowProofError
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.callers import (
    annotation_scrape_ports,
    outside_calls,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import (
    MeshIndex,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.importer import (
    ImportOptions,
    import_estate,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

# the cache's pods: an HTTP port, a metrics port, a UDP port and a native sidecar's port;
# ``{annotations}`` and ``{meta}`` (the namespace's) filled in by each test
ESTATE = """
apiVersion: v1
kind: Namespace
metadata: {{name: shop{meta}}}
---
apiVersion: v1
kind: Service
metadata: {{name: cache, namespace: shop}}
spec: {{selector: {{app: cache}}, ports: [{{name: http, port: 80, targetPort: 8080}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: cache, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: cache}}}}
  template:
    metadata:
      labels: {{app: cache}}
      annotations: {{{annotations}}}
    spec:
      serviceAccountName: cache
      initContainers:
      - {{name: agent, image: agent, restartPolicy: Always,
         ports: [{{name: agent-metrics, containerPort: 9102}}]}}
      - {{name: setup, image: setup, ports: [{{containerPort: 9103}}]}}
      containers:
      - name: cache
        image: cache
        ports:
        - {{name: http, containerPort: 8080}}
        - {{name: metrics, containerPort: 9121, protocol: TCP}}
        - {{name: gossip, containerPort: 7946, protocol: UDP}}
        - {{name: http-again, containerPort: 8080}}
      - {{name: logs, image: logs}}
"""
SCRAPE = 'prometheus.io/scrape: "true"'
LINKERD = (", annotations: {linkerd.io/inject: enabled, "
           "config.linkerd.io/default-inbound-policy: all-authenticated}")
ISTIO = ", labels: {istio-injection: enabled}"


def estate(annotations: str, meta: str = "") -> str:
    return ESTATE.format(annotations=annotations, meta=meta)


def cache_workload(annotations: str) -> Any:
    (workload,) = [w for w in MeshIndex(manifest_resources(estate(annotations))).workloads
                   if w.resource.name == "cache"]
    return workload


# --------------------------------------------------------------------------- the ports


@pytest.mark.parametrize("annotations,ports", [
    # a number: that port alone, declared or not (the address rewrite takes any digits)
    (f'{SCRAPE}, prometheus.io/port: "9121"', [9121]),
    (f'{SCRAPE}, prometheus.io/port: "9999"', [9999]),
    # digits that are no port (a typo): the target's address is invalid, nothing is scraped
    (f'{SCRAPE}, prometheus.io/port: "80801"', []),
    (f'{SCRAPE}, prometheus.io/port: "0"', []),
    # no number: every declared TCP port of the containers and the native sidecar, once;
    # not the UDP port, not the init container's, nothing for the container without ports
    (SCRAPE, [8080, 9121, 9102]),
    (f'{SCRAPE}, prometheus.io/port: "metrics"', [8080, 9121, 9102]),
    (f'{SCRAPE}, prometheus.io/port: ""', [8080, 9121, 9102]),
    # not asked: the example configuration keeps only "true"
    ('prometheus.io/port: "9121"', []),
    ('prometheus.io/scrape: "false", prometheus.io/port: "9121"', []),
    ('prometheus.io/scrape: "True"', []),
])
def test_the_ports_prometheus_scrapes_by_annotation(annotations, ports):
    assert annotation_scrape_ports(cache_workload(annotations)) == ports


def test_the_estate_shows_one_scrape_per_declared_port():
    calls = [(call.via, call.target.resource.display, call.port, call.path)
             for call in outside_calls(MeshIndex(manifest_resources(estate(
                 f'{SCRAPE}, prometheus.io/path: /stats'))))
             if call.kind == "scrape"]
    assert calls == [("annotation prometheus.io/scrape", "Deployment shop/cache", port, "/stats")
                     for port in (8080, 9121, 9102)]


def test_a_pod_monitor_scrapes_a_native_sidecars_port_by_its_name():
    """Prometheus's discovery makes targets of init containers' ports too
    (``__meta_kubernetes_pod_container_init``); a native sidecar's runs all along. A
    regular init container's port is no target that answers."""
    monitors = """
---
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: cache, namespace: shop}
spec:
  selector: {matchLabels: {app: cache}}
  podMetricsEndpoints: [{port: agent-metrics}, {port: metrics}]
"""
    calls = [(call.via, call.port) for call in outside_calls(MeshIndex(manifest_resources(
        estate("") + monitors))) if call.kind == "scrape"]
    assert calls == [("endpoint agent-metrics", 9102), ("endpoint metrics", 9121)]
    (line,) = [line for line in check_lines(estate("", LINKERD) + monitors, "linkerd")
               if "9102" in line]
    assert "Prometheus -> cache (shop/cache:9102) http GET /metrics" in line


# --------------------------------------------------------------------------- meshstage check


def test_linkerd_refuses_an_unmeshed_scraper_on_every_declared_port():
    lines = check_lines(estate(SCRAPE, LINKERD), "linkerd")
    assert len(lines) == 3
    for port in (8080, 9121, 9102):
        assert any(f"Prometheus -> cache (shop/cache:{port}) http GET /metrics" in line
                   for line in lines), port
    # with the port named by number, that port alone
    (line,) = check_lines(estate(f'{SCRAPE}, prometheus.io/port: "9121"', LINKERD), "linkerd")
    assert "(shop/cache:9121)" in line


def test_istio_merges_the_metrics_unless_told_not_to():
    """Merging serves an annotation scrape on the agent's port 15020, outside STRICT; with
    it off, each declared port is scraped through the sidecar, in plaintext."""
    assert check_lines(estate(SCRAPE, ISTIO) + STRICT_MESH, "istio") == []
    lines = check_lines(estate(f'{SCRAPE}, prometheus.istio.io/merge-metrics: "false"', ISTIO)
                        + STRICT_MESH, "istio")
    assert sorted(int(line.split("(shop/cache:")[1].split(")")[0]) for line in lines) == \
        [8080, 9102, 9121]


# --------------------------------------------------------------------------- the import


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_the_import_declares_the_scraper_of_every_scraped_port(provider):
    """The port a Service port sends to, and the others, which no Service port sends to:
    those become the service's ``pod_ports``, reached at the pods' own addresses."""
    imported = import_estate(manifest_resources(estate(SCRAPE)), ImportOptions(provider=provider))
    (prometheus,) = [c for c in imported.shared["mesh_external_callers"]
                     if c["kind"] == "prometheus"]
    assert prometheus["calls"] == ["cache:8080", "cache:9102", "cache:9121"]
    (cache,) = [s for s in imported.shared["mesh_services"] if s["name"] == "cache"]
    assert cache["pod_ports"] == [9102, 9121]
    notes = " ".join(t for path, texts in imported.notes.items()
                     if path.startswith("mesh_external_callers[0]") for t in texts)
    assert "found from Deployment shop/cache (annotation prometheus.io/scrape)" in notes
    assert "not written" not in notes


# --------------------------------------------------------------------------- the flow proof


def stage(tmp_path: Path, callers: bool, crd_dir: Path) -> Any:
    path = tmp_path / "estate.yaml"
    path.write_text(estate(f'{SCRAPE}, prometheus.io/port: "metrics"'))
    variables: dict[str, Any] = {
        "mesh_environment": "dev", "mesh_stage": "authorization", "mesh_provider": "linkerd",
        "mesh_services": [{"name": "cache", "namespace": "shop",
                           "ports": [{"name": "http", "port": 80, "target_port": 8080}]}],
    }
    if callers:
        variables["mesh_external_callers"] = [
            {"name": "prometheus", "kind": "prometheus", "namespace": "monitoring",
             "calls": ["cache"]}]
    return render_stage(variables, StageOptions(gitops_dir=tmp_path / "gitops",
                                                check_paths=[path], crd_dirs=[crd_dir]))


def test_the_flow_proof_refuses_authorization_that_cuts_the_scrape_off(tmp_path, monkeypatch,
                                                                       crd_dir):
    monkeypatch.setattr(pipeline, "_analyze", lambda *args, **kwargs: [])
    with pytest.raises(FlowProofError) as refused:
        stage(tmp_path, callers=False, crd_dir=crd_dir)
    assert "Prometheus -> cache (shop/cache:8080) http GET /metrics" in str(refused.value)


def test_a_declared_prometheus_still_scrapes_the_ports_its_calls_do_not_name(
        tmp_path, monkeypatch, crd_dir):
    """``mesh_external_callers`` names the service's port (8080), which authorization then
    admits; the annotations also have the pods' metrics ports scraped, which no Service port
    sends to, and which Linkerd's default policy deny (meshstage's at authorization) then
    refuses. The proof judges those with the declared Prometheus as the caller."""
    monkeypatch.setattr(pipeline, "_analyze", lambda *args, **kwargs: [])
    with pytest.raises(FlowProofError) as refused:
        stage(tmp_path, callers=True, crd_dir=crd_dir)
    text = str(refused.value)
    assert "2 request flow(s)" in text and "shop/cache:8080" not in text
    for port in (9121, 9102):
        assert f"monitoring/prometheus -> cache (shop/cache:{port}) http GET /metrics " \
               "[scrape: prometheus.io/scrape]" in text
