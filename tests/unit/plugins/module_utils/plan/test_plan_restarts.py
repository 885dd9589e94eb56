"""The runbook's restart commands for the wave just injected: its namespaces, or, for a wave
that names services, those services' workloads only (a database held back for a later wave
is not restarted)."""

from __future__ import annotations

from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import (
    parse_plain_intent,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.plan.restarts import (
    restart_commands,
    restart_note,
)

SERVICES = [
    {"name": "web", "namespace": "shop", "ports": [{"name": "http", "port": 80}],
     "calls": ["db"]},
    {"name": "db", "namespace": "shop", "kind": "StatefulSet",
     "selector": {"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": "db"},
     "ports": [{"name": "tcp-postgresql", "port": 5432, "protocol": "POSTGRESQL"}]},
    {"name": "pay", "namespace": "payments", "ports": [{"name": "http", "port": 80}]},
]


def intent(waves: list, injected: int):
    found, _ = parse_plain_intent({
        "mesh_environment": "dev", "mesh_stage": "injection", "mesh_services": SERVICES,
        "mesh_injection_waves": waves, "mesh_injected_waves": injected})
    return found


def test_a_wave_of_services_restarts_their_workloads_only():
    waves = [{"name": "apps", "services": ["web", "pay"]}, {"name": "data", "services": ["db"]}]
    assert restart_commands(intent(waves, 1)) == [
        "kubectl rollout restart deployment,statefulset,daemonset -n shop -l app=web",
        "kubectl rollout restart deployment,statefulset,daemonset -n payments -l app=pay"]
    assert restart_commands(intent(waves, 2)) == [
        "kubectl rollout restart deployment,statefulset,daemonset -n shop "
        "-l app.kubernetes.io/instance=db,app.kubernetes.io/name=postgresql"]
    note = restart_note(intent(waves, 1), "sidecars", "istioctl proxy-status")
    assert note.startswith("Injected waves: 1 of 2; still to come: data. Pods get sidecars "
                           "only when restarted: restart the workloads of wave `apps` (its "
                           "services' only, so that the services that wait for a later wave "
                           "are not restarted)")


def test_a_wave_of_namespaces_restarts_them_and_none_before_the_first():
    waves = [{"name": "first", "namespaces": ["payments"]},
             {"name": "second", "namespaces": ["shop"]}]
    assert restart_commands(intent(waves, 1)) == [
        "kubectl rollout restart deployment,statefulset,daemonset -n payments"]
    assert restart_commands(intent(waves, 0)) == []
    assert restart_note(intent(waves, 0), "the proxy", "linkerd check --proxy") == (
        "Injected waves: 0 of 2; still to come: first, second. Pods get the proxy only when "
        "restarted, once their wave is injected.")


def test_with_the_estate_each_workload_is_restarted_by_name():
    """``kubectl rollout restart -l`` matches a workload's own labels, not its pods' (many
    Deployments carry none): with the estate, each workload is named; a Rollout restarts
    with Argo's own command, which skips its steps."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.estate.estate import Estate
    from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
        Manifests,
        add_text,
    )
    manifests = Manifests()
    add_text(manifests, """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-frontend, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web}]}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: pay, namespace: payments}
spec:
  selector: {matchLabels: {app: pay}}
  template:
    metadata: {labels: {app: pay}}
    spec: {containers: [{name: pay, image: pay}]}
""", "estate.yaml")
    waves = [{"name": "apps", "services": ["web", "pay"]}, {"name": "data", "services": ["db"]}]
    assert restart_commands(intent(waves, 1), Estate(manifests.resources)) == [
        "kubectl rollout restart deployment/web-frontend -n shop",
        "kubectl argo rollouts restart pay -n payments"]
