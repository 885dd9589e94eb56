# Copyright: meshstage developers
# Apache License 2.0
"""Documentation of the cluster_plan action; the work happens in plugins/action."""

from __future__ import annotations

from ansible_collections.meshstage.mesh.plugins.module_utils._action_only import refuse_to_run

DOCUMENTATION = r"""
---
module: cluster_plan
short_description: Plan how an environment's stage is applied to its cluster
version_added: "0.1.0"
description:
  - Renders the environment's stage from its C(mesh_*) inventory variables exactly as
    M(meshstage.mesh.render_stage) does (and validates it the same way), writes nothing, and
    returns the plan the C(cluster_apply) role carries out with kubernetes.core.
  - The stage's objects come in apply order, CRDs and Namespaces first, whatever can lock
    traffic out (STRICT mTLS, DENY rules, default deny, Linkerd Servers) last. A rollback
    orders them together with the live objects (filter C(meshstage.mesh.rollback_steps)).
    The control-plane install (C(00-install)) and the sync objects are not part of it.
  - Also returns where prune looks (kinds and ownership label selectors), the identities
    of the rendered objects (which prune keeps), the injected waves to restart, the
    catalogue's namespaces, and the workloads that opt out of injection.
  - With I(gitops_dir), the canary record of the environment in that GitOps repository
    (C(playbooks/canary.yml)) shapes the render as it shaped the commit.
  - Runs on the controller (it is an action plugin). Read-only; the same in check mode.
author:
  - meshstage developers
options:
  gitops_dir:
    description:
      - The GitOps repository the stage was committed to; only its C(.meshstage/state.json)
        is read. Without it, the inventory alone is rendered.
    type: path
extends_documentation_fragment:
  - meshstage.mesh.render_options
  - meshstage.mesh.read_only
"""

EXAMPLES = r"""
- name: Plan the cluster apply of the environment's stage
  meshstage.mesh.cluster_plan:
    crd_dirs: [/srv/crds]
  register: plan

- name: Apply the stage's objects in apply order
  kubernetes.core.k8s:
    definition: "{{ item.definition }}"
    apply: true
    server_side_apply:
      field_manager: meshstage
  loop: "{{ plan.apply }}"
"""

RETURN = r"""
environment:
  description: The environment.
  returned: success
  type: str
  sample: prod
provider:
  description: The mesh provider.
  returned: success
  type: str
  sample: istio
field_manager:
  description: The field manager of every server-side apply of meshstage's objects.
  returned: success
  type: str
  sample: meshstage
stage:
  description: The stage rendered.
  returned: success
  type: str
  sample: injection
apply:
  description:
    - The objects in the order to apply them, each with C(resource) (C(Kind ns/name)),
      C(definition) (the object) and C(wait_condition) (or null).
  returned: success
  type: list
  elements: dict
rendered:
  description: Identities (C(group Kind namespace/name)) of the rendered objects; prune keeps them.
  returned: success
  type: list
  elements: str
prune_kinds:
  description: C(api_version) and C(kind) of every kind meshstage may have applied.
  returned: success
  type: list
  elements: dict
label_selectors:
  description: The ownership label selectors of this environment's objects.
  returned: success
  type: list
  elements: str
  sample: ["app.kubernetes.io/managed-by=meshstage", "meshstage.io/environment=prod"]
waves:
  description: The injected waves (none before the injection stage), each with name and namespaces.
  returned: success
  type: list
  elements: dict
namespaces:
  description: Every namespace of the catalogue.
  returned: success
  type: list
  elements: str
opt_outs:
  description: Workloads never injected, each with its namespace and label selector.
  returned: success
  type: list
  elements: dict
"""

def main() -> None:
    refuse_to_run("cluster_plan")


if __name__ == "__main__":
    main()
