"""The tools already in the cluster (issue 14, item 7): Argo Rollouts' Rollouts and Flagger's
Canaries in the estate, their pods, their DestinationRules, their TLS under STRICT."""

from __future__ import annotations

from analysis_helpers import analyze_text, found

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshIndex
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)

# Argo Rollouts' Istio subset-splitting example (rollouts-demo), as its docs give it
ROLLOUTS_DEMO = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: rollouts-demo, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app: rollouts-demo}}
  template:
    metadata: {labels: {app: rollouts-demo}}
    spec:
      containers:
      - {name: rollouts-demo, image: "argoproj/rollouts-demo:blue",
         ports: [{name: http, containerPort: 8080, protocol: TCP}]}
  strategy:
    canary:
      steps: [{setWeight: 5}, {pause: {}}, {setWeight: 25}, {pause: {duration: 10}}]
      trafficRouting:
        istio:
          virtualService: {name: rollout-vsvc, routes: [primary]}
          destinationRule: {name: rollout-destrule, canarySubsetName: {canary},
                            stableSubsetName: stable}
---
apiVersion: v1
kind: Service
metadata: {name: rollouts-demo, namespace: demo}
spec: {selector: {app: rollouts-demo}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: rollout-vsvc, namespace: demo}
spec:
  hosts: [rollouts-demo]
  http:
  - name: primary
    route:
    - {destination: {host: rollouts-demo, subset: stable}, weight: 100}
    - {destination: {host: rollouts-demo, subset: canary}, weight: 0}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rollout-destrule, namespace: demo}
spec:
  host: rollouts-demo
  subsets:
  - {name: canary, labels: {app: rollouts-demo}}
  - {name: stable, labels: {app: rollouts-demo}}
"""


def demo(canary: str = "canary") -> str:
    return ROLLOUTS_DEMO.replace("{canary}", canary)


def test_a_rollout_s_pods_count_as_workloads():
    # the subsets select the Rollout's pods: no "subset selects no pods" any more
    report = analyze_text(demo(), complete=True, providers=("istio",))
    assert [f.line() for f in report.findings if f.code in ("IST0173", "MST0119")] == []


def test_a_rollout_naming_a_subset_its_destination_rule_lacks_is_refused():
    report = analyze_text(demo("preview"), "meshstage.ProgressiveDeliveryAnalyzer")
    assert found(report) == [("MST0119", "Rollout demo/rollouts-demo")]
    assert "canarySubsetName 'preview' is no subset of DestinationRule demo/rollout-destrule" \
        in report.findings[0].message


def test_a_rollout_naming_a_route_its_virtual_service_lacks_is_refused():
    unnamed = demo().replace("  - name: primary\n    route:", "  - route:")
    assert found(analyze_text(unnamed, "meshstage.ProgressiveDeliveryAnalyzer")) == [
        ("MST0119", "Rollout demo/rollouts-demo")]


def test_a_rollout_of_a_deployment_runs_the_deployment_s_pods():
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec: {containers: [{name: web, image: web}]}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, namespace: demo}
spec:
  selector: {matchLabels: {app: web}}
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}
"""
    manifests = Manifests()
    add_text(manifests, text, "test.yaml")
    index = MeshIndex(manifests.resources)
    rollout = next(r for r in manifests.resources if r.kind == "Rollout")
    assert index.workload_of(rollout).labels == {"app": "web", "tier": "front"}


PODINFO = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: v1
kind: Namespace
metadata: {name: test, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo, namespace: test}
spec:
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers:
      - {name: podinfod, image: "ghcr.io/stefanprodan/podinfo:6.7.0",
         ports: [{name: http, containerPort: 9898}]}
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service:
    port: 9898
    gateways: [public-gateway.istio-system.svc.cluster.local]
    hosts: [app.example.com]
    trafficPolicy:
      tls: {mode: {mode}}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}
"""


def test_a_flagger_canary_s_primary_counts_as_a_workload():
    manifests = Manifests()
    add_text(manifests, PODINFO.replace("{mode}", "ISTIO_MUTUAL"), "test.yaml")
    index = MeshIndex(manifests.resources)
    primary = [w for w in index.workloads if w.kind == "Canary"]
    assert [w.labels for w in primary] == [{"app": "podinfo-primary"}]


def test_a_flagger_canary_that_turns_mtls_off_under_strict_is_refused():
    report = analyze_text(PODINFO.replace("{mode}", "DISABLE"),
                          "meshstage.ProgressiveDeliveryAnalyzer")
    assert found(report) == [("MST0120", "Canary test/podinfo")]


def test_a_flagger_canary_that_keeps_istio_mutual_is_clean():
    assert analyze_text(PODINFO.replace("{mode}", "ISTIO_MUTUAL"),
                        "meshstage.ProgressiveDeliveryAnalyzer").findings == []
