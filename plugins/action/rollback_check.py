# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.rollback_check: controller-side, one call into module_utils."""

from __future__ import annotations

from typing import Any

from ansible_collections.meshstage.mesh.plugins.module_utils.cluster.rollback import check_rollback
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo
from ansible_collections.meshstage.mesh.plugins.plugin_utils.controller_action import (
    ControllerAction,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "gitops_dir": {"type": "path", "required": True},
    "environment": {"type": "str", "required": True},
    "stage": {"type": "str", "required": True},
}


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        current = check_rollback(GitOpsRepo(args["gitops_dir"]).all_scope_meta(),
                                 args["environment"], args["stage"])
        return {"changed": False, "environment": args["environment"],
                "recorded_stage": current.value, "stage": args["stage"]}
