"""The ``Provider`` record: everything meshstage knows about one mesh, in one place.

Each mesh is a package of ``providers/`` that builds one ``Provider`` (its ``provider.py``),
and ``registry.py`` lists them in one explicit dict. Everything mesh-specific that the rest of
meshstage needs comes from the record: what each stage plans, the control plane's charts, the
sidecar's container and opt-out markers, the traffic APIs it can render, the PromQL a canary
is judged by, the runbook's commands and cut-over steps, what the stage gates can observe, and
how its data plane judges a flow (the flow proof's evaluator).

This module imports no provider: providers import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..flows.evaluate import FlowEvaluator
from ..intent.model import Intent
from ..plan.model import StageContribution
from ..stages import Stage

Planner = Callable[[Intent], dict[Stage, StageContribution]]


@dataclass(frozen=True)
class HelmChart:
    """One chart of the control plane and the values meshstage gives it."""

    chart: str  # the chart's name in the repository
    release: str  # the Helm release name
    namespace: str  # where the release installs
    values_template: str
    values: Mapping[str, Any]
    # Argo CD ignoreDifferences for fields the control plane changes itself
    ignore_differences: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ControlPlane:
    """A provider's install: where the charts come from, their pinned version, the charts."""

    repository_name: str
    repository: str
    version: str
    charts: tuple[HelmChart, ...]  # in install order; each depends on the one before
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Sidecar:
    """The proxy the mesh's injector adds to a pod, and the pod-template markers that keep a
    workload out of injection."""

    container: str
    opt_out_labels: Mapping[str, str] = field(default_factory=dict)
    opt_out_annotations: Mapping[str, str] = field(default_factory=dict)
    # What else the injector adds to a pod it injects (the label a mesh's policies select
    # meshed pods by, the proxy's ports), for stand-in workloads built from the intent.
    injected_labels: Callable[[Intent], Mapping[str, str]] = lambda intent: {}
    ports: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class CanaryQueries:
    """The PromQL a canary version is judged by. ``selector`` holds the label matchers of one
    version, with ``{placeholders}`` for its values; each query has ``{selector}`` and
    ``{window}``."""

    source: str
    selector: str
    requests: str
    errors: str
    latency_p99: str


@dataclass(frozen=True)
class CutOver:
    """The runbook's steps when an environment switches to this mesh (``install``,
    ``proxy_check``) or away from it (the rest)."""

    title: str  # the mesh as prose names it: "Istio"
    install: str  # step 1, switching to it: install and check the control plane
    proxy_check: str  # after each restart wave, switching to it
    control_plane_running: str  # what keeps running until the end, switching away
    uninject_intro: str  # switching away: taking its injection off the namespaces
    uninject: Callable[[str], str]  # the command for one namespace
    uninstall: str  # the last step, switching away


@dataclass(frozen=True)
class RunbookText:
    """What the runbook says that only this mesh says."""

    verify: Mapping[Stage, Sequence[str]]  # the commands that verify each stage
    settings: Callable[[Intent], str]  # the header line after the trust domain
    rollback_injection: Callable[[Intent, Sequence[str]], list[str]]
    before_authorization: Sequence[str]  # at strict_mtls: how to read the dry run
    cut_over: CutOver


@dataclass(frozen=True)
class GateSupport:
    """What the stage gates can observe of this mesh's workloads: None where they can, else
    why not (each is a blocker until the gate is forced or not observed)."""

    plaintext: str | None = None
    dry_run: str | None = None


@dataclass(frozen=True)
class Provider:
    """One mesh, or the plain hosts' Envoy sidecars (not a ``mesh_provider``: they run beside
    the cluster's mesh for the services hosts carry)."""

    name: str
    plan: Planner
    traffic_apis: tuple[str, ...] = ()  # what mesh_traffic_api may say, the default first
    # what in an object's API group, labels or annotations says it is written for this mesh
    marks: tuple[str, ...] = ()
    control_plane: Callable[[Intent], ControlPlane] | None = None
    sidecar: Sidecar | None = None
    canary_queries: CanaryQueries | None = None
    runbook: RunbookText | None = None
    gates: GateSupport = GateSupport()
    # how the mesh's data plane treats a request, rule by rule (providers/<mesh>/flows/)
    flows: FlowEvaluator | None = None
