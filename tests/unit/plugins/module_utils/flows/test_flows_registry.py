"""Services whose callers find them in a registry (Consul in DeathStarBench's
hotelReservation, the TeaStore's own registry, Eureka) and call their pods' own addresses,
not their Service's. Istio's sidecars pass requests to a pod address that no Service
declares through as plaintext, which STRICT refuses (istio/istio#37431); a headless Service
over the pods makes the sidecars match those addresses and send mTLS. ``pod_addressed``
says so of a service with a Service; ``pod_ports`` without Service ports says it of one
without."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentErrors
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.importer import (
    ImportOptions,
    import_estate,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)


def deployment(name: str, port: int, env: str = "") -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: hotel}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      serviceAccountName: {name}
      containers:
      - name: {name}
        image: hotel/{name}
        ports: [{{containerPort: {port}}}]
        env: [{env}]
---
"""


# search has a Service, but frontend finds it in Consul; geo has no Service at all
ESTATE = deployment("frontend", 5000) + deployment("search", 8082) + deployment(
    "geo", 8083) + deployment("consul", 8500) + """
apiVersion: v1
kind: Service
metadata: {name: search, namespace: hotel}
spec:
  selector: {app: search}
  ports: [{name: grpc, port: 8082}]
---
apiVersion: v1
kind: Service
metadata: {name: frontend, namespace: hotel}
spec:
  selector: {app: frontend}
  ports: [{name: http, port: 5000}]
---
apiVersion: v1
kind: Service
metadata: {name: consul, namespace: hotel}
spec:
  selector: {app: consul}
  ports: [{name: http, port: 8500}]
"""
SERVICES = [
    {"name": "frontend", "namespace": "hotel", "ports": [{"name": "http", "port": 5000}],
     "calls": ["search", "consul"]},
    {"name": "search", "namespace": "hotel", "pod_addressed": True,
     "ports": [{"name": "grpc", "port": 8082, "protocol": "GRPC"}], "calls": ["geo", "consul"]},
    {"name": "geo", "namespace": "hotel", "ports": [],
     "pod_ports": [{"port": 8083, "protocol": "GRPC"}], "calls": ["consul"]},
    {"name": "consul", "namespace": "hotel", "ports": [{"name": "http", "port": 8500}]},
]


def render(tmp_path: Path, crd_dir: Path, provider: str, stage: str,
           services: list[dict[str, Any]] | None = None) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "estate.yaml").write_text(ESTATE)
    values = {"mesh_environment": "dev", "mesh_stage": stage, "mesh_provider": provider,
              "mesh_services": services or SERVICES}
    return render_stage(values, StageOptions(gitops_dir=tmp_path / "gitops",
                                             crd_dirs=[crd_dir],
                                             check_paths=[tmp_path / "estate.yaml"]))


def objects(rendered: Any, kind: str) -> dict[str, dict[str, Any]]:
    return {item.obj["metadata"]["name"]: item.obj for item in rendered.objects
            if item.obj["kind"] == kind}


def rows(rendered: Any, text: str) -> list[str]:
    return [row for row in rendered.flows.section if text in row]


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_calls_to_pod_addresses_flow_at_every_stage(tmp_path, crd_dir, provider):
    for stage in ("injection", "strict_mtls", "authorization"):
        rendered = render(tmp_path / stage, crd_dir, provider, stage)
        assert rendered.flows.counts["breaks"] == 0, stage
        assert rendered.flows.counts["refused"] == 0, stage
        for text in ("hotel/frontend → search (hotel/search:8082) grpc",
                     "hotel/search → geo (hotel/geo:8083) grpc"):
            (row,) = rows(rendered, text)
            assert "| allowed |" in row, (stage, row)


def test_before_strict_the_proof_sees_the_plaintext_the_sidecars_send(tmp_path, crd_dir):
    rendered = render(tmp_path, crd_dir, "istio", "traffic")
    (row,) = rows(rendered, "hotel/frontend → search (hotel/search:8082)")
    assert "calls the pod address of hotel/search:8082, whose port no headless Service " \
           "declares: passed through as plaintext" in row


def test_istio_declares_the_pod_addresses_in_a_headless_service(tmp_path, crd_dir):
    rendered = render(tmp_path, crd_dir, "istio", "strict_mtls")
    services = objects(rendered, "Service")
    spec = services["search-pods"]["spec"]
    assert spec["clusterIP"] == "None" and spec["selector"] == {"app": "search"}
    assert spec["ports"] == [{"name": "grpc-pod-8082", "port": 8082, "targetPort": 8082}]
    assert services["geo-pods"]["spec"]["ports"] == [
        {"name": "grpc-pod-8083", "port": 8083, "targetPort": 8083}]
    egress = objects(rendered, "Sidecar")["frontend"]["spec"]["egress"][0]["hosts"]
    assert "hotel/search-pods.hotel.svc.cluster.local" in egress
    authorization = render(tmp_path / "authz", crd_dir, "istio", "authorization")
    (rule,) = objects(authorization, "AuthorizationPolicy")["geo-allow"]["spec"]["rules"]
    assert rule["to"] == [{"operation": {"ports": ["8083"]}}]


def test_a_service_kept_out_of_the_mesh_needs_no_headless_service(tmp_path, crd_dir):
    """Without its sidecar, search takes the plaintext its callers' sidecars pass through:
    no headless Service, and nothing refused."""
    services = [dict(s) for s in SERVICES]
    services[1] = {**services[1], "inject": False}
    rendered = render(tmp_path, crd_dir, "istio", "strict_mtls", services)
    assert "search-pods" not in objects(rendered, "Service")
    (row,) = rows(rendered, "hotel/frontend → search (hotel/search:8082)")
    assert "| allowed |" in row
    assert rendered.flows.counts["breaks"] == 0


def test_pod_addressed_needs_a_port():
    with pytest.raises(IntentErrors) as error:
        parse_intent({"mesh_environment": "dev", "mesh_stage": "injection", "mesh_services": [
            {"name": "search", "namespace": "hotel", "ports": [], "pod_addressed": True}]})
    assert "mesh_services[0] (search).pod_addressed: True names no port its callers " \
           "reach" in str(error.value)


def test_a_call_to_a_service_without_ports_is_said():
    _, warnings = parse_intent({"mesh_environment": "dev", "mesh_stage": "injection",
                                "mesh_services": [
                                    {"name": "web", "namespace": "shop", "calls": ["persist"]},
                                    {"name": "persist", "namespace": "shop", "ports": []}]})
    (warning,) = [w for w in warnings if "calls[0]" in w]
    assert "mesh_services[0] (web).calls[0]: 'persist' has no ports (no Service)" in warning
    assert "give persist the pod_ports they reach" in warning


def test_the_import_says_a_caller_of_a_registry_may_be_found_there():
    manifests = Manifests()
    add_text(manifests, deployment("search", 8082, "{name: CONSUL_ADDR, value: consul:8500}")
             + """
apiVersion: v1
kind: Service
metadata: {name: search, namespace: hotel}
spec:
  selector: {app: search}
  ports: [{name: grpc, port: 8082}]
---
""" + deployment("consul", 8500) + """
apiVersion: v1
kind: Service
metadata: {name: consul, namespace: hotel}
spec:
  selector: {app: consul}
  ports: [{name: http, port: 8500}]
""", "estate.yaml")
    imported = import_estate(manifests.resources, ImportOptions())
    (search,) = [s for s in imported.shared["mesh_services"] if s["name"] == "search"]
    assert search["calls"] == ["consul"] and "pod_addressed" not in search
    index = imported.shared["mesh_services"].index(search)
    note = " ".join(imported.notes[f"mesh_services[{index}]"])
    assert "it calls consul, a service registry: if its callers find it there, at its " \
           "pods' own addresses, write pod_addressed: true" in note


def test_a_registry_is_known_by_its_port_too():
    """A Spring estate's Eureka server is a 'discovery-server' on port 8761, with an image of
    the team's own: its port says what it is."""
    manifests = Manifests()
    add_text(manifests, deployment(
        "visits", 8082, "{name: EUREKA_URL, value: 'http://discovery-server:8761/eureka'}")
             + """
apiVersion: v1
kind: Service
metadata: {name: visits, namespace: hotel}
spec:
  selector: {app: visits}
  ports: [{name: http, port: 8082}]
---
""" + deployment("discovery-server", 8761) + """
apiVersion: v1
kind: Service
metadata: {name: discovery-server, namespace: hotel}
spec:
  selector: {app: discovery-server}
  ports: [{name: http, port: 8761}]
""", "estate.yaml")
    imported = import_estate(manifests.resources, ImportOptions())
    (visits,) = [s for s in imported.shared["mesh_services"] if s["name"] == "visits"]
    index = imported.shared["mesh_services"].index(visits)
    assert "it calls discovery-server, a service registry" in " ".join(
        imported.notes[f"mesh_services[{index}]"])
