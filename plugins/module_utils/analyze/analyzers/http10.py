"""MST0122: an nginx that proxies to a service in HTTP/1.0, which Istio's sidecars refuse."""

from __future__ import annotations

import re

from ...estate.index import MeshIndex
from ...estate.objects import Resource, Workload
from ...providers.istio.ports import port_protocol
from ..analyzer import Analyzer, Results
from ..finding import Level

_COMMENT = re.compile(r"#[^\n]*")
_HTTP11 = re.compile(r"\bproxy_http_version\s+(1\.1|2(\.0)?)\s*;")
_UPSTREAM = re.compile(r"\bupstream\s+([^\s{]+)\s*\{(.*?)\}", re.S)
_SERVER = re.compile(r"\bserver\s+([^\s;]+)")
_PROXY_PASS = re.compile(r"\bproxy_pass\s+http://([^/;\s]+)")
# what Istio's sidecars serve as HTTP on a port: a name or appProtocol that says so, or
# none (it sniffs, and finds HTTP)
_HTTP = (None, "http", "http2", "grpc", "grpc-web")


class Http10Analyzer(Analyzer):
    """A workload whose nginx configuration (a ConfigMap it mounts or reads) proxies to a
    Service of the estate without ``proxy_http_version 1.1``: nginx speaks HTTP/1.0 to its
    upstreams by default (http://nginx.org/en/docs/http/ngx_http_proxy_module.html
    #proxy_http_version), and Istio's sidecars refuse HTTP/1.0 with 426 Upgrade Required
    unless told to accept it (``PILOT_HTTP10``, or ``ISTIO_META_HTTP10: "1"`` in the proxy's
    metadata): https://istio.io/latest/docs/ops/common-problems/network-issues/
    #envoy-wont-connect-to-my-http10-service. An Error once the nginx's pods or the
    Service's have a sidecar (the outbound one, or the inbound one, answers 426), a Warning
    before. A port Istio takes for TCP (``tcp-``, ``appProtocol: tcp``) is not affected.
    A directive that sets 1.1 anywhere in the file counts for all of it.

    Fails with MST0122::

        apiVersion: v1
        kind: Namespace
        metadata: {name: shop, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: front-nginx, namespace: shop}
        data:
          default.conf: |
            server {
              listen 80;
              location /api/ { proxy_pass http://orders:8080/; }
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
                volumeMounts: [{name: conf, mountPath: /etc/nginx/conf.d}]
              volumes: [{name: conf, configMap: {name: front-nginx}}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: orders, namespace: shop}
        spec:
          selector: {app: orders}
          ports: [{name: http, port: 8080}]

    Passes::

        apiVersion: v1
        kind: Namespace
        metadata: {name: shop, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: front-nginx, namespace: shop}
        data:
          default.conf: |
            server {
              listen 80;
              location /api/ {
                proxy_http_version 1.1;
                proxy_pass http://orders:8080/;
              }
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
                volumeMounts: [{name: conf, mountPath: /etc/nginx/conf.d}]
              volumes: [{name: conf, configMap: {name: front-nginx}}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: orders, namespace: shop}
        spec:
          selector: {app: orders}
          ports: [{name: http, port: 8080}]
    """

    name = "meshstage.Http10Analyzer"
    provider = "istio"
    codes = {"MST0122": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        for workload in index.workloads:
            for entry, text in index.told(workload):
                if entry.config_map is None or entry.source_kind != "ConfigMap" or \
                        "proxy_pass" not in text:
                    continue
                config = _COMMENT.sub("", text)
                if _HTTP11.search(config):
                    continue
                where = f"ConfigMap {workload.namespace}/{entry.config_map} key {entry.key}"
                for service, number in _upstreams(index, workload, config):
                    yield from self._finding(index, workload, where, service, number)

    def _finding(self, index: MeshIndex, workload: Workload, where: str,
                 service: Resource, number: int) -> Results:
        entry = index.service(service.namespace, service.name)
        callees = index.selected_by_service(entry) if entry else []
        injected = [w for w in (workload, *callees) if index.has_sidecar(w)]
        subject = (index.namespace(injected[0].namespace) or injected[0].resource) \
            if injected else workload.resource
        when = "" if injected else " once either has a sidecar"
        yield self.finding(
            subject, "MST0122", f"{workload.resource.kind} {workload.namespace}/"
            f"{workload.resource.name} proxies to Service {service.namespace}/{service.name} "
            f"port {number} with nginx ({where}) and no proxy_http_version 1.1: nginx sends "
            f"its upstreams HTTP/1.0, which Istio's sidecars answer with 426 Upgrade "
            f"Required{when}; add 'proxy_http_version 1.1;' (and 'proxy_set_header "
            "Connection \"\";' for keep-alive), or let the proxies accept HTTP/1.0 "
            "(ISTIO_META_HTTP10: \"1\" in their proxyMetadata).", "",
            level=None if injected else Level.WARNING)


def _upstreams(index: MeshIndex, workload: Workload,
               config: str) -> list[tuple[Resource, int]]:
    """The Services, and their HTTP ports, that the configuration's proxy_pass reaches
    (directly, or through an upstream block's servers)."""
    upstreams = {name: _SERVER.findall(body) for name, body in _UPSTREAM.findall(config)}
    found: dict[tuple[str, str, int], tuple[Resource, int]] = {}
    for target in _PROXY_PASS.findall(config):
        for address in upstreams.get(target, [target]):
            if "$" in address:
                continue  # a variable: resolved at request time
            for entry, named in index.services_named_in(workload.namespace,
                                                        f"http://{address}"):
                number = named.port or 80
                port = next((p for p in entry.ports if p.get("number") == number), None)
                if port is None or port_protocol(port) not in _HTTP:
                    continue
                found.setdefault((entry.resource.namespace, entry.resource.name, number),
                                 (entry.resource, number))
    return list(found.values())
