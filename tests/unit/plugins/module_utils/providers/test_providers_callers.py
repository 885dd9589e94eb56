"""Callers outside the catalogue (issue 14, item 5): an ingress controller, the Kubernetes API
server calling an admission webhook, Prometheus scraping an application port. The intent
names them (mesh_external_callers) and the stages keep them working, for Istio and Linkerd;
an estate that shows them while the intent does not is refused, naming the Ingress, the
webhook configuration and the monitor."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from plan_helpers import find, render

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import (
    AnalysisError,
    IntentErrors,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry

ESTATE = Path(__file__).resolve().parents[4] / "data" / "estate"
WEBHOOK = {"name": "policy-webhook", "namespace": "payments",
           "ports": [{"name": "https-webhook", "port": 443, "target_port": 9443,
                      "protocol": "HTTPS"}]}
CALLERS = [
    {"name": "nginx", "kind": "ingress-controller", "namespace": "ingress-nginx",
     "service_account": "ingress-nginx", "inject": True, "calls": ["productpage"]},
    {"name": "kube-apiserver", "kind": "kube-apiserver", "calls": ["policy-webhook:9443"]},
    {"name": "prometheus", "kind": "prometheus", "namespace": "monitoring",
     "service_account": "prometheus-k8s", "calls": ["payment-service:8080"]},
]
# what the cluster runs, as the projects publish it (ingress-nginx's controller, a
# validating webhook, a prometheus-operator ServiceMonitor)
OUTSIDE = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx, labels: {app.kubernetes.io/name: ingress-nginx}}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: ingress-nginx, app.kubernetes.io/component: controller}
  template:
    metadata:
      labels: {app.kubernetes.io/name: ingress-nginx, app.kubernetes.io/component: controller}
    spec:
      serviceAccountName: ingress-nginx
      containers:
      - name: controller
        image: registry.k8s.io/ingress-nginx/controller:v1.11.2
        args: [/nginx-ingress-controller, --ingress-class=nginx,
               --controller-class=k8s.io/ingress-nginx]
        ports: [{name: http, containerPort: 80}, {name: https, containerPort: 443}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bookinfo, namespace: bookinfo}
spec:
  ingressClassName: nginx
  rules:
  - host: bookinfo.example.com
    http:
      paths:
      - {path: /productpage, pathType: Prefix,
         backend: {service: {name: productpage, port: {number: 9080}}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: payments-policy}
webhooks:
- name: validate.payments.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  clientConfig: {service: {namespace: payments, name: policy-webhook, path: /validate}}
  rules: [{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE],
           resources: [deployments]}]
---
apiVersion: v1
kind: Service
metadata: {name: policy-webhook, namespace: payments}
spec:
  selector: {app: policy-webhook}
  ports: [{name: https-webhook, port: 443, targetPort: 9443}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: policy-webhook, namespace: payments}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: policy-webhook, namespace: payments}
spec:
  selector: {matchLabels: {app: policy-webhook}}
  template:
    metadata: {labels: {app: policy-webhook}}
    spec:
      serviceAccountName: policy-webhook
      containers:
      - name: webhook
        image: registry.example.com/payments/policy-webhook:1.4
        ports: [{name: https, containerPort: 9443}]
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: payment-service, namespace: monitoring}
spec:
  namespaceSelector: {matchNames: [payments]}
  selector: {matchLabels: {app: payment-service}}
  endpoints: [{port: http, path: /metrics, interval: 30s}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: prometheus-k8s, namespace: monitoring}
spec:
  serviceName: prometheus-operated
  selector: {matchLabels: {app.kubernetes.io/name: prometheus}}
  template:
    metadata: {labels: {app.kubernetes.io/name: prometheus}}
    spec:
      serviceAccountName: prometheus-k8s
      containers: [{name: prometheus, image: quay.io/prometheus/prometheus:v2.54.1}]
"""


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def with_callers(variables: dict[str, Any], callers: list[dict[str, Any]] | None = None,
                 ) -> dict[str, Any]:
    """The example with WEBHOOK, and ``callers`` (by default the example's and CALLERS)."""
    variables = copy.deepcopy(variables)
    variables["mesh_services"].append(copy.deepcopy(WEBHOOK))
    if callers is None:  # one entry per caller: the example's calls and CALLERS'
        named: dict[str, dict[str, Any]] = {}
        for caller in [*variables.get("mesh_external_callers", []), *copy.deepcopy(CALLERS)]:
            known = named.setdefault(caller["name"], caller)
            if known is not caller:
                known["calls"] = list(dict.fromkeys([*known["calls"], *caller["calls"]]))
        callers = list(named.values())
    variables["mesh_external_callers"] = copy.deepcopy(callers)
    return variables


def test_istio_strict_keeps_the_plaintext_callers_ports_permissive(registry, example_intent):
    rendered = render(with_callers(example_intent("staging")), registry)
    webhook = find(rendered, "PeerAuthentication", "policy-webhook-mtls-exception")
    assert webhook["spec"]["mtls"] == {"mode": "UNSET"}  # the mesh's: STRICT
    assert webhook["spec"]["portLevelMtls"] == {"9443": {"mode": "PERMISSIVE"}}
    scraped = find(rendered, "PeerAuthentication", "payment-service-mtls-exception")
    assert scraped["spec"]["portLevelMtls"] == {"8080": {"mode": "PERMISSIVE"}}
    # the injected ingress controller presents its identity: nothing to except
    assert not [o for o in rendered.objects if o.obj["metadata"]["name"] ==
                "productpage-mtls-exception"]
    runbook = rendered.files["envs/staging/RUNBOOK.md"]
    assert "`payments/policy-webhook` accepts plaintext on port(s) 9443 (called without a mesh " \
           "identity: port 9443 by the Kubernetes API server)" in runbook


def test_istio_authorization_admits_each_caller(registry, example_intent):
    rendered = render(with_callers(example_intent("dev")), registry)
    webhook = find(rendered, "AuthorizationPolicy", "policy-webhook-allow")["spec"]["rules"]
    assert webhook == [{"to": [{"operation": {"ports": ["9443"]}}]}]
    product = find(rendered, "AuthorizationPolicy", "productpage-allow")["spec"]["rules"]
    assert {"from": [{"source": {"principals": ["cluster.local/ns/ingress-nginx/sa/"
                                                "ingress-nginx"]}}],
            "to": [{"operation": {"ports": ["9080"]}}]} in product
    payment = find(rendered, "AuthorizationPolicy", "payment-service-allow")["spec"]["rules"]
    assert {"to": [{"operation": {"ports": ["8080"], "methods": ["GET"],
                                  "paths": ["/metrics"]}}]} in payment
    # deny_other_callers still denies every other principal, except GET /metrics on 8080
    deny = find(rendered, "AuthorizationPolicy", "payment-service-deny")["spec"]["rules"]
    assert deny[0]["to"] == [{"operation": {"notPorts": ["8080"]}},
                             {"operation": {"ports": ["8080"], "notPaths": ["/metrics"]}}]


def test_istio_injects_the_ingress_controller_namespace(registry, example_intent):
    rendered = render(with_callers(example_intent("prod")), registry)
    namespace = find(rendered, "Namespace", "ingress-nginx")
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
    assert "service-upstream" in rendered.files["envs/prod/RUNBOOK.md"]


def test_linkerd_meshes_the_ingress_in_ingress_mode(registry, example_intent):
    rendered = render(with_callers(example_intent("prod", mesh_provider="linkerd")),
                      registry)
    namespace = find(rendered, "Namespace", "ingress-nginx")
    assert namespace["metadata"]["annotations"]["linkerd.io/inject"] == "ingress"
    assert "l5d-dst-override" in rendered.files["envs/prod/RUNBOOK.md"]


def test_linkerd_strict_opens_the_webhook_port_to_the_api_server(registry, example_intent):
    rendered = render(with_callers(example_intent("staging", mesh_provider="linkerd")),
                      registry)
    server = find(rendered, "Server", "policy-webhook-https-webhook")
    assert server["spec"]["port"] == 9443 and server["spec"]["proxyProtocol"] == "TLS"
    assert server["spec"]["accessPolicy"] == "all-unauthenticated"


def test_linkerd_authorization_admits_each_caller(registry, example_intent):
    rendered = render(with_callers(example_intent("dev", mesh_provider="linkerd")),
                      registry)
    webhook = find(rendered, "AuthorizationPolicy", "policy-webhook-https-webhook-network")
    assert webhook["spec"]["requiredAuthenticationRefs"] == [
        {"group": "policy.linkerd.io", "kind": "NetworkAuthentication",
         "name": "meshstage-all-networks"}]
    identities = find(rendered, "MeshTLSAuthentication", "productpage-http")["spec"][
        "identities"]
    assert "ingress-nginx.ingress-nginx.serviceaccount.identity.linkerd.cluster.local" in \
        identities
    # Prometheus is not meshed: GET /metrics from any network, on a route of its own
    routes = [o.obj for o in rendered.objects if o.obj["kind"] == "HTTPRoute"
              and o.obj["metadata"]["name"].startswith("payment-service-http-")]
    assert any({"method": "GET", "path": {"type": "Exact", "value": "/metrics"}} in
               r["spec"]["rules"][0]["matches"] for r in routes)


@pytest.mark.parametrize("provider,codes", [
    ("istio", {"MST0113": "Ingress bookinfo/bookinfo",
               "MST0114": "ValidatingWebhookConfiguration payments-policy",
               "MST0115": "ServiceMonitor monitoring/payment-service"}),
    ("linkerd", {"MST0211": "Ingress bookinfo/bookinfo",
                 "MST0212": "ValidatingWebhookConfiguration payments-policy",
                 "MST0213": "ServiceMonitor monitoring/payment-service"})])
def test_the_estate_s_outside_callers_refuse_a_run_that_does_not_name_them(
        tmp_path, example_intent, provider, codes):
    (tmp_path / "outside.yaml").write_text(OUTSIDE)
    options = StageOptions(gitops_dir=tmp_path / "gitops", check_paths=[ESTATE, tmp_path])
    variables = with_callers(example_intent("dev", mesh_provider=provider), [])
    if provider == "linkerd":
        linkerd_ready(variables)
    with pytest.raises(AnalysisError) as raised:
        render_stage(variables, options)
    message = str(raised.value)
    for code, origin in codes.items():
        assert f"{code}" in message and origin in message, (code, message)
    named = with_callers(example_intent("dev", mesh_provider=provider))
    if provider == "linkerd":
        linkerd_ready(named)
    rendered = render_stage(named, options)
    assert not [w for w in rendered.warnings if any(code in w for code in codes)]


def linkerd_ready(variables: dict[str, Any]) -> None:
    """The example estate is Istio's: its payment-service probes /health, and its ingress
    gateway is Istio's, unmeshed under Linkerd; authorize the probe and leave the gateway
    out, so that only the callers of this test are judged."""
    for service in variables["mesh_services"]:
        if service["name"] == "payment-service":
            service["probe_paths"] = ["/health"]
        service.pop("ingress", None)


def test_the_api_server_takes_no_namespace(example_intent):
    variables = with_callers(example_intent("dev"), [
        {"name": "kube-apiserver", "kind": "kube-apiserver", "namespace": "kube-system",
         "calls": ["policy-webhook"]}])
    with pytest.raises(IntentErrors, match=r"mesh_external_callers\[0\]\.namespace: "
                                           "'kube-system' is not for the Kubernetes API server"):
        render(variables, None)


def test_a_caller_port_must_be_a_port_of_the_service(example_intent):
    variables = with_callers(example_intent("dev"), [
        {"name": "kube-apiserver", "kind": "kube-apiserver", "calls": ["policy-webhook:8443"]}])
    with pytest.raises(IntentErrors, match=r"mesh_external_callers\[0\]\.calls\[0\]: "
                                           "'policy-webhook:8443' names no workload port of "
                                           r"policy-webhook \(ports: 9443\)"):
        render(variables, None)
