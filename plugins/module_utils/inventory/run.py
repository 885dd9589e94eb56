"""One import, as ``meshstage import`` and ``meshstage.mesh.import_estate`` run it: read the
manifests, ask Prometheus for the edges it saw (when given one), write the inventory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..estate.manifests import read_manifests
from ..gates.gate import promql_duration
from ..gates.observe import observe_edges
from ..intent.checker import duration_seconds
from ..prometheus import PrometheusClient
from .importer import ImportOptions, import_estate
from .layout import inventory_files, write_inventory


@dataclass
class ImportResult:
    output: Path
    environment: str
    stage: str
    services: int
    calls: int
    converted: int
    kept: int
    written: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "environment": self.environment,
                "stage": self.stage, "services": self.services, "calls": self.calls,
                "converted": self.converted, "kept": self.kept, "written": self.written,
                "warnings": self.warnings}

    def summary(self) -> str:
        return (f"{self.services} service(s), {self.calls} call(s), stage {self.stage} for "
                f"{self.environment}; {self.converted} mesh object(s) became intent, "
                f"{self.kept} kept as they are; "
                + (f"wrote {len(self.written)} file(s) in {self.output}" if self.written else
                   f"nothing to write in {self.output}"))


def import_inventory(paths: Sequence[str], output: Path, *, environment: str | None = None,
                     provider: str | None = None, namespaces: Sequence[str] = (),
                     exclude: Sequence[str] = (), prometheus: str | None = None,
                     window: str = "1h", check_paths: bool = True, write: bool = True,
                     stdin: TextIO | None = None) -> ImportResult:
    """Import the estate at ``paths`` into an inventory under ``output``."""
    manifests = read_manifests(paths, stdin=stdin)
    observed, source = [], ""
    if prometheus:
        observed = observe_edges(PrometheusClient(prometheus),
                                 promql_duration(duration_seconds(window)))
        source = f"Prometheus {prometheus} over the last {window}"
    options = ImportOptions(environment=environment, provider=provider,
                            namespaces=tuple(namespaces), exclude_namespaces=tuple(exclude),
                            observed=tuple(observed), observed_from=source)
    imported = import_estate(manifests.resources, options)
    env = imported.environment["mesh_environment"]
    if check_paths:
        home = (output / env).resolve()
        relative = [_beside(Path(p).resolve(), home) for p in paths if p != "-"]
        if relative:
            imported.environment["mesh_check_paths"] = relative
            imported.notes["mesh_check_paths"] = [
                "the manifests this inventory was imported from, relative to this inventory: "
                "every run checks the inventory against them (docs/import.md)"]
    files, links = inventory_files(imported, [str(p) if p != "-" else "stdin" for p in paths])
    written = write_inventory(output, files, links) if write else []
    draft = imported.draft
    return ImportResult(
        output=output, environment=env, stage=imported.environment["mesh_stage"],
        services=len(draft.services),
        calls=sum(len(s.calls) for s in draft.services.values()),
        converted=len({name for name, _ in draft.converted}),
        kept=len({name for name, _ in draft.listed}), written=written, files=files,
        warnings=imported.warnings)


def _beside(path: Path, home: Path) -> str:
    """``path`` relative to the environment's inventory when both live in one tree (the
    inventory's parent: ``../../estate/export.yaml``), else absolute."""
    relative = os.path.relpath(path, home)
    return str(path) if relative.split(os.sep)[:3] == ["..", "..", ".."] else relative
