"""Restart waves on recorded API objects (fixtures/cluster/, `kubectl get -o json` shapes):
rollout status as kubectl judges it, which workloads restart, wave sequencing, and the stop
at the first failed rollout."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.cluster.restart_waves import (
    RESTARTED_AT,
    RestartSettings,
    RolloutFailed,
    Wave,
    restart_candidates,
    restart_patch,
    rollout_status,
    run_waves,
    workload_name,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError

FIXTURES = Path(__file__).parent / "fixtures" / "cluster"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def pods() -> list[dict[str, Any]]:
    return recorded("pods")["items"]


def patched(workload: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns right after a restart patch: the generation moved on,
    the controller has not observed it yet."""
    obj = copy.deepcopy(workload)
    obj["metadata"]["generation"] += 1
    return obj


def settled(workload: dict[str, Any]) -> dict[str, Any]:
    """The same workload once its controller observed the new generation and finished."""
    obj = copy.deepcopy(workload)
    obj["status"]["observedGeneration"] = obj["metadata"]["generation"]
    return obj


# --------------------------------------------------------------------------- rollout status


@pytest.mark.parametrize(("fixture", "state", "message"), [
    ("deployment-reviews-v1", "done", "successfully rolled out"),
    ("deployment-reviews-v1-rolling", "waiting", "1 out of 2 new replicas have been updated"),
    ("deployment-order-service-progress-deadline", "failed",
     'exceeded its progress deadline (ProgressDeadlineExceeded: ReplicaSet '
     '"order-service-6f9c7d8b4d" has timed out progressing.)'),
    ("statefulset-payment-ledger", "done", "partitioned roll out complete"),
    ("daemonset-log-agent", "done", "successfully rolled out"),
])
def test_rollout_status_of_recorded_workloads(fixture, state, message):
    status = rollout_status(recorded(fixture))
    assert (status.state, status.message) == (state, message)


def test_a_spec_update_not_yet_observed_is_waiting():
    status = rollout_status(patched(recorded("deployment-reviews-v1")))
    assert status.state == "waiting"
    assert status.message == "waiting for the deployment spec update to be observed"


def test_old_replicas_pending_termination_are_waited_for():
    deployment = recorded("deployment-reviews-v1")
    deployment["status"]["replicas"] = 3
    assert rollout_status(deployment).message == "1 old replicas are pending termination"


def test_statefulset_waits_for_its_update_revision():
    statefulset = recorded("statefulset-payment-ledger")
    del statefulset["spec"]["updateStrategy"]["rollingUpdate"]
    statefulset["status"].update(updateRevision="payment-ledger-5b8f9c7d6", updatedReplicas=1)
    status = rollout_status(statefulset)
    assert (status.state, status.message) == (
        "waiting", "waiting for the rolling update to complete 1 pods at revision "
        "payment-ledger-5b8f9c7d6")


def test_daemonset_waits_for_updated_pods():
    daemonset = recorded("daemonset-log-agent")
    daemonset["status"]["updatedNumberScheduled"] = 1
    assert rollout_status(daemonset).message == "1 out of 3 new pods have been updated"


def test_on_delete_has_no_rollout_status():
    statefulset = recorded("statefulset-payment-ledger")
    statefulset["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert rollout_status(statefulset).state == "failed"


def test_restart_patch_is_kubectls_annotation():
    assert restart_patch("2026-11-27T10:02:44Z") == {"spec": {"template": {"metadata": {
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-27T10:02:44Z"}}}}}
    # the recorded rolling Deployment carries exactly that annotation after kubectl's restart
    template = recorded("deployment-reviews-v1-rolling")["spec"]["template"]
    assert RESTARTED_AT in template["metadata"]["annotations"]


# --------------------------------------------------------------------------- what restarts


def test_only_workloads_with_pods_lacking_the_sidecar_restart():
    workloads = [recorded("deployment-reviews-v1"), recorded("daemonset-log-agent")]
    restart, skipped = restart_candidates(workloads, pods(), RestartSettings("istio"))
    assert [workload_name(w) for w in restart] == ["Deployment bookinfo/reviews-v1"]
    assert skipped == ["DaemonSet bookinfo/log-agent: every pod has the sidecar"]


def test_mode_all_restarts_injected_workloads_too():
    workloads = [recorded("deployment-reviews-v1"), recorded("daemonset-log-agent")]
    restart, _ = restart_candidates(workloads, [], RestartSettings("istio", mode="all"))
    assert len(restart) == 2


def test_opt_outs_and_on_delete_are_never_restarted():
    order = recorded("deployment-order-service")
    labelled = recorded("deployment-reviews-v1")
    labelled["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] = "false"
    on_delete = recorded("statefulset-payment-ledger")
    on_delete["spec"]["updateStrategy"] = {"type": "OnDelete"}
    settings = RestartSettings("istio", mode="all", opt_outs=({"app": "order-service"},))
    restart, skipped = restart_candidates([order, labelled, on_delete], [], settings)
    assert restart == []
    assert skipped == [
        "Deployment bookinfo/reviews-v1: opted out of injection",
        "Deployment payments/order-service: opted out of injection",
        "StatefulSet payments/payment-ledger: updateStrategy OnDelete, a restart would not "
        "replace its pods; delete them to inject",
    ]


def test_the_provider_decides_which_container_is_the_sidecar():
    order = recorded("deployment-order-service")  # its pod runs linkerd-proxy
    assert restart_candidates([order], pods(), RestartSettings("istio"))[0] == [order]
    assert restart_candidates([order], pods(), RestartSettings("linkerd"))[0] == []


def test_an_unknown_mode_is_refused():
    with pytest.raises(MeshstageError, match="restart mode 'some' is not one of uninjected, all"):
        restart_candidates([], [], RestartSettings("istio", mode="some"))


# --------------------------------------------------------------------------- waves


class RecordedCluster:
    """A WorkloadApi over recorded objects. Each workload answers reads from a script of
    recorded states (the last one repeats); every call is logged in order."""

    def __init__(self, workloads: list[dict[str, Any]],
                 reads: dict[str, list[dict[str, Any]]]) -> None:
        self.by_namespace: dict[str, list[dict[str, Any]]] = {}
        for workload in workloads:
            self.by_namespace.setdefault(workload["metadata"]["namespace"], []).append(workload)
        self.reads = reads
        self.calls: list[tuple[str, str]] = []
        self.patches: list[dict[str, Any]] = []

    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        self.calls.append(("list", namespace))
        return self.by_namespace.get(namespace, [])

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        return [p for p in pods() if p["metadata"]["namespace"] == namespace]

    def restart(self, workload, patch) -> None:
        self.calls.append(("restart", workload_name(workload)))
        self.patches.append(patch)

    def read(self, workload) -> dict[str, Any]:
        name = workload_name(workload)
        self.calls.append(("read", name))
        script = self.reads[name]
        return script.pop(0) if len(script) > 1 else script[0]


class Clock:
    """Time that passes only when the runner sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


WAVES = (Wave("bookinfo", ("bookinfo",)), Wave("payments", ("payments",)),
         Wave("shop", ("shop",)))


def shop_deployment() -> dict[str, Any]:
    deployment = recorded("deployment-order-service")
    deployment["metadata"].update(name="cart", namespace="shop")
    return deployment


def run(cluster: RecordedCluster, **settings: Any) -> list:
    clock = Clock()
    return run_waves(WAVES, cluster, RestartSettings("istio", **settings),
                     now=lambda: "2026-11-27T10:02:44Z", clock=clock, sleep=clock.sleep)


def test_waves_run_one_after_the_other():
    reviews = recorded("deployment-reviews-v1")
    order = recorded("deployment-order-service")
    cluster = RecordedCluster(
        [reviews, recorded("daemonset-log-agent"), order, shop_deployment()],
        reads={
            "Deployment bookinfo/reviews-v1": [patched(reviews),
                                               recorded("deployment-reviews-v1-rolling"),
                                               settled(patched(reviews))],
            "DaemonSet bookinfo/log-agent": [settled(patched(recorded("daemonset-log-agent")))],
            "Deployment payments/order-service": [patched(order),
                                                  recorded("deployment-order-service")],
            "Deployment shop/cart": [shop_deployment()],
        })
    reports = run(cluster, mode="all")
    assert [(r.name, r.status) for r in reports] == [
        ("bookinfo", "restarted"), ("payments", "restarted"), ("shop", "restarted")]
    assert reports[0].restarted == ["DaemonSet bookinfo/log-agent",
                                    "Deployment bookinfo/reviews-v1"]
    calls = cluster.calls
    # wave 2 is listed only after every rollout of wave 1 read "done"
    last_wave1_read = max(i for i, c in enumerate(calls)
                          if c == ("read", "Deployment bookinfo/reviews-v1"))
    assert calls.index(("list", "payments")) > last_wave1_read
    assert calls.index(("restart", "Deployment payments/order-service")) > last_wave1_read
    assert calls.count(("read", "Deployment bookinfo/reviews-v1")) == 3
    assert cluster.patches[0] == restart_patch("2026-11-27T10:02:44Z")


def test_the_first_failed_rollout_stops_the_waves_and_names_the_workload():
    reviews = recorded("deployment-reviews-v1")
    order = recorded("deployment-order-service")
    cluster = RecordedCluster(
        [reviews, order, shop_deployment()],
        reads={
            "Deployment bookinfo/reviews-v1": [reviews],
            "Deployment payments/order-service": [
                patched(order), recorded("deployment-order-service-progress-deadline")],
            "Deployment shop/cart": [shop_deployment()],
        })
    with pytest.raises(RolloutFailed) as raised:
        run(cluster)
    assert str(raised.value) == (
        "wave 'payments': Deployment payments/order-service: rollout failed: exceeded its "
        'progress deadline (ProgressDeadlineExceeded: ReplicaSet "order-service-6f9c7d8b4d" '
        "has timed out progressing.)")
    assert [(r.name, r.status) for r in raised.value.reports] == [
        ("bookinfo", "restarted"), ("payments", "failed"), ("shop", "not started")]
    assert ("list", "shop") not in cluster.calls
    assert ("restart", "Deployment shop/cart") not in cluster.calls


def test_a_rollout_that_never_finishes_times_out_naming_the_workload():
    reviews = recorded("deployment-reviews-v1")
    cluster = RecordedCluster([reviews], reads={
        "Deployment bookinfo/reviews-v1": [recorded("deployment-reviews-v1-rolling")]})
    with pytest.raises(RolloutFailed, match=r"^wave 'bookinfo': Deployment bookinfo/reviews-v1:"
                       r" rollout did not finish within 30s: 1 out of 2 new replicas have been "
                       r"updated$"):
        run(cluster, timeout=30, poll=10)
    assert ("list", "payments") not in cluster.calls
    assert cluster.calls.count(("read", "Deployment bookinfo/reviews-v1")) == 4


def test_check_mode_restarts_nothing_and_waits_for_nothing():
    reviews = recorded("deployment-reviews-v1")
    cluster = RecordedCluster([reviews, recorded("deployment-order-service")], reads={})
    reports = run(cluster, check_mode=True)
    assert [(r.name, r.status, r.restarted) for r in reports] == [
        ("bookinfo", "would restart", ["Deployment bookinfo/reviews-v1"]),
        ("payments", "would restart", ["Deployment payments/order-service"]),
        ("shop", "nothing to restart", []),
    ]
    assert not any(kind in ("restart", "read") for kind, _ in cluster.calls)


def test_a_wave_whose_pods_all_have_the_sidecar_is_left_alone():
    cluster = RecordedCluster([recorded("daemonset-log-agent")], reads={})
    reports = run(cluster)
    assert reports[0].status == "nothing to restart"
    assert reports[0].skipped == ["DaemonSet bookinfo/log-agent: every pod has the sidecar"]
    assert cluster.patches == []
