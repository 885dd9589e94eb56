"""Ports the pods serve that no Service declares (``pod_ports``): Prometheus scraping a
management or metrics port at the pods' own addresses, clients outside the cluster on a
``hostPort``. The import writes them from the estate's monitors, annotations and host ports;
the intent lets ``mesh_external_callers`` name them (``<service>:<port>``, with the path a
scrape GETs there when it is not the caller's ``metrics_path``); both meshes keep those
requests flowing at every stage, and the flow proof judges them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentErrors
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

# orders-api serves its API on 8080 (Service port 80) and Spring Boot's management port on
# 8081, which no Service declares: a PodMonitor scrapes /actuator/prometheus there. cache
# serves metrics on 9102 by annotation, at /metrics. storefront calls both; a Prometheus
# of its own runs in monitoring.
ESTATE = """
apiVersion: v1
kind: Service
metadata: {name: orders-api, namespace: shop}
spec:
  selector: {app: orders-api}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders-api, namespace: shop}
spec:
  selector: {matchLabels: {app: orders-api}}
  template:
    metadata: {labels: {app: orders-api}}
    spec:
      serviceAccountName: orders-api
      containers:
      - name: app
        image: orders-api
        ports: [{name: http, containerPort: 8080}, {name: management, containerPort: 8081}]
---
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: orders-api, namespace: monitoring}
spec:
  namespaceSelector: {matchNames: [shop]}
  selector: {matchLabels: {app: orders-api}}
  podMetricsEndpoints: [{port: management, path: /actuator/prometheus}]
---
apiVersion: v1
kind: Service
metadata: {name: cache, namespace: shop}
spec:
  selector: {app: cache}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cache, namespace: shop}
spec:
  selector: {matchLabels: {app: cache}}
  template:
    metadata:
      labels: {app: cache}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: "9102"}
    spec:
      serviceAccountName: cache
      containers:
      - name: app
        image: cache
        ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9102}]
---
apiVersion: v1
kind: Service
metadata: {name: storefront, namespace: shop}
spec:
  selector: {app: storefront}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: storefront, namespace: shop}
spec:
  selector: {matchLabels: {app: storefront}}
  template:
    metadata: {labels: {app: storefront}}
    spec:
      serviceAccountName: storefront
      containers:
      - name: app
        image: storefront
        ports: [{name: http, containerPort: 8080}]
        env:
        - {name: ORDERS_URL, value: "http://orders-api.shop.svc.cluster.local"}
        - {name: CACHE_URL, value: "http://cache.shop.svc.cluster.local"}
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
      containers: [{name: prometheus, image: prom/prometheus}]
"""

PROMETHEUS = {"name": "prometheus", "kind": "prometheus", "namespace": "monitoring",
              "calls": ["cache:9102", "orders-api:8081/actuator/prometheus"]}
SERVICES = [
    {"name": "orders-api", "namespace": "shop",
     "ports": [{"name": "http", "port": 80, "target_port": 8080}], "pod_ports": [8081]},
    {"name": "cache", "namespace": "shop",
     "ports": [{"name": "http", "port": 80, "target_port": 8080}], "pod_ports": [9102]},
    {"name": "storefront", "namespace": "shop",
     "ports": [{"name": "http", "port": 80, "target_port": 8080}],
     "calls": ["orders-api", "cache"]},
]


def _import(text: str) -> Imported:
    manifests = Manifests()
    add_text(manifests, text, "estate.yaml")
    return import_estate(manifests.resources, ImportOptions())


def _service(imported: Imported, name: str) -> dict[str, Any]:
    return next(s for s in imported.shared["mesh_services"] if s["name"] == name)


def variables(provider: str = "istio", stage: str = "authorization",
              **overrides: Any) -> dict[str, Any]:
    return {"mesh_environment": "dev", "mesh_stage": stage, "mesh_provider": provider,
            "mesh_services": SERVICES, "mesh_external_callers": [PROMETHEUS], **overrides}


def render(tmp_path: Path, crd_dir: Path, values: dict[str, Any]) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    estate = tmp_path / "estate.yaml"
    estate.write_text(ESTATE)
    return render_stage(values, StageOptions(gitops_dir=tmp_path / "gitops",
                                             crd_dirs=[crd_dir], check_paths=[estate]))


def objects(rendered: Any, kind: str) -> dict[str, dict[str, Any]]:
    return {item.obj["metadata"]["name"]: item.obj for item in rendered.objects
            if item.obj["kind"] == kind}


def scrape_rows(rendered: Any) -> list[str]:
    return [line for line in rendered.flows.section if "monitoring/prometheus →" in line]


# ---------------------------------------------------------------------------- the import


def test_the_import_makes_a_scraped_port_no_service_declares_a_pod_port():
    imported = _import(ESTATE)
    assert _service(imported, "orders-api")["pod_ports"] == [8081]
    assert _service(imported, "cache")["pod_ports"] == [9102]
    assert "pod_ports" not in _service(imported, "storefront")
    index = [s["name"] for s in imported.shared["mesh_services"]].index("orders-api")
    note = " ".join(imported.notes[f"mesh_services[{index}].pod_ports"])
    assert "PodMonitor monitoring/orders-api" in note and "port 8081 (management)" in note
    assert "which no port of its Service declares" in note


def test_the_import_writes_each_scrapes_path_beside_its_call():
    """One Prometheus GETs /actuator/prometheus from orders-api and /metrics from cache: a
    single ``metrics_path`` would break one of them, so the call says its own path."""
    (caller,) = imported_callers = _import(ESTATE).shared["mesh_external_callers"]
    assert imported_callers == [{"name": "prometheus", "kind": "prometheus",
                                 "namespace": "monitoring",
                                 "calls": ["cache:9102", "orders-api:8081/actuator/prometheus"]}]
    assert "metrics_path" not in caller


def test_the_most_common_scrape_path_becomes_the_metrics_path():
    text = ESTATE.replace('prometheus.io/port: "9102"}',
                          'prometheus.io/port: "9102", prometheus.io/path: /actuator/prometheus}')
    (caller,) = _import(text).shared["mesh_external_callers"]
    assert caller["metrics_path"] == "/actuator/prometheus"
    assert caller["calls"] == ["cache:9102", "orders-api:8081"]


def test_a_host_port_no_service_declares_is_a_pod_port_of_the_outside_clients():
    text = ESTATE.replace("{name: metrics, containerPort: 9102}",
                          "{name: metrics, containerPort: 9102}, "
                          "{name: tcp-syslog, containerPort: 5514, hostPort: 514}")
    imported = _import(text)
    assert _service(imported, "cache")["pod_ports"] == [{"port": 5514, "protocol": "TCP"}, 9102]
    outside = [c for c in imported.shared["mesh_external_callers"]
               if c["kind"] == "external-clients"]
    assert outside == [{"name": "cache-host-port", "kind": "external-clients",
                        "calls": ["cache:5514"]}]


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_the_imported_inventory_keeps_every_scrape_at_every_stage(tmp_path, crd_dir, provider):
    shared = _import(ESTATE).shared
    storefront = next(s for s in shared["mesh_services"] if s["name"] == "storefront")
    assert set(storefront["calls"]) == {"orders-api", "cache"}  # read from its env
    for stage in ("injection", "strict_mtls", "authorization"):
        values = {**shared, "mesh_environment": "dev", "mesh_stage": stage,
                  "mesh_provider": provider}
        rendered = render(tmp_path / stage, crd_dir, values)
        assert rendered.flows.counts["breaks"] == 0, stage
        assert rendered.flows.counts["refused"] == 0, stage
        rows = scrape_rows(rendered)
        assert any("(shop/orders-api:8081) http GET /actuator/prometheus" in r and
                   "| allowed |" in r for r in rows), (stage, rows)
        assert any("(shop/cache:9102) http GET /metrics" in r and "| allowed |" in r
                   for r in rows), (stage, rows)


# ---------------------------------------------------------------------------- the intent


def test_pod_ports_are_http_unless_they_say_otherwise():
    intent, _ = parse_intent(variables(mesh_services=[
        {**SERVICES[0], "pod_ports": [8081, {"port": 9404, "protocol": "TCP"}]}],
        mesh_external_callers=[]))
    assert [(p.port, p.protocol) for p in intent.services[0].pod_ports] == \
        [(8081, "HTTP"), (9404, "TCP")]


@pytest.mark.parametrize(("pod_ports", "extra", "message"), [
    ([8080], {}, "mesh_services[0] (orders-api).pod_ports[0]: 8080 is declared by the "
                 "service's ports[0]: its callers reach it through the Service"),
    ([80], {"ports": None}, "pod_ports[0]: 80 is declared by the service's ports[0]"),
    ([8081, 8081], {}, "pod_ports[1]: 8081 is a duplicate pod port"),
    (["management"], {}, "pod_ports[0]: 'management' is not a container port number or "
                         "{port, protocol}"),
    ([{"port": 8081, "protocol": "SOAP"}], {}, "pod_ports[0].protocol: 'SOAP' is not one of"),
])
def test_a_wrong_pod_port_is_refused_naming_the_service_and_the_value(pod_ports, extra,
                                                                       message):
    service = {**SERVICES[0], "pod_ports": pod_ports, **extra}
    service = {k: v for k, v in service.items() if v is not None}
    with pytest.raises(IntentErrors) as error:
        parse_intent(variables(mesh_services=[service], mesh_external_callers=[]))
    assert message in str(error.value)


def test_a_pod_port_cannot_also_be_a_peer_port():
    service = {**SERVICES[0], "kind": "StatefulSet", "peer_ports": [8081]}
    with pytest.raises(IntentErrors, match=r"pod_ports\[0\]: 8081 is a peer port of the "
                                          r"service \(peer_ports\) already"):
        parse_intent(variables(mesh_services=[service], mesh_external_callers=[]))


def test_a_caller_names_a_pod_port_and_the_error_lists_them():
    with pytest.raises(IntentErrors) as error:
        parse_intent(variables(mesh_external_callers=[{**PROMETHEUS, "calls": ["cache:9999"]}]))
    assert "mesh_external_callers[0].calls[0]: 'cache:9999' names no workload port of cache " \
           "(ports: 8080, 9102)" in str(error.value)


@pytest.mark.parametrize(("caller", "message"), [
    ({"name": "nginx", "kind": "ingress-controller", "namespace": "ingress",
      "calls": ["orders-api:8080/api"]},
     "calls[0]: 'orders-api:8080/api' names a path: a path is what a scrape GETs "
     "(kind: prometheus only)"),
    ({**PROMETHEUS, "calls": ["orders-api:8081/actuator/*"]},
     "calls[0]: '/actuator/*' is not <service>[:<port>] and an exact path"),
])
def test_a_call_with_a_path_is_for_a_scrape_and_an_exact_path(caller, message):
    with pytest.raises(IntentErrors) as error:
        parse_intent(variables(mesh_external_callers=[caller]))
    assert message in str(error.value)


def test_each_call_gets_its_own_path_and_the_others_the_metrics_path():
    intent, _ = parse_intent(variables(mesh_external_callers=[
        {**PROMETHEUS, "calls": ["cache", "orders-api:8081/actuator/prometheus"]}]))
    (caller,) = intent.external_callers
    assert caller.paths_at("orders-api", 8081) == ("/actuator/prometheus",)
    assert caller.paths_at("cache", 8080) == ("/metrics",)
    inbound = intent.inbound_callers(intent.by_name["orders-api"])
    assert [(c.ports, c.paths) for c in inbound] == [((8081,), ("/actuator/prometheus",))]


# ---------------------------------------------------------------------------- rendering


def test_istio_keeps_a_pod_port_permissive_and_admits_the_scrape_of_its_path(tmp_path,
                                                                              crd_dir):
    """portLevelMtls applies to a port no Service declares since Istio 1.9 (the passthrough
    filter chain, istio/istio#28601)."""
    rendered = render(tmp_path, crd_dir, variables())
    peer = objects(rendered, "PeerAuthentication")["orders-api-mtls-exception"]
    assert peer["spec"]["portLevelMtls"] == {"8081": {"mode": "PERMISSIVE"}}
    rules = objects(rendered, "AuthorizationPolicy")["orders-api-allow"]["spec"]["rules"]
    assert rules == [
        # storefront reaches the Service's port only: the pod port is Prometheus's
        {"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/storefront"]}}],
         "to": [{"operation": {"ports": ["8080"]}}]},
        {"to": [{"operation": {"ports": ["8081"], "methods": ["GET"],
                               "paths": ["/actuator/prometheus"]}}]}]
    assert rendered.flows.counts["breaks"] == 0 and rendered.flows.counts["refused"] == 0


def test_linkerd_serves_a_pod_port_and_routes_the_scrape_of_its_path(tmp_path, crd_dir):
    rendered = render(tmp_path, crd_dir, variables("linkerd"))
    server = objects(rendered, "Server")["orders-api-pod-8081"]
    assert server["spec"]["port"] == 8081 and server["spec"]["proxyProtocol"] == "HTTP/1"
    assert server["spec"]["podSelector"] == {"matchLabels": {"app": "orders-api"}}
    (route,) = [r for r in objects(rendered, "HTTPRoute").values()
                if r["spec"]["parentRefs"][0]["name"] == "orders-api-pod-8081"]
    assert route["spec"]["rules"] == [{"matches": [
        {"method": "GET", "path": {"type": "Exact", "value": "/actuator/prometheus"}}]}]
    (policy,) = [p for p in objects(rendered, "AuthorizationPolicy").values()
                 if p["spec"]["targetRef"]["name"] == route["metadata"]["name"]]
    assert policy["spec"]["requiredAuthenticationRefs"][0]["name"] == "meshstage-all-networks"
    assert rendered.flows.counts["breaks"] == 0 and rendered.flows.counts["refused"] == 0


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_the_proof_judges_each_scrape_with_its_own_path(tmp_path, crd_dir, provider):
    rendered = render(tmp_path, crd_dir, variables(provider))
    rows = [r for r in scrape_rows(rendered) if "mesh_external_callers" in r]
    assert len(rows) == 2
    assert any("(shop/orders-api:8081) http GET /actuator/prometheus" in r for r in rows)
    assert any("(shop/cache:9102) http GET /metrics" in r for r in rows)
    assert all("| allowed |" in r for r in rows)


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_the_scrape_of_another_path_on_a_pod_port_is_refused(tmp_path, crd_dir, provider):
    """The rules admit the path the call names, not any: a monitor that GETs /metrics from
    orders-api's management port is refused at authorization, on both meshes."""
    text = ESTATE.replace("path: /actuator/prometheus", "path: /metrics")
    estate = tmp_path / "estate.yaml"
    estate.write_text(text)
    with pytest.raises(Exception, match="8081") as error:
        render_stage(variables(provider), StageOptions(
            gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir], check_paths=[estate]))
    assert "PodMonitor monitoring/orders-api" in str(error.value)


def test_the_rendered_inventory_round_trips_through_yaml():
    """The import's calls with paths parse back as the intent reads them."""
    shared = yaml.safe_load(yaml.safe_dump(_import(ESTATE).shared))
    intent, _ = parse_intent({**shared, "mesh_environment": "dev",
                              "mesh_stage": "authorization"})
    (caller,) = intent.external_callers
    assert caller.paths_at("orders-api", 8081) == ("/actuator/prometheus",)
    assert caller.paths_at("cache", 9102) == ("/metrics",)
