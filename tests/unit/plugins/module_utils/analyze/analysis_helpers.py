"""Helpers for the analysis tests (a plain module, imported by name): analyze YAML text,
name what was found."""

from __future__ import annotations

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import (
    Report,
    analyze,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshConfig
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    Manifests,
    add_text,
)


def analyze_text(text: str, *analyzers: str, complete: bool = False,
                 mesh: MeshConfig | None = None, providers: tuple[str, ...] | None = None,
                 ) -> Report:
    manifests = Manifests()
    add_text(manifests, text, "test.yaml")
    return analyze(manifests.resources, mesh, complete=complete,
                   analyzers=list(analyzers) or None, providers=providers)


def found(report: Report) -> list[tuple[str, str]]:
    """(code, resource) of every finding, sorted."""
    return sorted((f.code, f.resource) for f in report.findings)
