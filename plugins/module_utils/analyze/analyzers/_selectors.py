"""Private helpers shared by the analyzers of workload-selecting kinds (Sidecar, Telemetry):
each selector must select a pod of its namespace, no two may select the same pod, and only
one per namespace may go without a selector."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import Resource, Workload
from ...kube import selector_text
from ..analyzer import Analyzer
from ..finding import Finding

SelectorOf = Callable[[Resource], Mapping[str, str]]


def workload_selector(resource: Resource) -> dict[str, str]:
    """``spec.workloadSelector.labels`` (Sidecar, ...)."""
    return _labels(resource.spec.get("workloadSelector"), "labels")


def match_labels(resource: Resource) -> dict[str, str]:
    """``spec.selector.matchLabels`` (Telemetry, AuthorizationPolicy, PeerAuthentication, ...)."""
    return _labels(resource.spec.get("selector"), "matchLabels")


def _labels(holder: Any, key: str) -> dict[str, str]:
    labels = holder.get(key) if isinstance(holder, Mapping) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def selected_workloads(analyzer: Analyzer, index: MeshIndex, resources: list[Resource],
                       selector_of: SelectorOf, path: str,
                       conflict_code: str, noun: str,
                       ) -> Iterator[Finding | tuple[Resource, list[Workload]]]:
    """For each resource with a selector: IST0101 when it selects no pod of its namespace,
    ``conflict_code`` for each pod that more than one of them selects. Yields the selected
    workloads of each resource as ``(resource, workloads)`` too, for further checks."""
    selecting: dict[Workload, list[Resource]] = {}
    for resource in resources:
        labels = selector_of(resource)
        if not labels:
            continue
        workloads = index.workloads_matching(resource.namespace, labels)
        if not workloads:
            yield analyzer.finding(resource, "IST0101", "Referenced selector not found: "
                                   f"{selector_text(labels)!r} selects no pod in namespace "
                                   f"{resource.namespace}.", path)
        for workload in workloads:
            selecting.setdefault(workload, []).append(resource)
        yield resource, workloads
    for workload, owners in selecting.items():
        if len(owners) < 2:
            continue
        names = ", ".join(sorted(o.name for o in owners))
        pod = f"{workload.resource.kind} {workload.namespace}/{workload.resource.name}"
        for owner in owners:
            yield analyzer.finding(owner, conflict_code, f"The {noun} {names} in namespace "
                                   f"{owner.namespace} select the same workload ({pod}), "
                                   "which leads to undefined behaviour.", path)


def without_selector(analyzer: Analyzer, resources: list[Resource], selector_of: SelectorOf,
                     code: str, noun: str) -> Iterator[Finding]:
    """``code`` for each of several resources of one namespace that have no selector."""
    by_namespace: dict[str, list[Resource]] = {}
    for resource in resources:
        if not selector_of(resource):
            by_namespace.setdefault(resource.namespace, []).append(resource)
    for namespace, group in by_namespace.items():
        if len(group) < 2:
            continue
        names = ", ".join(sorted(r.name for r in group))
        for resource in group:
            yield analyzer.finding(resource, code, f"The {noun} {names} in namespace "
                                   f"{namespace} have no workload selector, which leads to "
                                   "undefined behaviour; keep one, give the others selectors.")
