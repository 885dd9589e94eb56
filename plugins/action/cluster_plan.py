# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.cluster_plan: controller-side, one call into module_utils."""

from __future__ import annotations

from typing import Any

from ansible_collections.meshstage.mesh.plugins.module_utils.cluster.apply import cluster_plan
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    recorded_meta,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.tree import stage_objects
from ansible_collections.meshstage.mesh.plugins.plugin_utils.controller_action import (
    ControllerAction,
)
from ansible_collections.meshstage.mesh.plugins.plugin_utils.mesh_variables import (
    RENDER_ARGUMENT_SPEC,
    intent_variables,
    stage_options,
)

ARGUMENT_SPEC: dict[str, Any] = {
    **RENDER_ARGUMENT_SPEC,
    "gitops_dir": {"type": "path"},
}


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        # render only: the repository is read for its canary record, never written
        options = stage_options(args, ".", check_mode=True)
        variables = intent_variables(task_vars, self._templar, args["hosts_group"])
        recorded = recorded_meta(GitOpsRepo(args["gitops_dir"]), variables) \
            if args["gitops_dir"] else None
        rendered = render_stage(variables, options, recorded=recorded)
        plan = cluster_plan(rendered.intent, stage_objects(rendered.objects))
        return {**plan, "changed": False}
