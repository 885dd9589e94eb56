"""MST0122: an nginx that proxies to a service in HTTP/1.0 (its default), which Istio's
sidecars answer with 426 Upgrade Required: a Warning while nothing has a sidecar, an Error
once the stage injects either side, and nothing once the configuration says 1.1 or the
port is one Istio takes for TCP."""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_helpers import analyze_text, found

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import AnalysisError
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

ESTATE = """
apiVersion: v1
kind: ConfigMap
metadata: {name: front-nginx, namespace: shop}
data:
  nginx.conf: |
    # the store front's proxy
    upstream orders_api { server orders.shop.svc.cluster.local:8080; keepalive 8; }
    server {
      listen 80;
      location /api/ { proxy_pass http://orders_api/; }
      location /catalog/ { proxy_pass http://catalog:9090/; }
      location /static/ { root /usr/share/nginx/html; }
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: front, namespace: shop}
spec:
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec:
      containers:
      - name: nginx
        image: nginx
        ports: [{containerPort: 80}]
        volumeMounts: [{name: conf, mountPath: /etc/nginx/nginx.conf, subPath: nginx.conf}]
      volumes: [{name: conf, configMap: {name: front-nginx}}]
---
apiVersion: v1
kind: Service
metadata: {name: front, namespace: shop}
spec: {selector: {app: front}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: orders, namespace: shop}
spec: {selector: {app: orders}, ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: shop}
spec: {selector: {app: catalog}, ports: [{name: {catalog_port}, port: 9090}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  template:
    metadata: {labels: {app: orders}}
    spec: {containers: [{name: orders, image: orders, ports: [{containerPort: 8080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: catalog, namespace: shop}
spec:
  selector: {matchLabels: {app: catalog}}
  template:
    metadata: {labels: {app: catalog}}
    spec: {containers: [{name: catalog, image: catalog, ports: [{containerPort: 9090}]}]}
"""


def estate(catalog_port: str = "catalog-api", http11: bool = False) -> str:
    text = ESTATE.replace("{catalog_port}", catalog_port)
    if http11:
        text = text.replace("listen 80;", "listen 80;\n      proxy_http_version 1.1;")
    return text


def test_every_upstream_an_nginx_proxies_to_in_http10_is_said():
    """Directly, and through an upstream block; a port with a name Istio does not know is
    sniffed, and found HTTP. Nothing has a sidecar: Warnings, on the workload."""
    report = analyze_text(estate(), "meshstage.Http10Analyzer")
    assert found(report) == [("MST0122", "Deployment shop/front")] * 2
    messages = sorted(f.message for f in report.findings)
    assert all(f.level.value == "Warning" for f in report.findings)
    assert "proxies to Service shop/catalog port 9090 with nginx (ConfigMap shop/front-nginx " \
           "key nginx.conf) and no proxy_http_version 1.1" in messages[0]
    assert "Service shop/orders port 8080" in messages[1]
    assert "426 Upgrade Required once either has a sidecar" in messages[1]


def test_http11_or_a_tcp_port_is_fine():
    assert found(analyze_text(estate(http11=True), "meshstage.Http10Analyzer")) == []
    report = analyze_text(estate("tcp-catalog"), "meshstage.Http10Analyzer")
    assert [f.message.split(" port ")[0] for f in report.findings] == [
        "Deployment shop/front proxies to Service shop/orders"]


def _variables(stage: str) -> dict:
    services = [{"name": name, "namespace": "shop", "service_account": "default",
                 "ports": [{"name": "http", "port": port}]}
                for name, port in (("front", 80), ("orders", 8080), ("catalog", 9090))]
    services[0]["calls"] = ["orders", "catalog"]
    return {"mesh_environment": "dev", "mesh_stage": stage, "mesh_services": services}


def test_the_stage_that_injects_an_nginx_in_http10_is_refused(tmp_path, crd_dir):
    path = tmp_path / "estate.yaml"
    path.write_text(estate("http"))
    options = StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir],
                           check_paths=[Path(path)])
    render_stage(_variables("permissive_mtls"), options)
    with pytest.raises(AnalysisError, match=r"Error MST0122 Namespace shop: Deployment "
                                            r"shop/front proxies to Service shop/(catalog|orders)"):
        render_stage(_variables("injection"), options)
    path.write_text(estate("http", http11=True))
    render_stage(_variables("injection"), options)
