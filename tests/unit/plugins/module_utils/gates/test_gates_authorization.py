"""The authorization gate on plain data: the dry run of strict_mtls, and the callers seen."""

from __future__ import annotations

from gate_helpers import move, observed

from ansible_collections.meshstage.mesh.plugins.module_utils.gates.authorization import (
    AuthorizationGate,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.gate import (
    Call,
    DryRun,
    Evidence,
    Target,
)

GATE = AuthorizationGate()
PAYMENT = Target("Service", "payments", "payment-service", "payment-service")
ORDER = "cluster.local/ns/payments/sa/order-service"
REVIEWS = "cluster.local/ns/bookinfo/sa/bookinfo-reviews"


def at_strict(**overrides):
    return move("authorization", "strict_mtls", environment="dev", **overrides)


def test_the_gate_judges_the_move_that_reaches_authorization():
    assert GATE.applies(at_strict())
    assert not GATE.applies(move("authorization", "authorization", environment="dev"))
    assert not GATE.applies(move("strict_mtls", "traffic", environment="dev"))


def test_a_clean_covering_dry_run_and_admitted_callers_pass():
    current = at_strict()
    verdict = GATE.judge(current, observed(
        current, dry_run=(DryRun(PAYMENT, 0.0, True),),
        calls=(Call(ORDER, "payment-service", "payments", 40.0, "order-service"),)))
    assert verdict.passed, verdict.blockers
    assert verdict.summary == ("1 dry run(s) over the last 1h (Prometheus http://127.0.0.1:9), "
                               "1 observed caller pair(s)")


def test_would_be_denials_and_a_caller_missing_from_the_intent_block():
    current = at_strict()
    verdict = GATE.judge(current, observed(
        current, dry_run=(DryRun(PAYMENT, 6.7, True),),
        calls=(Call(REVIEWS, "payment-service", "payments", 7.0, "reviews"),
               Call(ORDER, "payment-service", "payments", 40.0, "order-service"))))
    assert verdict.blockers == (
        "Service payments/payment-service: the dry run would have denied 7 request(s) in the "
        "last 1h",
        f"caller reviews ({REVIEWS}), seen by istio, made 7 request(s) to "
        "payments/payment-service in the last 1h, and mesh_authorization does not admit it")
    assert "meshstage derive-authz" in verdict.proceed


def test_a_dry_run_that_started_inside_the_window_does_not_cover_it():
    current = at_strict()
    verdict = GATE.judge(current, observed(current, dry_run=(DryRun(PAYMENT, 0.0, False),)))
    assert verdict.blockers == ("Service payments/payment-service: the dry run has not "
                                "covered the last 1h yet (its series start later)",)


def test_no_dry_run_ran_unless_the_environment_was_at_strict_mtls():
    current = move("authorization", "traffic", environment="dev")
    verdict = GATE.judge(current, observed(current))
    assert verdict.blockers == ("no dry run ran: dev is recorded at traffic, and the "
                                "authorization rules run as a dry run at strict_mtls",)


def test_unobserved_refuses_and_opting_out_passes():
    current = at_strict()
    assert GATE.judge(current, Evidence(unobserved="Prometheus x: cannot reach it")
                      ).blockers == ("the dry run cannot be judged: Prometheus x: cannot "
                                     "reach it",)
    opted_out = at_strict(mesh_gates={"observe": False})
    assert GATE.judge(opted_out, Evidence()).passed


def test_a_host_caller_is_named_with_the_sidecar_that_saw_it():
    current = at_strict()
    ledger = "cluster.local/ns/payments/sa/reconciler"
    calls = (Call(ledger, "ledger", "payments", 5.0, "reconciler", "host dev-reconciler-1"),
             Call("cluster.local/ns/payments/sa/order-service", "ledger", "payments", 2.0,
                  "order-service", "host dev-order-1"))
    verdict = GATE.judge(current, observed(current, calls=calls))
    # reconciler calls ledger in the catalogue; order-service does not
    assert verdict.blockers == (
        "caller order-service (cluster.local/ns/payments/sa/order-service), seen by host "
        "dev-order-1, made 2 request(s) to payments/ledger in the last 1h, and "
        "mesh_authorization does not admit it",)
