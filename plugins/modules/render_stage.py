# Copyright: meshstage developers
# Apache License 2.0
"""Documentation of the render_stage action; the work happens in plugins/action."""

from __future__ import annotations

from ansible_collections.meshstage.mesh.plugins.module_utils._action_only import refuse_to_run

DOCUMENTATION = r"""
---
module: render_stage
short_description: Render an environment's mesh stage into a GitOps repository and commit it
version_added: "0.1.0"
description:
  - Reads the environment's intent from its C(mesh_*) inventory variables (see docs/intent.md),
    validates it, plans the objects of every stage up to C(mesh_stage), renders them from
    Jinja templates, validates each one strictly against the CRD schemas in I(crd_dirs) and the
    Kubernetes core schemas, runs the analyzers (as C(meshstage.mesh.analyze) does) over them,
    writes the environment's tree, runbook and sync objects into the GitOps repository at
    I(gitops_dir), and commits the change.
  - The analyzers judge the rendered objects against the estate, that is the manifests at
    I(check_paths) when given, otherwise stand-ins built from the intent (a Service,
    ServiceAccount and Deployment per service and version). An Error finding stops the run
    before anything is written; Warnings are returned in C(warnings) and written to the
    runbook.
  - The flow proof then judges every request the estate makes (declared calls, ingress,
    kubelet probes, Prometheus scrapes, the edges in I(observed_calls)) through the tree the
    repository holds now and through the rendered one, with each mesh's semantics; a request
    that gets through now and would stop refuses the run, naming the request, the object
    that stops it and the fix. The runbook lists every flow of the stage
    (docs/architecture.md, "The flow proof").
  - The plain hosts of the environment (the group I(hosts_group)) get their Envoy sidecar
    files under C(hosts/<env>/<host>/) in the same commit, each checked with
    C(envoy --mode validate); the role C(meshstage.mesh.envoy_sidecar) applies them.
  - Nothing is written when any check fails. A second run with the same intent writes nothing
    and commits nothing. Files meshstage did not write are never changed or deleted.
  - A canary run recorded in the GitOps repository (C(playbooks/canary.yml)) shapes what is
    rendered while the inventory's C(canary) names the same versions (the run's weight, 0%
    after a rollback, the promoted version), and a warning says what to change in the
    inventory.
    Making a version a recorded promotion retired the stable one again is refused.
  - Unknown C(mesh_*) variables are refused, so a misspelt variable does not pass silently.
  - The mesh is C(mesh_provider), C(istio) or C(linkerd). An intent field the provider cannot
    express is a warning naming the field and the service (see docs/providers.md). Switching
    an environment's provider renders the new tree and removes the old one in one commit.
  - Runs on the controller (it is an action plugin); the GitOps repository is local to it.
author:
  - meshstage developers
options:
  gitops_dir:
    description:
      - Path of the GitOps repository. Created (C(git init)) when it does not exist.
    type: path
    required: true
  check_paths:
    description:
      - The estate's own manifests (files or directories) with its Services, workloads, service
        accounts, namespaces. The rendered objects are analyzed against them instead of the
        intent's stand-ins; what they do not show is not judged. Findings about these
        manifests themselves are not reported here (C(meshstage.mesh.analyze) reports them).
      - The inventory is checked against them too (analyzer C(meshstage.InventoryEstateAnalyzer),
        codes C(MST03xx)), that is ports, protocols and port names that disagree with the Services,
        versions whose labels select no pod, services and service accounts that do not exist,
        workloads of injected namespaces the inventory does not know. Each finding names the
        inventory field and the manifest.
      - A relative path is read relative to the inventory that defines the host
        (C(inventory_dir)).
      - An entry is a path, or a mapping with C(path) and C(namespace), the namespace of the
        objects there that name none (where C(kubectl apply -n) or C(helm install --namespace)
        puts them); without it they are in C(default).
    type: list
    elements: raw
    default: []
  gate_verdicts:
    description:
      - The verdicts of C(meshstage.mesh.stage_gates) on this run's move. Each is listed in
        the commit message; a forced one is also kept in the repository's state and listed in
        the runbook's C(Forced gates) section from then on.
    type: list
    elements: dict
    default: []
  observed_calls:
    description:
      - The caller/callee edges Prometheus showed C(meshstage.mesh.stage_gates) (its
        C(observed_calls)); the flow proof judges them with the declared ones.
    type: list
    elements: dict
    default: []
extends_documentation_fragment:
  - meshstage.mesh.render_options
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
check_paths:
  description: The estate's manifests read (I(check_paths), relative ones resolved against
    the inventory).
  returned: always
  type: list
  elements: str
  sample: [/srv/inventories/staging/../estate/export.yaml]
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
  description: The mesh provider, C(istio) or C(linkerd).
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
hosts:
  description: The hosts of this environment (from I(hosts_group)).
  returned: always
  type: list
  elements: str
  sample: ["staging-ledger-1", "staging-ledger-2"]
warnings:
  description:
    - Warnings about the intent (for example retries that exceed the route timeout).
    - One per intent field the provider cannot express, naming the field and the service.
    - The Warning findings of the analyzers, one line each, as C(meshstage check) prints them.
  returned: always
  type: list
  elements: str
"""

def main() -> None:
    refuse_to_run("render_stage")


if __name__ == "__main__":
    main()
