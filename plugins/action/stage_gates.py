# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.stage_gates: controller-side, one call into module_utils."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ansible_collections.meshstage.mesh.plugins.module_utils.gates.gate import Call
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.run import judge_run
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo
from ansible_collections.meshstage.mesh.plugins.plugin_utils.controller_action import (
    ControllerAction,
)
from ansible_collections.meshstage.mesh.plugins.plugin_utils.mesh_variables import (
    intent_variables,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "gitops_dir": {"type": "path", "required": True},
    "force": {"type": "raw", "default": []},
    "cluster_facts": {"type": "dict"},
    "hosts_group": {"type": "str", "default": "mesh_hosts"},
}


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        variables = intent_variables(task_vars, self._templar, args["hosts_group"])
        seen: list[Call] = []
        move, verdicts = judge_run(variables, GitOpsRepo(args["gitops_dir"]).all_scope_meta(),
                                   args["cluster_facts"], args["force"], seen=seen)
        lines = [f"{v.gate}: {'FORCED' if v.forced else 'passed'}: "
                 + ("; ".join(v.blockers) if v.forced else v.summary) for v in verdicts]
        return {"changed": False, "environment": move.environment,
                "recorded_stage": move.recorded.value if move.recorded else None,
                "stage": move.target.value, "verdicts": [v.as_dict() for v in verdicts],
                "observed_calls": [asdict(call) for call in seen],
                "msg": "; ".join(lines) if lines else "no gate judges this run (not a move "
                "forward)"}
