"""Server-first and pooled protocols on ports of the estate (issue 14, item 4): Istio
sniffs an undeclared port and stalls, Linkerd waits 10 seconds on a port that is not
opaque; realistic NATS manifests, broken and fixed."""

from __future__ import annotations

import pytest
from analysis_helpers import analyze_text, found

NATS = """
apiVersion: v1
kind: Namespace
metadata: {name: messaging, {labels}}
---
apiVersion: v1
kind: Service
metadata: {name: nats, namespace: messaging{service_annotations}}
spec:
  clusterIP: None
  selector: {app.kubernetes.io/name: nats}
  ports:
  - {name: {client}, port: 4222, targetPort: client}
  - {name: monitor, port: 8222, targetPort: monitor}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: nats, namespace: messaging}
spec:
  serviceName: nats
  replicas: 3
  selector: {matchLabels: {app.kubernetes.io/name: nats}}
  template:
    metadata: {labels: {app.kubernetes.io/name: nats}}
    spec:
      containers:
      - name: nats
        image: nats:2.10-alpine
        args: [--config, /etc/nats-config/nats.conf]
        ports:
        - {name: client, containerPort: 4222}
        - {name: cluster, containerPort: 6222}
        - {name: monitor, containerPort: 8222}
"""


def nats(labels: str, client: str = "nats", service_annotations: str = "") -> str:
    return (NATS.replace("{labels}", labels).replace("{client}", client)
            .replace("{service_annotations}", service_annotations))


def test_istio_a_sniffed_nats_port_of_injected_pods_is_an_error():
    report = analyze_text(nats("labels: {istio-injection: enabled}"),
                          "meshstage.ServerFirstAnalyzer")
    assert found(report) == [("MST0112", "Namespace messaging")]
    assert report.errors and "NATS (its name 'nats')" in report.errors[0].message


def test_istio_a_sniffed_nats_port_before_injection_is_a_warning():
    report = analyze_text(nats("labels: {}"), "meshstage.ServerFirstAnalyzer")
    assert [(f.level.value, f.code, f.resource) for f in report.findings] == [
        ("Warning", "MST0112", "Service messaging/nats")]


@pytest.mark.parametrize("client", ["tcp-client", "mysql-client"])
def test_istio_a_declared_port_is_clean(client):
    report = analyze_text(nats("labels: {istio-injection: enabled}", client),
                          "meshstage.ServerFirstAnalyzer")
    assert report.findings == []


def test_linkerd_a_nats_port_that_is_not_opaque_is_a_warning():
    report = analyze_text(nats("annotations: {linkerd.io/inject: enabled}"),
                          "linkerd.OpaquePortsAnalyzer")
    assert found(report) == [("MST0210", "Namespace messaging")]
    assert "its Service" in report.findings[0].message
    assert "the pods of StatefulSet messaging/nats" in report.findings[0].message


def test_linkerd_opaque_on_both_sides_is_clean():
    fixed = nats('annotations: {linkerd.io/inject: enabled, '
                 'config.linkerd.io/opaque-ports: "4222,6222"}',
                 service_annotations=', annotations: {config.linkerd.io/opaque-ports: nats}')
    assert analyze_text(fixed, "linkerd.OpaquePortsAnalyzer").findings == []


def test_linkerd_the_default_opaque_ports_cover_mysql():
    mysql = nats("annotations: {linkerd.io/inject: enabled}", "mysql").replace(
        "4222", "3306")
    assert analyze_text(mysql, "linkerd.OpaquePortsAnalyzer").findings == []
