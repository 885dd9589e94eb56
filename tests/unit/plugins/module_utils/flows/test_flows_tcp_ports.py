"""Istio: a workload port that the Services sending to it name as TCP is TCP on the pod's
sidecar too, whatever the client speaks, and there an AuthorizationPolicy rule with HTTP
fields (methods, paths) does not apply: an ALLOW rule made of them is dropped. The flow
proof judges an HTTP scrape of such a port as TCP, and meshstage admits Prometheus there by
port (``providers/istio/authorization.tcp_ports``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flow_helpers import check_lines

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

# cache's pods serve HTTP on 8080 and metrics on 9404; a PodMonitor scrapes 9404, and the
# only ALLOW rule for it names GET /metrics; ``{name}`` is the Service's name of 9404
ESTATE = """
apiVersion: v1
kind: Namespace
metadata: {{name: shop, labels: {{istio-injection: enabled}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: cache, namespace: shop}}
spec:
  selector: {{app: cache}}
  ports: [{{name: http, port: 80, targetPort: 8080}}, {{name: {name}, port: 9404}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: cache, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: cache}}}}
  template:
    metadata: {{labels: {{app: cache}}}}
    spec:
      containers:
      - name: cache
        image: cache
        ports: [{{name: http, containerPort: 8080}}, {{name: metrics, containerPort: 9404}}]
---
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {{name: cache, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: cache}}}}
  podMetricsEndpoints: [{{port: metrics}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: cache-metrics, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: cache}}}}
  action: ALLOW
  rules:
  - to: [{{operation: {{methods: [GET], paths: [/metrics], ports: ["9404"]}}}}]
"""


def test_an_http_scrape_of_a_tcp_port_is_judged_as_tcp():
    (line,) = check_lines(ESTATE.format(name="tcp-metrics"), "istio")
    assert "Prometheus -> cache (shop/cache:9404) http GET /metrics" in line
    assert "port 9404 is TCP on the destination's sidecar (Service shop/cache port " \
           "tcp-metrics (tcp)), where Istio drops an ALLOW rule's HTTP fields" in line


@pytest.mark.parametrize("name", ["http-metrics", "metrics"])
def test_an_http_or_sniffed_port_takes_the_rules_http_fields(name):
    assert check_lines(ESTATE.format(name=name), "istio") == []


def stage(tmp_path: Path, crd_dir: Path, provider: str = "istio") -> Any:
    """kafka's peers talk on 9404 (TCP, its -peers Service), where Prometheus scrapes too."""
    variables = {
        "mesh_environment": "dev", "mesh_stage": "authorization", "mesh_provider": provider,
        "mesh_services": [
            {"name": "kafka", "namespace": "data", "kind": "StatefulSet",
             "ports": [{"name": "http-admin", "port": 8080},
                       {"name": "tcp-client", "port": 9092, "protocol": "TCP"}],
             "peer_ports": [{"port": 9404, "protocol": "TCP"}]}],
        "mesh_external_callers": [
            {"name": "prometheus", "kind": "prometheus", "namespace": "monitoring",
             "service_account": "prometheus", "calls": ["kafka:8080", "kafka:9404"]}],
    }
    return render_stage(variables, StageOptions(gitops_dir=tmp_path / "gitops",
                                                crd_dirs=[crd_dir]))


def test_prometheus_is_admitted_by_port_on_a_tcp_port(tmp_path, crd_dir):
    rendered = stage(tmp_path, crd_dir)
    (policy,) = [item.obj for item in rendered.objects
                 if item.obj["kind"] == "AuthorizationPolicy"
                 and item.obj["metadata"]["name"] == "kafka-allow"]
    scrape = [rule for rule in policy["spec"]["rules"] if "from" not in rule]
    # two rules: Istio drops a whole rule on a TCP port when any operation has HTTP fields
    assert scrape == [
        {"to": [{"operation": {"ports": ["8080"], "methods": ["GET"], "paths": ["/metrics"]}}]},
        {"to": [{"operation": {"ports": ["9404"]}}]}]
    rows = [line for line in rendered.flows.section
            if "(data/kafka:9404) http GET /metrics" in line]
    assert len(rows) == 1 and "| allowed |" in rows[0]
    assert rendered.flows.counts["breaks"] == 0


def test_linkerd_admits_prometheus_on_the_server_of_a_port_it_cannot_route(tmp_path, crd_dir):
    """A route holds the scrape's GET on the HTTP port; the TCP peer port has no route, so
    Prometheus is admitted on its Server (it was left out, and the scrape refused)."""
    rendered = stage(tmp_path, crd_dir, "linkerd")
    rows = [line for line in rendered.flows.section
            if "(data/kafka:9404) http GET /metrics" in line]
    assert len(rows) == 1 and "| allowed |" in rows[0]
    assert rendered.flows.counts["breaks"] == 0 and rendered.flows.counts["refused"] == 0

