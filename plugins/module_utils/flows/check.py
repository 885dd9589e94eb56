"""The flow proof over manifests alone (``meshstage check``, ``meshstage flows PATH``).

Without an intent there are no declared calls: the flows are the ones the manifests show
(the routes of their gateways and ingresses, kubelet probes, Prometheus scrapes), and the
configuration they are judged through is the manifests' own mesh objects. Each of those
flows is one the estate needs, and before the mesh objects it got through: a refused one is
an Error (``MST0401``) on the object that refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..analyze.finding import Finding, Level, Unchecked
from ..estate.index import MeshConfig, MeshIndex
from ..estate.objects import Resource
from ..providers.registry import mesh
from .collect import collect_flows
from .evaluate import FlowSettings, MeshState
from .proof import FlowProof, nothing_configured, prove

CODE = "MST0401"
NAME = "meshstage.FlowProof"


def manifests_proof(resources: Sequence[Resource], config: MeshConfig,
                    provider: str) -> FlowProof:
    """The flows the manifests show, judged through their own mesh objects."""
    settings = FlowSettings(root_namespace=config.root_namespace,
                            trust_domain=config.trust_domain)
    index = MeshIndex(resources, config)
    state = MeshState(provider, settings, index, label=f"the manifests ({provider})")
    evaluator = mesh(provider).flows
    flows = collect_flows(None, index, evaluator.scrape if evaluator is not None else None,
                          settings=settings)
    return prove(flows, state, nothing_configured, "before the mesh objects")


def flow_findings(resources: Sequence[Resource], config: MeshConfig,
                  providers: Sequence[str]) -> tuple[list[Finding], list[Unchecked]]:
    """An Error per refused flow; a note when the manifests are not for exactly one mesh."""
    if len(providers) != 1:
        return [], [Unchecked(NAME, "request flows", "the manifests are for "
                              f"{len(providers)} meshes; name one with --provider")]
    findings = []
    for row in manifests_proof(resources, config, providers[0]).breaks:
        verdict = row.then
        findings.append(Finding(
            code=CODE, level=Level.ERROR, resource=verdict.by or str(row.flow.destination),
            message=f"refuses {row.flow} ({verdict.outcome}): {verdict.reason}; fix: "
                    f"{verdict.fix or 'see the reason'}", analyzer=NAME))
    return findings, []
