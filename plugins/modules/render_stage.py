# Copyright: meshstage developers
# Apache License 2.0
"""Documentation of the render_stage action; the work happens in plugins/action."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: render_stage
short_description: Render an environment's mesh stage into a GitOps repository and commit it
version_added: "0.1.0"
description:
  - Reads the environment's intent from its C(mesh_*) inventory variables (see docs/intent.md),
    validates it, plans the objects of every stage up to C(mesh_stage), renders them from
    Jinja templates, validates each one strictly against the CRD schemas in I(crd_dirs) and the
    Kubernetes core schemas, writes the environment's tree, runbook and sync objects into the
    GitOps repository at I(gitops_dir), and commits the change.
  - Nothing is written when any check fails. A second run with the same intent writes nothing
    and commits nothing. Files meshstage did not write are never changed or deleted.
  - Unknown C(mesh_*) variables are refused, so a misspelt variable does not pass silently.
  - Runs on the controller (it is an action plugin); the GitOps repository is local to it.
author:
  - meshstage developers
options:
  gitops_dir:
    description:
      - Path of the GitOps repository. Created (C(git init)) when it does not exist.
    type: path
    required: true
  crd_dirs:
    description:
      - Directories of CustomResourceDefinitions (as exported from a cluster or shipped with a
        mesh release). Every rendered custom resource is validated against them strictly,
        unknown fields being errors. When empty, custom resources are not schema-validated
        and the run says so in a warning.
    type: list
    elements: path
    default: []
  template_dirs:
    description:
      - Directories searched for templates before the built-in C(templates/), so a file
        C(istio/virtual_service.yaml.j2) there replaces the built-in one.
    type: list
    elements: path
    default: []
  kubernetes_version:
    description:
      - Kubernetes version whose core schemas validate core objects (Namespace, ConfigMap).
    type: str
    default: "1.33.0"
attributes:
  check_mode:
    support: full
    description: Renders and validates everything and reports the change; writes nothing.
  diff_mode:
    support: full
    description: Shows every file the run adds, changes or removes, before and after.
notes:
  - Values that contain Jinja delimiters in inventory files must be tagged C(!unsafe), as with
    any Ansible variable; meshstage itself never evaluates a value as a template.
  - What a run rendered and validated is kept for the next run in the repository's
    C(.git/meshstage-cache/) (never committed; safe to delete), keyed on the templates, the
    CRDs and meshstage's own code. Every owned file is still read from disk on every run.
seealso:
  - name: The intent
    description: docs/intent.md in the collection, every variable with an annotated example.
    link: https://example.invalid/meshstage/mesh/docs/intent.md
"""

EXAMPLES = r"""
- name: Render the environment's stage and commit it
  meshstage.mesh.render_stage:
    gitops_dir: /srv/gitops/mesh
    # every CRD the tree uses: the mesh's, Argo CD's Application, Flux's
    # GitRepository and Kustomization (as `kubectl get crd -o yaml` exports them)
    crd_dirs:
      - /srv/crds/istio-1.28
      - /srv/crds/argocd
      - /srv/crds/flux
"""

RETURN = r"""
environment:
  description: The environment rendered.
  returned: always
  type: str
  sample: staging
stage:
  description: The stage the environment is at.
  returned: always
  type: str
  sample: strict_mtls
provider:
  description: The mesh provider.
  returned: always
  type: str
  sample: istio
commit:
  description: The commit made, or null when nothing changed (or in check mode).
  returned: always
  type: str
  sample: 4f2a9c0d7e4b1a2c3d4e5f60718293a4b5c6d7e8
objects:
  description: Objects added, changed and removed, each as C(Kind namespace/name).
  returned: always
  type: dict
  sample: {"added": ["VirtualService bookinfo/reviews"], "changed": [], "removed": []}
files:
  description: Counts of files added, changed and removed.
  returned: always
  type: dict
  sample: {"add": 3, "change": 1, "remove": 0}
message:
  description: The commit message (also computed in check mode).
  returned: always
  type: str
warnings:
  description: Warnings about the intent (for example retries that exceed the route timeout).
  returned: always
  type: list
  elements: str
"""

def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.fail_json(msg="meshstage.mesh.render_stage runs on the controller as an action plugin")


if __name__ == "__main__":
    main()
