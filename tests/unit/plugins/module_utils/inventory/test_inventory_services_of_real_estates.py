"""What real estates hold that the import must read right: a second Service over the same pods
(a LoadBalancer beside a ClusterIP Service), a StatefulSet's governing headless Service, the
clients a NodePort or LoadBalancer Service lets in, and callees named in a configuration file
mounted from a ConfigMap. Each one wrote a wrong inventory before (a second service whose
Sidecar selected nothing, a service for the headless Service, no caller for outside
clients, no calls at all)."""

from __future__ import annotations

from typing import Any

import pytest
from flow_helpers import EXPOSED_WEB

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.importer import (
    Imported,
    ImportOptions,
    import_estate,
)


def _import(text: str, **options: Any) -> Imported:
    manifests = Manifests()
    add_text(manifests, text, "estate.yaml")
    return import_estate(manifests.resources, ImportOptions(**options))


def _service(imported: Imported, name: str) -> dict[str, Any]:
    return next(s for s in imported.shared["mesh_services"] if s["name"] == name)


def _renders(imported: Imported) -> None:
    parse_intent({**imported.intent_variables, "mesh_stage": "authorization"})


SHOP = EXPOSED_WEB


def test_a_load_balancer_beside_the_service_is_an_alias_and_its_clients_a_caller():
    imported = _import(SHOP)
    assert [s["name"] for s in imported.shared["mesh_services"]] == ["web"]
    assert imported.shared["mesh_external_callers"] == [
        {"name": "web-external", "kind": "external-clients", "calls": ["web"]}]
    assert ("Service shop/web-external", "selects the pods of Service shop/web on its target "
            "ports: an alias of service web, not a service of its own") in imported.draft.listed
    _renders(imported)


def test_a_second_service_with_ports_of_its_own_stays_a_service():
    other = SHOP.replace("targetPort: 8080}]\n---\napiVersion: apps/v1",
                         "targetPort: 8080}, {name: admin, port: 9000}]\n---\n"
                         "apiVersion: apps/v1")
    imported = _import(other)
    assert {s["name"] for s in imported.shared["mesh_services"]} == {"web", "web-external"}


def test_a_node_port_service_alone_is_the_service_and_lets_outside_clients_in():
    node_port = SHOP.split("---\n", 1)[1].replace("LoadBalancer", "NodePort")
    imported = _import(node_port)
    assert [s["name"] for s in imported.shared["mesh_services"]] == ["web-external"]
    assert imported.shared["mesh_external_callers"] == [
        {"name": "web-external", "kind": "external-clients", "calls": ["web-external"]}]
    _renders(imported)


RABBITMQ = """
apiVersion: v1
kind: Service
metadata: {name: rabbitmq, namespace: data}
spec:
  selector: {app: rabbitmq}
  ports: [{name: amqp, port: 5672}, {name: management, port: 15672}]
---
apiVersion: v1
kind: Service
metadata: {name: rabbitmq-headless, namespace: data}
spec:
  clusterIP: None
  selector: {app: rabbitmq}
  ports: [{name: epmd, port: 4369}, {name: dist, port: 25672}, {name: amqp, port: 5672}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: rabbitmq, namespace: data}
spec:
  serviceName: rabbitmq-headless
  selector: {matchLabels: {app: rabbitmq}}
  template:
    metadata: {labels: {app: rabbitmq}}
    spec:
      containers:
      - name: rabbitmq
        image: rabbitmq
        ports: [{containerPort: 5672}, {containerPort: 15672}, {containerPort: 4369},
                {containerPort: 25672}]
"""


def test_a_stateful_set_s_governing_headless_service_gives_its_peer_ports():
    imported = _import(RABBITMQ)
    assert [s["name"] for s in imported.shared["mesh_services"]] == ["rabbitmq"]
    rabbitmq = _service(imported, "rabbitmq")
    assert rabbitmq["kind"] == "StatefulSet"
    # the governing headless Service's ports, 5672 among them: the peers reach each other
    # at their pods' addresses, not through the ClusterIP Service that declares 5672 too
    assert rabbitmq["peer_ports"] == [4369, 5672, 25672]
    assert any(name == "Service data/rabbitmq-headless" and "peer_ports" in why
               for name, why in imported.draft.listed)
    _renders(imported)


ORDERS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: orders-config, namespace: shop}
data:
  application.properties: |
    endpoints.payment=http://payment/paymentAuth
    spring.data.mongodb.host=orders-db.data
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  template:
    metadata: {labels: {app: orders}}
    spec:
      containers:
      - name: orders
        image: orders
        ports: [{containerPort: 80}]
        volumeMounts: [{name: config, mountPath: /config}]
      volumes:
      - {name: config, configMap: {name: orders-config}}
---
apiVersion: v1
kind: Service
metadata: {name: orders, namespace: shop}
spec: {selector: {app: orders}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: payment, namespace: shop}
spec:
  selector: {matchLabels: {app: payment}}
  template:
    metadata: {labels: {app: payment}}
    spec: {containers: [{name: payment, image: payment, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: payment, namespace: shop}
spec: {selector: {app: payment}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders-db, namespace: data}
spec:
  selector: {matchLabels: {app: orders-db}}
  template:
    metadata: {labels: {app: orders-db}}
    spec: {containers: [{name: mongo, image: mongo, ports: [{containerPort: 27017}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: orders-db, namespace: data}
spec: {selector: {app: orders-db}, ports: [{name: mongo, port: 27017}]}
"""


def test_callees_named_in_a_mounted_configuration_file_are_calls():
    imported = _import(ORDERS)
    assert _service(imported, "orders")["calls"] == ["orders-db", "payment"]
    notes = " ".join(line for key, lines in imported.notes.items() if key.endswith(".calls")
                     for line in lines)
    assert "ConfigMap shop/orders-config key application.properties" in notes
    projected = ORDERS.replace("- {name: config, configMap: {name: orders-config}}",
                               "- {name: config, projected: {sources: [{configMap: "
                               "{name: orders-config}}]}}")
    assert _service(_import(projected), "orders")["calls"] == ["orders-db", "payment"]


def test_a_server_first_server_waits_for_every_wave_of_its_callers():
    """MySQL speaks first: under Istio's PERMISSIVE mode a server injected before its
    plaintext callers stalls them; callers injected first send it mTLS once it is."""
    estate = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: catalogue, namespace: shop}
spec:
  selector: {matchLabels: {app: catalogue}}
  template:
    metadata: {labels: {app: catalogue}}
    spec:
      containers:
      - {name: c, image: c, args: ["-DSN=catalogue-db.data:3306"], ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: catalogue, namespace: shop}
spec: {selector: {app: catalogue}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: catalogue-db, namespace: data}
spec:
  selector: {matchLabels: {app: catalogue-db}}
  template:
    metadata: {labels: {app: catalogue-db}}
    spec: {containers: [{name: mysql, image: mysql, ports: [{containerPort: 3306}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: catalogue-db, namespace: data}
spec: {selector: {app: catalogue-db}, ports: [{port: 3306}]}
"""
    imported = _import(estate)
    assert _service(imported, "catalogue")["calls"] == ["catalogue-db"]
    waves = imported.shared["mesh_injection_waves"]
    assert [w["namespaces"] for w in waves] == [["shop"], ["data"]]
    assert "data waits for its callers' waves: port 3306 speaks MYSQL" in " ".join(
        line for key, lines in imported.notes.items() if key.startswith("mesh_injection_waves")
        for line in lines)


def test_an_exec_probe_running_grpc_health_probe_says_the_port_is_grpc():
    """Before kubelet's own grpc probes, gRPC servers were probed with grpc_health_probe
    (https://github.com/grpc-ecosystem/grpc-health-probe); its -addr names the port, and that
    outranks a guess from the port's number (8080 is usually HTTP)."""
    estate = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: recommendation, namespace: shop}
spec:
  selector: {matchLabels: {app: recommendation}}
  template:
    metadata: {labels: {app: recommendation}}
    spec:
      containers:
      - name: server
        image: recommendation
        ports: [{containerPort: 8080}]
        readinessProbe:
          exec: {command: [/bin/grpc_health_probe, "-addr=:8080"]}
---
apiVersion: v1
kind: Service
metadata: {name: recommendation, namespace: shop}
spec: {selector: {app: recommendation}, ports: [{port: 8080}]}
"""
    (port,) = _service(_import(estate), "recommendation")["ports"]
    assert port["protocol"] == "GRPC"
    other = estate.replace('"-addr=:8080"', '"-addr=localhost:9555"')
    (port,) = _service(_import(other), "recommendation")["ports"]
    assert port["protocol"] == "HTTP"  # the probe checks another port: the number decides


# The Jaeger chart writes targetPort: 0, which the API server defaults to the port
# (SetDefaults_Service); the OpenTelemetry demo ships it so
TARGET_PORT_ZERO = """
apiVersion: v1
kind: Service
metadata: {name: jaeger-collector, namespace: otel}
spec:
  selector: {app: jaeger-collector}
  ports:
  - {name: otlp-grpc, port: 4317, targetPort: 0, appProtocol: grpc}
  - {name: http-zipkin, port: 9411, targetPort: ""}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: jaeger-collector, namespace: otel}
spec:
  selector: {matchLabels: {app: jaeger-collector}}
  template:
    metadata: {labels: {app: jaeger-collector}}
    spec:
      containers:
      - name: jaeger
        image: jaeger
        ports: [{containerPort: 4317}, {containerPort: 9411}]
"""


def test_a_target_port_of_zero_is_the_port_as_the_api_server_defaults_it():
    imported = _import(TARGET_PORT_ZERO)
    ports = _service(imported, "jaeger-collector")["ports"]
    assert [(p["port"], p.get("target_port")) for p in ports] == [(4317, None), (9411, None)]
    _renders(imported)


# Grafana's chart ships a test Pod that carries the labels of Grafana's pods and runs as an
# account of its own (the OpenTelemetry demo renders it without its helm.sh/hook)
WITH_TEST_POD = """
apiVersion: v1
kind: Service
metadata: {name: grafana, namespace: obs}
spec:
  selector: {app: grafana}
  ports: [{name: http, port: 80, targetPort: 3000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: grafana, namespace: obs}
spec:
  selector: {matchLabels: {app: grafana}}
  template:
    metadata: {labels: {app: grafana}}
    spec:
      serviceAccountName: grafana
      containers: [{name: grafana, image: grafana, ports: [{containerPort: 3000}]}]
---
apiVersion: v1
kind: Pod
metadata:
  name: grafana-test
  namespace: obs
  labels: {app: grafana, version: 10-4-0}
  annotations: {HOOK}
spec:
  serviceAccountName: grafana-test
  containers: [{name: test, image: bats}]
"""


@pytest.mark.parametrize("hook", ["", "helm.sh/hook: test"])
def test_a_test_pod_beside_the_workload_says_nothing_of_the_service(hook):
    imported = _import(WITH_TEST_POD.replace("{HOOK}", "{" + hook + "}"))
    grafana = _service(imported, "grafana")
    assert grafana.get("service_account", "grafana") == "grafana"
    assert grafana["versions"] == []
    kept = " ".join(f"{name}: {why}" for name, why in imported.draft.listed)
    assert "Pod obs/grafana-test" in kept
    assert ("a Helm test hook" if hook else "a bare Pod that Service obs/grafana selects") \
        in kept


# Bank of Anthos's shape: the databases are StatefulSets, and every other service calls one
DATABASES = """
apiVersion: v1
kind: Service
metadata: {name: ledger-db, namespace: bank}
spec:
  selector: {app: ledger-db}
  ports: [{name: tcp, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ledger-db, namespace: bank}
spec:
  selector: {matchLabels: {app: ledger-db}}
  template:
    metadata: {labels: {app: ledger-db}}
    spec: {containers: [{name: postgres, image: postgres, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: queue, namespace: bank}
spec:
  selector: {app: queue}
  ports: [{port: 5672}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: queue, namespace: bank}
spec:
  selector: {matchLabels: {app: queue}}
  template:
    metadata: {labels: {app: queue}}
    spec: {containers: [{name: rabbitmq, image: rabbitmq, ports: [{containerPort: 5672}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: balances, namespace: bank}
spec:
  selector: {app: balances}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: balances, namespace: bank}
spec:
  selector: {matchLabels: {app: balances}}
  template:
    metadata: {labels: {app: balances}}
    spec:
      containers:
      - name: balances
        image: balances
        ports: [{containerPort: 8080}]
        env:
        - {name: DB_URI, value: "postgresql://ledger-db:5432/ledger"}
        - {name: QUEUE_ADDR, value: "queue:5672"}
"""


def test_the_waves_say_what_each_holds_when_the_risky_ones_cannot_wait():
    waves = _import(DATABASES).shared["mesh_injection_waves"]
    notes = " ".join(t for path, texts in _import(DATABASES).notes.items()
                     if path.startswith("mesh_injection_waves") for t in texts)
    assert waves == [{"name": "wave-1", "services": ["balances", "ledger-db"]},
                     {"name": "wave-2", "services": ["queue"]}]
    # the first wave's comment is true: balances calls what waits with it
    assert "balances calls ledger-db of this wave too" in notes
    assert "ledger-db goes first though StatefulSet bank/ledger-db is a StatefulSet: nothing " \
           "of the catalogue could go before it" in notes
    # AMQP's client speaks first: the queue waits for its callers for its long-lived
    # connections, not as a server-first protocol
    assert "port 5672 speaks AMQP, whose clients hold their connections open" in notes
    assert "AMQP, a server-first protocol" not in notes
    assert "calls only what the waves before it hold" not in notes



# The retail store sample's orders service reads its database's URL from a Secret
SECRET_URLS = """
apiVersion: v1
kind: Secret
metadata: {name: orders-db, namespace: orders}
data:
  url: amRiYzptYXJpYWRiOi8vb3JkZXJzLWRiOjMzMDYvb3JkZXJzP3VzZXI9b3JkZXJzJnBhc3N3b3JkPXMzY3JldA==
---
apiVersion: v1
kind: Secret
metadata: {name: orders-queue, namespace: orders}
stringData: {RABBITMQ_ADDRESSES: "amqp://guest:guest@queue:5672"}
---
apiVersion: v1
kind: Service
metadata: {name: orders-db, namespace: orders}
spec:
  selector: {app: orders-db}
  ports: [{name: mysql, port: 3306}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders-db, namespace: orders}
spec:
  selector: {matchLabels: {app: orders-db}}
  template:
    metadata: {labels: {app: orders-db}}
    spec: {containers: [{name: mysql, image: mysql, ports: [{containerPort: 3306}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: queue, namespace: orders}
spec:
  selector: {app: queue}
  ports: [{name: amqp, port: 5672}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: queue, namespace: orders}
spec:
  selector: {matchLabels: {app: queue}}
  template:
    metadata: {labels: {app: queue}}
    spec: {containers: [{name: rabbitmq, image: rabbitmq, ports: [{containerPort: 5672}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: orders, namespace: orders}
spec:
  selector: {app: orders}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders, namespace: orders}
spec:
  selector: {matchLabels: {app: orders}}
  template:
    metadata: {labels: {app: orders}}
    spec:
      containers:
      - name: orders
        image: orders
        ports: [{containerPort: 8080}]
        env:
        - name: SPRING_DATASOURCE_URL
          valueFrom: {secretKeyRef: {name: orders-db, key: url}}
        envFrom: [{secretRef: {name: orders-queue}}]
"""


def test_urls_read_from_secrets_are_calls_and_their_credentials_are_never_written():
    imported = _import(SECRET_URLS)
    assert sorted(_service(imported, "orders")["calls"]) == ["orders-db", "queue"]
    notes = " ".join(t for texts in imported.notes.values() for t in texts)
    assert "is told orders-db:3306 (Secret orders/orders-db key url)" in notes
    assert "is told queue:5672 (Secret orders/orders-queue key RABBITMQ_ADDRESSES)" in notes
    assert "s3cret" not in notes and "guest" not in notes


def _shop_deployment(name: str) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: teastore, run: {name}}}}}
  template:
    metadata: {{labels: {{app: teastore, run: {name}}}}}
    spec: {{containers: [{{name: app, image: {name}, ports: [{{containerPort: 8080}}]}}]}}
---
"""


# the TeaStore's Kieker variant: every pod carries app: teastore, and four workloads have no
# Service (their callers find them in the registry)
SHARED_APP = "".join(_shop_deployment(n) for n in (
    "teastore-auth", "teastore-image", "teastore-persistence", "teastore-webui")) + """
apiVersion: v1
kind: Service
metadata: {name: teastore-webui, namespace: shop}
spec:
  selector: {run: teastore-webui}
  ports: [{port: 8080}]
"""


def test_workloads_sharing_an_app_label_are_each_a_service_selected_by_their_own_labels():
    imported = _import(SHARED_APP)
    services = {s["name"]: s for s in imported.shared["mesh_services"]}
    assert sorted(services) == ["teastore-auth", "teastore-image", "teastore-persistence",
                                "teastore-webui"]
    assert services["teastore-auth"]["selector"] == {"app": "teastore",
                                                     "run": "teastore-auth"}
    assert services["teastore-webui"]["selector"] == {"run": "teastore-webui"}
    _renders(imported)


# Online Boutique's Istio variant: a ServiceEntry for Google's APIs and a Gateway, which no
# Sidecar names
ISTIO_OBJECTS = """
apiVersion: v1
kind: Service
metadata: {name: frontend, namespace: default}
spec:
  selector: {app: frontend}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: default}
spec:
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend}}
    spec: {containers: [{name: server, image: frontend, ports: [{containerPort: 8080}]}]}
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: allow-egress-googleapis, namespace: default}
spec:
  hosts: [accounts.google.com, "*.googleapis.com"]
  ports: [{number: 443, protocol: HTTPS, name: https}]
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: frontend-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""


def test_every_istio_object_of_the_estate_is_listed_with_what_meshstage_makes_of_it():
    listed = dict(_import(ISTIO_OBJECTS).draft.listed)
    assert "add each host to the calls of the services that reach it" in \
        listed["ServiceEntry default/allow-egress-googleapis"]
    assert "REGISTRY_ONLY blocks" in listed["ServiceEntry default/allow-egress-googleapis"]
    assert "meshstage renders no Gateway" in listed["Gateway default/frontend-gateway"]


def test_a_well_known_target_port_tells_the_protocol_behind_another_service_port():
    """hotelReservation's mongodb-geo Service listens on 27018 in front of MongoDB's 27017,
    and its memcached-profile on 11213 in front of memcached's 11211."""
    text = """
apiVersion: v1
kind: Service
metadata: {name: mongodb-geo, namespace: hotel}
spec:
  selector: {app: mongodb-geo}
  ports: [{name: "27018", port: 27018, targetPort: 27017}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: mongodb-geo, namespace: hotel}
spec:
  selector: {matchLabels: {app: mongodb-geo}}
  template:
    metadata: {labels: {app: mongodb-geo}}
    spec: {containers: [{name: mongo, image: mongo, ports: [{containerPort: 27017}]}]}
"""
    imported = _import(text)
    (port,) = _service(imported, "mongodb-geo")["ports"]
    assert port["protocol"] == "MONGO" and port["target_port"] == 27017
    notes = " ".join(imported.notes["mesh_services[0].ports[0]"])
    assert "guessed from the target port number 27017" in notes
