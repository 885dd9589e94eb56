#!/usr/bin/python
# Copyright: meshstage developers
# Apache License 2.0
"""Host side of meshstage.mesh.envoy_config: stage, check with Envoy, swap in."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: envoy_config
short_description: Check a host sidecar's committed Envoy configuration and swap it in atomically
version_added: "0.1.0"
description:
  - Reads the host's committed files (C(bootstrap.yaml), C(lds.yaml), C(cds.yaml),
    C(sds-identity.yaml), C(sds-trust.yaml)) from I(src) on the controller and compares them
    with I(dest) on the host.
  - When any differs, writes every file to C(<dest>/.staged/), checks them together with the
    host's own C(envoy --mode validate) (a bootstrap that inlines the listeners and clusters),
    and only then renames the changed files into place, secrets first, then clusters, then
    listeners. Envoy watches those files and applies them without a restart; a changed
    bootstrap sets I(restart_required).
  - A configuration Envoy refuses is never swapped in; the running one stays.
author:
  - meshstage developers
options:
  src:
    description: Directory on the controller with the host's committed files.
    type: path
    required: true
  dest:
    description: The sidecar's configuration directory on the host.
    type: str
    required: true
  envoy:
    description: Path of the C(envoy) binary on the host.
    type: str
    required: true
  validate:
    description: Check with C(envoy --mode validate) before swapping (turn off only to debug).
    type: bool
    default: true
  directories:
    description:
      - Directories the configuration refers to (access logs, the supervisor's pidfile), made
        before the check, each a mapping of C(path), C(mode) and optional C(owner). I(dest)
        itself is always made (mode 0755).
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    support: full
    description: Reports which files would change, and their diff; writes nothing.
  diff_mode:
    support: full
    description: Shows each changed file, before and after.
"""

EXAMPLES = r"""
- name: Swap in the committed configuration of this host
  meshstage.mesh.envoy_config:
    src: /srv/gitops/mesh/hosts/staging/billing-1
    dest: /etc/meshstage/envoy
    envoy: /opt/meshstage/envoy/bin/envoy
"""

RETURN = r"""
files:
  description: The files that changed (or would change), in the order they are swapped.
  returned: always
  type: list
  elements: str
  sample: ["cds.yaml", "lds.yaml"]
restart_required:
  description: True when the bootstrap changed; Envoy reads it only when it starts.
  returned: always
  type: bool
"""

import os
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.hosts.envoy_swap import (
    changed_files,
    swap_in,
)


def _directory(module: AnsibleModule, path: str, mode: str, owner: str | None) -> bool:
    changed = False
    if not os.path.isdir(path):
        changed = True
        if module.check_mode:
            return True
        os.makedirs(path, mode=int(mode, 8))
    changed = module.set_mode_if_different(path, mode, changed)
    return module.set_owner_if_different(path, owner, changed)


def main() -> None:
    module = AnsibleModule(argument_spec={
        "dest": {"type": "str", "required": True},
        "envoy": {"type": "str", "required": True},
        "files": {"type": "dict", "required": True},
        "validation_config": {"type": "str", "required": True},
        "validate": {"type": "bool", "default": True},
        "directories": {"type": "list", "elements": "dict", "default": []},
    }, supports_check_mode=True)
    dest = Path(module.params["dest"])
    files = {str(k): str(v) for k, v in module.params["files"].items()}
    made = False
    for item in [{"path": str(dest), "mode": "0755"}, *module.params["directories"]]:
        made = _directory(module, str(item["path"]), str(item["mode"]), item.get("owner")) \
            or made
    changed = changed_files(dest, files)
    diff = [{"before_header": str(dest / name), "after_header": str(dest / name),
             "before": (dest / name).read_text() if (dest / name).exists() else "",
             "after": files[name]} for name in changed]
    result = {"changed": bool(changed) or made, "files": changed,
              "restart_required": "bootstrap.yaml" in changed}
    if module._diff:
        result["diff"] = diff
    if changed and not module.check_mode:
        try:
            swap_in(dest, files, module.params["validation_config"], module.params["envoy"],
                    changed, module.params["validate"])
        except (OSError, MeshstageError) as error:
            module.fail_json(msg=f"{dest}: nothing swapped in: {error}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
