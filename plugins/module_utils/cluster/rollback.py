"""Rollback: move an environment back to an earlier stage, never sideways or forward.

The stage an environment is at is the one recorded in the GitOps repository's state
(``.meshstage/state.json``, written by the last run), not the inventory's: the repository is
what the clusters run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import MeshstageError
from ..stages import STAGE_NAMES, Stage


def check_rollback(recorded: Mapping[str, Mapping[str, Any]], environment: str,
                   target: str) -> Stage:
    """The recorded stage of ``environment``, when ``target`` is an earlier one.

    Raises ``MeshstageError`` naming the environment and both stages otherwise.
    """
    if target not in STAGE_NAMES:
        raise MeshstageError(f"rollback of {environment}: mesh_stage {target!r} is not one of "
                             + ", ".join(STAGE_NAMES))
    meta = recorded.get(environment)
    if not meta or meta.get("stage") not in STAGE_NAMES:
        raise MeshstageError(f"rollback of {environment} to {target!r} refused: the GitOps "
                             f"repository records no stage for {environment} (nothing was "
                             "rendered there yet); run playbooks/migrate.yml first")
    current = Stage(meta["stage"])
    wanted = Stage(target)
    if wanted.number >= current.number:
        raise MeshstageError(
            f"rollback of {environment} to {target!r} refused: the GitOps repository records "
            f"{environment} at {current.value!r} (stage {current.number}), and {target!r} "
            f"(stage {wanted.number}) is not earlier; move forward with playbooks/migrate.yml")
    return current
