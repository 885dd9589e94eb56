"""A bare Pod that runs to completion (a chart's ``helm test`` Pod, a one-off migration) in an
injected namespace: a classic sidecar keeps it from completing, as it keeps a Job's pods
(MST0109 for Istio, MST0208 for Linkerd). A Pod a controller owns, or one that restarts
always, is not one."""

from __future__ import annotations

import pytest
from flow_helpers import manifest_resources

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import analyze

POD = """
apiVersion: v1
kind: Namespace
metadata:
  name: obs
  labels: {{istio-injection: enabled}}
  annotations: {{linkerd.io/inject: enabled}}
---
apiVersion: v1
kind: Pod
metadata:
  name: grafana-test
  namespace: obs
  annotations: {{helm.sh/hook: test}}
spec:
  restartPolicy: {policy}
  containers: [{{name: test, image: bats, command: [bats, /tests/run.sh]}}]
"""


@pytest.mark.parametrize(("provider", "code"), [("istio", "MST0109"), ("linkerd", "MST0208")])
@pytest.mark.parametrize("policy", ["Never", "OnFailure"])
def test_a_pod_that_runs_to_completion_never_completes_with_a_classic_sidecar(
        provider, code, policy):
    report = analyze(manifest_resources(POD.format(policy=policy)), providers=[provider])
    (finding,) = [f for f in report.findings if f.code == code]
    assert finding.resource == "Namespace obs"
    assert "Pod obs/grafana-test" in finding.message


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_a_pod_that_restarts_always_is_no_job(provider):
    report = analyze(manifest_resources(POD.format(policy="Always")), providers=[provider])
    assert not [f for f in report.findings if f.code in ("MST0109", "MST0208")]
