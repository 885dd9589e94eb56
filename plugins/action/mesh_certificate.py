# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.mesh_certificate: the mesh CA is on the controller; the
host module reads the current certificate and writes new files. The key never appears in a
result."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.envoy_hosts.mesh_ca import (
    certificate_files,
    load_or_create_ca,
    renewal_reason,
    trust_domain_of,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "ca_dir": {"type": "path", "required": True},
    "identity": {"type": "str", "required": True},
    "cert_dir": {"type": "str", "required": True},
    "owner": {"type": "str"},
    "validity_hours": {"type": "int", "default": 24},
    "renew_before_hours": {"type": "int", "default": 8},
    "gitops_dir": {"type": "path"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        now = dt.datetime.now(dt.UTC)
        host_args = {"cert_dir": args["cert_dir"], "owner": args["owner"]}
        # first call: the host's current files (modes and owner enforced on the way)
        found = self._execute_module(module_name="meshstage.mesh.mesh_certificate",
                                     module_args=host_args, task_vars=task_vars)
        if found.get("failed"):
            return {**result, **found}
        try:
            ca, created = load_or_create_ca(
                Path(args["ca_dir"]), trust_domain_of(args["identity"]), now,
                create=not self._task.check_mode, gitops_dir=args["gitops_dir"])
            reason = renewal_reason(found.get("current_cert"), ca, args["identity"], now,
                                    dt.timedelta(hours=args["renew_before_hours"])) \
                if ca else "no mesh CA yet"
            files = certificate_files(ca, args["identity"], reason, now,
                                      dt.timedelta(hours=args["validity_hours"]),
                                      found.get("current_ca"))
        except MeshstageError as error:
            return {**result, "failed": True, "msg": str(error)}
        result.update({"identity": args["identity"], "ca_created": created,
                       "renewed": reason is not None, "reason": reason, "files": sorted(files),
                       "changed": bool(found.get("changed") or created or files)})
        if files and not self._task.check_mode:
            # second call: the new files, as a no_log argument of the host module
            written = self._execute_module(module_name="meshstage.mesh.mesh_certificate",
                                           module_args={**host_args, "files": files},
                                           task_vars=task_vars)
            if written.get("failed"):
                return {**result, "failed": True, "msg": written.get("msg")}
        return result
