"""Paths an inventory names (``mesh_check_paths``): a relative one is read relative to the
inventory that defines the environment's host (Ansible's ``inventory_dir``), as the files an
inventory names are written, not relative to wherever the playbook happens to run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def relative_to_inventory(paths: Sequence[str | Path], inventory_dir: str | Path | None
                          ) -> tuple[list[Path], list[str]]:
    """The paths, relative ones joined to ``inventory_dir``; and a line for each of those,
    saying where it was read."""
    resolved, notes = [], []
    for text in paths:
        path = Path(text)
        if not path.is_absolute() and inventory_dir:
            path = Path(inventory_dir) / path
            notes.append(f"mesh_check_paths: {text} is relative, read as {path} (relative to "
                         f"the inventory {inventory_dir})")
        resolved.append(path)
    return resolved, notes
