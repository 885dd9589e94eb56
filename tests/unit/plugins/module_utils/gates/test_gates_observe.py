"""The gates against a real Prometheus (the Debian package) with Istio-shaped series
backfilled by ``promtool tsdb create-blocks-from openmetrics``: plaintext into a workload
blocks strict_mtls while it is inside the window and not once it is outside; would-be
denials of the dry run and a caller the intent does not admit block authorization."""

from __future__ import annotations

import io
import time

import pytest
import yaml
from conftest import load_example_intent
from istio_mesh_series import istio_mesh_series

from ansible_collections.meshstage.mesh.plugins.module_utils.cli import main
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.admission import admits
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.derive import (
    derive_authorization,
    derived_yaml,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.gate import (
    CALLS,
    DRY_RUN,
    PLAINTEXT,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.observe import observe
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.run import (
    GateRefused,
    judge_run,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.prometheus import (
    PrometheusClient,
)


@pytest.fixture(scope="module")
def istio_prometheus(tmp_path_factory):
    """The example estate's Istio mesh over thirty minutes (tests/istio_mesh_series.py)."""
    from prometheus_lab import PrometheusLab

    lab = PrometheusLab(tmp_path_factory.mktemp("istio-prometheus"))
    lab.backfill(istio_mesh_series(time.time()))
    yield lab.start(), lab
    lab.stop()


def variables(url: str, stage: str, window: str) -> dict:
    return {**load_example_intent("dev"), "mesh_stage": stage,
            "mesh_gates": {"prometheus": url, "window": window}}


RECORDED = {"dev": {"provider": "istio", "stage": "traffic"}}


def test_observations_name_workloads_figures_and_coverage(istio_prometheus):
    url, _ = istio_prometheus
    intent, _ = parse_intent(variables(url, "authorization", "15m"))
    seen = observe(PrometheusClient(url), intent, frozenset({PLAINTEXT, DRY_RUN, CALLS}))
    plaintext = {str(f.target): round(f.requests) for f in seen.plaintext}
    assert set(plaintext) == {"Workload bookinfo/reviews-v1 (service reviews)",
                              "Workload bookinfo/ratings-v1 (service ratings)",
                              "Workload payments/legacy-billing"}
    assert 200 <= plaintext["Workload bookinfo/reviews-v1 (service reviews)"] <= 260  # 0.5/s, 7 min
    runs = {str(r.target): (round(r.denied), r.covered) for r in seen.dry_run}
    assert set(runs) == {"Service payments/payment-service", "Service bookinfo/reviews"}
    assert runs["Service bookinfo/reviews"] == (0, False)     # started 12 minutes ago
    denied, covered = runs["Service payments/payment-service"]
    assert covered and 70 <= denied <= 100                     # 0.2/s for 7 minutes
    callers = {(c.caller_service, c.callee, c.protocol) for c in seen.calls}
    assert callers == {("order-service", "payment-service", "http"),
                       ("reviews", "payment-service", "http")}
    assert seen.queries["plaintext istio_requests_total"].startswith(
        "sum by (destination_workload_namespace, destination_workload, destination_app) "
        "(increase(istio_requests_total{reporter=\"destination\"")


def test_plaintext_inside_the_window_blocks_strict_mtls(istio_prometheus):
    url, _ = istio_prometheus
    with pytest.raises(GateRefused) as refused:
        judge_run(variables(url, "strict_mtls", "15m"), RECORDED)
    message = str(refused.value)
    assert "gate strict_mtls: Workload bookinfo/reviews-v1 (service reviews): " in message
    assert "plaintext request(s) in the last 15m; under STRICT they would be refused" in message
    assert "Workload bookinfo/ratings-v1 (service ratings)" in message      # TCP
    assert "legacy-billing" not in message                                   # its exception
    assert "gate order" not in message


def test_once_the_plaintext_is_outside_the_window_strict_mtls_passes(istio_prometheus):
    url, _ = istio_prometheus
    _, verdicts = judge_run(variables(url, "strict_mtls", "5m"), RECORDED)
    assert [(v.gate, v.passed) for v in verdicts] == [("order", True), ("strict_mtls", True)]
    assert "plaintext into " in verdicts[1].summary and "over the last 5m" in \
        verdicts[1].summary


def test_would_be_denials_and_an_unadmitted_caller_block_authorization(istio_prometheus):
    url, _ = istio_prometheus
    recorded = {"dev": {"provider": "istio", "stage": "strict_mtls"}}
    seen: list = []
    with pytest.raises(GateRefused) as refused:
        judge_run(variables(url, "authorization", "15m"), recorded, seen=seen)
    # the edges the gates read go on to the flow proof of the run (observed_calls)
    assert {(call.caller_service, call.callee) for call in seen} >= {
        ("reviews", "payment-service")}
    message = str(refused.value)
    assert "gate authorization: Service payments/payment-service: the dry run would have " \
        "denied" in message
    assert "gate authorization: Service bookinfo/reviews: the dry run has not covered the " \
        "last 15m yet (its series start later)" in message
    assert "gate authorization: caller reviews (cluster.local/ns/bookinfo/sa/" \
        "bookinfo-reviews), seen by istio, made" in message
    assert "request(s) to payments/payment-service in the last 15m, and mesh_authorization " \
        "does not admit it" in message
    _, verdicts = judge_run(variables(url, "authorization", "5m"), recorded)
    assert [(v.gate, v.passed) for v in verdicts] == [("order", True), ("authorization", True)]


def test_derived_rules_admit_exactly_the_observed_callers(istio_prometheus):
    url, _ = istio_prometheus
    estate = variables(url, "authorization", "15m")
    intent, _ = parse_intent(estate)
    seen = observe(PrometheusClient(url), intent, frozenset({CALLS}))
    entries, notes = derive_authorization(intent, seen.calls)
    assert entries == [{"service": "payment-service",
                        "allow": [{"from": ["order-service", "reviews"]}],
                        "deny_other_callers": True}]
    assert notes[0].startswith("payment-service: order-service ")
    assert "the inventory's ALLOW rules also named operations" in notes[1]
    text = derived_yaml(entries, notes, url, "15m")
    assert text.startswith(f"# Derived by meshstage derive-authz from the callers Prometheus "
                           f"{url} observed\n")
    pasted = yaml.safe_load(text)
    applied, _ = parse_intent({**estate, **pasted})
    payment = applied.service("payment-service")
    for service in applied.services:
        principal = applied.principal(service)
        assert admits(applied, payment, principal) is (service.name in ("order-service",
                                                                        "reviews")), service.name


def test_meshstage_derive_authz_reads_the_inventory_and_prints_the_rules(istio_prometheus,
                                                                         repo_root):
    url, _ = istio_prometheus
    out, err = io.StringIO(), io.StringIO()
    status = main(["derive-authz", "-i", str(repo_root / "inventories/dev"), "--prometheus",
                   url, "--window", "15m", "--service", "payment-service"], out, err)
    assert status == 0, err.getvalue()
    assert yaml.safe_load(out.getvalue())["mesh_authorization"][0]["allow"] == [
        {"from": ["order-service", "reviews"]}]
    assert "1 service(s), 2 observed caller pair(s) in dev" in err.getvalue()
    status = main(["derive-authz", "-i", str(repo_root / "inventories/dev")], out, err)
    assert status == 2
    assert "meshstage derive-authz: no Prometheus to ask: give --prometheus, or set " \
        "mesh_gates.prometheus in the inventory" in err.getvalue()


def test_an_unreachable_prometheus_cannot_decide(istio_prometheus):
    from prometheus_lab import free_port

    with pytest.raises(GateRefused) as refused:
        judge_run(variables(f"http://127.0.0.1:{free_port()}", "strict_mtls", "5m"), RECORDED)
    assert "plaintext traffic cannot be judged: Prometheus http://127.0.0.1:" in \
        str(refused.value)
    assert "cannot reach it" in str(refused.value)
