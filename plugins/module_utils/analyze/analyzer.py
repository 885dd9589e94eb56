"""The base of every analyzer: its name, its codes and their levels, and how it reports.

An analyzer is one class in one module of ``analyzers/``. Its docstring says what it checks
and carries at least one failing and one passing example (``Fails with CODE::`` and
``Passes::`` blocks of YAML); a test runs every example and docs/analyzers.md is generated
from the docstrings, so the examples cannot drift from what the code does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import ClassVar

from ..estate.index import MeshIndex
from ..estate.objects import Resource
from ..intent.model import Intent
from .finding import Finding, Level, Unchecked

Results = Iterator[Finding | Unchecked]


class Analyzer:
    """One check over the mesh index."""

    name: ClassVar[str]                 # registered name, e.g. sidecar.SelectorAnalyzer
    provider: ClassVar[str]             # "istio" or "linkerd"
    upstream: ClassVar[bool] = False    # True: reproduces the istioctl analyzer of that name
    codes: ClassVar[Mapping[str, Level]]

    def analyze(self, index: MeshIndex) -> Results:
        raise NotImplementedError

    def finding(self, resource: Resource, code: str, message: str, path: str = "",
                level: Level | None = None) -> Finding:
        """A finding about ``resource``; the level is the one this analyzer declares, or
        ``level`` where the same problem does not break anything yet."""
        return Finding(code=code, level=level or self.codes[code], resource=resource.display,
                       message=message, analyzer=self.name, path=path, source=resource.source,
                       subject=resource)

    def unchecked(self, what: str, missing: str) -> Unchecked:
        return Unchecked(analyzer=self.name, what=what, missing=missing)


class IntentAnalyzer(Analyzer):
    """A check of the inventory against the estate: it reads the intent beside the index,
    so it runs only where both are there (a run given ``mesh_check_paths``). Its examples'
    first YAML document is the inventory's variables, the rest the estate's manifests."""

    def analyze(self, index: MeshIndex) -> Results:
        return iter(())  # without an intent there is nothing to check

    def analyze_intent(self, intent: Intent, index: MeshIndex) -> Results:
        raise NotImplementedError

    def field_finding(self, resource: Resource | str, code: str, field: str, message: str,
                      path: str = "") -> Finding:
        """A finding naming the inventory field and the manifest (or the manifest that is
        missing, ``Kind namespace/name``)."""
        display = resource if isinstance(resource, str) else resource.display
        return Finding(code=code, level=self.codes[code], resource=display,
                       message=f"{field}: {message}", analyzer=self.name, path=path,
                       source="" if isinstance(resource, str) else resource.source)


def some(names: Iterable[str], limit: int = 4) -> str:
    """``a, b, c, d and 3 more``: a short, sorted list for a note."""
    ordered = sorted(set(names))
    shown = ", ".join(ordered[:limit])
    return shown + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "")
