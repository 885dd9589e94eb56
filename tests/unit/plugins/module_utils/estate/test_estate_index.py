"""The mesh index: hosts and their visibility, selectors, injection, what is known."""

from __future__ import annotations

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.hosts import (
    host_overlaps,
    hosts_in_text,
    service_of_fqdn,
    to_fqdn,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshIndex
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.objects import make_resource


def resource(kind: str, name: str, namespace: str | None = None, api: str = "v1",
             **fields: object):
    metadata = {"name": name, **({"namespace": namespace} if namespace else {}),
                **fields.pop("metadata", {})}
    return make_resource({"apiVersion": api, "kind": kind, "metadata": metadata, **fields})


def test_hosts():
    assert to_fqdn("bookinfo", "reviews") == "reviews.bookinfo.svc.cluster.local"
    assert to_fqdn("bookinfo", "reviews.other") == "reviews.other"
    assert to_fqdn("bookinfo", "*.example.com") == "*.example.com"
    assert service_of_fqdn("reviews.bookinfo.svc.cluster.local") == ("bookinfo", "reviews")
    assert service_of_fqdn("example.com") is None
    assert host_overlaps("a.example.com", "*.example.com")
    assert host_overlaps("*.b.example.com", "*.example.com")
    assert not host_overlaps("*.example.com", "*.example.org")
    assert host_overlaps("*", "anything.example")


def test_service_export_to_decides_where_a_host_is_visible():
    index = MeshIndex([
        resource("Service", "details", "bookinfo",
                 metadata={"annotations": {"networking.istio.io/exportTo": ".,frontend"}}),
        resource("ServiceEntry", "eu", "bookinfo", api="networking.istio.io/v1",
                 spec={"hosts": ["*.eu.example.com"], "exportTo": ["*"]}),
    ])
    assert index.resolve_host("bookinfo", "details") is not None
    assert index.resolve_host("frontend", "details.bookinfo.svc.cluster.local") is not None
    assert index.resolve_host("payments", "details.bookinfo.svc.cluster.local") is None
    assert index.resolve_host("payments", "shop.eu.example.com").resource.name == "eu"


def test_workloads_come_from_pods_and_pod_templates_and_know_their_sidecar():
    index = MeshIndex([
        resource("Namespace", "bookinfo", metadata={"labels": {"istio-injection": "enabled"}}),
        resource("Deployment", "reviews-v1", "bookinfo", api="apps/v1", spec={"template": {
            "metadata": {"labels": {"app": "reviews", "version": "v1"}},
            "spec": {"serviceAccountName": "reviews", "containers": []}}}),
        resource("Pod", "legacy", "bookinfo", metadata={
            "labels": {"app": "legacy", "sidecar.istio.io/inject": "false"}}, spec={}),
        resource("CronJob", "report", "bookinfo", api="batch/v1", spec={"jobTemplate": {
            "spec": {"template": {"metadata": {"labels": {"app": "report"}}, "spec": {}}}}}),
    ])
    (reviews,) = index.workloads_matching("bookinfo", {"app": "reviews"})
    assert reviews.service_account == "reviews" and index.has_sidecar(reviews)
    (legacy,) = index.workloads_matching(None, {"app": "legacy"})
    assert not index.has_sidecar(legacy) and not index.in_mesh(legacy)
    assert index.workloads_matching("bookinfo", {"app": "report"})
    assert index.workloads_matching("payments", {"app": "reviews"}) == []


def test_a_pod_on_the_node_s_network_never_gets_a_sidecar():
    """istiod skips hostNetwork pods (injectRequired, pkg/kube/inject/webhook.go), even in an
    injected namespace: a node exporter there sends and takes plaintext."""
    index = MeshIndex([
        resource("Namespace", "monitoring", metadata={"labels": {"istio-injection": "enabled"}}),
        resource("DaemonSet", "node-exporter", "monitoring", api="apps/v1", spec={"template": {
            "metadata": {"labels": {"app": "node-exporter"}},
            "spec": {"hostNetwork": True, "containers": []}}}),
    ])
    (exporter,) = index.workloads_matching("monitoring", {"app": "node-exporter"})
    assert not index.has_sidecar(exporter) and not index.in_mesh(exporter)


def test_each_workload_s_injection_is_judged_once(monkeypatch):
    """Most analyzers and the flow proof ask has_sidecar of the same workloads: the index
    judges each workload once and gives the same answer after."""
    index = MeshIndex([
        resource("Namespace", "bookinfo", metadata={"labels": {"istio-injection": "enabled"}}),
        resource("Pod", "reviews", "bookinfo", metadata={"labels": {"app": "reviews"}}, spec={}),
        resource("Pod", "legacy", "bookinfo", metadata={
            "labels": {"app": "legacy", "sidecar.istio.io/inject": "false"}}, spec={}),
    ])
    judged: list[str] = []
    judge = MeshIndex._has_sidecar

    def counted(self: MeshIndex, workload) -> bool:
        judged.append(workload.resource.name)
        return judge(self, workload)

    monkeypatch.setattr(MeshIndex, "_has_sidecar", counted)
    (reviews,) = index.workloads_matching("bookinfo", {"app": "reviews"})
    (legacy,) = index.workloads_matching("bookinfo", {"app": "legacy"})
    answers = [index.has_sidecar(w) for w in (reviews, legacy, reviews, legacy)]
    assert answers == [True, False, True, False] and index.in_mesh(reviews)
    assert judged == ["reviews", "legacy"]


def test_knows_a_kind_when_the_input_holds_one_or_is_complete():
    index = MeshIndex([resource("Service", "reviews", "bookinfo")])
    assert index.knows("Service") and not index.knows("Pod")
    assert index.knows_in("bookinfo", "Service") and not index.knows_in("payments", "Service")
    complete = MeshIndex([], complete=True)
    assert complete.knows("Pod") and complete.knows_in("payments", "Server")


def test_namespaces_every_cluster_has_exist_and_accounts_are_judged_where_known():
    objects = [resource("Namespace", "bookinfo"), resource("ServiceAccount", "reviews",
                                                             "bookinfo")]
    index = MeshIndex(objects)
    assert {"bookinfo", "default", "kube-system"} <= index.namespace_names
    assert index.account_problem("default", "default") is None
    assert index.account_problem("bookinfo", "reviews") is None
    assert index.account_problem("bookinfo", "ratings") == (
        "no ServiceAccount bookinfo/ratings exists and no workload runs as it")
    assert index.account_problem("payments", "order") == ""  # nothing known there
    complete = MeshIndex(objects, complete=True)
    assert complete.account_problem("payments", "order") == "namespace payments does not exist"


def test_a_workload_knows_its_probes_as_the_kubelet_sends_them():
    resource = make_resource({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"template": {"metadata": {"labels": {"app": "api"}}, "spec": {
            "initContainers": [
                {"name": "migrate", "image": "x"},
                {"name": "agent", "image": "x", "restartPolicy": "Always",
                 "startupProbe": {"tcpSocket": {"port": 9901}}}],
            "containers": [{
                "name": "api", "image": "x",
                "ports": [{"name": "http", "containerPort": 8080},
                          {"name": "grpc", "containerPort": 9090}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                "readinessProbe": {"grpc": {"port": 9090, "service": "ready"}},
                "startupProbe": {"exec": {"command": ["true"]}}}]}}}})
    workload = MeshIndex([resource]).workloads_in("shop")[0]
    assert workload.kind == "Deployment"
    assert [c["name"] for c in workload.init_containers] == ["migrate", "agent"]
    assert [(p.kind, p.action, p.container, p.port, p.path, p.grpc_service)
            for p in workload.probes()] == [
        ("livenessProbe", "httpGet", "api", 8080, "/healthz", None),
        ("readinessProbe", "grpc", "api", 9090, None, "ready"),
        ("startupProbe", "exec", "api", None, None, None),
        ("startupProbe", "tcpSocket", "agent", 9901, None, None),
    ]


def test_hosts_in_text_are_cluster_dns_names():
    found = [(h.name, h.namespace, h.port, h.scheme) for h in hosts_in_text(
        "http://authors:7001 web-svc.emojivoto:80 grpc://a.b.svc.cluster.local "
        "x.y.svc sqlite3:db/db.sqlite3 example.com.evil")]
    assert ("authors", None, 7001, "http") in found
    assert ("web-svc", "emojivoto", 80, None) in found
    assert ("a", "b", None, "grpc") in found
    assert ("x", "y", None, None) in found
    assert not any(name == "example" for name, *_ in found)


def test_services_named_in_a_value_a_bare_name_needs_a_scheme_or_a_port():
    index = MeshIndex([
        resource("Service", "api", "shop", spec={"selector": {"app": "api"},
                                                 "ports": [{"port": 9090}]}),
        resource("Service", "db", "data", spec={"selector": {"app": "db"},
                                                "ports": [{"port": 5432}]}),
    ])

    def named(text: str, whole: bool = False) -> list[str]:
        return [entry.resource.name for entry, _ in index.services_named_in("shop", text,
                                                                            whole)]

    assert named("api") == [] and named("api", whole=True) == ["api"]
    assert named("api:9090") == ["api"] and named("api:80") == []
    assert named("postgres://u@db.data:5432/x") == ["db"]
    assert named("see the api docs") == []


def test_what_a_workload_is_told_includes_the_config_maps_it_reads():
    index = MeshIndex([
        resource("ConfigMap", "settings", "shop", data={"API": "http://api:9090", "N": "3"}),
        resource("Deployment", "web", "shop", api="apps/v1", spec={"template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{
                "name": "web", "args": ["--db", "db:5432"],
                "env": [{"name": "API_URL", "valueFrom": {"configMapKeyRef": {
                    "name": "settings", "key": "API"}}}],
                "envFrom": [{"configMapRef": {"name": "settings"}}]}]}}}),
    ])
    (web,) = index.workloads
    told = [(entry.name, entry.key, text) for entry, text in index.told(web)]
    assert told == [("API_URL", "API", "http://api:9090"), ("", "API", "http://api:9090"),
                    ("", "N", "3"), ("args[0]", None, "--db"), ("args[1]", None, "db:5432")]


def test_owners_are_read_controller_first():
    pod = resource("Pod", "web-1", "shop", metadata={"ownerReferences": [
        {"kind": "Node", "name": "n1", "uid": "u0"},
        {"kind": "ReplicaSet", "name": "web-5d", "uid": "u1", "controller": True}]})
    assert pod.owners() == [("ReplicaSet", "web-5d", "u1"), ("Node", "n1", "u0")]


def test_a_namespace_defined_twice_holds_both_copies_labels_whatever_the_order():
    """The estate's Namespace and the one meshstage renders for its labels, given together
    (``meshstage check tree estate``): the cluster ends up with both applied, so the index
    holds one Namespace with every label, and the verdicts do not depend on the order."""
    estate = resource("Namespace", "shop", metadata={"labels": {"team": "web"},
                                                     "annotations": {"owner": "web"}})
    rendered = resource("Namespace", "shop", metadata={"labels": {
        "istio-injection": "enabled", "app.kubernetes.io/managed-by": "meshstage"}})
    clash = resource("Namespace", "shop", metadata={"labels": {"istio-injection": "disabled"}})
    for resources in ([estate, rendered], [rendered, estate]):
        index = MeshIndex(resources)
        namespace = index.namespace("shop")
        assert namespace is not None and len(index.of_kind("Namespace")) == 1
        assert namespace.labels == {"team": "web", "istio-injection": "enabled",
                                    "app.kubernetes.io/managed-by": "meshstage"}
        assert namespace.annotations == {"owner": "web"}
    for resources in ([clash, rendered], [rendered, clash]):  # meshstage's copy wins a clash
        namespace = MeshIndex(resources).namespace("shop")
        assert namespace is not None and namespace.labels["istio-injection"] == "enabled"
