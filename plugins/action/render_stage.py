# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.render_stage: controller-side, one call into module_utils."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.intent import (
    intent_keys,
    unknown_mesh_variables,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    run_stage,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "gitops_dir": {"type": "path", "required": True},
    "crd_dirs": {"type": "list", "elements": "path", "default": []},
    "template_dirs": {"type": "list", "elements": "path", "default": []},
    "kubernetes_version": {"type": "str", "default": "1.33.0"},
    "check_paths": {"type": "list", "elements": "path", "default": []},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        typos = unknown_mesh_variables(list(task_vars))
        if typos:
            return {**result, "failed": True, "msg": "unknown mesh_* variable(s): "
                    + ", ".join(typos) + " (see docs/intent.md for the known ones)"}
        variables = {
            key: self._templar.template(task_vars[key])
            for key in intent_keys() if key in task_vars
        }
        options = StageOptions(
            gitops_dir=Path(args["gitops_dir"]),
            crd_dirs=[Path(d) for d in args["crd_dirs"]],
            template_dirs=[Path(d) for d in args["template_dirs"]],
            kubernetes_version=args["kubernetes_version"],
            check_mode=bool(self._task.check_mode),
            check_paths=[Path(p) for p in args["check_paths"]],
        )
        try:
            stage = run_stage(variables, options)
        except MeshstageError as error:
            return {**result, "failed": True, "msg": str(error)}
        result.update(stage.as_dict())
        result["changed"] = stage.changed
        if self._task.diff and stage.diff:
            result["diff"] = stage.diff
        return result
