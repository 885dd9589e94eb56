"""Issue 14's flows in the flow proof: the API server calling webhooks, ingress controllers,
monitors' scrapes, a StatefulSet's peers by pod address, server-first ports; each refused
where the configuration breaks it and allowed once fixed, for Istio and Linkerd."""

from __future__ import annotations

import pytest
import yaml
from flow_helpers import check_lines, deployment, flow, peer, state

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import (
    MeshIndex,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.objects import (
    make_resource,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.stand_in import (
    estate_objects,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.collect import collect_flows
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.model import (
    Destination,
    Flow,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.proof import judge
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent

STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"""
WEBHOOK = """
---
apiVersion: v1
kind: Namespace
metadata: {name: policy, {meta}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: policy-webhook}
webhooks:
- name: validate.policy.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {service: {namespace: policy, name: policy-webhook, path: /validate}}
---
apiVersion: v1
kind: Service
metadata: {name: policy-webhook, namespace: policy}
spec: {selector: {app: policy-webhook}, ports: [{name: https, port: 443, targetPort: 9443}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: policy-webhook, namespace: policy}
spec:
  selector: {matchLabels: {app: policy-webhook}}
  template:
    metadata: {labels: {app: policy-webhook}}
    spec:
      containers: [{name: webhook, image: policy-webhook, ports: [{containerPort: 9443}]}]
"""


def test_istio_the_api_server_calling_a_strict_webhook_is_refused():
    (line,) = check_lines(STRICT + WEBHOOK.replace("{meta}", "labels: {istio-injection: enabled}"),
                          "istio")
    assert "the Kubernetes API server -> policy-webhook (policy/policy-webhook:9443) tls " \
           "[webhook: ValidatingWebhookConfiguration policy-webhook" in line
    permissive = """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: policy-webhook, namespace: policy}
spec:
  selector: {matchLabels: {app: policy-webhook}}
  portLevelMtls: {9443: {mode: PERMISSIVE}}
"""
    assert check_lines(STRICT + WEBHOOK.replace("{meta}", "labels: {istio-injection: enabled}")
                       + permissive, "istio") == []


def test_linkerd_the_api_server_is_refused_by_all_authenticated_and_admitted_by_a_server():
    meta = ("annotations: {linkerd.io/inject: enabled, "
            "config.linkerd.io/default-inbound-policy: all-authenticated}")
    (line,) = check_lines(WEBHOOK.replace("{meta}", meta), "linkerd")
    assert "the Kubernetes API server -> policy-webhook" in line
    server = """
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: policy-webhook, namespace: policy}
spec:
  podSelector: {matchLabels: {app: policy-webhook}}
  port: 9443
  proxyProtocol: TLS
  accessPolicy: all-unauthenticated
"""
    assert check_lines(WEBHOOK.replace("{meta}", meta) + server, "linkerd") == []


INGRESS = """
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ingress-nginx{controller_ns}}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: ingress-nginx}}
  template:
    metadata: {labels: {app.kubernetes.io/name: ingress-nginx}}
    spec:
      serviceAccountName: ingress-nginx
      containers: [{name: controller, image: controller, args: [--ingress-class=nginx]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop{ingress_meta}}
spec:
  ingressClassName: nginx
  defaultBackend: {service: {name: web, port: {number: 80}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web, ports: [{containerPort: 8080}]}]}
"""


def ingress(controller_ns: str = "", ingress_meta: str = "") -> str:
    return STRICT + INGRESS.replace("{controller_ns}", controller_ns).replace(
        "{ingress_meta}", ingress_meta)


def test_istio_an_uninjected_controller_is_refused_by_strict():
    (line,) = check_lines(ingress(), "istio")
    assert "ingress-nginx-controller -> web (shop/web:8080) http [ingress: Ingress shop/web" \
        in line


def test_istio_an_injected_controller_sending_to_pod_addresses_is_passed_through():
    injected = ", labels: {istio-injection: enabled}"
    (line,) = check_lines(ingress(injected), "istio")
    assert "reset" in line and "passed through as plaintext" not in line
    upstream = ", annotations: {nginx.ingress.kubernetes.io/service-upstream: \"true\"}"
    assert check_lines(ingress(injected, upstream), "istio") == []


def test_istio_a_service_monitor_scrape_of_a_strict_port_is_refused():
    monitor = """
---
apiVersion: v1
kind: Namespace
metadata: {name: payments, labels: {istio-injection: enabled}}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: payment-service, namespace: payments}
spec:
  selector: {matchLabels: {app: payment-service}}
  endpoints: [{port: metrics}]
---
apiVersion: v1
kind: Service
metadata: {name: payment-service, namespace: payments, labels: {app: payment-service}}
spec: {selector: {app: payment-service}, ports: [{name: metrics, port: 9102}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: payment-service, namespace: payments}
spec:
  selector: {matchLabels: {app: payment-service}}
  template:
    metadata: {labels: {app: payment-service}}
    spec:
      containers: [{name: app, image: payment-service, ports: [{containerPort: 9102}]}]
"""
    (line,) = check_lines(STRICT + monitor, "istio")
    assert "Prometheus -> payment-service (payments/payment-service:9102) http GET /metrics " \
           "[scrape: ServiceMonitor payments/payment-service" in line
    permissive = monitor.replace("labels: {istio-injection: enabled}", "labels: {}")
    assert check_lines(STRICT + permissive, "istio") == []


# --- a StatefulSet's peers, by pod address

CACHE = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: v1
kind: Service
metadata: {name: cart-cache, namespace: shop}
spec: {clusterIP: None, selector: {app: cart-cache}, ports: [{name: redis, port: 6379}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: cart-cache, namespace: shop}
spec:
  serviceName: cart-cache
  selector: {matchLabels: {app: cart-cache}}
  template:
    metadata: {labels: {app: cart-cache}}
    spec:
      serviceAccountName: cart-cache
      containers:
      - name: redis
        image: redis:7.2
        ports: [{name: redis, containerPort: 6379}, {name: cluster, containerPort: 16379}]
"""
PEERS = """
---
apiVersion: v1
kind: Service
metadata: {name: cart-cache-peers, namespace: shop}
spec:
  clusterIP: None
  selector: {app: cart-cache}
  ports: [{name: tcp-peer-16379, port: 16379}]
"""


def peers_verdict(text: str):
    mesh = state("istio", text)
    (cache,) = mesh.index.workloads_in("shop")
    from_peers = Flow(
        peer(mesh, "shop", "cart-cache"),
        Destination("workload", "shop", "cart-cache", 16379, None, workload=cache), "tcp",
        "peers", addressed="pod")
    return judge(from_peers, mesh)


def test_peers_on_an_undeclared_port_are_passed_through_and_refused_by_strict():
    refused = peers_verdict(CACHE)
    assert refused.outcome == "reset"
    assert "no headless Service declares" in refused.reason or \
        "STRICT" in refused.reason


def test_peers_on_a_port_a_headless_service_declares_get_mtls():
    assert peers_verdict(CACHE + PEERS).allowed


def test_the_intent_s_peer_ports_are_flows(example_intent):
    intent, _ = parse_intent(example_intent("staging"))
    index = MeshIndex([make_resource(o, "intent") for o in estate_objects(intent)])
    peers = [f for f in collect_flows(intent, index) if f.origin == "peers"]
    assert [(str(f.source), f.destination.port, f.addressed) for f in peers] == [
        ("bookinfo/ratings-db", 33061, "pod")]


# --- a server-first protocol behind Istio's sniffing

NATS = """
apiVersion: v1
kind: Namespace
metadata: {name: messaging, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: nats, namespace: messaging}
spec: {selector: {app: nats}, ports: [{name: {name}, port: 4222}]}
"""


@pytest.mark.parametrize("name,outcome", [("client", "reset"), ("tcp-client", "ok")])
def test_a_nats_port_istio_sniffs_stalls(name, outcome):
    docs = [d for d in yaml.safe_load_all(NATS.replace("{name}", name)) if d]
    docs += [deployment("messaging", "nats", ports=(4222,)),
             deployment("messaging", "publisher")]
    mesh = state("istio", docs)
    found = judge(flow(
        mesh, ("messaging", "publisher"), ("messaging", "nats"), 4222, "tcp",
        service="nats", service_port=4222), mesh)
    assert found.outcome == outcome
    if outcome == "reset":
        assert "speaks first" in found.reason and found.by == "Service messaging/nats"
