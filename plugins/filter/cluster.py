# Copyright: meshstage developers
# Apache License 2.0
"""Filters over what kubernetes.core.k8s_info returns: small adapters over module_utils."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.meshstage.mesh.plugins.module_utils._plain import plain_data
from ansible_collections.meshstage.mesh.plugins.module_utils.cluster.apply import (
    prune_selection as _prune_selection,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.cluster.apply import (
    rollback_steps as _rollback_steps,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.cluster.cluster_facts import (
    sidecar_facts as _sidecar_facts,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError


def _objects(value: Any, name: str) -> list[dict[str, Any]]:
    """A list of objects, or k8s_info results (``resources``), or a loop's ``results``."""
    value = plain_data(value)
    if isinstance(value, Mapping):
        value = value.get("results", value.get("resources", [value]))
    if not isinstance(value, list):
        raise AnsibleFilterError(f"{name}: expected a list of objects or k8s_info results, got "
                                 f"{type(value).__name__}")
    objects: list[dict[str, Any]] = []
    for item in value:
        if isinstance(item, Mapping) and "resources" in item:
            objects.extend(item["resources"] or [])
        elif isinstance(item, Mapping) and "kind" in item:
            objects.append(dict(item))
        elif isinstance(item, Mapping) and item.get("skipped"):
            continue
        else:
            raise AnsibleFilterError(f"{name}: {item!r:.80} is neither an object nor a "
                                     "k8s_info result")
    return objects


def prune_selection(live: Any, rendered: Sequence[str], environment: str) -> list[dict[str, Any]]:
    """Owned live objects that are no longer rendered, in delete order."""
    try:
        return [dict(obj) for obj in _prune_selection(
            _objects(live, "prune_selection"), list(rendered), str(environment))]
    except MeshstageError as error:
        raise AnsibleFilterError(f"prune_selection: {error}") from error


def rollback_steps(live: Any, rendered: Any, environment: str) -> list[dict[str, Any]]:
    """Applies and deletes that take the cluster back to the rendered (earlier) stage."""
    try:
        return _rollback_steps(_objects(rendered, "rollback_steps"),
                               _objects(live, "rollback_steps"), str(environment))
    except MeshstageError as error:
        raise AnsibleFilterError(f"rollback_steps: {error}") from error


def sidecar_facts(pods: Any, provider: str, namespaces: Sequence[str] = ()) -> dict[str, Any]:
    """Pods with and without the mesh's sidecar, per namespace."""
    try:
        return _sidecar_facts(_objects(pods, "sidecar_facts"), str(provider), list(namespaces))
    except MeshstageError as error:
        raise AnsibleFilterError(f"sidecar_facts: {error}") from error


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"prune_selection": prune_selection, "rollback_steps": rollback_steps,
                "sidecar_facts": sidecar_facts}
