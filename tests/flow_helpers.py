"""Helpers for the flow tests (a plain module, imported by name): a mesh state from YAML
documents, one flow judged through it, and a small shop estate to run stages of."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import (
    MeshConfig,
    MeshIndex,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.objects import (
    Workload,
    make_resource,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.check import flow_findings
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.collect import (
    gateway_peer,
    peers_of,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.evaluate import (
    FlowSettings,
    MeshState,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.model import (
    Destination,
    Flow,
    Peer,
    Request,
    Verdict,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.proof import judge

KUBELET = Peer("kubelet", "", "kubelet", proxy=False)
OUTSIDE = Peer("external", "", "a client outside the cluster", proxy=False)


# Istio's mesh-wide STRICT mTLS, a document to append to YAML text
STRICT_MESH = """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"""


def manifest_resources(text: str) -> list[Any]:
    """The resources of YAML text, read as ``meshstage check`` reads a file."""
    manifests = Manifests()
    add_text(manifests, text, "estate.yaml")
    return manifests.resources


def check_lines(text: str, provider: str) -> list[str]:
    """``meshstage check``'s flow findings (MST0401) over YAML text with ``provider``'s
    rules, one line each."""
    found, _ = flow_findings(manifest_resources(text), MeshConfig(), (provider,))
    return [finding.line() for finding in found]


def deployment(namespace: str, name: str, labels: dict[str, str] | None = None,
               account: str | None = None, ports: tuple[int, ...] = (8080,),
               annotations: dict[str, str] | None = None, probes: dict | None = None,
               port_names: dict[int, str] | None = None) -> dict[str, Any]:
    """A Deployment document: its pods carry ``labels`` (default app=<name>)."""
    labels = labels or {"app": name}
    container: dict[str, Any] = {"name": name, "image": "example", "ports": [
        {"containerPort": p, **({"name": port_names[p]} if port_names and p in port_names
                                else {})} for p in ports]}
    container.update(probes or {})
    template: dict[str, Any] = {"labels": labels}
    if annotations:
        template["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": labels}, "template": {
                "metadata": template,
                "spec": {"serviceAccountName": account or name, "containers": [container]}}}}


def state(provider: str, documents: str | list[dict[str, Any]],
          settings: FlowSettings | None = None,
          install_values: dict[str, Any] | None = None,
          host_files: dict[str, Any] | None = None) -> MeshState:
    docs = [d for d in yaml.safe_load_all(documents) if d] if isinstance(documents, str) \
        else documents
    settings = settings or FlowSettings()
    index = MeshIndex([make_resource(d, "test") for d in docs],
                      MeshConfig(root_namespace=settings.root_namespace,
                                 trust_domain=settings.trust_domain))
    return MeshState(provider, settings, index, host_files or {}, install_values or {},
                     "test")


def workload(mesh: MeshState, namespace: str, name: str) -> Workload:
    found = [w for w in mesh.index.workloads_in(namespace) if w.resource.name == name]
    assert found, f"no workload {namespace}/{name}"
    return found[0]


def peer(mesh: MeshState, namespace: str, name: str, gateway: bool = False) -> Peer:
    found = workload(mesh, namespace, name)
    return gateway_peer(found) if gateway else peers_of([found], name)[0]


def flow(mesh: MeshState, source: Peer | tuple[str, str], destination: tuple[str, str],
         port: int, protocol: str = "http", request: Request | None = None,
         origin: str = "calls", service: str | None = None, service_port: int | None = None,
         kind: str = "workload") -> Flow:
    if isinstance(source, tuple):
        source = peer(mesh, *source)
    target = workload(mesh, *destination)
    return Flow(source, Destination(kind, destination[0], destination[1], port,
                                    service or destination[1], service_port or port,
                                    workload=target), protocol, origin, request)


def verdict(mesh: MeshState, source: Peer | tuple[str, str], destination: tuple[str, str],
            port: int = 8080, **options: Any) -> Verdict:
    return judge(flow(mesh, source, destination, port, **options), mesh)


# A web service behind a ClusterIP Service and a LoadBalancer one over the same pods (an
# Online Boutique frontend's shape): the flows' and the import's tests of outside clients.
EXPOSED_WEB = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-external, namespace: shop}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: web, ports: [{name: http, containerPort: 8080}]}]
"""


# ---- a small estate to run stages of: web (ingress) -> api -> db

SHOP = {
    "mesh_environment": "dev", "mesh_stage": "strict_mtls", "mesh_default_deny": True,
    "mesh_services": [
        {"name": "web", "namespace": "shop", "ports": [{"name": "http", "port": 8080}],
         "calls": ["api"], "ingress": True},
        {"name": "api", "namespace": "shop", "ports": [{"name": "http", "port": 8080}],
         "calls": ["db"], "probe_paths": ["/healthz"]},
        {"name": "db", "namespace": "shop", "ports": [{"name": "tcp-db", "port": 5432,
                                                      "protocol": "TCP"}]},
    ],
}
# a DENY that names a declared caller: the intent stops a call it declares
DENY_WEB = [{"service": "api", "allow": [{"from": ["web"]}],
             "deny": [{"from": ["web"], "paths": ["/*"]}]}]


def shop(**overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(SHOP), **overrides}


def commits(repo: Path) -> int:
    out = subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "HEAD"],
                         capture_output=True, text=True, check=False).stdout.strip()
    return int(out or 0)
