"""What the import guesses of the workloads real clusters hold (issue 14's fields): ``kind``,
a StatefulSet's ``peer_ports``, ``init_network``, server-first protocols, external hosts in
``calls`` and ``mesh_external_callers`` (ingress controllers, the API server calling
webhooks, Prometheus scraping); each with the note that says what it was guessed from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
    read_manifests,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.importer import (
    Imported,
    ImportOptions,
    import_estate,
)


def _import(*texts: str, **options: Any) -> Imported:
    manifests = Manifests()
    for number, text in enumerate(texts):
        add_text(manifests, text, f"estate-{number}.yaml")
    return import_estate(manifests.resources, ImportOptions(**options))


def _service(imported: Imported, name: str) -> dict[str, Any]:
    return next(s for s in imported.shared["mesh_services"] if s["name"] == name)


def _notes(imported: Imported, key: str) -> str:
    return " ".join(t for path, texts in imported.notes.items()
                    if path == key or path.startswith((f"{key}.", f"{key}[")) for t in texts)


def _service_notes(imported: Imported, name: str, field: str) -> str:
    index = [s["name"] for s in imported.shared["mesh_services"]].index(name)
    return _notes(imported, f"mesh_services[{index}].{field}")


# A MySQL StatefulSet with group replication: the headless Service declares the client
# port; the replicas talk to each other on 33061; an exporter serves metrics on 9104.
DATABASE = """
apiVersion: v1
kind: Service
metadata: {name: orders-db, namespace: data}
spec:
  clusterIP: None
  selector: {app: orders-db}
  ports: [{name: mysql, port: 3306}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: orders-db, namespace: data}
spec:
  serviceName: orders-db
  selector: {matchLabels: {app: orders-db}}
  template:
    metadata: {labels: {app: orders-db}}
    spec:
      serviceAccountName: orders-db
      containers:
      - name: mysql
        image: mysql:8.4
        ports: [{name: mysql, containerPort: 3306}, {name: replication, containerPort: 33061}]
      - name: exporter
        image: mysqld-exporter
        ports: [{name: metrics, containerPort: 9104}]
"""

# A nightly export (a CronJob) whose init container waits for the database.
EXPORT = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: orders-export, namespace: jobs}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {app: orders-export}}
        spec:
          restartPolicy: Never
          initContainers:
          - name: wait-for-db
            image: busybox
            command: [sh, -c, "until nc -z orders-db.data 3306; do sleep 2; done"]
          containers:
          - {name: export, image: export:1}
"""


def test_a_statefulset_gives_its_kind_and_the_ports_its_peers_talk_on():
    imported = _import(DATABASE)
    db = _service(imported, "orders-db")
    assert db["kind"] == "StatefulSet"
    assert db["ports"] == [{"name": "mysql", "port": 3306, "protocol": "MYSQL"}]
    assert db["peer_ports"] == [33061]      # not 3306 (its Service's), not 9104 (metrics)
    assert "from StatefulSet data/orders-db" in _service_notes(imported, "orders-db", "kind")
    notes = _service_notes(imported, "orders-db", "peer_ports")
    assert "container port replication 33061 of StatefulSet data/orders-db" in notes
    assert "9104 (metrics: metrics, not a peer port)" in notes


def test_the_peers_service_meshstage_rendered_gives_back_its_ports():
    peers = """
---
apiVersion: v1
kind: Service
metadata:
  name: orders-db-peers
  namespace: data
  labels: {app.kubernetes.io/managed-by: meshstage, meshstage.io/environment: dev}
spec:
  clusterIP: None
  selector: {app: orders-db}
  ports: [{name: http-peer-8081, port: 8081, targetPort: 8081}]
"""
    imported = _import(DATABASE + peers)
    db = _service(imported, "orders-db")
    assert db["peer_ports"] == [{"port": 8081, "protocol": "HTTP"}, 33061]
    assert "Service data/orders-db-peers declares it" in _service_notes(
        imported, "orders-db", "peer_ports")
    assert ("Service data/orders-db-peers", "orders-db: peer_ports (meshstage renders it "
            "from them)") in imported.draft.converted
    assert "orders-db-peers" not in [s["name"] for s in imported.shared["mesh_services"]]


def test_a_deployment_says_no_kind_and_no_peer_ports():
    deployment = DATABASE.replace("kind: StatefulSet", "kind: Deployment").replace(
        "  serviceName: orders-db\n", "")
    db = _service(_import(deployment), "orders-db")
    assert "kind" not in db and "peer_ports" not in db


def test_a_cronjob_gives_its_kind_and_its_networked_init_container():
    imported = _import(EXPORT)
    job = _service(imported, "orders-export")
    assert job["kind"] == "CronJob"
    assert job["init_network"] is True
    assert "init container wait-for-db of CronJob jobs/orders-export (nc)" in \
        _service_notes(imported, "orders-export", "init_network")


def test_init_containers_that_stay_local_or_are_the_meshs_own_say_nothing():
    local = EXPORT.replace(
        '[sh, -c, "until nc -z orders-db.data 3306; do sleep 2; done"]',
        "[cp, /defaults/config.yaml, /config/]")
    mesh_own = EXPORT.replace("name: wait-for-db", "name: istio-init")
    for text in (local, mesh_own):
        # no init container reaches the network, and it calls nothing of the catalogue: a
        # job the mesh has nothing to keep working for, left out (_idle_jobs)
        imported = _import(text)
        assert not [s for s in imported.shared["mesh_services"] if s["name"] == "orders-export"]
        assert "runs to completion and calls no service of the catalogue" in dict(
            imported.draft.listed)["CronJob jobs/orders-export"]


@pytest.mark.parametrize(("port", "protocol"), [
    ("{name: tcp-postgresql-5432, port: 5432}", "POSTGRESQL"),   # meshstage's default name
    ("{name: postgres, port: 5433}", "POSTGRESQL"),
    ("{name: client, port: 4222}", "NATS"),                      # its well-known number
    ("{name: cache, port: 11211}", "MEMCACHED"),
    ("{name: mail, port: 2525, appProtocol: smtp}", "SMTP"),
    ("{name: tcp-nats-4222, port: 4222}", "NATS"),
    ("{name: mysql, port: 3306}", "MYSQL"),
])
def test_server_first_protocols(port, protocol):
    text = f"""
apiVersion: v1
kind: Service
metadata: {{name: store, namespace: data}}
spec: {{selector: {{app: store}}, ports: [{port}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: store, namespace: data}}
spec:
  selector: {{matchLabels: {{app: store}}}}
  template:
    metadata: {{labels: {{app: store}}}}
    spec: {{containers: [{{name: store, image: store}}]}}
"""
    imported = _import(text)
    assert _service(imported, "store")["ports"][0]["protocol"] == protocol
    # a server-first port makes injecting it riskier: it waits a wave; PostgreSQL and
    # memcached clients speak first, but pool their connections, which wait too
    why = ("whose clients hold their connections open" if protocol in ("POSTGRESQL",
                                                                        "MEMCACHED")
           else "server-first protocol")
    assert why in _notes(imported, "mesh_injection_waves")


SHOP = """
apiVersion: v1
kind: Service
metadata: {name: storefront, namespace: shop}
spec: {selector: {app: storefront}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: storefront, namespace: shop}
spec:
  selector: {matchLabels: {app: storefront}}
  template:
    metadata: {labels: {app: storefront}}
    spec: {containers: [{name: web, image: storefront, ports: [{containerPort: 8080}]}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: storefront, namespace: shop}
spec:
  ingressClassName: nginx
  defaultBackend: {service: {name: storefront, port: {number: 80}}}
"""
CONTROLLER = """
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: v1
kind: Namespace
metadata: {name: ingress-nginx{labels}}
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
      containers:
      - name: controller
        image: controller
        args: [/nginx-ingress-controller, --ingress-class=nginx]
---
apiVersion: v1
kind: Service
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
spec:
  type: LoadBalancer
  selector: {app.kubernetes.io/name: ingress-nginx}
  ports: [{name: http, port: 80}]
"""


@pytest.mark.parametrize(("labels", "provider", "injected"), [
    ("", "istio", False), (", labels: {istio-injection: enabled}", "istio", True),
    (", annotations: {linkerd.io/inject: ingress}", "linkerd", True)])
def test_an_ingress_whose_controller_runs_in_the_estate_is_an_external_caller(
        labels, provider, injected):
    imported = _import(SHOP + CONTROLLER.replace("{labels}", labels), provider=provider)
    (caller,) = imported.shared["mesh_external_callers"]
    assert caller == {"name": "nginx", "kind": "ingress-controller",
                      "namespace": "ingress-nginx", "service_account": "ingress-nginx",
                      **({"inject": True} if injected else {}), "calls": ["storefront"]}
    assert "Ingress shop/storefront (backend storefront:80)" in _notes(
        imported, "mesh_external_callers[0]")
    # the controller is no service of the catalogue, and its namespace is in no wave
    assert [s["name"] for s in imported.shared["mesh_services"]] == ["storefront"]
    assert imported.shared["mesh_injection_waves"] == [
        {"name": "wave-1", "services": ["storefront"]}]


def test_an_ingress_whose_controller_the_estate_does_not_show_is_listed():
    imported = _import(SHOP)
    assert "mesh_external_callers" not in imported.shared
    assert any("Ingress shop/storefront" in line and "kind ingress-controller" in line
               for line in imported.draft.outside)


WEBHOOK = """
apiVersion: v1
kind: Service
metadata: {name: policy, namespace: guard}
spec:
  selector: {app: policy}
  ports: [{name: https-webhook, port: 443, targetPort: 9443}, {name: http-metrics, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: policy, namespace: guard}
spec:
  selector: {matchLabels: {app: policy}}
  template:
    metadata: {labels: {app: policy}}
    spec:
      containers:
      - {name: webhook, image: policy, ports: [{containerPort: 9443}, {containerPort: 8080}]}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: policy}
webhooks:
- name: pods.policy.guard.svc
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {service: {namespace: guard, name: policy, path: /mutate}}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
"""


def test_a_webhook_on_a_catalogue_service_is_called_by_the_api_server():
    imported = _import(WEBHOOK)
    assert imported.shared["mesh_external_callers"] == [
        {"name": "kube-apiserver", "kind": "kube-apiserver", "calls": ["policy:9443"]}]
    assert "MutatingWebhookConfiguration policy" in _notes(imported, "mesh_external_callers[0]")


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_bookinfos_scrape_annotation_declares_a_prometheus_the_estate_does_not_show(
        provider, reference_dir: Path):
    """productpage-v1's pods ask to be scraped on 9080 (``prometheus.io/scrape``): the same
    entry for either mesh, with placeholders to fill in."""
    bookinfo = reference_dir / "samples" / "istio-bookinfo" / "platform" / "kube" / \
        "bookinfo.yaml"
    imported = import_estate(read_manifests([bookinfo]).resources,
                             ImportOptions(provider=provider))
    assert imported.shared["mesh_external_callers"] == [
        {"name": "prometheus", "kind": "prometheus", "namespace": "monitoring",
         "calls": ["productpage"]}]
    notes = _notes(imported, "mesh_external_callers[0]")
    assert "Deployment productpage-v1 (annotation prometheus.io/scrape)" in notes
    assert "WARNING: the estate shows no Prometheus" in notes
    assert "inject: true if it runs with the mesh's proxy" in notes


def test_a_prometheus_the_estate_shows_is_the_scraper():
    monitor = """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus-server, namespace: observability}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: prometheus}}
  template:
    metadata: {labels: {app.kubernetes.io/name: prometheus}}
    spec: {serviceAccountName: prometheus-k8s, containers: [{name: prometheus, image: prom}]}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: policy, namespace: guard}
spec:
  selector: {matchLabels: {app: policy}}
  endpoints: [{port: http-metrics, path: /stats}]
"""
    imported = _import(WEBHOOK.replace("metadata: {name: policy, namespace: guard}\nspec:\n"
                                       "  selector: {app: policy}",
                                       "metadata: {name: policy, namespace: guard, labels: "
                                       "{app: policy}}\nspec:\n  selector: {app: policy}", 1)
                       + monitor)
    prometheus = next(c for c in imported.shared["mesh_external_callers"]
                      if c["kind"] == "prometheus")
    assert prometheus == {"name": "prometheus", "kind": "prometheus",
                          "namespace": "observability", "service_account": "prometheus-k8s",
                          "calls": ["policy:8080"], "metrics_path": "/stats"}
    assert [s["name"] for s in imported.shared["mesh_services"]] == ["policy"]


def test_external_hosts_come_back_from_the_service_entries_meshstage_rendered():
    egress = """
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: storefront, namespace: shop}
spec:
  workloadSelector: {labels: {app: storefront}}
  egress: [{hosts: [./api.stripe.com, ./smtp.example.com, istio-system/*]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: egress-api-stripe-com
  namespace: shop
  labels: {app.kubernetes.io/managed-by: meshstage}
spec:
  hosts: [api.stripe.com]
  exportTo: ["."]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls-443, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: egress-smtp-example-com
  namespace: shop
  labels: {app.kubernetes.io/managed-by: meshstage}
spec:
  hosts: [smtp.example.com]
  exportTo: ["."]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 587, name: tcp-587, protocol: TCP}]
"""
    imported = _import(SHOP + egress)
    storefront = _service(imported, "storefront")
    assert storefront["calls"] == ["api.stripe.com", "smtp.example.com:587"]
    notes = _service_notes(imported, "storefront", "calls")
    assert "which ServiceEntry shop/egress-smtp-example-com declares (port 587)" in notes
    assert ("ServiceEntry shop/egress-api-stripe-com", "calls of the services whose "
            "Sidecar reaches api.stripe.com (meshstage renders it from them)") in \
        imported.draft.converted


@pytest.mark.parametrize(("port", "probe", "protocol", "why"), [
    ("{name: query-http, port: 16686}", "", "HTTP", "a word of the port name 'query-http'"),
    ("{name: collector-grpc, port: 14250}", "", "GRPC", "a word of the port name"),
    ("{name: tcp-http, port: 9000}", "", "TCP", "from the port name 'tcp-http'"),
    ("{port: 8081}", "livenessProbe: {exec: {command: [curl, -f, "
     "'http://localhost:8081/actuator/health']}}", "HTTP",
     "livenessProbe exec of container store of Deployment data/store, which requests http://"),
    ("{port: 8888}", "readinessProbe: {exec: {command: [sh, -c, "
     "'curl -I http://store:8888']}}", "HTTP", "readinessProbe exec"),
    ("{port: 8888}", "readinessProbe: {exec: {command: [sh, -c, "
     "'curl -I http://other:8888']}}", "TCP", "guessed: neither"),
])
def test_a_port_name_word_or_an_exec_probe_over_http_tells_http(port, probe, protocol, why):
    """Istio reads a port name's prefix only and sniffs the rest: a word ``http`` or ``grpc``
    later in the name says what it will find. An exec probe that requests the port over
    HTTP, of the pod itself or of its own Service (kompose's Spring estates), says it too;
    TCP, the opaque guess, would take per-request authorization away on Linkerd."""
    text = f"""
apiVersion: v1
kind: Service
metadata: {{name: store, namespace: data}}
spec: {{selector: {{app: store}}, ports: [{port}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: store, namespace: data}}
spec:
  selector: {{matchLabels: {{app: store}}}}
  template:
    metadata: {{labels: {{app: store}}}}
    spec:
      containers:
      - name: store
        image: store
        {probe}
"""
    imported = _import(text)
    assert _service(imported, "store")["ports"][0]["protocol"] == protocol
    assert why in _service_notes(imported, "store", "ports")
