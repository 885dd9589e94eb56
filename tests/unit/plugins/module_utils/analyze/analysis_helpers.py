"""Helpers for the analysis tests (a plain module, imported by name): analyze YAML text,
name what was found."""

from __future__ import annotations

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import (
    Report,
    analyze,
    analyze_intent,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshConfig
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.yaml_io import dump_plain, load_all


def analyze_text(text: str, *analyzers: str, complete: bool = False,
                 mesh: MeshConfig | None = None, providers: tuple[str, ...] | None = None,
                 ) -> Report:
    manifests = Manifests()
    add_text(manifests, text, "test.yaml")
    return analyze(manifests.resources, mesh, complete=complete,
                   analyzers=list(analyzers) or None, providers=providers)


def analyze_inventory_text(text: str) -> Report:
    """An inventory check's example: the first document is the inventory's variables, the
    rest the estate's manifests."""
    variables, *estate = load_all(text)
    intent, _ = parse_intent(variables)
    manifests = Manifests()
    if estate:
        add_text(manifests, "---\n".join(dump_plain(d) for d in estate), "estate.yaml")
    return Report(findings=analyze_intent(intent, manifests.resources))


def found(report: Report) -> list[tuple[str, str]]:
    """(code, resource) of every finding, sorted."""
    return sorted((f.code, f.resource) for f in report.findings)
