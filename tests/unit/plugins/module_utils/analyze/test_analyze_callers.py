"""Callers outside the mesh in the estate's manifests (issue 14, item 5): ingress
controllers, the API server calling webhooks, Prometheus; broken and fixed, Istio and
Linkerd."""

from __future__ import annotations

import pytest
from analysis_helpers import analyze_text, found

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.callers import outside_calls
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import (
    MeshConfig,
    MeshIndex,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)

STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"""
# cert-manager's webhook, as its chart renders it (trimmed), in a meshed namespace
WEBHOOK = """
---
apiVersion: v1
kind: Namespace
metadata: {name: cert-tools, {meta}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: cert-tools-webhook}
webhooks:
- name: webhook.cert-manager.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: {policy}
  timeoutSeconds: 30
  clientConfig: {service: {name: cert-tools-webhook, namespace: cert-tools, path: /validate}}
  rules: [{apiGroups: [cert-manager.io], apiVersions: [v1], operations: [CREATE, UPDATE],
           resources: ["*/*"]}]
---
apiVersion: v1
kind: Service
metadata: {name: cert-tools-webhook, namespace: cert-tools}
spec:
  type: ClusterIP
  selector: {app.kubernetes.io/name: webhook}
  ports: [{name: https, port: 443, protocol: TCP, targetPort: https}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cert-tools-webhook, namespace: cert-tools}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: webhook}}
  template:
    metadata:
      labels: {app.kubernetes.io/name: webhook}{pod}
    spec:
      serviceAccountName: cert-tools-webhook
      containers:
      - name: cert-manager-webhook
        image: quay.io/jetstack/cert-manager-webhook:v1.15.3
        args: [--secure-port=10250]
        ports: [{name: https, containerPort: 10250, protocol: TCP}]
"""
ISTIO_NS = "labels: {istio-injection: enabled}"
LINKERD_NS = ("annotations: {linkerd.io/inject: enabled, "
              "config.linkerd.io/default-inbound-policy: all-authenticated}")


def webhook(meta: str, policy: str = "Fail", pod: str = "") -> str:
    return WEBHOOK.replace("{meta}", meta).replace("{policy}", policy).replace("{pod}", pod)


def test_the_webhook_call_is_found_with_its_pod_port():
    manifests = Manifests()
    add_text(manifests, webhook(ISTIO_NS), "test.yaml")
    (call,) = outside_calls(MeshIndex(manifests.resources))
    assert (call.kind, call.origin.display, call.target.resource.display, call.port) == (
        "webhook", "ValidatingWebhookConfiguration cert-tools-webhook",
        "Deployment cert-tools/cert-tools-webhook", 10250)


def test_istio_strict_refuses_the_api_server():
    report = analyze_text(STRICT + webhook(ISTIO_NS), "meshstage.OutsideCallersAnalyzer")
    assert [(f.level.value, f.code, f.resource) for f in report.findings] == [
        ("Error", "MST0114", "PeerAuthentication istio-system/default")]
    assert "port 10250" in report.findings[0].message


def test_istio_a_webhook_that_fails_open_is_a_warning():
    report = analyze_text(STRICT + webhook(ISTIO_NS, "Ignore"),
                          "meshstage.OutsideCallersAnalyzer")
    assert [(f.level.value, f.code) for f in report.findings] == [("Warning", "MST0114")]


@pytest.mark.parametrize("fix", [
    # the port bypasses the sidecar
    ("", "\n      annotations: {traffic.sidecar.istio.io/excludeInboundPorts: \"10250\"}"),
    # a port-level PERMISSIVE exception (the container port, not the Service's)
    ("""
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: webhook, namespace: cert-tools}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: webhook}}
  mtls: {mode: STRICT}
  portLevelMtls: {10250: {mode: PERMISSIVE}}
""", "")])
def test_istio_the_fixed_webhook_is_clean(fix):
    extra, pod = fix
    report = analyze_text(STRICT + webhook(ISTIO_NS, pod=pod) + extra,
                          "meshstage.OutsideCallersAnalyzer")
    assert report.findings == []


def test_istio_a_permissive_port_under_allow_nothing_still_refuses_the_api_server():
    permissive = """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: webhook, namespace: cert-tools}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: webhook}}
  portLevelMtls: {10250: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: cert-tools}
spec: {}
"""
    report = analyze_text(STRICT + webhook(ISTIO_NS) + permissive,
                          "meshstage.OutsideCallersAnalyzer")
    assert found(report) == [("MST0114", "AuthorizationPolicy cert-tools/allow-nothing")]
    allowed = permissive + """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: webhook, namespace: cert-tools}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: webhook}}
  rules: [{to: [{operation: {ports: ["10250"]}}]}]
"""
    assert analyze_text(STRICT + webhook(ISTIO_NS) + allowed,
                        "meshstage.OutsideCallersAnalyzer").findings == []


def test_linkerd_all_authenticated_refuses_the_api_server():
    report = analyze_text(webhook(LINKERD_NS), "linkerd.OutsideCallersAnalyzer")
    assert found(report) == [("MST0212", "Namespace cert-tools")]


@pytest.mark.parametrize("pod", [
    "\n      annotations: {config.linkerd.io/skip-inbound-ports: \"10250\"}",
    "\n      annotations: {config.linkerd.io/default-inbound-policy: all-unauthenticated}"])
def test_linkerd_the_fixed_webhook_is_clean(pod):
    assert analyze_text(webhook(LINKERD_NS, pod=pod),
                        "linkerd.OutsideCallersAnalyzer").findings == []


# an application's annotations for Prometheus' kubernetes-pods job, and a meshed namespace
SCRAPED = """
---
apiVersion: v1
kind: Namespace
metadata: {name: orders, {meta}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders, namespace: orders}
spec:
  selector: {matchLabels: {app: orders}}
  template:
    metadata:
      labels: {app: orders}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: "9102"{more}}
    spec:
      containers:
      - {name: orders, image: orders:3.2, ports: [{containerPort: 8080}, {containerPort: 9102}]}
"""


def scraped(meta: str, more: str = "") -> str:
    return SCRAPED.replace("{meta}", meta).replace("{more}", more)


def test_istio_merged_metrics_keep_annotation_scrapes_working():
    assert analyze_text(STRICT + scraped(ISTIO_NS), "meshstage.OutsideCallersAnalyzer"
                        ).findings == []


def test_istio_unmerged_metrics_are_refused_under_strict():
    report = analyze_text(STRICT + scraped(ISTIO_NS, ', prometheus.istio.io/merge-metrics: '
                                           '"false"'), "meshstage.OutsideCallersAnalyzer")
    assert found(report) == [("MST0115", "PeerAuthentication istio-system/default")]
    assert report.findings[0].message.startswith("Deployment orders/orders (annotation "
                                                 "prometheus.io/scrape) reaches")


def test_linkerd_an_unmeshed_prometheus_is_refused_under_deny():
    deny = ("annotations: {linkerd.io/inject: enabled, "
            "config.linkerd.io/default-inbound-policy: deny}")
    report = analyze_text(scraped(deny), "linkerd.OutsideCallersAnalyzer")
    assert found(report) == [("MST0213", "Namespace orders")]
    meshed_prometheus = """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus, namespace: orders}
spec:
  selector: {matchLabels: {app: prometheus}}
  template:
    metadata: {labels: {app: prometheus}}
    spec: {serviceAccountName: prometheus, containers: [{name: prometheus, image: prom}]}
"""
    # a meshed Prometheus has an identity; all-authenticated admits it
    authenticated = ("annotations: {linkerd.io/inject: enabled, "
                     "config.linkerd.io/default-inbound-policy: all-authenticated}")
    assert analyze_text(scraped(authenticated) + meshed_prometheus,
                        "linkerd.OutsideCallersAnalyzer").findings == []


def test_linkerd_a_pod_the_injectors_object_selector_leaves_out_is_not_meshed():
    """meshstage renders inject: false into the proxy injector's objectSelector: the webhook
    never sees those pods, so Linkerd's inbound policy does not apply to their scrapes."""
    deny = ("annotations: {linkerd.io/inject: enabled, "
            "config.linkerd.io/default-inbound-policy: deny}")
    kept_out = MeshConfig(never_inject=({"matchLabels": {"app": "orders"}},))
    assert analyze_text(scraped(deny), "linkerd.OutsideCallersAnalyzer",
                        mesh=kept_out).findings == []
    others = MeshConfig(never_inject=({"matchLabels": {"app": "billing"}},))
    assert found(analyze_text(scraped(deny), "linkerd.OutsideCallersAnalyzer",
                              mesh=others)) == [("MST0213", "Namespace orders")]


INGRESS = """
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ingress-nginx{ingress_ns}}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
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
      containers: [{name: controller, image: "registry.k8s.io/ingress-nginx/controller:v1.11.2",
                    args: [/nginx-ingress-controller, --controller-class=k8s.io/ingress-nginx]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}]
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
    spec:
      serviceAccountName: web
      containers: [{name: web, image: web, ports: [{containerPort: 8080}]}]
"""


def test_istio_an_uninjected_controller_of_the_default_class_is_refused():
    report = analyze_text(STRICT + INGRESS.replace("{ingress_ns}", ""),
                          "meshstage.OutsideCallersAnalyzer")
    assert found(report) == [("MST0113", "PeerAuthentication istio-system/default")]
    assert "from Deployment ingress-nginx/ingress-nginx-controller, which has no sidecar" in \
        report.findings[0].message


def test_istio_an_injected_controller_is_admitted_by_principal():
    injected = INGRESS.replace("{ingress_ns}", ", labels: {istio-injection: enabled}")
    allow = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  rules: [{from: [{source: {principals: [cluster.local/ns/ingress-nginx/sa/ingress-nginx]}}]}]
"""
    assert analyze_text(STRICT + injected + allow, "meshstage.OutsideCallersAnalyzer"
                        ).findings == []
    wrong = allow.replace("sa/ingress-nginx", "sa/nginx")
    assert found(analyze_text(STRICT + injected + wrong, "meshstage.OutsideCallersAnalyzer")
                 ) == [("MST0113", "AuthorizationPolicy shop/web")]
