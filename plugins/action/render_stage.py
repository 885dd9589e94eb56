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
    "envoy_binary": {"type": "path"},
    "hosts_group": {"type": "str", "default": "mesh_hosts"},
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
        if "mesh_hosts" in task_vars:
            return {**result, "failed": True, "msg": "mesh_hosts is built from the inventory "
                    f"group {args['hosts_group']} (each host's mesh_host variable); "
                    "do not set it as a variable"}
        variables = {
            key: self._templar.template(task_vars[key])
            for key in intent_keys() if key in task_vars
        }
        hosts = self._mesh_hosts(task_vars, args["hosts_group"])
        if hosts:
            variables["mesh_hosts"] = hosts
        options = StageOptions(
            gitops_dir=Path(args["gitops_dir"]),
            crd_dirs=[Path(d) for d in args["crd_dirs"]],
            template_dirs=[Path(d) for d in args["template_dirs"]],
            kubernetes_version=args["kubernetes_version"],
            check_mode=bool(self._task.check_mode),
            envoy_binary=args["envoy_binary"],
        )
        try:
            stage = run_stage(variables, options)
        except MeshstageError as error:
            return {**result, "failed": True, "msg": str(error)}
        result.update(stage.as_dict())
        result["hosts"] = sorted(
            name for name, host in hosts.items()
            if isinstance(host, dict) and host.get("environment") == stage.environment)
        result["changed"] = stage.changed
        if self._task.diff and stage.diff:
            result["diff"] = stage.diff
        return result

    def _mesh_hosts(self, task_vars: dict[str, Any], group: str) -> dict[str, Any]:
        """Each host of the group's ``mesh_host``, its address defaulting to ansible_host.

        Every host of the group is handed over; the intent keeps the ones of this
        environment, so a combined run gives each host to exactly its own environment.
        """
        hostvars = task_vars.get("hostvars") or {}
        hosts: dict[str, Any] = {}
        for name in (task_vars.get("groups") or {}).get(group, []):
            facts = hostvars.get(name) or {}
            host = self._templar.template(facts.get("mesh_host"))
            if isinstance(host, dict) and "address" not in host:
                host = {**host, "address": self._templar.template(
                    facts.get("ansible_host", name))}
            hosts[name] = host
        return hosts
