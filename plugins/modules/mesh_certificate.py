#!/usr/bin/python
# Copyright: meshstage developers
# Apache License 2.0
"""Host side of meshstage.mesh.mesh_certificate: read the current certificate, write new ones."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mesh_certificate
short_description: Give a host sidecar a short-lived SPIFFE certificate from the mesh CA
version_added: "0.1.0"
description:
  - Creates the mesh CA once in I(ca_dir) on the controller (EC P-256; C(ca.key) mode 0600 in
    a directory of mode 0700), refusing a directory inside the GitOps repository I(gitops_dir).
  - Reads the host's current certificate from I(cert_dir). When it is missing, not issued by
    the mesh CA, for another identity, or expires within I(renew_before_hours), issues a new
    certificate whose only subject alternative name is the URI I(identity)
    (C(spiffe://<trust domain>/ns/<namespace>/sa/<service account>)), valid for
    I(validity_hours), and writes it with a new key to the host.
  - Writes the CA certificate as C(ca.pem) when the host's differs. Every file gets mode 0600
    and I(owner), also when it is not rewritten; I(cert_dir) gets mode 0700.
  - The private key is generated on the controller in memory, handed to the host module as a
    no_log argument, written atomically, and never returned in a result or written on the
    controller.
author:
  - meshstage developers
options:
  ca_dir:
    description: The mesh CA's directory on the controller.
    type: path
    required: true
  identity:
    description: The SPIFFE ID the certificate is for.
    type: str
    required: true
  cert_dir:
    description: Directory on the host for C(cert.pem), C(key.pem) and C(ca.pem).
    type: str
    required: true
  owner:
    description:
      - Owner of the directory and the three files (the proxy user).
      - Unset keeps the connection's user.
    type: str
  validity_hours:
    description: How long a new certificate is valid.
    type: int
    default: 24
  renew_before_hours:
    description: Renew a certificate that expires within this many hours.
    type: int
    default: 8
  gitops_dir:
    description: The GitOps repository; I(ca_dir) must not be inside it.
    type: path
attributes:
  check_mode:
    support: full
    description: Says whether the certificate would be issued; creates and writes nothing.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Issue the sidecar's certificate, renewed before it expires
  meshstage.mesh.mesh_certificate:
    ca_dir: ~/.meshstage/ca
    identity: spiffe://cluster.local/ns/payments/sa/payment-service
    cert_dir: /etc/meshstage/envoy/certs
    owner: meshstage-envoy
"""

RETURN = r"""
renewed:
  description: True when a new certificate was (or, in check mode, would be) issued.
  returned: always
  type: bool
reason:
  description: Why it was issued (null when the current one is good).
  returned: always
  type: str
  sample: expires at 2026-01-02T10:00:00+00:00, within the renewal window
ca_created:
  description: True when this run created the mesh CA.
  returned: always
  type: bool
files:
  description: The files written (C(cert.pem), C(key.pem), C(ca.pem)).
  returned: always
  type: list
  elements: str
"""

import os
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshstage.mesh.plugins.module_utils._io import atomic_write

NAMES = ("cert.pem", "key.pem", "ca.pem")


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def main() -> None:
    module = AnsibleModule(argument_spec={
        "cert_dir": {"type": "str", "required": True},
        "owner": {"type": "str"},
        "files": {"type": "dict", "default": {}, "no_log": True},
    }, supports_check_mode=True)
    directory, owner = module.params["cert_dir"], module.params["owner"]
    files = module.params["files"] or {}
    changed = False
    if not os.path.isdir(directory):
        changed = True
        if not module.check_mode:
            os.makedirs(directory, mode=0o700)
    if os.path.isdir(directory):
        changed = module.set_mode_if_different(directory, "0700", changed)
        changed = module.set_owner_if_different(directory, owner, changed)
    current = {name: _read(os.path.join(directory, name)) for name in ("cert.pem", "ca.pem")}
    for name in NAMES:
        path = os.path.join(directory, name)
        if name in files and not module.check_mode:
            # one move of the whole file: Envoy watches for it
            atomic_write(Path(directory) / name, str(files[name]), 0o600, make_dirs=False)
            changed = True
        if os.path.exists(path):
            changed = module.set_mode_if_different(path, "0600", changed)
            changed = module.set_owner_if_different(path, owner, changed)
    module.exit_json(changed=changed, current_cert=current["cert.pem"],
                     current_ca=current["ca.pem"])


if __name__ == "__main__":
    main()
