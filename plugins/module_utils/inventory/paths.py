"""Paths an inventory names (``mesh_check_paths``): a relative one is read relative to the
inventory that defines the environment's host (Ansible's ``inventory_dir``), as the files an
inventory names are written, not relative to wherever the playbook happens to run.

An entry is a path, or a mapping ``{path: ..., namespace: ...}``: its objects that name no
namespace are in ``namespace`` (where ``kubectl apply -n`` or ``helm install --namespace``
puts them), not in ``default``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import IntentError, IntentErrors
from ..estate.manifests import ManifestPath

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _entry(number: int, item: Any) -> tuple[str, str | None]:
    """The path and namespace of one entry; ``IntentErrors`` naming the field otherwise."""
    where = f"mesh_check_paths[{number}]"
    if isinstance(item, str | Path):
        return str(item), None
    if not isinstance(item, Mapping):
        raise IntentErrors([IntentError(where, item, "is neither a path nor a mapping with "
                                        "path and namespace")])
    unknown = sorted(str(key) for key in item if key not in ("path", "namespace"))
    errors = [IntentError(f"{where}.{key}", item[key], "is not a known key here; known: "
                          "namespace, path") for key in unknown]
    path, namespace = item.get("path"), item.get("namespace", "default")
    if not isinstance(path, str) or not path:
        errors.append(IntentError(f"{where}.path", path, "must be a non-empty path"))
    if not isinstance(namespace, str) or not DNS_LABEL.match(namespace):
        errors.append(IntentError(f"{where}.namespace", namespace, "must be a namespace name "
                                  "(a DNS-1123 label)"))
    if errors:
        raise IntentErrors(errors)
    return str(path), str(namespace)


def relative_to_inventory(paths: Sequence[Any], inventory_dir: str | Path | None
                          ) -> tuple[list[Path | ManifestPath], list[str]]:
    """The paths, relative ones joined to ``inventory_dir`` (``~`` and ``$VARIABLES``
    expanded, as Ansible's ``path`` type does); an entry with a namespace as a
    ``ManifestPath``. And a line for each relative one, saying where it was read."""
    resolved: list[Path | ManifestPath] = []
    notes = []
    for number, item in enumerate(paths):
        text, namespace = _entry(number, item)
        path = Path(os.path.expanduser(os.path.expandvars(text)))
        if not path.is_absolute() and inventory_dir:
            path = Path(inventory_dir) / path
            notes.append(f"mesh_check_paths: {text} is relative, read as {path} (relative to "
                         f"the inventory {inventory_dir})")
        resolved.append(path if namespace is None else ManifestPath(path, namespace))
    return resolved, notes
