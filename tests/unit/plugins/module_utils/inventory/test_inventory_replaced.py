"""The estate's mesh objects the import turned into intent (``mesh_replaced``): meshstage's
own take their place, so every run judges the stage without them (they will be gone), the
flow proof judges them as there now, and the runbook hands them over. Without it, the
estate's VirtualService and meshstage's for the same host were refused as a conflict
(IST0109) on the run right after the import."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import (
    AnalysisError,
    IntentErrors,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import (
    parse_plain_intent,
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
metadata: {name: payment, namespace: shop}
spec: {selector: {app: payment}, ports: [{name: http, port: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: payment-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: payment, version: v1}}
  template:
    metadata: {labels: {app: payment, version: v1}}
    spec: {containers: [{name: p, image: "payment:1", ports: [{containerPort: 8080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: payment-v2, namespace: shop}
spec:
  selector: {matchLabels: {app: payment, version: v2}}
  template:
    metadata: {labels: {app: payment, version: v2}}
    spec: {containers: [{name: p, image: "payment:2", ports: [{containerPort: 8080}]}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: canary-test, namespace: shop}
spec:
  host: payment.shop.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payment-canary, namespace: shop}
spec:
  hosts: [payment.shop.svc.cluster.local]
  http:
  - route:
    - {destination: {host: payment.shop.svc.cluster.local, subset: v1}, weight: 90}
    - {destination: {host: payment.shop.svc.cluster.local, subset: v2}, weight: 10}
"""


def imported():
    manifests = Manifests()
    add_text(manifests, ESTATE, "estate.yaml")
    return import_estate(manifests.resources, ImportOptions())


def test_the_import_says_which_objects_meshstage_replaces():
    environment = imported().environment
    assert environment["mesh_stage"] == "traffic"
    assert environment["mesh_replaced"] == ["DestinationRule shop/canary-test",
                                            "VirtualService shop/payment-canary"]


def test_a_run_right_after_the_import_renders_and_hands_them_over(tmp_path, crd_dir):
    estate = tmp_path / "estate.yaml"
    estate.write_text(ESTATE)
    variables = imported().variables
    options = StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir],
                           check_paths=[Path(estate)])
    rendered = render_stage(variables, options)
    (runbook,) = [t for p, t in rendered.files.items() if p.endswith("RUNBOOK.md")]
    assert "Replaced: `DestinationRule shop/canary-test`, `VirtualService " \
           "shop/payment-canary` (`mesh_replaced`)" in runbook
    assert "Delete them, from the cluster and from the repository that applies them, once " \
           "this commit is synced" in runbook
    # without it, the estate's objects stay in what the run judges: two VirtualServices
    # of one host
    without = {k: v for k, v in variables.items() if k != "mesh_replaced"}
    with pytest.raises(AnalysisError, match="IST0109"):
        render_stage(without, StageOptions(gitops_dir=tmp_path / "other", crd_dirs=[crd_dir],
                                           check_paths=[Path(estate)]))


@pytest.mark.parametrize("value,message", [
    (["VirtualService payment-canary shop"], "is not 'Kind namespace/name'"),
    (["virtualservice shop/payment"], "is not 'Kind namespace/name'"),
    (["VirtualService shop/a", "VirtualService shop/a"], "is a duplicate"),
])
def test_a_wrong_entry_is_refused_naming_it(value, message):
    with pytest.raises(IntentErrors, match=re.escape("mesh_replaced[") + r"\d\]: .*" + message):
        parse_plain_intent({"mesh_environment": "dev", "mesh_stage": "traffic",
                            "mesh_services": [{"name": "payment", "namespace": "shop"}],
                            "mesh_replaced": value})


def test_a_cluster_scoped_object_names_no_namespace():
    intent, _ = parse_plain_intent({"mesh_environment": "dev", "mesh_stage": "traffic",
                                    "mesh_services": [{"name": "payment", "namespace": "shop"}],
                                    "mesh_replaced": ["MutatingWebhookConfiguration old-hook",
                                                      "Sidecar istio-system/default"]})
    assert intent.replaced == (("MutatingWebhookConfiguration", "", "old-hook"),
                               ("Sidecar", "istio-system", "default"))
