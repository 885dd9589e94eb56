# Copyright: meshstage developers
# Apache License 2.0
"""Documentation of the stage_gates action; the work happens in plugins/action."""

from __future__ import annotations

from ansible_collections.meshstage.mesh.plugins.module_utils._action_only import refuse_to_run

DOCUMENTATION = r"""
---
module: stage_gates
short_description: Refuse a stage move that would break production, and say why
version_added: "0.1.0"
description:
  - Judges the environment's move from the stage its GitOps repository records (its
    C(.meshstage/state.json)) to the stage of the intent (C(mesh_stage)) with the stage gates,
    and fails, naming each blocker (the environment, the workload or host, the figure observed,
    the window) and how to proceed, when one refuses.
  - C(order) judges every move forward, one stage at a time, and no environment ahead of the
    one it is promoted from (C(mesh_promotion_order)). C(strict_mtls) judges the move to
    C(strict_mtls) from sidecars (I(cluster_facts), or the intent) and the plaintext traffic
    Prometheus (C(mesh_gates.prometheus)) shows over C(mesh_gates.window).
    C(authorization) judges the move to C(authorization) from the dry run of the
    authorization rules that C(strict_mtls) renders, and the callers Prometheus shows.
  - Moving back, and staying at the recorded stage, is never gated.
  - A gate listed in I(force) that refuses is forced. Its verdict says so, and
    C(meshstage.mesh.render_stage) records it in the commit message and the runbook when it
    is handed the verdicts.
  - Without a Prometheus, the traffic parts of the gates cannot decide and refuse, unless the
    intent opts out with C(mesh_gates.observe=false).
  - Runs on the controller (it is an action plugin). Read-only; it queries Prometheus.
author:
  - meshstage developers
options:
  gitops_dir:
    description: Path of the GitOps repository (its state records each environment's stage).
    type: path
    required: true
  force:
    description:
      - Names of gates whose refusal is overridden (C(mesh_force_gates)) - C(order),
        C(strict_mtls), C(authorization). Each forced refusal is returned in C(verdicts).
    type: raw
    default: []
  cluster_facts:
    description:
      - The cluster facts of the environment (C(cluster_apply_facts), gathered by the role
        C(meshstage.mesh.cluster_apply) with C(tasks_from=facts)). When given, the
        C(strict_mtls) gate reads which pods run without a sidecar from them instead of the
        intent.
    type: dict
  hosts_group:
    description: The inventory group of the plain hosts (their C(mesh_host) variables).
    type: str
    default: mesh_hosts
extends_documentation_fragment:
  - meshstage.mesh.read_only
"""

EXAMPLES = r"""
- name: Judge the move before anything is written
  meshstage.mesh.stage_gates:
    gitops_dir: /srv/gitops/mesh
    force: "{{ mesh_force_gates | default([]) }}"
  register: gates

- name: Render and commit, recording the verdicts
  meshstage.mesh.render_stage:
    gitops_dir: /srv/gitops/mesh
    gate_verdicts: "{{ gates.verdicts }}"
"""

RETURN = r"""
environment:
  description: The environment judged.
  returned: success
  type: str
recorded_stage:
  description: The stage the repository records for it (null for a new environment).
  returned: success
  type: str
stage:
  description: The stage of the intent.
  returned: success
  type: str
verdicts:
  description: One per gate that judged the move.
  returned: success
  type: list
  elements: dict
  contains:
    gate:
      description: The gate's name.
      type: str
    passed:
      description: True when nothing blocks the move.
      type: bool
    forced:
      description: True when the gate refused and I(force) overrode it.
      type: bool
    summary:
      description: What the gate found, in one line.
      type: str
    blockers:
      description: What blocks the move, one sentence each.
      type: list
      elements: str
    proceed:
      description: How to proceed.
      type: str
observed_calls:
  description:
    - The caller/callee edges Prometheus showed when a gate read them (caller principal,
      callee, its namespace, requests, the caller's service, who saw it, protocol), for the
      flow proof of C(meshstage.mesh.render_stage).
  returned: success
  type: list
  elements: dict
"""


def main() -> None:
    refuse_to_run("stage_gates")


if __name__ == "__main__":
    main()
