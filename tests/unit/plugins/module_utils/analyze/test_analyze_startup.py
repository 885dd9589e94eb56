"""Start-up analyzers (issue 14, items 1 and 2): realistic injected Jobs, CronJobs and init
containers, broken and fixed, for Istio and Linkerd."""

from __future__ import annotations

import pytest
from analysis_helpers import analyze_text, found

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshConfig

ISTIO_NS = """
apiVersion: v1
kind: Namespace
metadata: {name: analytics, labels: {istio-injection: enabled}}
"""
LINKERD_NS = """
apiVersion: v1
kind: Namespace
metadata: {name: analytics, annotations: {linkerd.io/inject: enabled}}
"""
# a nightly report, as a team writes it (the Kubernetes CronJob example, with a database)
CRONJOB = """
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly-report, namespace: analytics}
spec:
  schedule: "30 1 * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      backoffLimit: 2
      template:
        metadata:
          labels: {app: nightly-report}{annotations}
        spec:
          restartPolicy: OnFailure
          serviceAccountName: nightly-report
          containers:
          - name: report
            image: registry.example.com/analytics/report:4.2
            command: {command}
            env: [{name: WAREHOUSE_URL, value: "postgres://warehouse.analytics:5432/dw"}]
"""
# a Deployment whose init container waits for its database, a common pattern
WAITS_FOR_DB = """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ledger-api, namespace: analytics}
spec:
  replicas: 2
  selector: {matchLabels: {app: ledger-api}}
  template:
    metadata:
      labels: {app: ledger-api}{annotations}
    spec:
      initContainers:
      - name: wait-for-postgres
        image: busybox:1.36
        command: ["sh", "-c", "until nc -z warehouse.analytics 5432; do sleep 2; done"]{user}
      containers:
      - {name: api, image: registry.example.com/analytics/ledger-api:1.9}
"""


def cronjob(annotations: str = "", command: str = '["/report", "--since", "24h"]') -> str:
    return CRONJOB.replace("{annotations}", annotations).replace("{command}", command)


def deployment(annotations: str = "", user: str = "") -> str:
    return WAITS_FOR_DB.replace("{annotations}", annotations).replace("{user}", user)


@pytest.mark.parametrize("namespace,name,code", [
    (ISTIO_NS, "meshstage.StartupAnalyzer", "MST0109"),
    (LINKERD_NS, "linkerd.StartupAnalyzer", "MST0208")])
def test_an_injected_cronjob_never_completes(namespace, name, code):
    report = analyze_text(namespace + cronjob(), name)
    assert found(report) == [(code, "Namespace analytics")]
    (finding,) = report.findings
    assert "CronJob analytics/nightly-report" in finding.message
    assert "never complete" in finding.message


@pytest.mark.parametrize("namespace,name,annotation", [
    (ISTIO_NS, "meshstage.StartupAnalyzer", 'sidecar.istio.io/nativeSidecar: "true"'),
    (LINKERD_NS, "linkerd.StartupAnalyzer",
     'config.beta.linkerd.io/proxy-enable-native-sidecar: "true"'),
    (ISTIO_NS, "meshstage.StartupAnalyzer", 'meshstage.io/stops-proxy: "true"')])
def test_a_cronjob_with_a_native_sidecar_completes(namespace, name, annotation):
    report = analyze_text(namespace + cronjob(f"\n          annotations: {{{annotation}}}"),
                          name)
    assert report.findings == []


@pytest.mark.parametrize("namespace,name,command", [
    (ISTIO_NS, "meshstage.StartupAnalyzer",
     '["sh", "-c", "/report --since 24h; curl -fsX POST localhost:15020/quitquitquit"]'),
    (LINKERD_NS, "linkerd.StartupAnalyzer",
     '["linkerd-await", "--shutdown", "--", "/report", "--since", "24h"]')])
def test_a_cronjob_that_stops_its_proxy_completes(namespace, name, command):
    assert analyze_text(namespace + cronjob(command=command), name).findings == []


def test_a_job_in_a_namespace_without_injection_is_not_reported():
    plain = "apiVersion: v1\nkind: Namespace\nmetadata: {name: analytics}\n"
    for name in ("meshstage.StartupAnalyzer", "linkerd.StartupAnalyzer"):
        assert analyze_text(plain + cronjob(), name).findings == []


def test_the_pipeline_knows_it_rendered_native_sidecars():
    report = analyze_text(ISTIO_NS + cronjob(), "meshstage.StartupAnalyzer",
                          mesh=MeshConfig(native_sidecars=True))
    assert report.findings == []


# the control plane's install as meshstage renders it (00-install/) and as a cluster holds it
ISTIOD_RELEASE = """
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: istiod, namespace: flux-system}
spec:
  chart: {spec: {chart: istiod, sourceRef: {kind: HelmRepository, name: istio}, version: 1.29.2}}
  values:
    pilot: {env: {ENABLE_NATIVE_SIDECARS: "{value}"}}
"""
ISTIOD_APPLICATION = """
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: istiod, namespace: argocd}
spec:
  source:
    chart: istiod
    repoURL: https://istio-release.storage.googleapis.com/charts
    targetRevision: 1.29.2
    helm:
      valuesObject:
        pilot: {env: {ENABLE_NATIVE_SIDECARS: "{value}"}}
"""
ISTIOD_DEPLOYMENT = """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: istiod, namespace: istio-system}
spec:
  selector: {matchLabels: {app: istiod}}
  template:
    metadata: {labels: {app: istiod}}
    spec:
      containers:
      - name: discovery
        image: docker.io/istio/pilot:1.29.2
        env: [{name: ENABLE_NATIVE_SIDECARS, value: "{value}"}]
"""
LINKERD_CONFIG = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: linkerd-config, namespace: linkerd}
data:
  values: |
    proxy:
      nativeSidecar: {value}
      image: {name: cr.l5d.io/linkerd/proxy}
"""


@pytest.mark.parametrize("namespace,name,install", [
    (ISTIO_NS, "meshstage.StartupAnalyzer", ISTIOD_RELEASE),
    (ISTIO_NS, "meshstage.StartupAnalyzer", ISTIOD_APPLICATION),
    (ISTIO_NS, "meshstage.StartupAnalyzer", ISTIOD_DEPLOYMENT),
    (LINKERD_NS, "linkerd.StartupAnalyzer", LINKERD_CONFIG)],
    ids=["istiod-helmrelease", "istiod-application", "istiod-deployment", "linkerd-config"])
def test_the_control_plane_install_in_the_input_says_whether_sidecars_are_native(
        namespace, name, install):
    native = analyze_text(namespace + cronjob() + install.replace("{value}", "true"), name)
    assert native.findings == []
    classic = analyze_text(namespace + cronjob() + install.replace("{value}", "false"), name)
    assert [f.code for f in classic.findings] == [
        "MST0109" if name.startswith("meshstage") else "MST0208"]
    assert "nothing in the input says" not in classic.findings[0].message


@pytest.mark.parametrize("namespace,name,code", [
    (ISTIO_NS, "meshstage.StartupAnalyzer", "MST0110"),
    (LINKERD_NS, "linkerd.StartupAnalyzer", "MST0209")])
def test_an_init_container_that_waits_for_the_database_fails(namespace, name, code):
    report = analyze_text(namespace + deployment(), name)
    assert found(report) == [(code, "Namespace analytics")]
    assert "wait-for-postgres" in report.findings[0].message
    assert "warehouse.analytics" in report.findings[0].message or \
        "nc" in report.findings[0].message


@pytest.mark.parametrize("namespace,name,user", [
    (ISTIO_NS, "meshstage.StartupAnalyzer", 1337), (LINKERD_NS, "linkerd.StartupAnalyzer", 2102)])
def test_an_init_container_run_as_the_proxy_user_is_not_captured(namespace, name, user):
    fixed = deployment(user=f"\n        securityContext: {{runAsUser: {user}}}")
    assert analyze_text(namespace + fixed, name).findings == []


def test_an_injected_pod_spec_shows_where_the_proxy_runs():
    # as kubectl get shows an injected pod with a native sidecar: the proxy before the app's
    # init container, so the init container has the network
    pod = """
---
apiVersion: v1
kind: Pod
metadata: {name: ledger-api-7d9f, namespace: analytics, labels: {app: ledger-api}}
spec:
  initContainers:
  - {name: istio-init, image: proxyv2, args: [istio-iptables]}
  - {name: istio-proxy, image: proxyv2, restartPolicy: Always}
  - name: wait-for-postgres
    image: busybox:1.36
    command: ["sh", "-c", "until nc -z warehouse.analytics 5432; do sleep 2; done"]
  containers: [{name: api, image: ledger-api}]
"""
    assert analyze_text(ISTIO_NS + pod, "meshstage.StartupAnalyzer").findings == []
    classic = pod.replace("  - {name: istio-proxy, image: proxyv2, restartPolicy: Always}\n",
                          "").replace("containers: [{name: api, image: ledger-api}]",
                                      "containers: [{name: api, image: ledger-api}, "
                                      "{name: istio-proxy, image: proxyv2}]")
    assert found(analyze_text(ISTIO_NS + classic, "meshstage.StartupAnalyzer")) == [
        ("MST0110", "Namespace analytics")]
