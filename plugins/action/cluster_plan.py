# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.cluster_plan: controller-side, one call into module_utils."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.meshstage.mesh.plugins.module_utils.apply import cluster_plan
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops import GitOpsRepo
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    recorded_meta,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.tree import stage_objects
from ansible_collections.meshstage.mesh.plugins.plugin_utils.mesh_variables import (
    RENDER_ARGUMENT_SPEC,
    intent_variables,
    stage_options,
)

ARGUMENT_SPEC: dict[str, Any] = {
    **RENDER_ARGUMENT_SPEC,
    "gitops_dir": {"type": "path"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        # render only: the repository is read for its canary record, never written
        options = stage_options(args, ".", check_mode=True)
        try:
            variables = intent_variables(task_vars or {}, self._templar, args["hosts_group"])
            canaries = recorded_meta(GitOpsRepo(args["gitops_dir"]), variables).get("canary") \
                if args["gitops_dir"] else None
            rendered = render_stage(variables, options, canaries=canaries)
            plan = cluster_plan(rendered.intent,
                                stage_objects(rendered.objects, rendered.intent.environment))
        except MeshstageError as error:
            return {**result, "failed": True, "msg": str(error)}
        return {**result, **plan, "changed": False}
