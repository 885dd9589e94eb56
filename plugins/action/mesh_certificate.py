# Copyright: meshstage developers
# Apache License 2.0
"""Action plugin of meshstage.mesh.mesh_certificate: the mesh CA is on the controller; the
certificate, key and CA certificate go to the host. The key never appears in a result."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.mesh_ca import (
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
    TRANSFERS_FILES = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        check = bool(self._task.check_mode)
        now = dt.datetime.now(dt.timezone.utc)
        cert_dir = args["cert_dir"].rstrip("/")
        try:
            trust_domain = trust_domain_of(args["identity"])
            ca, created = load_or_create_ca(Path(args["ca_dir"]), trust_domain, now,
                                            create=not check, gitops_dir=args["gitops_dir"])
            current = self._remote_text(f"{cert_dir}/cert.pem", task_vars)
            reason = renewal_reason(current, ca, args["identity"], now,
                                    dt.timedelta(hours=args["renew_before_hours"])) \
                if ca else "no mesh CA yet"
            files = certificate_files(ca, args["identity"], reason, now,
                                      dt.timedelta(hours=args["validity_hours"]),
                                      self._remote_text(f"{cert_dir}/ca.pem", task_vars))
        except MeshstageError as error:
            return {**result, "failed": True, "msg": str(error)}
        result.update({"identity": args["identity"], "ca_created": created,
                       "renewed": reason is not None, "reason": reason,
                       "files": sorted(files), "changed": created or bool(files)})
        if ca is None:  # check mode before the CA exists: everything would be new
            return result
        try:
            for name in ("cert.pem", "key.pem", "ca.pem"):
                path = f"{cert_dir}/{name}"
                if name in files:
                    outcome = {"changed": True} if check else \
                        self._put(path, files[name], args["owner"], task_vars)
                else:  # the file stays: its mode and owner are still enforced
                    outcome = self._execute_module(
                        module_name="ansible.legacy.file",
                        module_args={"path": path, "state": "file", "mode": "0600",
                                     "owner": args["owner"]}, task_vars=task_vars)
                if outcome.get("failed"):
                    return {**result, "failed": True,
                            "msg": f"{path}: {outcome.get('msg', 'cannot be written')}"}
                result["changed"] = result["changed"] or bool(outcome.get("changed"))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _remote_text(self, path: str, task_vars: dict[str, Any] | None) -> str | None:
        found = self._execute_module(module_name="ansible.legacy.slurp",
                                     module_args={"src": path}, task_vars=task_vars)
        if found.get("failed") or "content" not in found:
            return None
        return base64.b64decode(found["content"]).decode()

    def _put(self, path: str, text: str, owner: str | None,
             task_vars: dict[str, Any] | None) -> dict[str, Any]:
        if self._connection._shell.tmpdir is None:
            self._make_tmp_path()
        source = self._connection._shell.join_path(self._connection._shell.tmpdir,
                                                   path.rpartition("/")[2])
        self._transfer_data(source, text)
        self._fixup_perms2((self._connection._shell.tmpdir, source))
        return self._execute_module(
            module_name="ansible.legacy.copy",
            module_args={"src": source, "dest": path, "mode": "0600", "owner": owner,
                         "_original_basename": path.rpartition("/")[2]},
            task_vars=task_vars)
