"""One import, as ``meshstage import`` and ``meshstage.mesh.import_estate`` run it: read the
manifests, ask Prometheus for the edges it saw (when given one), write the inventory."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..errors import MeshstageError
from ..estate.manifests import read_manifests
from ..estate.objects import Resource
from ..estate.stand_in import generated
from ..gates.gate import promql_duration
from ..gates.observe import observe_edges
from ..intent.checker import duration_seconds
from ..prometheus import PrometheusClient
from .importer import ImportOptions, import_estate
from .layout import inventory_files, write_inventory
from .paths import DNS_LABEL


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
                     stdin: TextIO | None = None,
                     default_namespace: str | None = None) -> ImportResult:
    """Import the estate at ``paths`` into an inventory under ``output``; its objects that
    name no namespace are in ``default_namespace`` (None: ``default``, and a warning when
    the estate's Services and workloads name none)."""
    guessed = default_namespace is None
    default_namespace = default_namespace or "default"
    if not DNS_LABEL.match(default_namespace):
        raise MeshstageError(f"default namespace {default_namespace!r}: not a namespace name "
                             "(a DNS-1123 label: lower-case letters, digits and '-')")
    manifests = read_manifests(paths, stdin=stdin, default_namespace=default_namespace)
    observed, source = [], ""
    if prometheus:
        observed = observe_edges(PrometheusClient(prometheus),
                                 promql_duration(duration_seconds(window)))
        source = f"Prometheus {prometheus} over the last {window}"
    options = ImportOptions(environment=environment, provider=provider,
                            namespaces=tuple(namespaces), exclude_namespaces=tuple(exclude),
                            observed=tuple(observed), observed_from=source)
    # with what controllers run for the estate's objects (prometheus-operator's StatefulSets)
    imported = import_estate([*manifests.resources, *generated(manifests.resources)], options)
    if guessed:
        imported.warnings.extend(_namespace_guessed(manifests.resources))
    env = imported.environment["mesh_environment"]
    if check_paths:
        home = (output / env).resolve()
        relative: list[Any] = [_beside(Path(p).resolve(), home) for p in paths if p != "-"]
        if default_namespace != "default":  # the runs read them the same way
            relative = [{"path": path, "namespace": default_namespace} for path in relative]
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


_CLUSTER_HOST = re.compile(r"\b([a-z0-9][-a-z0-9]*)\.([a-z0-9][-a-z0-9]*)\.svc\b")
_WORKLOADS = ("Service", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _namespace_guessed(resources: Sequence[Resource]) -> list[str]:
    """A warning when the estate's Services and workloads name no namespace: they are read
    as ``default``, where ``kubectl apply`` without ``-n`` puts them, and the inventory and
    every object rendered from it say ``default``. The namespaces their own cluster host
    names (``<service>.<namespace>.svc``) give for services of the estate are suggested."""
    unnamed = [r for r in resources if r.kind in _WORKLOADS and not r.metadata.get("namespace")]
    if not unnamed:
        return []
    names = {r.name for r in resources if r.kind == "Service"}
    known = {r.namespace for r in resources}
    hinted: dict[str, int] = {}
    for resource in resources:
        for text in _strings(resource.obj):
            for service, namespace in _CLUSTER_HOST.findall(text):
                if service in names and namespace not in known:
                    hinted[namespace] = hinted.get(namespace, 0) + 1
    hint = ""
    if hinted:
        best = max(hinted, key=lambda n: (hinted[n], n))
        hint = (f"; their own cluster host names put them in {best!r} "
                f"(<service>.{best}.svc): import with --default-namespace {best}")
    return [f"{len(unnamed)} Service(s) and workload(s) of the estate name no namespace (e.g. "
            f"{unnamed[0].display}): they are read as 'default', where kubectl apply without "
            "-n puts them, and the inventory and every object rendered from it (the "
            "namespace's injection label among them) say 'default'; if they run in another "
            "namespace, import again with --default-namespace NS" + hint]


def _beside(path: Path, home: Path) -> str:
    """``path`` relative to the environment's inventory when both live in one tree (the
    inventory's parent: ``../../estate/export.yaml``), else absolute."""
    relative = os.path.relpath(path, home)
    return str(path) if relative.split(os.sep)[:3] == ["..", "..", ".."] else relative
