"""Services whose pods carry no ``app: <name>`` (``selector``): the Kubernetes recommended
``app.kubernetes.io/name`` labels, a chart's own ``name`` label. The import writes the labels
the Service (or a client's Deployment) selects by; every object meshstage renders selects
the pods by them, on both meshes, and the flow proof finds the pods by them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentErrors
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
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.linkerd import (
    control_plane,
)

# As Helm charts label them: carts and its DynamoDB share app.kubernetes.io/name=carts and
# differ by component; ui calls carts, carts calls carts-db; loadgen, a client without a
# Service, selects its pods by name=loadgen and calls ui.
ESTATE = """
apiVersion: v1
kind: Service
metadata: {name: carts, namespace: shop}
spec:
  selector: {app.kubernetes.io/name: carts, app.kubernetes.io/component: service}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: carts, namespace: shop}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: carts, app.kubernetes.io/component: service}
  template:
    metadata:
      labels: {app.kubernetes.io/name: carts, app.kubernetes.io/component: service}
    spec:
      serviceAccountName: carts
      containers:
      - name: carts
        image: carts
        ports: [{name: http, containerPort: 8080}]
        env: [{name: CARTS_DYNAMODB_ENDPOINT, value: "http://carts-dynamodb:8000"}]
---
apiVersion: v1
kind: Service
metadata: {name: carts-dynamodb, namespace: shop}
spec:
  selector: {app.kubernetes.io/name: carts, app.kubernetes.io/component: dynamodb}
  ports: [{name: http, port: 8000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: carts-dynamodb, namespace: shop}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: carts, app.kubernetes.io/component: dynamodb}
  template:
    metadata:
      labels: {app.kubernetes.io/name: carts, app.kubernetes.io/component: dynamodb}
    spec:
      serviceAccountName: carts-dynamodb
      containers: [{name: db, image: dynamodb-local, ports: [{containerPort: 8000}]}]
---
apiVersion: v1
kind: Service
metadata: {name: ui, namespace: shop}
spec:
  selector: {app.kubernetes.io/name: ui}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ui, namespace: shop}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: ui}}
  template:
    metadata: {labels: {app.kubernetes.io/name: ui}}
    spec:
      serviceAccountName: ui
      containers:
      - name: ui
        image: ui
        ports: [{name: http, containerPort: 8080}]
        env: [{name: ENDPOINTS_CARTS, value: "http://carts"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: loadgen, namespace: shop}
spec:
  selector: {matchLabels: {name: loadgen}}
  template:
    metadata: {labels: {name: loadgen}}
    spec:
      serviceAccountName: loadgen
      containers:
      - name: loadgen
        image: loadgen
        env: [{name: TARGET, value: "http://ui.shop.svc.cluster.local"}]
"""

CARTS = {"app.kubernetes.io/name": "carts", "app.kubernetes.io/component": "service"}
DYNAMODB = {"app.kubernetes.io/name": "carts", "app.kubernetes.io/component": "dynamodb"}


def _import() -> Imported:
    manifests = Manifests()
    add_text(manifests, ESTATE, "estate.yaml")
    return import_estate(manifests.resources, ImportOptions())


def services() -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in _import().shared["mesh_services"]}


def render(tmp_path: Path, crd_dir: Path, provider: str, stage: str,
           **overrides: Any) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    estate = tmp_path / "estate.yaml"
    estate.write_text(ESTATE)
    values = {**_import().shared, "mesh_environment": "dev", "mesh_stage": stage,
              "mesh_provider": provider, **overrides}
    return render_stage(values, StageOptions(gitops_dir=tmp_path / "gitops",
                                             crd_dirs=[crd_dir], check_paths=[estate]))


def objects(rendered: Any, kind: str) -> dict[str, dict[str, Any]]:
    return {item.obj["metadata"]["name"]: item.obj for item in rendered.objects
            if item.obj["kind"] == kind}


def test_the_import_writes_the_labels_the_service_selects_by():
    found = services()
    assert found["carts"]["selector"] == CARTS
    assert found["carts-dynamodb"]["selector"] == DYNAMODB
    assert found["ui"]["selector"] == {"app.kubernetes.io/name": "ui"}
    # a client: its Deployment's matchLabels
    assert found["loadgen"]["selector"] == {"name": "loadgen"}
    assert found["loadgen"]["calls"] == ["ui"] and found["ui"]["calls"] == ["carts"]
    notes = " ".join(t for path, texts in _import().notes.items() if path.endswith(".selector")
                     for t in texts)
    assert "from Service shop/carts's selector: its pods do not all carry app=carts" in notes
    assert "from Deployment shop/loadgen's selector" in notes


def test_pods_that_carry_app_name_keep_the_default():
    text = ESTATE.replace("labels: {app.kubernetes.io/name: ui}",
                          "labels: {app.kubernetes.io/name: ui, app: ui}")
    manifests = Manifests()
    add_text(manifests, text, "estate.yaml")
    (ui,) = [s for s in import_estate(manifests.resources, ImportOptions()).shared[
        "mesh_services"] if s["name"] == "ui"]
    assert "selector" not in ui


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_every_stage_renders_and_keeps_every_request(tmp_path, crd_dir, provider):
    for stage in ("injection", "traffic", "strict_mtls", "authorization"):
        rendered = render(tmp_path / stage, crd_dir, provider, stage)
        counts = rendered.flows.counts
        assert counts["breaks"] == 0 and counts["refused"] == 0, (stage, counts)
        assert not [w for w in rendered.warnings if "MST0309" in w], stage
        rows = [r for r in rendered.flows.section if "| calls:" in r]
        assert len(rows) == 3, (stage, rows)   # loadgen → ui → carts → carts-dynamodb
        assert all("| allowed |" in r for r in rows), rows


def test_istio_objects_select_the_pods_by_the_services_labels(tmp_path, crd_dir):
    rendered = render(tmp_path, crd_dir, "istio", "authorization")
    assert objects(rendered, "Sidecar")["carts"]["spec"]["workloadSelector"] == \
        {"labels": CARTS}
    allow = objects(rendered, "AuthorizationPolicy")["carts-dynamodb-allow"]
    assert allow["spec"]["selector"] == {"matchLabels": DYNAMODB}
    assert allow["spec"]["rules"][0]["from"][0]["source"]["principals"] == \
        ["cluster.local/ns/shop/sa/carts"]


def test_linkerd_servers_select_the_pods_by_the_services_labels(tmp_path, crd_dir):
    rendered = render(tmp_path, crd_dir, "linkerd", "authorization")
    server = objects(rendered, "Server")["carts-dynamodb-http"]
    assert server["spec"]["podSelector"] == {"matchLabels": DYNAMODB}


def test_the_injectors_leave_out_a_service_kept_from_injection_by_its_labels(tmp_path,
                                                                              crd_dir):
    """ui stays out of the mesh: istiod's neverInjectSelector and Linkerd's injector
    objectSelector leave its pods out by the labels they carry."""
    overrides = {"mesh_service_overrides": {"ui": {"inject": False}}}
    istio = render(tmp_path / "istio", crd_dir, "istio", "injection", **overrides)
    (values,) = [yaml.safe_load(text) for path, text in istio.files.items()
                 if path.endswith("values/istiod.yaml")]
    assert values["sidecarInjectorWebhook"]["neverInjectSelector"] == \
        [{"matchLabels": {"app.kubernetes.io/name": "ui"}}]
    linkerd = render(tmp_path / "linkerd", crd_dir, "linkerd", "injection", **overrides)
    (values,) = [yaml.safe_load(text) for path, text in linkerd.files.items()
                 if path.endswith("values/linkerd-control-plane.yaml")]
    expressions = values["proxyInjector"]["objectSelector"]["matchExpressions"]
    assert {"key": "app.kubernetes.io/name", "operator": "NotIn", "values": ["ui"]} \
        in expressions
    for rendered in (istio, linkerd):
        assert rendered.flows.counts["breaks"] == 0


def test_linkerd_leaves_a_held_back_service_out_by_a_label_of_its_own():
    """One objectSelector cannot say "all of these labels": each service is left out by a
    label of its selector no service to inject carries (carts by its component, not by the
    name carts-dynamodb shares), never by one every pod of the release carries."""
    values = {**_import().shared, "mesh_environment": "dev", "mesh_stage": "injection",
              "mesh_service_overrides": {"carts": {"inject": False},
                                         "ui": {"inject": False}}}
    for service in values["mesh_services"]:
        service["selector"] = {**service["selector"], "app.kubernetes.io/instance": "shop"}
    intent, _ = parse_intent(values)
    assert control_plane.opt_out_expressions(intent) == [
        {"key": "app.kubernetes.io/component", "operator": "NotIn", "values": ["service"]},
        {"key": "app.kubernetes.io/name", "operator": "NotIn", "values": ["ui"]}]


def test_a_service_whose_every_label_is_shared_is_said_with_who_waits_with_it(tmp_path,
                                                                             crd_dir):
    shared = _import().shared
    for service in shared["mesh_services"]:
        if service["name"] == "carts":
            service["selector"] = {"app.kubernetes.io/name": "carts"}
    tmp_path.mkdir(parents=True, exist_ok=True)
    values = {**shared, "mesh_environment": "dev", "mesh_stage": "injection",
              "mesh_provider": "linkerd",
              "mesh_service_overrides": {"carts": {"inject": False}}}
    rendered = render_stage(values, StageOptions(gitops_dir=tmp_path / "gitops",
                                                 crd_dirs=[crd_dir]))
    (warning,) = [w for w in rendered.warnings if "proxy injector leaves" in w]
    assert "mesh_services[0] (carts).selector" in warning or ".selector" in warning
    assert "shop/carts out by its label app.kubernetes.io/name=carts, which " \
           "shop/carts-dynamodb carry too" in warning


@pytest.mark.parametrize(("selector", "message"), [
    ({}, "selector: dict {} is not a non-empty mapping of labels"),
    ({"app.kubernetes.io/name": "carts!"}, "is not a valid Kubernetes label value"),
    ("app=carts", "selector: 'app=carts' is not a non-empty mapping of labels"),
])
def test_a_wrong_selector_is_refused_naming_the_service(selector, message):
    values = {"mesh_environment": "dev", "mesh_stage": "injection",
              "mesh_services": [{"name": "carts", "namespace": "shop", "selector": selector}]}
    with pytest.raises(IntentErrors) as error:
        parse_intent(values)
    assert "mesh_services[0] (carts).selector" in str(error.value)
    assert message in str(error.value)


def test_pods_without_the_selectors_labels_are_said_with_the_labels_to_carry(tmp_path,
                                                                            crd_dir):
    """The inventory keeps app=<name> for carts: the cross-check names both label sets."""
    shared = _import().shared
    for service in shared["mesh_services"]:
        service.pop("selector", None)
    tmp_path.mkdir(parents=True, exist_ok=True)
    estate = tmp_path / "estate.yaml"
    estate.write_text(ESTATE)
    rendered = render_stage({**shared, "mesh_environment": "dev", "mesh_stage": "injection"},
                            StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir],
                                         check_paths=[estate]))
    (warning,) = [w for w in rendered.warnings if "MST0309" in w and "(carts)" in w]
    assert "do not all carry app=carts, by which meshstage's objects select them" in warning
    assert "or give the service the labels they carry (selector)" in warning
