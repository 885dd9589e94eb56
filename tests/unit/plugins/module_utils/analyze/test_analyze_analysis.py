"""One analysis: providers, suppression, context objects, order; analyzer behaviour the
docstring examples do not pin."""

from __future__ import annotations

from analysis_helpers import analyze_text, found

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import (
    analyze,
    detect_providers,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.objects import make_resource

NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: payments}\n"


def test_providers_are_detected_from_api_groups_labels_and_annotations():
    istio = make_resource({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
                           "metadata": {"name": "s", "namespace": "a"}})
    linkerd = make_resource({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "a", "annotations": {"linkerd.io/inject": "enabled"}}})
    plain = make_resource({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}})
    assert detect_providers([istio]) == ("istio",)
    assert detect_providers([linkerd, plain]) == ("linkerd",)
    assert detect_providers([plain]) == ("istio", "linkerd")
    assert detect_providers([istio, linkerd]) == ("istio", "linkerd")


def test_linkerd_objects_are_not_taken_for_istio_ones():
    text = ("apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\n"
            "metadata: {name: p, namespace: booksapp}\n"
            "spec: {targetRef: {kind: Namespace, name: booksapp},\n"
            "       requiredAuthenticationRefs: []}\n")
    assert analyze_text(text, complete=True, providers=("istio", "linkerd")).findings == []


def test_a_resource_suppresses_codes_with_the_galley_annotation():
    text = NAMESPACE.replace("{name: payments}", "{name: payments, annotations: "
                             "{galley.istio.io/analyze-suppress: 'IST0102,IST0118'}}")
    assert analyze_text(NAMESPACE, "injection.Analyzer").findings
    assert analyze_text(text, "injection.Analyzer").findings == []


def test_findings_about_context_objects_are_dropped():
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}}
    assert analyze([make_resource(obj)], analyzers=["injection.Analyzer"]).findings
    assert analyze([make_resource(obj, context=True)],
                   analyzers=["injection.Analyzer"]).findings == []


def test_findings_come_errors_first_with_their_field_path_and_source():
    text = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviewz}}]}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec: {selector: {app: reviews}, ports: [{name: web, port: 9080}]}
"""
    report = analyze_text(text)
    assert [f.line() for f in report.findings] == [
        "Error IST0101 VirtualService bookinfo/reviews: Referenced host not found: 'reviewz'. "
        "(spec.http[0].route[0].destination.host)",
        "Info IST0118 Service bookinfo/reviews: Port name 'web' (port: 9080, targetPort: 9080) "
        "doesn't follow Istio's <protocol>[-<suffix>] naming convention. (spec.ports[0])",
    ]
    assert report.findings[0].source == "test.yaml#1"


def test_unknown_kinds_are_noted_as_unchecked_not_reported_missing():
    text = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: reviews, namespace: bookinfo}\n"
            "spec: {hosts: [reviews], http: [{route: [{destination: {host: reviewz}}]}]}\n")
    partial = analyze_text(text, "virtualservice.DestinationHostAnalyzer")
    assert partial.findings == []
    assert [u.line() for u in partial.unchecked] == [
        "not checked by virtualservice.DestinationHostAnalyzer: VirtualService destination "
        "hosts (no Service or ServiceEntry in the input for reviewz.bookinfo.svc.cluster.local)"]
    complete = analyze_text(text, "virtualservice.DestinationHostAnalyzer", complete=True)
    assert found(complete) == [("IST0101", "VirtualService bookinfo/reviews")]



def test_a_service_meshstage_rendered_does_not_say_the_namespace_s_services_are_there():
    # a rendered tree at strict_mtls: the headless Service of a StatefulSet's peer ports is
    # meshstage's; the namespace's own Services (reviews) are in the cluster, not the tree
    route = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
             "metadata: {name: reviews, namespace: bookinfo}\n"
             "spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}\n")
    peers = ("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ratings-db-peers\n"
             "  namespace: bookinfo\n  labels: {app.kubernetes.io/managed-by: meshstage}\n"
             "spec: {clusterIP: None, selector: {app: ratings-db}, ports: [{name: tcp-peer, "
             "port: 33061}]}\n")
    rendered = analyze_text(route + peers, "virtualservice.DestinationHostAnalyzer")
    assert rendered.findings == []
    assert "reviews.bookinfo.svc.cluster.local" in rendered.unchecked[0].line()
    theirs = peers.replace("  labels: {app.kubernetes.io/managed-by: meshstage}\n", "")
    assert found(analyze_text(route + theirs, "virtualservice.DestinationHostAnalyzer")) == [
        ("IST0101", "VirtualService bookinfo/reviews")]

CALLERS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {selector: {app: cart}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-1, namespace: shop, labels: {app: cart}}
spec: {serviceAccountName: cart, containers: [{name: cart, image: cart}]}
---
apiVersion: v1
kind: Pod
metadata: {name: gw-1, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  serviceAccountName: ingress
  containers: [{name: istio-proxy, image: proxyv2}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*/shop.example"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [shop.example]
  gateways: [istio-system/shop]
  http: [{route: [{destination: {host: cart}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: shop}
spec: {}
"""


def test_default_deny_refusing_the_gateway_a_virtual_service_routes_from():
    report = analyze_text(CALLERS, "meshstage.DeclaredCallersAnalyzer")
    assert found(report) == [("MST0104", "AuthorizationPolicy shop/allow-nothing")]
    assert "istio-system/ingress (cluster.local/ns/istio-system/sa/ingress)" in \
        report.findings[0].message
    allowed = CALLERS + """\
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cart-allow, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules: [{from: [{source: {namespaces: [istio-system]}}], to: [{operation: {methods: [GET]}}]}]
"""
    assert analyze_text(allowed, "meshstage.DeclaredCallersAnalyzer").findings == []
    denied = allowed + """\
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cart-deny, namespace: shop}
spec:
  action: DENY
  selector: {matchLabels: {app: cart}}
  rules: [{from: [{source: {principals: ["*/sa/ingress"]}}]}]
"""
    assert found(analyze_text(denied, "meshstage.DeclaredCallersAnalyzer")) == [
        ("MST0104", "AuthorizationPolicy shop/cart-deny")]


def test_a_dry_run_policy_enforces_nothing_so_it_denies_no_declared_caller():
    """istio.io/dry-run policies (meshstage renders them at strict_mtls) are only counted by
    the proxies: a default deny in dry run refuses nobody, so MST0104 does not fire."""
    dry_run = CALLERS.replace("metadata: {name: allow-nothing, namespace: shop}",
                              "metadata: {name: allow-nothing, namespace: shop,\n"
                              "           annotations: {istio.io/dry-run: \"true\"}}")
    assert dry_run != CALLERS
    assert analyze_text(dry_run, "meshstage.DeclaredCallersAnalyzer").findings == []
    enforced = dry_run.replace('istio.io/dry-run: "true"', 'istio.io/dry-run: "false"')
    assert found(analyze_text(enforced, "meshstage.DeclaredCallersAnalyzer")) == [
        ("MST0104", "AuthorizationPolicy shop/allow-nothing")]


def test_a_port_level_exception_lets_a_disabled_port_through_strict():
    text = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: billing, namespace: payments}
spec:
  selector: {matchLabels: {app: billing}}
  mtls: {mode: STRICT}
  portLevelMtls: {7001: {mode: DISABLE}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: billing, namespace: payments}
spec:
  host: billing
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings: [{port: {number: 80}, tls: {mode: DISABLE}}]
---
apiVersion: v1
kind: Service
metadata: {name: billing, namespace: payments}
spec: {selector: {app: billing}, ports: [{name: http, port: 80, targetPort: 7001},
                                          {name: http-admin, port: 81, targetPort: 7002}]}
"""
    assert analyze_text(text, "meshstage.StrictTlsAnalyzer").findings == []
    wrong_port = text.replace("{number: 80}", "{number: 81}")
    report = analyze_text(wrong_port, "meshstage.StrictTlsAnalyzer")
    assert [(f.code, f.path) for f in report.findings] == [
        ("MST0101", "spec.trafficPolicy.portLevelSettings[0].tls.mode")]
