# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.canary_step: controller-side, one call into module_utils."""

from __future__ import annotations

from typing import Any

from ansible_collections.meshstage.mesh.plugins.module_utils.canary.step import (
    CanaryOptions,
    run_canary_step,
)
from ansible_collections.meshstage.mesh.plugins.plugin_utils.controller_action import (
    ControllerAction,
)
from ansible_collections.meshstage.mesh.plugins.plugin_utils.mesh_variables import (
    RENDER_ARGUMENT_SPEC,
    intent_variables,
    stage_options,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "gitops_dir": {"type": "path", "required": True},
    "service": {"type": "str", "required": True},
    "prometheus_url": {"type": "str"},
    "rollback": {"type": "bool", "default": False},
    "check_pending": {"type": "bool", "default": True},
    "preview": {"type": "bool", "default": False},
    **RENDER_ARGUMENT_SPEC,
}


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        options = stage_options(args, args["gitops_dir"], bool(self._task.check_mode))
        canary = CanaryOptions(service=args["service"], prometheus_url=args["prometheus_url"],
                               rollback=args["rollback"], check_pending=args["check_pending"],
                               preview=args["preview"])
        variables = intent_variables(task_vars, self._templar, args["hosts_group"])
        step = run_canary_step(variables, options, canary)
        result = step.as_dict()
        if self._task.diff and step.diff:
            result["diff"] = step.diff
        return result
