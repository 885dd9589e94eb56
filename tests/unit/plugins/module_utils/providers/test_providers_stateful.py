"""StatefulSets whose pods talk to each other pod to pod (issue 14, item 3): their peer ports
keep working under STRICT mTLS and default deny, for Istio and Linkerd."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from plan_helpers import find, render

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.context import (
    analyze_rendered,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentErrors
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry

# a Redis cluster: clients on 6379, the cluster bus between the pods on 16379
CART_CACHE = {"name": "cart-cache", "namespace": "bookinfo", "kind": "StatefulSet",
              "ports": [{"name": "redis", "port": 6379, "protocol": "REDIS"}],
              "peer_ports": [16379]}
ESTATE = """
apiVersion: v1
kind: Service
metadata: {name: cart-cache, namespace: bookinfo}
spec:
  clusterIP: None
  selector: {app: cart-cache}
  ports: [{name: redis, port: 6379}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: cart-cache, namespace: bookinfo}
spec:
  serviceName: cart-cache
  replicas: 6
  selector: {matchLabels: {app: cart-cache}}
  template:
    metadata: {labels: {app: cart-cache}}
    spec:
      serviceAccountName: cart-cache
      containers:
      - name: redis
        image: redis:7.2
        args: [--cluster-enabled, "yes", --cluster-config-file, /data/nodes.conf]
        ports: [{name: redis, containerPort: 6379}, {name: cluster, containerPort: 16379}]
"""


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def with_cache(variables: dict[str, Any], **fields: Any) -> dict[str, Any]:
    variables = copy.deepcopy(variables)
    variables["mesh_services"].append({**CART_CACHE, **fields})
    for service in variables["mesh_services"]:
        if service["name"] == "productpage":
            service["calls"] = [*service["calls"], "cart-cache"]
    return variables


def estate(tmp_path: Path) -> list[Path]:
    (tmp_path / "cart-cache.yaml").write_text(ESTATE)
    return [Path(__file__).resolve().parents[4] / "data" / "estate", tmp_path]


def test_strict_mtls_declares_the_peer_ports_in_a_headless_service(registry, example_intent):
    rendered = render(with_cache(example_intent("staging")), registry)
    peers = find(rendered, "Service", "cart-cache-peers", "bookinfo")
    assert peers["spec"] == {"clusterIP": "None", "publishNotReadyAddresses": True,
                             "selector": {"app": "cart-cache"},
                             "ports": [{"name": "tcp-peer-16379", "port": 16379,
                                        "targetPort": 16379}]}
    hosts = find(rendered, "Sidecar", "cart-cache")["spec"]["egress"][0]["hosts"]
    assert "bookinfo/cart-cache.bookinfo.svc.cluster.local" in hosts
    assert "bookinfo/cart-cache-peers.bookinfo.svc.cluster.local" in hosts
    assert "`bookinfo/cart-cache-peers` (headless)" in rendered.files[
        "envs/staging/RUNBOOK.md"]


def test_the_peers_service_comes_with_the_first_sidecar(registry, example_intent):
    """From injection on: a sidecar passes traffic to a pod address no headless Service
    declares through as plaintext, which a PERMISSIVE peer holds until the client speaks (a
    server-first protocol never does), and STRICT refuses. Before, nothing is declared."""
    rendered = render(with_cache(example_intent("staging", mesh_stage="injection")),
                      registry)
    (peers,) = [o for o in rendered.objects if o.obj["metadata"]["name"] == "cart-cache-peers"]
    assert "/02-injection/" in peers.path
    rendered = render(with_cache(example_intent("staging", mesh_stage="permissive_mtls")),
                      registry)
    assert not [o for o in rendered.objects if o.obj["metadata"]["name"] == "cart-cache-peers"]


def test_the_peers_service_declares_the_ports_the_service_declares_too(registry,
                                                                       example_intent):
    """The replicas of a MySQL StatefulSet replicate from mysql-0.mysql:3306, the port its
    ClusterIP Service declares: that Service makes its ClusterIP known to the sidecars,
    not its pods' addresses, so the peers Service declares 3306 as well."""
    rendered = render(with_cache(example_intent("staging"), peer_ports=[6379, 16379]),
                      registry)
    peers = find(rendered, "Service", "cart-cache-peers", "bookinfo")
    assert [p["port"] for p in peers["spec"]["ports"]] == [6379, 16379]


def test_default_deny_admits_the_peers_on_their_ports(registry, example_intent):
    rendered = render(with_cache(example_intent("dev")), registry)
    rules = find(rendered, "AuthorizationPolicy", "cart-cache-allow")["spec"]["rules"]
    assert {"from": [{"source": {"principals": ["cluster.local/ns/bookinfo/sa/cart-cache"]}}],
            "to": [{"operation": {"ports": ["16379"]}}]} in rules
    # its callers reach the client port, not the cluster bus
    assert {"from": [{"source": {"principals": ["cluster.local/ns/bookinfo/sa/"
                                                "bookinfo-productpage"]}}],
            "to": [{"operation": {"ports": ["6379"]}}]} in rules


def test_linkerd_authorizes_the_peers_on_a_server_of_their_own(registry, example_intent):
    rendered = render(with_cache(example_intent("dev", mesh_provider="linkerd")), registry)
    server = find(rendered, "Server", "cart-cache-peer-16379")
    assert server["spec"]["port"] == 16379 and server["spec"]["proxyProtocol"] == "opaque"
    authn = find(rendered, "MeshTLSAuthentication", "cart-cache-peer-16379")
    assert authn["spec"]["identities"] == [
        "cart-cache.bookinfo.serviceaccount.identity.linkerd.cluster.local"]
    assert not [o for o in rendered.objects if o.obj["metadata"]["name"] == "cart-cache-peers"]


def test_the_estate_s_statefulset_passes_the_analysis_once_declared(tmp_path, registry,
                                                                   example_intent):
    undeclared = render(with_cache(example_intent("staging"), peer_ports=None), registry)
    report = analyze_rendered(undeclared.intent, [o.obj for o in undeclared.objects],
                              estate(tmp_path))
    (finding,) = [f for f in report.findings if f.code == "MST0111"]
    assert finding.line().startswith(
        "Warning MST0111 PeerAuthentication istio-system/default: The pods of StatefulSet "
        "bookinfo/cart-cache listen on port(s) 16379, which no Service selecting them declares")
    declared = render(with_cache(example_intent("staging")), registry)
    report = analyze_rendered(declared.intent, [o.obj for o in declared.objects],
                              estate(tmp_path))
    assert [f for f in report.findings if f.code == "MST0111"] == []


def test_peer_ports_are_for_a_statefulset(example_intent):
    with pytest.raises(IntentErrors, match="is for a StatefulSet, whose pods talk to each "
                                           "other by pod DNS name"):
        render(with_cache(example_intent("dev"), kind="Deployment"), None)
