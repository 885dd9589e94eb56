# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.envoy_config: reads the committed files on the controller,
builds the validation bootstrap, and runs the module on the host (one call each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.envoy_hosts.config import (
    HOST_FILES,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.envoy_hosts.validate import (
    staged_validation,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "src": {"type": "path", "required": True},
    "dest": {"type": "str", "required": True},
    "envoy": {"type": "str", "required": True},
    "validate": {"type": "bool", "default": True},
    "directories": {"type": "list", "elements": "dict", "default": []},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        src, dest = Path(args["src"]), args["dest"].rstrip("/")
        try:
            texts = {name: (src / name).read_text() for name in HOST_FILES}
            validation = staged_validation(texts, dest)
        except (OSError, MeshstageError) as error:
            return {**result, "failed": True,
                    "msg": f"the committed configuration in {src} cannot be used: {error}"}
        result.update(self._execute_module(
            module_name="meshstage.mesh.envoy_config",
            module_args={"dest": dest, "envoy": args["envoy"], "files": texts,
                         "validation_config": validation, "validate": args["validate"],
                         "directories": args["directories"]},
            task_vars=task_vars))
        return result
