# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.rollback_check: controller-side, one call into module_utils."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops import GitOpsRepo
from ansible_collections.meshstage.mesh.plugins.module_utils.rollback import check_rollback

ARGUMENT_SPEC: dict[str, Any] = {
    "gitops_dir": {"type": "path", "required": True},
    "environment": {"type": "str", "required": True},
    "stage": {"type": "str", "required": True},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            current = check_rollback(GitOpsRepo(args["gitops_dir"]).all_scope_meta(),
                                     args["environment"], args["stage"])
        except MeshstageError as error:
            return {**result, "failed": True, "msg": str(error)}
        return {**result, "changed": False, "environment": args["environment"],
                "recorded_stage": current.value, "stage": args["stage"]}
