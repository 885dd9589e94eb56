# Copyright: meshstage developers
# Apache License 2.0
"""Controller-side helper of the action plugins: the intent variables of the host, templated.

Every action that reads the intent does it the same way: refuse unknown ``mesh_*`` names
(likely typos), then template the intent variables with the play's templar.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.intent import (
    intent_keys,
    unknown_mesh_variables,
)


def intent_variables(task_vars: Mapping[str, Any], templar: Any) -> dict[str, Any]:
    """The host's intent variables, templated; raises ``MeshstageError`` on unknown ones."""
    typos = unknown_mesh_variables(list(task_vars))
    if typos:
        raise MeshstageError("unknown mesh_* variable(s): " + ", ".join(typos)
                             + " (see docs/intent.md for the known ones)")
    return {key: templar.template(task_vars[key]) for key in intent_keys() if key in task_vars}
