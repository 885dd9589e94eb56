# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.analyze: controller-side, one call into module_utils."""

from __future__ import annotations

from typing import Any

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import PROVIDERS
from ansible_collections.meshstage.mesh.plugins.module_utils.cli import (
    check_manifests,
    report_dict,
)
from ansible_collections.meshstage.mesh.plugins.plugin_utils.controller_action import (
    ControllerAction,
)
from ansible_collections.meshstage.mesh.plugins.plugin_utils.mesh_variables import (
    inventory_paths,
)

ARGUMENT_SPEC: dict[str, Any] = {
    # a path, or {path, namespace}: the namespace of its objects that name none
    "paths": {"type": "list", "elements": "raw", "required": True},
    "mesh_config": {"type": "path"},
    "complete": {"type": "bool", "default": False},
    "provider": {"type": "str", "default": "auto", "choices": ["auto", *PROVIDERS, "all"]},
    "namespace": {"type": "str", "default": "default"},
    "fail_on_warning": {"type": "bool", "default": False},
}


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        paths, resolved = inventory_paths(args["paths"], task_vars)
        report, manifests, _ = check_manifests(
            paths, args["mesh_config"], args["complete"],
            args["provider"], args["namespace"])
        result = report_dict(report, len(manifests.resources), manifests.files)
        result["changed"] = False
        result["paths"] = [str(path) for path in paths]
        blocking = report.errors + (report.warnings if args["fail_on_warning"] else [])
        if blocking:
            result["failed"] = True
            result["msg"] = (f"{len(blocking)} finding(s) block: "
                             + "; ".join(finding.line() for finding in blocking))
        else:
            counts = result["counts"]
            result["msg"] = (f"{counts['error']} error(s), {counts['warning']} warning(s), "
                             f"{counts['info']} info(s) in {result['objects']} object(s)")
        if resolved:
            result["msg"] += "; " + "; ".join(resolved)
        return result
