"""What an import reads, source by source: calls from ConfigMaps, NetworkPolicies, Istio
Sidecars and policies, Linkerd's policies; workloads that cannot take a sidecar; Argo
Rollouts; risky workloads waiting a wave; objects the intent cannot say, kept and listed."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.importer import (
    Imported,
    ImportOptions,
    import_estate,
)

SHOP = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: grpc-api, port: 9090}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec: {selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web, version: v1}}
    spec:
      serviceAccountName: web
      containers:
      - name: web
        ports: [{name: http, containerPort: 8080}]
        envFrom: [{configMapRef: {name: web-config}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: shop}
data: {API_URL: "grpc://api:9090", UNRELATED: "api"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  template:
    metadata: {labels: {app: api, version: "1.4.2"}}
    spec: {serviceAccountName: api, containers: [{name: api}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: data}
spec:
  template:
    metadata: {labels: {app: db}}
    spec: {serviceAccountName: db, containers: [{name: postgres}]}
"""


def _import(*texts: str, **options: Any) -> Imported:
    manifests = Manifests()
    for number, text in enumerate(texts):
        add_text(manifests, text, f"estate-{number}.yaml")
    return import_estate(manifests.resources, ImportOptions(**options))


def _service(imported: Imported, name: str) -> dict[str, Any]:
    return next(s for s in imported.shared["mesh_services"] if s["name"] == name)


def _notes(imported: Imported, name: str) -> str:
    index = [s["name"] for s in imported.shared["mesh_services"]].index(name)
    return " ".join(t for path, texts in imported.notes.items()
                    if path.startswith(f"mesh_services[{index}]") for t in texts)


def test_the_estate_alone():
    imported = _import(SHOP)
    web, api, db = (_service(imported, n) for n in ("web", "api", "db"))
    assert web["ports"] == [{"name": "http", "port": 80, "protocol": "HTTP",
                             "target_port": 8080}]   # the named targetPort, resolved
    assert web["calls"] == ["api"]                   # from the ConfigMap its env reads
    assert "ConfigMap shop/web-config key API_URL" in _notes(imported, "web")
    assert api["ports"] == [{"name": "grpc-api", "port": 9090, "protocol": "GRPC"}]
    # a version label that is no DNS label: its name is made one, its labels kept
    assert api["versions"] == [{"name": "1-4-2", "labels": {"version": "1.4.2"}}]
    assert db["ports"] == [{"port": 5432, "protocol": "POSTGRESQL"}]  # server-first
    assert "PostgreSQL" in _notes(imported, "db")
    # two namespaces: namespace waves, leaves first; the StatefulSet's waits one more
    assert imported.shared["mesh_injection_waves"] == [
        {"name": "wave-1", "namespaces": ["shop"]},
        {"name": "wave-2", "namespaces": ["data"]}]
    assert "data waits a wave: StatefulSet data/db is a StatefulSet" in \
        " ".join(imported.notes["mesh_injection_waves[1]"])


NETWORK_POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-callers, namespace: data}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}
      podSelector: {matchLabels: {app: api}}
  - from:
    - namespaceSelector: {}
"""


def test_calls_from_a_network_policy():
    imported = _import(SHOP, NETWORK_POLICY)
    assert _service(imported, "api")["calls"] == ["db"]
    assert "NetworkPolicy data/db-callers admits it" in _notes(imported, "api")
    assert ("NetworkPolicy data/db-callers", "spec.ingress[1].from[0] admits a whole "
            "namespace or an address block: no caller can be told from it") \
        in imported.draft.listed
    # api calls db: data is the leaf, but its StatefulSet waits one wave, beside shop
    assert imported.shared["mesh_injection_waves"] == [
        {"name": "wave-1", "namespaces": ["data", "shop"]}]


ISTIO = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: api, namespace: shop}
spec:
  workloadSelector: {labels: {app: api}}
  egress: [{hosts: ["data/db.data.svc.cluster.local", "istio-system/*"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: api-allow, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]
    to: [{operation: {methods: [GET], paths: ["/api/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-allow, namespace: data}
spec:
  selector: {matchLabels: {app: db}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/api]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-allow, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]
    when: [{key: "request.headers[x-team]", values: [shop]}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: db
  namespace: data
  annotations: {meshstage.io/reason: scraped in plaintext}
spec:
  selector: {matchLabels: {app: db}}
  mtls: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: shop}
spec: {}
"""


def test_istio_policies_become_intent_or_stay_as_they_are():
    imported = _import(SHOP, ISTIO)
    assert _service(imported, "api")["calls"] == ["db"]
    assert "Sidecar shop/api lets it reach data/db.data.svc.cluster.local" in \
        _notes(imported, "api")
    # an explicit rule stays an explicit rule; its caller is a call
    assert imported.shared["mesh_authorization"] == [
        {"service": "api", "allow": [{"from": ["web"], "methods": ["GET"],
                                      "paths": ["/api/*"]}]},
        {"service": "web"}]
    assert _service(imported, "web")["calls"] == ["api"]
    # the derived shape stays derived: db's callers from calls give the same principal
    assert not any(e["service"] == "db" for e in imported.shared["mesh_authorization"])
    # a condition the intent cannot say: web keeps its policy, meshstage renders none
    assert "web keeps its policies" in dict(imported.draft.listed)[
        "AuthorizationPolicy shop/web-allow"]
    assert imported.shared["mesh_mtls_exceptions"] == [
        {"service": "db", "mode": "PERMISSIVE", "reason": "scraped in plaintext"}]
    assert imported.shared["mesh_default_deny"] is True
    assert imported.environment["mesh_stage"] == "authorization"


def test_a_derived_allow_that_the_calls_contradict_becomes_explicit():
    """db's ALLOW admits api only; web is told db's address too. A derived ALLOW would
    admit web: the import writes db's rule as the estate enforces it."""
    told = SHOP.replace('API_URL: "grpc://api:9090"',
                        'API_URL: "grpc://api:9090", DB: "db.data.svc.cluster.local:5432"')
    imported = _import(told, ISTIO)
    assert _service(imported, "web")["calls"] == ["api", "db"]
    assert {"service": "db", "allow": [{"from": ["api"]}]} in \
        imported.shared["mesh_authorization"]


LINKERD = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations: {linkerd.io/inject: enabled, config.linkerd.io/default-inbound-policy: deny}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: api-grpc, namespace: shop}
spec: {podSelector: {matchLabels: {app: api}}, port: 9090, proxyProtocol: gRPC}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: api-grpc, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: api-grpc}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: api-callers}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: api-callers, namespace: shop}
spec:
  identityRefs: [{kind: ServiceAccount, name: web}]
"""


def test_linkerd_policies_become_calls_and_the_stage():
    imported = _import(SHOP, LINKERD)
    assert imported.shared["mesh_provider"] == "linkerd"
    assert _service(imported, "web")["calls"] == ["api"]
    assert "AuthorizationPolicy shop/api-grpc admits it" in _notes(imported, "web")
    assert "mesh_authorization" not in imported.shared  # the derived shape
    assert imported.environment["mesh_stage"] == "authorization"
    assert imported.shared["mesh_default_deny"] is True
    assert imported.shared["mesh_injection_waves"][0] == {"name": "injected",
                                                          "namespaces": ["shop"]}


AGENTS = """
apiVersion: v1
kind: Service
metadata: {name: node-agent, namespace: ops}
spec: {selector: {app: node-agent}, ports: [{name: http-metrics, port: 9100}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent, namespace: ops}
spec:
  template:
    metadata: {labels: {app: node-agent}}
    spec: {hostNetwork: true, containers: [{name: agent}]}
---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: ops}
spec: {selector: {app: legacy}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy, namespace: ops}
spec:
  template:
    metadata:
      labels: {app: legacy}
      annotations: {consul.hashicorp.com/connect-inject: "true"}
    spec: {containers: [{name: legacy}]}
---
apiVersion: v1
kind: Service
metadata: {name: checkout, namespace: ops}
spec: {selector: {app: checkout}, ports: [{name: http, port: 80}]}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: ops}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: checkout-template}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout-template, namespace: ops}
spec:
  replicas: 0
  template:
    metadata: {labels: {app: checkout, version: v7}}
    spec: {serviceAccountName: checkout, containers: [{name: checkout}]}
"""


def test_workloads_that_cannot_take_a_sidecar_and_argo_rollouts():
    imported = _import(AGENTS)
    agent, legacy, checkout = (_service(imported, n) for n in ("node-agent", "legacy",
                                                                "checkout"))
    assert agent["inject"] is False
    assert "hostNetwork" in _notes(imported, "node-agent")
    assert legacy["inject"] is False
    assert "asks for Consul's sidecar" in _notes(imported, "legacy")
    assert "inject" not in checkout
    assert checkout["versions"] == ["v7"]
    assert "runs as Argo Rollout ops/checkout-template" in _notes(imported, "checkout")


def opted_out_namespace(meta: str, pod_annotations: str = "") -> str:
    """``ledger`` and ``audit`` in namespace ``legacy`` (``meta``), ``web`` in ``shop``;
    ``audit``'s pods carry ``pod_annotations``."""
    def app(namespace: str, name: str, annotations: str = "") -> str:
        return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{selector: {{app: {name}}}, ports: [{{name: http, port: 80, targetPort: 8080}}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  template:
    metadata: {{labels: {{app: {name}}}, annotations: {{{annotations}}}}}
    spec: {{containers: [{{name: {name}, ports: [{{containerPort: 8080}}]}}]}}"""
    return (f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: legacy, {meta}}}"
            + app("legacy", "ledger") + app("legacy", "audit", pod_annotations)
            + app("shop", "web"))


@pytest.mark.parametrize("provider,meta,reason", [
    ("linkerd", "annotations: {linkerd.io/inject: disabled}",
     "its namespace opts out of linkerd's injection (Namespace legacy: linkerd.io/inject: "
     "disabled)"),
    ("istio", "labels: {istio-injection: disabled}",
     "its namespace opts out of istio's injection (Namespace legacy: "
     "istio-injection=disabled)"),
])
def test_a_namespace_that_opts_out_keeps_its_services_out_and_gets_no_wave(provider, meta,
                                                                          reason):
    imported = _import(opted_out_namespace(meta), provider=provider)
    for name in ("ledger", "audit"):
        assert _service(imported, name)["inject"] is False
        assert reason in _notes(imported, name)
    assert "inject" not in _service(imported, "web")
    assert imported.shared["mesh_injection_waves"] == [{"name": "wave-1",
                                                        "services": ["web"]}]
    assert not [w for w in imported.warnings if "mesh_injection_waves" in w]


def test_a_pod_that_asks_for_linkerds_proxy_is_injected_in_an_opted_out_namespace():
    """Linkerd's injector reads the workload's annotation before its namespace's."""
    imported = _import(opted_out_namespace("annotations: {linkerd.io/inject: disabled}",
                                           "linkerd.io/inject: enabled"), provider="linkerd")
    assert _service(imported, "ledger")["inject"] is False
    assert "inject" not in _service(imported, "audit")
    assert imported.shared["mesh_injection_waves"] == [
        {"name": "wave-1", "namespaces": ["legacy", "shop"]}]


def test_an_object_defined_twice_reads_the_last_and_says_so():
    first = SHOP
    second = SHOP.replace("ports: [{name: grpc-api, port: 9090}]",
                          "ports: [{name: grpc-api, port: 9091}]")
    imported = _import(first, second)
    assert _service(imported, "api")["ports"][0]["port"] == 9091
    assert "defined 2 times in the input (estate-0.yaml#2, estate-1.yaml#2): the last one " \
        "is read" in dict(imported.draft.listed)["Service shop/api"]


SELF_PROBES = """
apiVersion: v1
kind: Service
metadata: {name: config-server, namespace: pc}
spec: {selector: {app: config-server}, ports: [{name: http, port: 8888}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: pc}
spec: {selector: {app: db}, ports: [{name: tcp-postgresql, port: 5432}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: config-server, namespace: pc}
spec:
  selector: {matchLabels: {app: config-server}}
  template:
    metadata: {labels: {app: config-server}}
    spec:
      containers:
      - name: config
        image: config
        env: [{name: OTEL_SERVICE_NAME, value: config-server}]
        livenessProbe: {exec: {command: [sh, -c, "curl -I http://config-server:8888"]}}
        readinessProbe: {exec: {command: [pg_isready, -h, db]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: pc}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: postgres
        env: [{name: SERVICE_HOST, value: db}]
"""


def test_exec_probes_call_and_a_service_calls_itself_by_its_url():
    """An exec probe runs in the container: what it reaches, the workload calls, its own
    Service too (a liveness probe that curls its own URL leaves the pod through its proxy).
    A service's bare name alone in a variable (a tracer's service name) is not a call."""
    imported = _import(SELF_PROBES)
    assert _service(imported, "config-server")["calls"] == ["config-server", "db"]
    assert "calls" not in _service(imported, "db")
    notes = _notes(imported, "config-server")
    assert "is told 'http://config-server:8888' (livenessProbe.exec.command[2] of " \
           "container config)" in notes
    assert "is told 'db' (readinessProbe.exec.command[2] of container config)" in notes


KOMPOSE = """
apiVersion: v1
kind: Service
metadata: {name: dispatch, labels: {io.kompose.service: dispatch}}
spec:
  clusterIP: None
  ports: [{name: headless, port: 55555, targetPort: 0}]
  selector: {io.kompose.service: dispatch}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dispatch}
spec:
  selector: {matchLabels: {io.kompose.service: dispatch}}
  template:
    metadata: {labels: {io.kompose.service: dispatch}}
    spec: {containers: [{name: dispatch, image: robotshop/rs-dispatch}]}
"""


def test_komposes_placeholder_port_is_no_port(tmp_path):
    """kompose gives a compose service that publishes no port a headless Service with port
    ``headless`` 55555, so that its name resolves (kubernetes/kompose#823): nothing serves
    it, and the workload is a client. Every run's cross-check leaves that port alone."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
        StageOptions,
        render_stage,
    )
    imported = _import(KOMPOSE)
    dispatch = _service(imported, "dispatch")
    assert dispatch["ports"] == []
    assert "the placeholder kompose writes for a service without ports" in _notes(
        imported, "dispatch")
    estate = tmp_path / "estate.yaml"
    estate.write_text(KOMPOSE)
    rendered = render_stage({**imported.variables, "mesh_stage": "authorization"},
                            StageOptions(gitops_dir=tmp_path / "gitops", check_paths=[estate]))
    assert not [w for w in rendered.warnings if "MST0302" in w or "nothing calls" in w]


INGRESS_NGINX = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: ingress-nginx,
                  app.kubernetes.io/component: controller}
  template:
    metadata:
      labels: {app.kubernetes.io/name: ingress-nginx, app.kubernetes.io/component: controller}
    spec:
      serviceAccountName: ingress-nginx
      containers:
      - name: controller
        image: registry.k8s.io/ingress-nginx/controller
        args: [/nginx-ingress-controller, --controller-class=k8s.io/ingress-nginx,
               --ingress-class=nginx]
---
apiVersion: batch/v1
kind: Job
metadata: {name: ingress-nginx-admission-create, namespace: ingress-nginx}
spec:
  template:
    metadata:
      labels: {app.kubernetes.io/name: ingress-nginx,
               app.kubernetes.io/component: admission-webhook}
    spec:
      serviceAccountName: ingress-nginx-admission
      restartPolicy: OnFailure
      containers: [{name: create, image: kube-webhook-certgen, args: [create]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: ingress-nginx-admission-patch, namespace: ingress-nginx}
spec:
  template:
    metadata:
      labels: {app.kubernetes.io/name: ingress-nginx,
               app.kubernetes.io/component: admission-webhook}
    spec:
      serviceAccountName: ingress-nginx-admission
      restartPolicy: OnFailure
      containers: [{name: patch, image: kube-webhook-certgen, args: [patch]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: nginx
  rules:
  - http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
"""


def test_the_ingress_controller_is_what_its_args_say_never_its_jobs():
    """ingress-nginx's admission Jobs carry the controller's name label: they are no
    controller (they run to completion), so the caller runs as the controller's account."""
    imported = _import(INGRESS_NGINX)
    (nginx,) = [c for c in imported.shared["mesh_external_callers"]
                if c["kind"] == "ingress-controller"]
    assert nginx["service_account"] == "ingress-nginx"


def test_jobs_that_call_nothing_of_the_catalogue_stay_out_of_it():
    """The admission Jobs make the controller's certificates and call no service of the
    catalogue: they stay out of it and of its waves (a classic sidecar would keep them from
    completing), and so does the controller's namespace."""
    imported = _import(INGRESS_NGINX)
    assert [s["name"] for s in imported.shared["mesh_services"]] == ["web"]
    kept = dict(imported.draft.listed)
    assert "runs to completion and calls no service of the catalogue" in kept[
        "Job ingress-nginx/ingress-nginx-admission-create"]


def test_workloads_with_the_same_pod_labels_are_one_client():
    """Two Jobs that carry the same labels, and call the catalogue: the mesh cannot select
    one without the other, so they are one client, selected by those labels."""
    calling = INGRESS_NGINX.replace(
        "containers: [{name: create, image: kube-webhook-certgen, args: [create]}]",
        "containers: [{name: create, image: kube-webhook-certgen, args: [create, "
        "'http://web.shop']}]").replace(
        "containers: [{name: patch, image: kube-webhook-certgen, args: [patch]}]",
        "containers: [{name: patch, image: kube-webhook-certgen, args: [patch, "
        "'http://web.shop']}]")
    imported = _import(calling)
    clients = [s for s in imported.shared["mesh_services"]
               if s["name"].startswith("ingress-nginx-admission")]
    assert [c["name"] for c in clients] == ["ingress-nginx-admission-create"]
    assert clients[0]["selector"] == {"app.kubernetes.io/name": "ingress-nginx",
                                      "app.kubernetes.io/component": "admission-webhook"}
    assert "runs as Job ingress-nginx/ingress-nginx-admission-create; Job " \
           "ingress-nginx/ingress-nginx-admission-patch" in _notes(
               imported, "ingress-nginx-admission-create")
