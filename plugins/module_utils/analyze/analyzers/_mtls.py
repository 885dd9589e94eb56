"""Private helpers: which PeerAuthentication governs a workload port, and its mode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import Resource, Workload
from ._selectors import match_labels


def mode_of(policy: Resource | None, port: int | None) -> str:
    if policy is None:
        return "UNSET"
    if port is not None:
        levels = policy.spec.get("portLevelMtls")
        if isinstance(levels, Mapping):
            entry = levels.get(port, levels.get(str(port)))
            mode = entry.get("mode") if isinstance(entry, Mapping) else None
            if mode and mode != "UNSET":
                return str(mode)
    mtls = policy.spec.get("mtls")
    mode = mtls.get("mode") if isinstance(mtls, Mapping) else None
    return str(mode) if mode else "UNSET"


def governing(index: MeshIndex, labels: Mapping[str, str], namespace: str,
              ) -> tuple[Resource | None, Resource | None, Resource | None]:
    """(workload, namespace, mesh) PeerAuthentications that apply to pods with ``labels``;
    the first of each level in input order (Istio takes the oldest)."""
    workload = scope = mesh = None
    for policy in index.istio("PeerAuthentication"):
        selector = match_labels(policy)
        if selector:
            if (workload is None and policy.namespace == namespace
                    and all(labels.get(k) == v for k, v in selector.items())):
                workload = policy
        elif policy.namespace == index.mesh.root_namespace:
            mesh = mesh or policy
        elif policy.namespace == namespace:
            scope = scope or policy
    return workload, scope, mesh


def effective_mode(index: MeshIndex, labels: Mapping[str, str], namespace: str,
                   port: int | None) -> tuple[str, Resource | None]:
    """The mTLS mode a server port runs with, and the PeerAuthentication that sets it
    (PERMISSIVE, from no policy, when none does)."""
    for policy in governing(index, labels, namespace):
        mode = mode_of(policy, port)
        if mode != "UNSET":
            return mode, policy
    return "PERMISSIVE", None


def target_port(service_port: Mapping[str, Any], workload: Workload | None) -> int | None:
    """The pod port a Service port sends to (a named targetPort looked up in the pod)."""
    target = service_port.get("targetPort")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target:
        if target.isdigit():
            return int(target)
        for name, number in workload.container_ports() if workload else []:
            if name == target:
                return number
        return None
    declared = service_port.get("number")
    return declared if isinstance(declared, int) else None
