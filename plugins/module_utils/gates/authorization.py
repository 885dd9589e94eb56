"""authorization: refused until a dry-run window shows no would-be denials."""

from __future__ import annotations

from ..providers.registry import mesh
from ..stages import Stage
from .admission import admits
from .gate import CALLS, DRY_RUN, Evidence, Gate, Move, Verdict, count, window_text


class AuthorizationGate(Gate):
    """Judges the move that brings an environment to ``authorization``. At ``strict_mtls``
    meshstage renders the authorization rules as a dry run: Istio AuthorizationPolicies
    annotated ``istio.io/dry-run: "true"``, RBAC shadow rules on the host sidecars. They
    enforce nothing; the proxies count what they would have denied. The gate reads those
    counts over ``mesh_gates.window``, and refuses while any is above zero, while the dry
    run has not covered the whole window, or while the environment was not at
    ``strict_mtls`` (no dry run ran). It also names each caller it observed (Istio's
    ``source_principal``, the host sidecars' client stats) that the intent does not admit.

    Refuses::

        recorded: strict_mtls; host rev1 (reviews): 7 would-be denials in the last 1h;
        caller payment-service (seen by host pay) made 7 requests to reviews, and
        mesh_authorization admits only order-service

    Passes::

        recorded: strict_mtls; no would-be denial in the last 1h, dry run covering it
    """

    name = "authorization"

    def applies(self, move: Move) -> bool:
        return move.crosses(Stage.AUTHORIZATION)

    def needs(self, move: Move) -> frozenset[str]:
        return frozenset({DRY_RUN, CALLS}) if move.intent.gates.observe else frozenset()

    def judge(self, move: Move, evidence: Evidence) -> Verdict:
        intent = move.intent
        proceed = ("admit the callers that belong (meshstage derive-authz prints the ALLOW "
                   "rules the observed traffic needs, for mesh_authorization), render "
                   "strict_mtls again to dry-run the new rules, and run again once "
                   f"{window_text(move)} shows no would-be denial; a caller that must be "
                   "refused stays refused only if you force this gate")
        if not intent.gates.observe:
            return self.verdict([], "the dry run not observed (mesh_gates.observe: false)",
                                proceed)
        blockers = []
        if move.recorded is not Stage.STRICT_MTLS:
            blockers.append(f"no dry run ran: {move.environment} is recorded at "
                            f"{move.recorded_name}, and the authorization rules run as a dry "
                            "run at strict_mtls")
        unobservable = mesh(intent.provider).gates.dry_run
        if unobservable and any(s.name not in intent.host_services for s in intent.services):
            blockers.append(unobservable)
        observed = evidence.observations
        if observed is None:
            blockers.append(f"the dry run cannot be judged: {evidence.unobserved}")
            return self.verdict(blockers, "the dry run not observed", proceed)
        if not observed.seen:
            blockers.append(f"Prometheus {observed.prometheus} shows no series for "
                            f"{move.environment} in {window_text(move)}: the gate cannot see "
                            "the dry run")
        for run in observed.dry_run:
            if run.denied > 0:
                blockers.append(f"{run.target}: the dry run would have denied "
                                f"{count(run.denied)} request(s) in {window_text(move)}")
            elif not run.covered:
                blockers.append(f"{run.target}: the dry run has not covered "
                                f"{window_text(move)} yet (its series start later)")
        for call in observed.calls:
            callee = intent.by_name.get(call.callee)
            if callee is None or callee.namespace != call.callee_namespace or \
                    admits(intent, callee, call.caller):
                continue
            who = f"{call.caller_service} ({call.caller})" if call.caller_service \
                else call.caller
            blockers.append(f"caller {who}, seen by {call.seen_by}, made "
                            f"{count(call.requests)} request(s) to "
                            f"{callee.namespace}/{callee.name} in {window_text(move)}, and "
                            "mesh_authorization does not admit it")
        judged = len(observed.dry_run)
        summary = (f"{judged} dry run(s) over {window_text(move)} (Prometheus "
                   f"{observed.prometheus}), {len(observed.calls)} observed caller pair(s)")
        return self.verdict(blockers, summary, proceed)
