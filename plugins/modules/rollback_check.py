# Copyright: meshstage developers
# Apache License 2.0
"""Documentation of the rollback_check action; the work happens in plugins/action."""

from __future__ import annotations

from ansible_collections.meshstage.mesh.plugins.module_utils._action_only import refuse_to_run

DOCUMENTATION = r"""
---
module: rollback_check
short_description: Refuse a rollback to a stage that is not earlier than the recorded one
version_added: "0.1.0"
description:
  - Reads the stage the GitOps repository records for the environment (its
    C(.meshstage/state.json), written by the last run) and fails, naming the environment and
    both stages, unless I(stage) is an earlier stage.
  - Also fails when the repository records no stage for the environment.
  - Runs on the controller (it is an action plugin). Read-only.
author:
  - meshstage developers
options:
  gitops_dir:
    description: Path of the GitOps repository.
    type: path
    required: true
  environment:
    description: The environment to roll back.
    type: str
    required: true
  stage:
    description: The stage to roll back to.
    type: str
    required: true
extends_documentation_fragment:
  - meshstage.mesh.read_only
"""

EXAMPLES = r"""
- name: Refuse anything but an earlier stage
  meshstage.mesh.rollback_check:
    gitops_dir: /srv/gitops/mesh
    environment: prod
    stage: permissive_mtls
"""

RETURN = r"""
recorded_stage:
  description: The stage the repository records for the environment.
  returned: success
  type: str
  sample: strict_mtls
stage:
  description: The stage rolled back to.
  returned: success
  type: str
  sample: traffic
environment:
  description: The environment.
  returned: success
  type: str
"""

def main() -> None:
    refuse_to_run("rollback_check")


if __name__ == "__main__":
    main()
