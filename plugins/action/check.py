# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.check: controller-side, one call into module_utils."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import PROVIDERS
from ansible_collections.meshstage.mesh.plugins.module_utils.cli import (
    check_manifests,
    report_dict,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError

ARGUMENT_SPEC: dict[str, Any] = {
    "paths": {"type": "list", "elements": "path", "required": True},
    "mesh_config": {"type": "path"},
    "complete": {"type": "bool", "default": False},
    "provider": {"type": "str", "default": "auto", "choices": ["auto", *PROVIDERS, "all"]},
    "namespace": {"type": "str", "default": "default"},
    "fail_on_warning": {"type": "bool", "default": False},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            report, manifests, _ = check_manifests(
                args["paths"], args["mesh_config"], args["complete"], args["provider"],
                args["namespace"])
        except MeshstageError as error:
            return {**result, "failed": True, "msg": str(error)}
        result.update(report_dict(report, len(manifests.resources), manifests.files))
        result["changed"] = False
        blocking = report.errors + (report.warnings if args["fail_on_warning"] else [])
        if blocking:
            result["failed"] = True
            result["msg"] = (f"{len(blocking)} finding(s) block: "
                             + "; ".join(finding.line() for finding in blocking))
        else:
            counts = result["counts"]
            result["msg"] = (f"{counts['error']} error(s), {counts['warning']} warning(s), "
                             f"{counts['info']} info(s) in {result['objects']} object(s)")
        return result
