# Copyright: meshstage developers
# Apache License 2.0
"""Controller-side helper of the action plugins: the intent variables of the host, templated.

Every action that reads the intent does it the same way: refuse unknown ``mesh_*`` names
(likely typos), then template the intent variables with the play's templar.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import (
    intent_keys,
    unknown_mesh_variables,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.kube import DEFAULT_KUBERNETES_VERSION
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import StageOptions

# The options every action that renders takes, as in its documentation.
RENDER_ARGUMENT_SPEC: dict[str, Any] = {
    "crd_dirs": {"type": "list", "elements": "path", "default": []},
    "template_dirs": {"type": "list", "elements": "path", "default": []},
    "kubernetes_version": {"type": "str"},
    "envoy_binary": {"type": "path"},
    "hosts_group": {"type": "str", "default": "mesh_hosts"},
}


def stage_options(args: Mapping[str, Any], gitops_dir: str | Path,
                  check_mode: bool) -> StageOptions:
    """The pipeline's options from an action's validated arguments."""
    return StageOptions(
        gitops_dir=Path(gitops_dir), crd_dirs=[Path(d) for d in args["crd_dirs"]],
        template_dirs=[Path(d) for d in args["template_dirs"]],
        kubernetes_version=args["kubernetes_version"] or DEFAULT_KUBERNETES_VERSION,
        check_mode=check_mode,
        check_paths=[Path(p) for p in args.get("check_paths") or ()],
        envoy_binary=args.get("envoy_binary"),
        gate_verdicts=list(args.get("gate_verdicts") or ()),
        observed_calls=list(args.get("observed_calls") or ()),
    )


def intent_variables(task_vars: Mapping[str, Any], templar: Any,
                     hosts_group: str = "mesh_hosts") -> dict[str, Any]:
    """The host's intent variables, templated, with ``mesh_hosts`` gathered from the
    inventory group ``hosts_group``; raises ``MeshstageError`` on unknown variables."""
    typos = unknown_mesh_variables(list(task_vars))
    if typos:
        raise MeshstageError("unknown mesh_* variable(s): " + ", ".join(typos)
                             + " (see docs/intent.md for the known ones)")
    if "mesh_hosts" in task_vars:
        raise MeshstageError(f"mesh_hosts is built from the inventory group {hosts_group} "
                             "(each host's mesh_host variable); do not set it as a variable")
    variables = {key: templar.template(task_vars[key])
                 for key in intent_keys() if key in task_vars}
    hosts = mesh_hosts(task_vars, templar, hosts_group)
    if hosts:
        variables["mesh_hosts"] = hosts
    return variables


def mesh_hosts(task_vars: Mapping[str, Any], templar: Any, group: str) -> dict[str, Any]:
    """Each host of the group's ``mesh_host``, its address defaulting to ansible_host.

    Every host of the group is handed over; the intent keeps the ones of this environment,
    so a combined run gives each host to exactly its own environment.
    """
    hostvars = task_vars.get("hostvars") or {}
    hosts: dict[str, Any] = {}
    for name in (task_vars.get("groups") or {}).get(group, []):
        facts = hostvars.get(name) or {}
        host = templar.template(facts.get("mesh_host"))
        if isinstance(host, Mapping) and "address" not in host:
            host = {**host, "address": templar.template(facts.get("ansible_host", name))}
        hosts[name] = host
    return hosts
