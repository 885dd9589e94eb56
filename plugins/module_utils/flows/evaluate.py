"""How a flow is judged: a mesh's evaluator runs its rules in order over one ``Step``.

Each provider's package has a ``flows/`` folder: one rule per module (a ``FlowRule``: a
name, the upstream documentation or code it follows, and ``apply``), registered in order in
the package's ``registry.py``, which builds the provider's ``FlowEvaluator`` (the
``flows`` field of its ``Provider`` record). A rule reads the flow and what the rules
before it found (the step's ``facts``: whether each end has a proxy, what the client
sends, the identity the server sees, ...), and either adds to them or decides: it returns
a ``Verdict`` and the rules after it do not run. A flow that no rule refuses gets through.

What is judged is a ``MeshState``: the rendered objects with the estate's own (a rendered
object replaces the estate's of the same kind, namespace and name, as applying it would),
indexed once (``estate/index.py``), the plain hosts' sidecar files, and the control plane's
Helm values. Each evaluator prepares its own view of a state once (``prepare``), and the
view memoizes what it looks up per workload, so judging every flow stays linear.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..estate.index import MeshIndex
from ..intent.model import Intent, MeshHost
from .model import Flow, Peer, Verdict, allowed


@dataclass(frozen=True)
class FlowSettings:
    """The settings of the mesh's installation that the rules read."""

    root_namespace: str = "istio-system"
    trust_domain: str = "cluster.local"
    linkerd_namespace: str = "linkerd"
    viz_namespace: str = "linkerd-viz"
    prometheus_namespace: str = "istio-system"
    hosts: tuple[MeshHost, ...] = ()

    @classmethod
    def from_intent(cls, intent: Intent) -> FlowSettings:
        return cls(intent.root_namespace, intent.trust_domain,
                   intent.linkerd.control_plane_namespace, intent.linkerd.viz_namespace,
                   intent.telemetry.prometheus_namespace, intent.hosts)


@dataclass
class MeshState:
    """One configuration flows are judged through (the target's, or the one committed now)."""

    provider: str
    settings: FlowSettings
    index: MeshIndex     # rendered objects, the estate's own objects and its workloads
    host_files: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    install_values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    label: str = ""      # "now (strict_mtls)", "target (authorization)"
    _views: dict[str, Any] = field(default_factory=dict, repr=False)

    def view(self, evaluator: FlowEvaluator) -> Any:
        """The evaluator's prepared view of this state (built on first use)."""
        found = self._views.get(evaluator.name)
        if found is None:
            found = self._views[evaluator.name] = evaluator.prepare(self)
        return found


@dataclass
class Facts:
    """What the rules found about one flow so far."""

    source_proxy: bool = False
    destination_proxy: bool = False
    sends: str = "plaintext"        # what reaches the server: mtls | plaintext | tls
    identity: str | None = None     # the peer identity the server sees (None: none)
    source_namespace: str | None = None
    mode: str = ""                  # the server's mTLS mode at the port, where one applies
    server_protocol: str = "http"   # how the server's proxy handles the bytes: http | tcp
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    flow: Flow
    state: MeshState
    view: Any
    facts: Facts = field(default_factory=Facts)


class FlowRule:
    """One rule of a mesh's flow semantics; its docstring cites the upstream it follows."""

    name: ClassVar[str]

    def apply(self, step: Step) -> Verdict | None:
        raise NotImplementedError


@dataclass(frozen=True)
class Scrape:
    """How the mesh's Prometheus scrapes a meshed workload's proxy: who, which port, path."""

    source: Callable[[FlowSettings], Peer]
    port: int
    path: str
    port_name: str = "proxy metrics"


@dataclass(frozen=True)
class FlowEvaluator:
    """A mesh's flow semantics: its rules in order, and how it prepares a state's view."""

    name: str
    rules: Mapping[str, FlowRule]
    prepare: Callable[[MeshState], Any]
    scrape: Scrape | None = None

    def evaluate(self, flow: Flow, state: MeshState) -> Verdict:
        step = Step(flow, state, state.view(self))
        for name, rule in self.rules.items():
            verdict = rule.apply(step)
            if verdict is not None:
                return _decided(verdict, name, step.facts)
        return _decided(allowed("no rule refuses it"), "", step.facts)


def _decided(verdict: Verdict, rule: str, facts: Facts) -> Verdict:
    notes = "; ".join(facts.notes)
    reason = f"{verdict.reason}; {notes}" if notes and verdict.allowed else verdict.reason
    return Verdict(verdict.outcome, reason, verdict.by, verdict.fix, verdict.rule or rule,
                   verdict.partial, str(facts.extra.get("routing") or ""))
