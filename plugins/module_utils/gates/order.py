"""order: no stage skipped in an environment, no environment ahead of the one it is promoted
from."""

from __future__ import annotations

from ..stages import Stage
from .gate import Evidence, Gate, Move, Verdict


class OrderGate(Gate):
    """Judges every forward move. An environment moves one stage at a time: its next stage
    is the one after the stage the GitOps repository records (``permissive_mtls`` for an
    environment the repository does not know yet). With ``mesh_promotion_order``, an
    environment may not move to a stage that the environment before it in that list has
    not reached, as the same repository records it. Moving back is never gated (and
    ``playbooks/rollback.yml`` runs no gate).

    Refuses::

        recorded: traffic          intent: authorization     (skips strict_mtls)
        promotion: [dev, staging]  dev recorded at traffic, staging asks for strict_mtls

    Passes::

        recorded: traffic          intent: strict_mtls
        promotion: [dev, staging]  dev recorded at strict_mtls, staging asks for strict_mtls
    """

    name = "order"

    def applies(self, move: Move) -> bool:
        return move.forward

    def judge(self, move: Move, evidence: Evidence) -> Verdict:
        env, target = move.environment, move.target
        blockers, proceed = [], []
        following = [s for s in Stage if s.number == (
            move.recorded.number + 1 if move.recorded else 1)]
        if following and target.number > following[0].number:
            skipped = ", ".join(s.value for s in Stage
                                if following[0].number <= s.number < target.number)
            where = (f"is recorded at {move.recorded.value} (stage {move.recorded.number})"
                     if move.recorded else "is not recorded in the GitOps repository (a new "
                     "environment starts at permissive_mtls)")
            blockers.append(f"{env} {where}: {target.value} (stage {target.number}) would "
                            f"skip {skipped}")
            proceed.append(f"move one stage at a time: mesh_stage: {following[0].value} next")
        summary = f"one stage forward, to {target.value}"
        order = move.intent.promotion_order
        if env in order and order.index(env) > 0:
            before = order[order.index(env) - 1]
            reached = move.environments.get(before)
            if reached is None or reached.number < target.number:
                where = (f"at {reached.value} (stage {reached.number})" if reached else
                         "nowhere (nothing rendered there yet)")
                blockers.append(
                    f"{env} is promoted from {before} (mesh_promotion_order: "
                    f"{', '.join(order)}), which the GitOps repository records {where}: "
                    f"{env} would be ahead of it at {target.value} (stage {target.number})")
                proceed.append(f"promote {before} to {target.value} first")
            else:
                summary += f"; {before}, which it is promoted from, is at {reached.value}"
        return self.verdict(blockers, summary, "; ".join(proceed))
