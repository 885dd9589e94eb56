# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.render_stage: controller-side, one call into module_utils."""

from __future__ import annotations

from typing import Any

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import run_stage
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
    **RENDER_ARGUMENT_SPEC,
    # a path, or {path, namespace}: the namespace of its objects that name none
    "check_paths": {"type": "list", "elements": "raw", "default": []},
    "gate_verdicts": {"type": "list", "elements": "dict", "default": []},
    "observed_calls": {"type": "list", "elements": "dict", "default": []},
}


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        options = stage_options(args, args["gitops_dir"], bool(self._task.check_mode),
                                task_vars)
        variables = intent_variables(task_vars, self._templar, args["hosts_group"])
        stage = run_stage(variables, options)
        result = stage.as_dict()
        result["check_paths"] = [str(path) for path in options.check_paths]
        result["hosts"] = sorted(
            name for name, host in variables.get("mesh_hosts", {}).items()
            if isinstance(host, dict) and host.get("environment") == stage.environment)
        result["changed"] = stage.changed
        if self._task.diff and stage.diff:
            result["diff"] = stage.diff
        return result
