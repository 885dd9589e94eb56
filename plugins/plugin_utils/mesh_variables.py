# Copyright: meshstage developers
# Apache License 2.0
"""Controller-side helper of the action plugins: the intent variables of the host, templated.

Every action that reads the intent does it the same way: refuse unknown ``mesh_*`` names
(likely typos), then template the intent variables with the play's templar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible_collections.meshstage.mesh.plugins.module_utils._plain import (
    expansion_problem,
    parts_of,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import ManifestPath
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import (
    intent_keys,
    unknown_mesh_variables,
    unknown_variables_message,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.paths import (
    relative_to_inventory,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.kube import DEFAULT_KUBERNETES_VERSION
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import StageOptions
from ansible_collections.meshstage.mesh.plugins.module_utils.yaml_io import (
    YAMLError,
    duplicate_keys,
)

# The options every action that renders takes, as in its documentation.
RENDER_ARGUMENT_SPEC: dict[str, Any] = {
    "crd_dirs": {"type": "list", "elements": "path", "default": []},
    "template_dirs": {"type": "list", "elements": "path", "default": []},
    "kubernetes_version": {"type": "str"},
    "envoy_binary": {"type": "path"},
    "hosts_group": {"type": "str", "default": "mesh_hosts"},
    "git_hooks": {"type": "bool", "default": False},
    "ca_dir": {"type": "path", "default": "~/.meshstage/ca"},
}


def inventory_paths(paths: Sequence[Any], task_vars: Mapping[str, Any]
                    ) -> tuple[list[Path | ManifestPath], list[str]]:
    """``relative_to_inventory`` with the host's ``inventory_dir``."""
    return relative_to_inventory(paths, task_vars.get("inventory_dir"))


def stage_options(args: Mapping[str, Any], gitops_dir: str | Path,
                  check_mode: bool, task_vars: Mapping[str, Any] | None = None) -> StageOptions:
    """The pipeline's options from an action's validated arguments (``check_paths`` relative
    to the inventory, with ``task_vars``)."""
    check_paths, _ = inventory_paths(args.get("check_paths") or (), task_vars or {})
    return StageOptions(
        gitops_dir=Path(gitops_dir), crd_dirs=[Path(d) for d in args["crd_dirs"]],
        template_dirs=[Path(d) for d in args["template_dirs"]],
        kubernetes_version=args["kubernetes_version"] or DEFAULT_KUBERNETES_VERSION,
        check_mode=check_mode,
        check_paths=check_paths,
        envoy_binary=args.get("envoy_binary"),
        gate_verdicts=list(args.get("gate_verdicts") or ()),
        git_hooks=bool(args.get("git_hooks")),
        ca_dir=Path(args["ca_dir"]) if args.get("ca_dir") else None,
        observed_calls=list(args.get("observed_calls") or ()),
    )


def intent_variables(task_vars: Mapping[str, Any], templar: Any,
                     hosts_group: str = "mesh_hosts") -> dict[str, Any]:
    """The host's intent variables, templated, with ``mesh_hosts`` gathered from the
    inventory group ``hosts_group``; raises ``MeshstageError`` on unknown variables."""
    typos = unknown_mesh_variables(list(task_vars))
    duplicates = duplicated_mesh_keys(task_vars)
    if duplicates:
        raise MeshstageError("; ".join(duplicates))
    if typos:
        raise MeshstageError(unknown_variables_message(typos))
    if "mesh_hosts" in task_vars:
        raise MeshstageError(f"mesh_hosts is built from the inventory group {hosts_group} "
                             "(each host's mesh_host variable); do not set it as a variable")
    for key in intent_keys():
        problem = expansion_problem(task_vars[key], parts_of) if key in task_vars else None
        if problem:  # before templating walks it, in time and memory that grow with it
            raise MeshstageError(f"{key}: {problem}")
    variables = {key: templar.template(task_vars[key])
                 for key in intent_keys() if key in task_vars}
    hosts = mesh_hosts(task_vars, templar, hosts_group)
    if hosts:
        variables["mesh_hosts"] = hosts
    return variables


def duplicated_mesh_keys(task_vars: Mapping[str, Any]) -> list[str]:
    """A ``mesh_*`` key given twice, with different values, in one of the inventory's files
    (the inventory file, and the group_vars and host_vars beside it and the playbook):
    Ansible keeps the last value and warns at most, so which value a run gets is an
    accident of the file's order."""
    problems = []
    for path in _variable_files(task_vars):
        try:
            found = duplicate_keys(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, YAMLError):
            continue  # Ansible reads (or refuses) the file itself
        problems += [f"{path}: {key} is given twice, on lines {first} and {second}, with "
                     "different values (Ansible keeps the last one); keep one"
                     for key, first, second in found if key.startswith("mesh_")]
    return problems


def _variable_files(task_vars: Mapping[str, Any]) -> list[Path]:
    """The files Ansible reads the host's variables from, each once."""
    found: dict[Path, Path] = {}
    inventory = task_vars.get("inventory_file")
    if isinstance(inventory, str) and Path(inventory).is_file():
        found.setdefault(Path(inventory).resolve(), Path(inventory))
    for base in (task_vars.get("inventory_dir"), task_vars.get("playbook_dir")):
        for folder in ("group_vars", "host_vars"):
            top = Path(str(base)) / folder if base else None
            if top is None or not top.is_dir():
                continue
            for path in sorted(top.rglob("*")):
                if path.is_file() and path.suffix in ("", ".yml", ".yaml", ".json"):
                    found.setdefault(path.resolve(), path)
    return list(found.values())


def mesh_hosts(task_vars: Mapping[str, Any], templar: Any, group: str) -> dict[str, Any]:
    """Each host of the group's ``mesh_host``, its address defaulting to ansible_host.

    Every host of the group is handed over; the intent keeps the ones of this environment,
    so a combined run gives each host to exactly its own environment.
    """
    hostvars = task_vars.get("hostvars") or {}
    hosts: dict[str, Any] = {}
    for name in (task_vars.get("groups") or {}).get(group, []):
        facts = hostvars.get(name) or {}
        problem = expansion_problem(facts.get("mesh_host"), parts_of)
        if problem:
            raise MeshstageError(f"mesh_host of {name}: {problem}")
        host = templar.template(facts.get("mesh_host"))
        if isinstance(host, Mapping) and "address" not in host:
            host = {**host, "address": templar.template(facts.get("ansible_host", name))}
        hosts[name] = host
    return hosts
