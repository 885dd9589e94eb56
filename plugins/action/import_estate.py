# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.import_estate: controller-side, one call into module_utils."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible_collections.meshstage.mesh.plugins.module_utils._plain import plain_data
from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import PROVIDERS
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.run import (
    import_inventory,
)
from ansible_collections.meshstage.mesh.plugins.plugin_utils.controller_action import (
    ControllerAction,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "paths": {"type": "list", "elements": "path", "required": True},
    "output": {"type": "path", "required": True},
    "environment": {"type": "str"},
    "provider": {"type": "str", "choices": list(PROVIDERS)},
    "namespaces": {"type": "list", "elements": "str", "default": []},
    "exclude_namespaces": {"type": "list", "elements": "str", "default": []},
    "prometheus": {"type": "str"},
    "window": {"type": "str", "default": "1h"},
    "check_paths": {"type": "bool", "default": True},
    "default_namespace": {"type": "str"},
}


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        args = plain_data(args)  # Ansible's tagged strings become str
        check = bool(self._task.check_mode)
        result = import_inventory(
            args["paths"], Path(args["output"]), environment=args["environment"],
            provider=args["provider"], namespaces=args["namespaces"],
            exclude=args["exclude_namespaces"], prometheus=args["prometheus"],
            window=args["window"], check_paths=args["check_paths"], write=not check,
            default_namespace=args["default_namespace"])
        found = result.as_dict()
        if check:
            found["written"] = [path for path in result.files
                                if not (Path(args["output"]) / path).exists()]
        found["changed"] = bool(found["written"])
        found["msg"] = result.summary()
        if result.warnings:
            found["warnings"] = result.warnings
        return found
