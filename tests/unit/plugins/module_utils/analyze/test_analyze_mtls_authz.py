"""mTLS and authorization details users get wrong (issue 14, item 6), on realistic
manifests, broken and fixed."""

from __future__ import annotations

import pytest
from analysis_helpers import analyze_text, found

STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"""
REVIEWS = """
---
apiVersion: v1
kind: Namespace
metadata: {name: bookinfo, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {containers: [{name: reviews, image: docker.io/istio/examples-bookinfo-reviews-v1}]}
"""
# a DestinationRule copied from an egress TLS-origination task, pointed at a meshed service
DR = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews.bookinfo.svc.cluster.local
  trafficPolicy:
    tls: {tls}
  subsets: [{name: v1, labels: {version: v1}}]
"""


@pytest.mark.parametrize("tls", ["{mode: SIMPLE}", "{mode: MUTUAL, clientCertificate: "
                                 "/etc/certs/client.pem, privateKey: /etc/certs/key.pem}"])
def test_simple_or_mutual_tls_towards_a_strict_sidecar_is_refused(tls):
    report = analyze_text(STRICT + REVIEWS + DR.replace("{tls}", tls),
                          "meshstage.StrictTlsAnalyzer")
    assert found(report) == [("MST0101", "DestinationRule bookinfo/reviews")]
    assert "without Istio's client certificate" in report.findings[0].message or \
        "not Istio's" in report.findings[0].message


def test_istio_mutual_towards_a_strict_sidecar_is_clean():
    assert analyze_text(STRICT + REVIEWS + DR.replace("{tls}", "{mode: ISTIO_MUTUAL}"),
                        "meshstage.StrictTlsAnalyzer").findings == []


def test_simple_tls_to_a_service_entry_is_clean():
    external = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: stripe, namespace: bookinfo}
spec: {hosts: [api.stripe.com], location: MESH_EXTERNAL, resolution: DNS,
       ports: [{number: 443, name: tls, protocol: TLS}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: stripe, namespace: bookinfo}
spec: {host: api.stripe.com, trafficPolicy: {tls: {mode: SIMPLE}}}
"""
    assert analyze_text(STRICT + REVIEWS + external, "meshstage.StrictTlsAnalyzer"
                        ).findings == []


# an HTTP API with a Redis-protocol side port, and an ALLOW written for the API only
ORDERS = """
apiVersion: v1
kind: Service
metadata: {name: orders, namespace: shop}
spec:
  selector: {app: orders}
  ports: [{name: http-api, port: 80, targetPort: 8080}, {name: redis-cache, port: 6379}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  template:
    metadata: {labels: {app: orders}}
    spec: {containers: [{name: orders, image: orders:5}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: orders-api, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  action: ALLOW
  rules:
  - from: [{source: {namespaces: [shop]}}]
    to: [{operation: {methods: [GET, POST], paths: ["/v1/*"]{ports}}}]
"""


def test_an_http_only_allow_without_ports_denies_the_tcp_port():
    report = analyze_text(ORDERS.replace("{ports}", ""), "meshstage.TcpAllowAnalyzer")
    assert found(report) == [("MST0116", "AuthorizationPolicy shop/orders-api")]
    assert "TCP port(s) 6379 of Deployment shop/orders" in report.findings[0].message


def test_an_http_only_allow_scoped_to_its_port_is_clean():
    assert analyze_text(ORDERS.replace("{ports}", ', ports: ["8080"]'),
                        "meshstage.TcpAllowAnalyzer").findings == []


def test_a_tcp_rule_beside_it_admits_the_tcp_port():
    tcp = ORDERS.replace("{ports}", "") + \
        "  - from: [{source: {namespaces: [shop]}}]\n    to: [{operation: {ports: [\"6379\"]}}]\n"
    assert analyze_text(tcp, "meshstage.TcpAllowAnalyzer").findings == []


# --- MST0106: clients without sidecars under STRICT

def test_a_namespace_kept_out_of_the_mesh_is_still_reported():
    disabled = STRICT + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: batch, " \
        "labels: {istio-injection: disabled}}\n"
    report = analyze_text(disabled, "meshstage.StrictUninjectedAnalyzer")
    assert found(report) == [("MST0106", "PeerAuthentication istio-system/default")]
    message = report.findings[0].message
    assert "namespace batch is labelled istio-injection: disabled" in message
    assert "PERMISSIVE exception in their namespaces (one in its own changes nothing" in message


def test_a_namespace_absent_from_the_input_is_judged_by_its_workloads():
    workload = STRICT + """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reporter, namespace: analytics}
spec:
  selector: {matchLabels: {app: reporter}}
  template:
    metadata: {labels: {app: reporter}}
    spec: {containers: [{name: reporter, image: reporter}]}
"""
    report = analyze_text(workload, "meshstage.StrictUninjectedAnalyzer")
    assert found(report) == [("MST0106", "PeerAuthentication istio-system/default")]
    assert "namespace analytics (no Namespace object in the input) runs Deployment " \
           "analytics/reporter without a sidecar" in report.findings[0].message
    injected = workload.replace("labels: {app: reporter}}\n    spec",
                                "labels: {app: reporter, sidecar.istio.io/inject: \"true\"}}\n"
                                "    spec")
    assert analyze_text(injected, "meshstage.StrictUninjectedAnalyzer").findings == []


def test_a_permissive_policy_in_the_client_namespace_does_not_silence_it():
    own = STRICT + """
---
apiVersion: v1
kind: Namespace
metadata: {name: legacy}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: legacy}
spec: {mtls: {mode: PERMISSIVE}}
"""
    assert found(analyze_text(own, "meshstage.StrictUninjectedAnalyzer")) == [
        ("MST0106", "PeerAuthentication istio-system/default")]


# --- MST0118: a pod's revision overridden by its namespace

CANARY = """
apiVersion: v1
kind: Namespace
metadata: {name: payments, labels: {istio-injection: {label}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: payment-service, namespace: payments}
spec:
  selector: {matchLabels: {app: payment-service}}
  template:
    metadata: {labels: {app: payment-service, istio.io/rev: 1-30-canary}}
    spec: {containers: [{name: app, image: payment-service}]}
"""


@pytest.mark.parametrize("label,words", [
    ("enabled", "the default revision injects it"), ("disabled", "its pods get none")])
def test_a_pod_revision_the_namespace_label_overrides(label, words):
    report = analyze_text(CANARY.replace("{label}", label), "meshstage.RevisionAnalyzer")
    assert found(report) == [("MST0118", "Namespace payments")]
    assert words in report.findings[0].message


def test_a_revision_namespace_is_clean():
    fixed = CANARY.replace("istio-injection: {label}", "istio.io/rev: 1-30-canary")
    assert analyze_text(fixed, "meshstage.RevisionAnalyzer").findings == []


# --- MST0117: a Sidecar that leaves out a real dependency

CHECKOUT = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: checkout, namespace: shop}
spec:
  workloadSelector: {labels: {app: checkout}}
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  egress: [{hosts: [istio-system/*{more}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: stripe, namespace: shop}
spec: {hosts: [api.stripe.com], location: MESH_EXTERNAL, resolution: DNS,
       ports: [{number: 443, name: tls, protocol: TLS}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout, namespace: shop}
spec:
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout}}
    spec:
      containers:
      - name: checkout
        image: checkout:7
        env:
        - {name: STRIPE_API_BASE, value: "https://api.stripe.com/v1"}
        - {name: LOG_LEVEL, value: info}
"""


def test_registry_only_drops_an_external_host_the_sidecar_does_not_import():
    report = analyze_text(CHECKOUT.replace("{more}", ""), "meshstage.SidecarEgressAnalyzer")
    assert found(report) == [("MST0117", "Sidecar shop/checkout")]
    assert "calls api.stripe.com (STRIPE_API_BASE)" in report.findings[0].message


def test_an_imported_external_host_is_clean():
    assert analyze_text(CHECKOUT.replace("{more}", ", shop/api.stripe.com"),
                        "meshstage.SidecarEgressAnalyzer").findings == []
