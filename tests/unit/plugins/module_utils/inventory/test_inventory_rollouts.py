"""An Argo Rollout that shifts traffic with a VirtualService and a DestinationRule of its
own (argo-rollouts' examples/istio/istio-subset-split.yaml): its controller sets their
weights and subsets as the rollout steps, so they stay the Rollout's. The import turned them
into meshstage's canary, and the traffic stage then rendered a second VirtualService of the
host (IST0109); deleting them as the import said would have left the Rollout without its
objects."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshIndex
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.importer import (
    ImportOptions,
    import_estate,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

ESTATE = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{port: 80, targetPort: http, protocol: TCP, name: http}]
  selector: {app: web}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: web-vsvc, namespace: shop}
spec:
  hosts: [web]
  http:
  - name: primary
    route:
    - {destination: {host: web, subset: stable}, weight: 100}
    - {destination: {host: web, subset: canary}, weight: 0}
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: web-destrule, namespace: shop}
spec:
  host: web
  subsets:
  - {name: stable, labels: {app: web}}
  - {name: canary, labels: {app: web}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop}
spec:
  strategy:
    canary:
      trafficRouting:
        istio:
          virtualService: {name: web-vsvc, routes: [primary]}
          destinationRule: {name: web-destrule, canarySubsetName: canary,
                            stableSubsetName: stable}
      steps: [{setWeight: 10}, {pause: {}}]
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {sidecar.istio.io/inject: "true"}
    spec:
      containers: [{name: web, image: web, ports: [{name: http, containerPort: 8080}]}]
"""


def _imported():
    manifests = Manifests()
    add_text(manifests, ESTATE, "estate.yaml")
    return import_estate(manifests.resources, ImportOptions()), manifests


def test_what_a_rollout_shifts_traffic_with_stays_the_rollouts():
    imported, _ = _imported()
    (web,) = imported.shared["mesh_services"]
    assert "canary" not in web and web["versions"] == []
    assert "mesh_replaced" not in imported.environment
    kept = dict(imported.draft.listed)
    for name in ("VirtualService shop/web-vsvc", "DestinationRule shop/web-destrule"):
        assert "Rollout shop/web shifts traffic with it" in kept[name]


def test_the_imported_rollout_renders_every_stage(tmp_path, crd_dir):
    imported, _ = _imported()
    estate = tmp_path / "estate.yaml"
    estate.write_text(ESTATE)
    for stage in ("traffic", "strict_mtls", "authorization"):
        rendered = render_stage({**imported.variables, "mesh_stage": stage},
                                StageOptions(gitops_dir=tmp_path / stage, crd_dirs=[crd_dir],
                                             check_paths=[Path(estate)]))
        assert not [o for o in rendered.objects if o.obj["kind"] == "VirtualService"]


def test_the_inject_annotation_outside_an_injected_namespace_injects_nothing():
    """Istio's injector is called for a pod of an unlabelled namespace only when it carries
    the label ``sidecar.istio.io/inject: "true"``: the webhook's objectSelector matches
    labels; the annotation alone leaves the pod as it is."""
    _, manifests = _imported()
    index = MeshIndex(manifests.resources)
    (rollout,) = [w for w in index.workloads if w.resource.kind == "Rollout"]
    assert not index.has_sidecar(rollout)
    labelled = ESTATE.replace('labels: {app: web}\n      annotations: {sidecar.istio.io/inject: '
                              '"true"}', 'labels: {app: web, sidecar.istio.io/inject: "true"}')
    manifests = Manifests()
    add_text(manifests, labelled, "estate.yaml")
    index = MeshIndex(manifests.resources)
    (rollout,) = [w for w in index.workloads if w.resource.kind == "Rollout"]
    assert index.has_sidecar(rollout)


def test_a_rollouts_gateway_route_still_says_its_service_is_reached_through_the_ingress():
    """rollouts-demo's VirtualService routes the gateway to the canary and stable Services,
    and the Rollout shifts its weights: it stays the Rollout's, and what it routes to is
    still ``ingress: true`` (default deny would refuse every user request otherwise)."""
    routed = ESTATE.replace("  hosts: [web]\n", "  hosts: [shop.example.com]\n"
                            "  gateways: [shop-gateway]\n")
    manifests = Manifests()
    add_text(manifests, routed, "estate.yaml")
    imported = import_estate(manifests.resources, ImportOptions())
    (web,) = imported.shared["mesh_services"]
    assert web["ingress"] is True
    assert "Rollout shop/web shifts traffic with it" in dict(imported.draft.listed)[
        "VirtualService shop/web-vsvc"]
