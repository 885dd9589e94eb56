# Copyright: meshstage developers
# Apache License 2.0
"""Documentation of the check action; the work happens in plugins/action."""

from __future__ import annotations

from ansible_collections.meshstage.mesh.plugins.module_utils._action_only import refuse_to_run

DOCUMENTATION = r"""
---
module: analyze
short_description: Analyze mesh manifests for what would break a staged migration
version_added: "0.1.0"
description:
  - Reads Kubernetes manifests (YAML files, or directories of them) and runs meshstage's
    analyzers over every object, as C(meshstage check) does. Istio analyzers reproduce
    C(istioctl analyze) with its codes (IST0101, ...); meshstage's own (MST0101, ...) cover
    what a staged migration can get wrong; Linkerd analyzers check Servers, authorization
    policies, identities and routes. docs/analyzers.md lists them all.
  - Fails when an Error is found (or a Warning, with I(fail_on_warning)). Writes nothing.
  - Runs on the controller (it is an action plugin); the paths are local to it.
  - C(meshstage.mesh.render_stage) runs the same analysis on the objects it renders, before it
    writes or commits anything.
author:
  - meshstage developers
options:
  paths:
    description:
      - Files or directories of manifests (every C(*.yaml) and C(*.yml) below a directory;
        hidden folders such as C(.git) are skipped). Documents that are not Kubernetes objects
        (kustomizations, Helm values) are skipped.
      - A relative path is read relative to the inventory that defines the host
        (C(inventory_dir)), as paths in inventory variables such as C(mesh_check_paths) are
        written; the result's C(msg) says so for each one.
      - An entry is a path, or a mapping with C(path) and C(namespace), the namespace of the
        objects there that name none (instead of I(namespace)).
    type: list
    elements: raw
    required: true
  mesh_config:
    description:
      - An Istio MeshConfig file (plain MeshConfig YAML, or the C(istio) ConfigMap) with the root
        namespace, trust domain, default and extension providers. Istio defaults otherwise.
    type: path
  complete:
    description:
      - The manifests are the whole cluster. A reference to an object that is not among them
        is then reported missing; otherwise references to kinds the manifests hold nothing of
        (no Service at all, say) are listed in C(unchecked) instead.
    type: bool
    default: false
  provider:
    description:
      - Whose analyzers run. C(auto) picks the meshes the objects are written for (Istio's or
        Linkerd's API groups, injection labels and annotations), both when none shows.
    type: str
    default: auto
    choices: [auto, istio, linkerd, all]
  namespace:
    description:
      - Namespace of objects that have none, as with C(kubectl apply -n).
    type: str
    default: default
  fail_on_warning:
    description:
      - Fail on Warning findings too, not only on Errors.
    type: bool
    default: false
extends_documentation_fragment:
  - meshstage.mesh.read_only
seealso:
  - name: The analyzers
    description: docs/analyzers.md in the collection, every analyzer with its codes and examples.
    link: https://example.invalid/meshstage/mesh/docs/analyzers.md
"""

EXAMPLES = r"""
- name: Analyze the estate's own manifests before rendering
  meshstage.mesh.analyze:
    paths:
      - /srv/estate/workloads
      - /srv/estate/mesh-extras
    mesh_config: /srv/estate/istio-meshconfig.yaml

- name: Analyze an exported cluster as a whole
  meshstage.mesh.analyze:
    paths: [/tmp/cluster-export.yaml]
    complete: true
    fail_on_warning: true
"""

RETURN = r"""
findings:
  description: Every finding, Errors first.
  returned: success or when a finding blocks
  type: list
  elements: dict
  sample:
    - level: Error
      code: IST0101
      resource: VirtualService bookinfo/reviews
      message: "Referenced host not found: 'reviewz'."
      analyzer: virtualservice.DestinationHostAnalyzer
      path: spec.http[0].route[0].destination.host
      source: /srv/estate/mesh-extras/reviews.yaml
unchecked:
  description: What could not be checked, and why (see I(complete)).
  returned: success or when a finding blocks
  type: list
  elements: dict
  sample:
    - analyzer: virtualservice.DestinationHostAnalyzer
      what: VirtualService destination hosts
      missing: no Service or ServiceEntry in the input
counts:
  description: Number of findings per level.
  returned: success or when a finding blocks
  type: dict
  sample: {"error": 0, "warning": 1, "info": 3}
objects:
  description: Number of Kubernetes objects analyzed.
  returned: success or when a finding blocks
  type: int
  sample: 36
files:
  description: Number of files read.
  returned: success or when a finding blocks
  type: int
  sample: 44
paths:
  description: The paths read, relative ones resolved against the inventory.
  returned: success or when a finding blocks
  type: list
  elements: str
  sample: [/srv/inventories/staging/../estate/export.yaml]
"""


def main() -> None:
    refuse_to_run("analyze")


if __name__ == "__main__":
    main()
