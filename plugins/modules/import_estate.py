# Copyright: meshstage developers
# Apache License 2.0
"""Documentation of the import_estate action; the work happens in plugins/action."""

from __future__ import annotations

from ansible_collections.meshstage.mesh.plugins.module_utils._action_only import refuse_to_run

DOCUMENTATION = r"""
---
module: import_estate
short_description: Write a starting inventory from an estate's manifests
version_added: "0.2.0"
description:
  - Reads an estate's manifests (a C(kubectl get -A -o yaml) export, C(helm template) or
    C(kubectl kustomize) output, files or directories of them) and writes a commented
    inventory in the layout of C(inventories/) under I(output), that is C(shared/mesh.yml) (the
    estate, shared by the environments), C(<env>/hosts.yml), C(<env>/host_vars/<env>.yml)
    and the link C(<env>/group_vars/all/00-estate.yml).
  - Every service with its namespace, service account, ports and protocols, versions,
    probes and workload kind; which workloads cannot take a sidecar; calls from what the
    estate says (environment variables naming a Service's DNS name, NetworkPolicies,
    Sidecars, authorization policies) and, with I(prometheus), from the edges observed.
    Existing mesh objects become the intent where the intent can say the same and are
    listed otherwise; waves are proposed leaves first. Every guess is commented with what it
    was guessed from. docs/import.md says what is read from where.
  - Never overwrites a file; fails, naming them, when I(output) holds files with other
    content. A second run over the same estate writes nothing.
  - Runs on the controller (it is an action plugin); the same as C(meshstage import).
author:
  - meshstage developers
options:
  paths:
    description:
      - Files or directories of the estate's manifests.
    type: list
    elements: path
    required: true
  output:
    description:
      - The inventory directory to write (created if missing).
    type: path
    required: true
  environment:
    description:
      - The environment's name. By default the one meshstage's objects in the estate are
        labelled for (C(meshstage.io/environment)), else C(dev).
    type: str
  provider:
    description:
      - The mesh to adopt. By default the one the estate runs (its objects and injected
        proxies), else C(istio).
    type: str
    choices: [istio, linkerd]
  namespaces:
    description:
      - Import only these namespaces' services (by default every namespace but the system
        ones and the meshes' own).
    type: list
    elements: str
    default: []
  exclude_namespaces:
    description:
      - Leave these namespaces out.
    type: list
    elements: str
    default: []
  prometheus:
    description:
      - A Prometheus that scrapes the estate's proxies (Istio's, Linkerd's, meshstage's host
        sidecars); the edges it saw over I(window) become calls.
    type: str
  window:
    description:
      - How far back Prometheus is asked (a duration, e.g. C(1h), C(30m)).
    type: str
    default: 1h
  check_paths:
    description:
      - Write C(mesh_check_paths) (the manifests imported, relative to the inventory), so that
        every run checks the inventory against the estate.
    type: bool
    default: true
  default_namespace:
    description:
      - The namespace of the objects that name none, where C(kubectl apply -n) or
        C(helm install --namespace) puts them (C(helm template) prints many charts' objects
        without one).
      - Other than C(default), C(mesh_check_paths) is written with it (C({path, namespace})),
        so that every run reads the manifests the same way.
      - Unset, they are in C(default), and the result warns when the estate's Services and
        workloads name no namespace.
    type: str
attributes:
  check_mode:
    support: full
    description: Reads everything and writes nothing; C(written) lists what would be written.
  diff_mode:
    support: none
    description: No diff; the files are new.
seealso:
  - name: Importing an estate
    description: docs/import.md in the collection.
    link: https://example.invalid/meshstage/mesh/docs/import.md
"""

EXAMPLES = r"""
- name: Write a starting inventory from a cluster export
  meshstage.mesh.import_estate:
    paths: [/srv/estate/cluster-export.yaml]
    output: /srv/inventories/imported

- name: The same, with the edges Prometheus saw over the last day
  meshstage.mesh.import_estate:
    paths: [/srv/estate/cluster-export.yaml]
    output: /srv/inventories/imported
    environment: staging
    prometheus: http://prometheus.monitoring:9090
    window: 1d
"""

RETURN = r"""
written:
  description: The files written under I(output) (in check mode, those that would be).
  returned: always
  type: list
  elements: str
  sample: [shared/mesh.yml, staging/hosts.yml, staging/host_vars/staging.yml]
environment:
  description: The environment's name.
  returned: always
  type: str
  sample: staging
stage:
  description: The stage the estate was found at (the inventory's C(mesh_stage)).
  returned: always
  type: str
  sample: permissive_mtls
services:
  description: Number of services in the catalogue written.
  returned: always
  type: int
  sample: 12
calls:
  description: Number of calls found.
  returned: always
  type: int
  sample: 17
converted:
  description: Number of mesh objects of the estate that became intent.
  returned: always
  type: int
  sample: 4
kept:
  description: Number of objects of the estate the intent cannot say (listed in the file).
  returned: always
  type: int
  sample: 1
"""


def main() -> None:
    refuse_to_run("import_estate")


if __name__ == "__main__":
    main()
