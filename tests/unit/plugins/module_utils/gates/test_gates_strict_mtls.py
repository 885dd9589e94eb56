"""The strict_mtls gate on plain data: sidecars from the intent or the cluster facts, and the
plaintext Prometheus showed over the window."""

from __future__ import annotations

from gate_helpers import PROMETHEUS, move, observed, workload

from ansible_collections.meshstage.mesh.plugins.module_utils.gates.gate import (
    Evidence,
    Flow,
    Target,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.strict_mtls import (
    StrictMtlsGate,
)

GATE = StrictMtlsGate()


def test_the_gate_judges_the_move_that_reaches_strict_mtls():
    assert GATE.applies(move("strict_mtls", "traffic"))
    assert GATE.applies(move("authorization", "traffic"))      # skipping it too
    assert not GATE.applies(move("authorization", "strict_mtls"))
    assert not GATE.applies(move("traffic", "observability"))


def test_no_plaintext_and_every_sidecar_passes():
    current = move("strict_mtls", "traffic")
    verdict = GATE.judge(current, observed(current, plaintext=(
        Flow(workload("bookinfo", "reviews-v1"), 0.0),)))
    assert verdict.passed, verdict.blockers
    assert verdict.summary.startswith("every workload in scope has a sidecar (from the intent "
                                      "(no cluster facts gathered)); plaintext into ")


def test_plaintext_into_a_workload_during_the_window_blocks_naming_it_and_the_figure():
    current = move("strict_mtls", "traffic")
    verdict = GATE.judge(current, observed(current, plaintext=(
        Flow(workload("bookinfo", "reviews-v1", "reviews"), 22.6),
        Flow(Target("host", "payments", "staging-ledger-1", "ledger"), 3.0))))
    assert verdict.blockers == (
        "Workload bookinfo/reviews-v1 (service reviews): 23 plaintext request(s) in the last "
        "1h; under STRICT they would be refused",
        "host staging-ledger-1 (ledger in payments): 3 plaintext request(s) in the last 1h; "
        "under STRICT they would be refused")
    assert "once the last 1h shows no plaintext request" in verdict.proceed


def test_plaintext_into_an_exception_is_expected():
    current = move("strict_mtls", "traffic")
    verdict = GATE.judge(current, observed(current, plaintext=(
        Flow(workload("payments", "legacy-billing-v1", "legacy-billing"), 40.0),)))
    assert verdict.passed


def test_plaintext_from_a_declared_caller_outside_the_mesh_is_expected():
    callers = [{"name": "kube-apiserver", "kind": "kube-apiserver", "calls": ["ratings"]}]
    flows = (Flow(workload("bookinfo", "ratings-v1", "ratings"), 12.0),)
    current = move("strict_mtls", "traffic")
    assert not GATE.judge(current, observed(current, plaintext=flows)).passed
    declared = move("strict_mtls", "traffic", mesh_external_callers=callers)
    assert GATE.judge(declared, observed(declared, plaintext=flows)).passed


def test_uninjected_waves_hosts_and_opt_outs_block_from_the_intent():
    # prod injects its first wave only; the payments wave (and its hosts) is still to come
    current = move("strict_mtls", "traffic", environment="prod",
                   environments={"staging": "authorization"}, mesh_injected_waves=1)
    verdict = GATE.judge(current, observed(current))
    assert "Service payments/payment-service: namespace payments is in wave 'payments', not " \
        "injected yet (mesh_injected_waves: 1 of 2): its workloads have no sidecar" in \
        verdict.blockers
    assert "host prod-ledger-1 (ledger): its wave 'payments' is not injected yet: it has no " \
        "sidecar" in verdict.blockers
    # legacy-billing has inject: false: out of the mesh by the intent; it calls nobody, and
    # its meshed callers send it plaintext (its DestinationRule says DISABLE), exception or not
    assert not [b for b in verdict.blockers if "legacy-billing" in b]
    no_exception = move("strict_mtls", "traffic", mesh_mtls_exceptions=[])
    assert not [b for b in GATE.judge(no_exception, observed(no_exception)).blockers
                if "legacy-billing" in b]


def test_cluster_facts_replace_the_intent_and_name_the_pods():
    current = move("strict_mtls", "traffic", mesh_injected_waves=1)
    facts = {"provider": "istio", "namespaces": {
        "bookinfo": {"pods": 2, "with_sidecar": ["details-v1-a"],
                     "without_sidecar": ["reviews-v1-b"], "apps_without_sidecar": ["reviews"]},
        "payments": {"pods": 2, "with_sidecar": ["payment-service-v1-c"],
                     "without_sidecar": ["legacy-billing-d"],
                     "apps_without_sidecar": ["legacy-billing"]}}}
    evidence = observed(current)
    verdict = GATE.judge(current, Evidence(facts, evidence.observations))
    # the facts say payments is injected whatever the intent's waves say; legacy-billing is
    # an exception; reviews runs without its sidecar; the hosts are judged from the intent
    assert verdict.blockers == (
        "Namespace bookinfo: pods of app(s) reviews run without a sidecar (1 pod(s) without one "
        "in the namespace, e.g. Pod bookinfo/reviews-v1-b)",
        "Service bookinfo/reviews has no sidecar and calls bookinfo/ratings, whose port(s) 9080 "
        "go STRICT: its plaintext requests will be refused; give ratings a PERMISSIVE exception "
        "(or its ports), or inject reviews",
        "host staging-ledger-1 (ledger): its wave 'payments' is not injected yet: it has no "
        "sidecar",
        "host staging-ledger-2 (ledger): its wave 'payments' is not injected yet: it has no "
        "sidecar",
        "host staging-reconciler-1 (reconciler): its wave 'payments' is not injected yet: it "
        "has no sidecar")
    assert "(from the cluster facts)" in verdict.summary


def test_without_prometheus_the_gate_cannot_decide_unless_the_intent_opts_out():
    current = move("strict_mtls", "traffic")
    verdict = GATE.judge(current, Evidence(unobserved="no Prometheus is configured"))
    assert verdict.blockers == ("plaintext traffic cannot be judged: no Prometheus is "
                                "configured",)
    opted_out = move("strict_mtls", "traffic", mesh_gates={"observe": False})
    assert GATE.needs(opted_out) == frozenset()
    verdict = GATE.judge(opted_out, Evidence())
    assert verdict.passed
    assert "plaintext traffic not observed (mesh_gates.observe: false)" in verdict.summary


def test_a_prometheus_that_shows_nothing_of_the_environment_cannot_decide():
    current = move("strict_mtls", "traffic")
    verdict = GATE.judge(current, observed(current, seen=frozenset()))
    assert verdict.blockers == (
        f"Prometheus {PROMETHEUS} shows no series for staging in the last 1h: the gate cannot "
        "see its traffic (is the observability stage's scrape configuration loaded?)",)


def test_linkerd_workloads_cannot_be_judged_on_traffic():
    current = move("strict_mtls", "traffic", mesh_provider="linkerd")
    verdict = GATE.judge(current, observed(current))
    assert verdict.blockers == ("plaintext into Linkerd workloads cannot be judged: reading "
                                "Linkerd's proxy metrics is not built (docs/decisions.md)",)


# -- an uninjected caller of a STRICT service (issue 13, defect class 2)

BATCH = {"name": "batch", "namespace": "payments", "inject": False,
         "calls": ["payment-service"], "ports": []}


def _with_batch(**overrides):
    from conftest import load_example_intent

    services = [*load_example_intent("staging")["mesh_services"], BATCH]
    return move("strict_mtls", "traffic", mesh_services=services, **overrides)


def test_an_uninjected_caller_is_fixed_on_the_callee_side_by_default():
    """batch keeps no sidecar (inject: false): meshstage gives payment-service a PERMISSIVE
    exception of its own, so the gate has nothing to refuse."""
    current = _with_batch()
    verdict = GATE.judge(current, observed(current))
    assert verdict.passed, verdict.blockers


def test_an_exception_on_the_uninjected_caller_is_the_no_op_the_gate_refuses():
    """A caller whose wave is not injected yet gets no derived exception: listing the caller
    in mesh_mtls_exceptions changes nothing for its requests, and the gate says so."""
    from conftest import load_example_intent

    services = [*load_example_intent("staging")["mesh_services"],
                {**BATCH, "namespace": "batch", "inject": True}]
    waves = [{"name": "bookinfo", "namespaces": ["bookinfo"]},
             {"name": "payments", "namespaces": ["payments"]},
             {"name": "batch", "namespaces": ["batch"]}]
    exceptions = [*load_example_intent("staging")["mesh_mtls_exceptions"],
                  {"service": "batch", "mode": "PERMISSIVE", "reason": "no sidecar yet"}]
    current = move("strict_mtls", "traffic", mesh_services=services,
                   mesh_injection_waves=waves, mesh_injected_waves=2,
                   mesh_mtls_exceptions=exceptions)
    verdict = GATE.judge(current, observed(current))
    (blocker,) = [b for b in verdict.blockers if "calls payments/payment-service" in b]
    assert blocker.startswith("Service batch/batch has no sidecar and calls "
                              "payments/payment-service, whose port(s) 8080 go STRICT")
    assert "its own mesh_mtls_exceptions entry changes nothing for these requests" in blocker
    assert "an exception on the caller changes nothing for its requests" in verdict.proceed


def test_a_permissive_exception_on_the_callee_is_accepted():
    from conftest import load_example_intent

    services = [*load_example_intent("staging")["mesh_services"],
                {**BATCH, "namespace": "batch", "inject": True}]
    waves = [{"name": "bookinfo", "namespaces": ["bookinfo"]},
             {"name": "payments", "namespaces": ["payments"]},
             {"name": "batch", "namespaces": ["batch"]}]
    for exception in ({"service": "payment-service", "mode": "PERMISSIVE", "reason": "batch"},
                      {"service": "payment-service", "mode": "PERMISSIVE", "reason": "batch",
                       "ports": {8080: "PERMISSIVE"}}):
        exceptions = [*load_example_intent("staging")["mesh_mtls_exceptions"], exception]
        current = move("strict_mtls", "traffic", mesh_services=services,
                       mesh_injection_waves=waves, mesh_injected_waves=2,
                       mesh_mtls_exceptions=exceptions)
        verdict = GATE.judge(current, observed(current))
        assert not [b for b in verdict.blockers if "calls payments/payment-service" in b]
