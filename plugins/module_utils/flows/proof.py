"""The flow proof: every flow judged now and at the target; what works now must keep working.

``prove`` collects the environment's flows (``collect.py``) and judges each one through the
configuration committed now and through the target's (``states.py``), each destination by
its data plane's evaluator: a plain host's by the host sidecars', any other by the mesh's
(the ``flows`` of the providers' records). A flow that gets through now and would not at
the target is a break. An environment the repository records nothing of has no mesh
configuration yet: every flow gets through now.

The run's proof (``prove`` with ``every_now`` False) judges a flow now only where the
target refuses it: a break is a flow that gets through now and not at the target, so a flow
the target lets through cannot be one, whatever it gets now. The committed configuration is
read only when a flow needs it. ``meshstage flows`` judges every flow both ways, as it
prints both.

A break is not the only thing worth saying: a flow through a gateway (or from a client
without a proxy) that a canary's split does not shape is a warning. Warnings and the
runbook's table read the target's verdicts only, so a run that changes nothing says the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..providers.registry import HOSTS, mesh
from .evaluate import MeshState
from .model import OK, Flow, Verdict

NOTHING_YET = Verdict(OK, "nothing of the mesh is configured yet", rule="baseline")


@dataclass(frozen=True)
class FlowRow:
    flow: Flow
    now: Verdict | None   # None: not judged now, as the target lets it through
    then: Verdict

    @property
    def breaks(self) -> bool:
        return self.now is not None and self.now.allowed and not self.then.allowed

    def line(self) -> str:
        """One break, for the error: the flow, what stops it, the fix."""
        then = self.then
        by = f" by {then.by}" if then.by else ""
        now = self.now.reason if self.now is not None else "not judged"
        return (f"{self.flow}: works now ({now}), would be refused "
                f"({then.outcome}){by}: {then.reason}; fix: {then.fix or 'see the reason'}")

    def as_dict(self) -> dict[str, Any]:
        flow = self.flow
        return {"flow": str(flow), "origin": flow.origin, "via": flow.via,
                "source": str(flow.source), "destination": str(flow.destination),
                "service": flow.destination.service, "protocol": flow.protocol,
                "request": (f"{flow.request.method} {flow.request.path}"
                            if flow.request else None),
                "now": self.now.as_dict() if self.now is not None else None,
                "target": self.then.as_dict(),
                "breaks": self.breaks}


@dataclass
class FlowProof:
    now: str                      # "strict_mtls (istio)", or "nothing recorded"
    target: str
    rows: list[FlowRow] = field(default_factory=list)
    every_now: bool = True        # False: judged now only where the target refuses

    @property
    def breaks(self) -> list[FlowRow]:
        return [row for row in self.rows if row.breaks]

    def warnings(self) -> list[str]:
        return [f"flow proof: {row.flow}: {row.then.routing}" for row in self.rows
                if row.then.routing and row.then.allowed]

    def counts(self) -> dict[str, int]:
        """How many flows, breaks and refusals at the target, and refused now when every
        flow was judged now."""
        counts = {"flows": len(self.rows), "breaks": len(self.breaks),
                  "refused": sum(not r.then.allowed for r in self.rows)}
        if self.every_now:
            counts["refused_now"] = sum(r.now is not None and not r.now.allowed
                                        for r in self.rows)
        return counts


def judge(flow: Flow, state: MeshState) -> Verdict:
    """A flow through one configuration, by its destination's data plane."""
    if flow.destination.kind == "host":
        evaluator = HOSTS.flows
    else:
        evaluator = mesh(state.provider).flows
    if evaluator is None:
        return Verdict(OK, f"{state.provider} has no flow evaluator")
    return evaluator.evaluate(flow, state)


# The configuration committed now, as ``prove`` reads it when a flow first needs it: the
# state (None: nothing configured yet) and whether it is the target's, file for file.
NowReader = Callable[[], tuple[MeshState | None, bool]]


def nothing_configured() -> tuple[MeshState | None, bool]:
    """A ``NowReader`` for no configuration at all: every flow gets through now."""
    return None, False


def prove(flows: Sequence[Flow], target: MeshState, read_now: NowReader,
          now_label: str = "nothing recorded", every_now: bool = True) -> FlowProof:
    """Judge every flow at the target and now. ``read_now`` gives the committed
    configuration (None: nothing is configured yet) and whether it is the target's, so the
    verdicts are too; it is called once, when a flow first needs it. ``every_now`` False
    (a run's proof) judges a flow now only where the target refuses it, and the rest keep
    ``now`` None: a flow the target lets through is no break whatever it gets now, so the
    breaks are the same, and a target that refuses nothing never reads the committed tree."""
    proof = FlowProof(now_label, target.label, every_now=every_now)
    now: tuple[MeshState | None, bool] | None = None
    for flow in flows:
        then = judge(flow, target)
        before = None
        if every_now or not then.allowed:
            if now is None:
                now = read_now()
            state, unchanged = now
            before = then if unchanged else (
                judge(flow, state) if state is not None else NOTHING_YET)
        proof.rows.append(FlowRow(flow, before, then))
    return proof
