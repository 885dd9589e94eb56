"""One analysis: index the objects once, run the analyzers, collect what they report.

``analyze(resources, ...)`` is pure: objects in, a ``Report`` out. Findings about context
objects (the estate's stand-ins the pipeline adds, see ``context.py``) are dropped, and so
are findings a resource suppresses with the annotation
``galley.istio.io/analyze-suppress: "IST0101,MST0104"`` (or ``"*"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..estate.index import MeshConfig, MeshIndex
from ..estate.objects import Resource
from ..providers.registry import MESHES
from .finding import Finding, Level, Unchecked
from .registry import ANALYZERS

SUPPRESS = "galley.istio.io/analyze-suppress"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    unchecked: list[Unchecked] = field(default_factory=list)

    def at(self, level: Level) -> list[Finding]:
        return [f for f in self.findings if f.level is level]

    @property
    def errors(self) -> list[Finding]:
        return self.at(Level.ERROR)

    @property
    def warnings(self) -> list[Finding]:
        return self.at(Level.WARNING)


def _suppressed(finding: Finding) -> bool:
    resource = finding.subject
    if not isinstance(resource, Resource):
        return False
    codes = resource.annotations.get(SUPPRESS)
    if not codes:
        return False
    wanted = {code.strip() for code in codes.split(",")}
    return "*" in wanted or finding.code in wanted


PROVIDERS: tuple[str, ...] = tuple(MESHES)


def detect_providers(resources: Iterable[Resource]) -> tuple[str, ...]:
    """The meshes the objects are written for: a mesh's API groups, or its injection labels
    and annotations (each provider's ``marks``). Every mesh when none shows."""
    found: set[str] = set()
    for resource in resources:
        text = " ".join([resource.group, *resource.labels, *resource.annotations])
        found.update(name for name, provider in MESHES.items()
                     if any(mark in text for mark in provider.marks))
        if len(found) == len(PROVIDERS):
            break
    return tuple(p for p in PROVIDERS if p in found) or PROVIDERS


def analyze(resources: Sequence[Resource], mesh: MeshConfig | None = None,
            complete: bool = False, analyzers: Iterable[str] | None = None,
            providers: Iterable[str] | None = None) -> Report:
    """Run the named analyzers (by default every registered analyzer of the providers, which
    are detected from the objects when not given) over the objects."""
    index = MeshIndex(resources, mesh or MeshConfig(), complete)
    report = Report()
    if analyzers is not None:
        names = list(analyzers)
    else:
        wanted = set(providers) if providers is not None else set(detect_providers(resources))
        names = [name for name, analyzer in ANALYZERS.items() if analyzer.provider in wanted]
    for name in names:
        for item in ANALYZERS[name].analyze(index):
            if isinstance(item, Unchecked):
                report.unchecked.append(item)
            elif not (isinstance(item.subject, Resource) and item.subject.context) \
                    and not _suppressed(item):
                report.findings.append(item)
    report.findings.sort(key=lambda f: (f.level.rank, f.resource, f.code, f.path, f.message))
    return report
