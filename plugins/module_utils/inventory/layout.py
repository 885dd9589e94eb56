"""The imported inventory as files, in the layout of ``inventories/``:

    <output>/shared/mesh.yml                          the estate, shared by the environments
    <output>/<env>/hosts.yml                          the environment's one host
    <output>/<env>/host_vars/<env>.yml                its stage, waves, cluster, check paths
    <output>/<env>/group_vars/all/00-estate.yml  ->   ../../../shared/mesh.yml

``write_inventory`` writes them; nothing that is there already is overwritten: a file with
other content (or a link to elsewhere) stops the write before anything is written, and a
file with the same content is left as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._io import atomic_write
from ..errors import MeshstageError
from .commented import commented_yaml
from .importer import Imported

ESTATE_LINK = "group_vars/all/00-estate.yml"


class InventoryExists(MeshstageError):
    """The output directory holds files the import would change."""


def _notes_of(notes: Mapping[str, list[str]], keys: Sequence[str]) -> dict[str, list[str]]:
    return {path: texts for path, texts in notes.items()
            if any(path == key or path.startswith((f"{key}.", f"{key}[")) for key in keys)}


def inventory_files(imported: Imported, sources: Sequence[str]
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """The files (relative path -> text) and links (relative path -> target)."""
    env = imported.environment["mesh_environment"]
    draft = imported.draft
    read = ", ".join(sources) or "the manifests given"
    header = [
        f"The estate, as `meshstage import` read it from {read} ({len(draft.index.resources)} "
        f"objects). Shared by every environment (each inventory links it into its "
        "group_vars/all); docs/intent.md documents every variable.",
        "Every comment says what its value was read or guessed from: review the guesses "
        "(\"guessed\", \"WARNING\") before the first run. docs/import.md says what is read "
        "from where.",
    ]
    footer: list[str] = []
    if draft.converted:
        footer += ["Mesh objects of the estate the intent now says (meshstage renders its own "
                   "in their place; remove the old ones once meshstage's are synced):"]
        footer += [f"  {name}: {what}" for name, what in draft.converted]
    if draft.listed:
        footer += ["", "Objects of the estate the intent cannot say, left as they are "
                   "(meshstage neither owns nor changes them):"]
        footer += [f"  {name}: {why}" for name, why in draft.listed]
    if draft.outside:
        footer += ["", "Observed traffic that is not between services of the catalogue:"]
        footer += [f"  {line}" for line in draft.outside]
    if imported.warnings:
        footer += ["", "What the intent's check says of this inventory:"]
        footer += [f"  {line}" for line in imported.warnings]
    shared = commented_yaml(imported.shared, _notes_of(imported.notes, list(imported.shared)),
                            header, footer)
    host_vars = commented_yaml(
        imported.environment, _notes_of(imported.notes, list(imported.environment)),
        [f"The environment {env}: its stage, its waves injected so far, its cluster and the "
         "estate's manifests every run checks the inventory against. Values here win over "
         "the shared estate file."])
    hosts = "\n".join([
        "---",
        f"# The environment {env}: its one host stands for the environment; the playbook",
        "# renders its stage on the controller into the GitOps repository.",
        "all:",
        "  children:",
        "    mesh_environments:",
        "      hosts:",
        f"        {env}:",
        "          ansible_connection: local",
        "          ansible_python_interpreter: \"{{ ansible_playbook_python }}\"",
        "",
    ])
    files = {"shared/mesh.yml": shared, f"{env}/hosts.yml": hosts,
             f"{env}/host_vars/{env}.yml": host_vars}
    links = {f"{env}/{ESTATE_LINK}": "../../../shared/mesh.yml"}
    return files, links


def write_inventory(output: Path, files: Mapping[str, str],
                    links: Mapping[str, str]) -> list[str]:
    """Write the inventory under ``output``; the paths written (or linked). Raises
    ``InventoryExists`` naming every path that holds something else."""
    clashes, todo = [], []
    for path, text in files.items():
        target = output / path
        if target.is_symlink() or target.exists():
            if target.is_symlink() or not target.is_file() or target.read_text(
                    encoding="utf-8", errors="replace") != text:
                clashes.append(path)
            continue
        todo.append(path)
    for path, link in links.items():
        target = output / path
        if target.is_symlink() and os.readlink(target) == link:
            continue
        if target.exists() or target.is_symlink():
            clashes.append(path)
            continue
        todo.append(path)
    if clashes:
        raise InventoryExists(
            f"{output}: {', '.join(sorted(clashes))} exist(s) with other content; meshstage "
            "import never overwrites a file: import into a new directory, or move them away")
    for path in todo:
        target = output / path
        if path in links:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(links[path], target)
        else:
            atomic_write(target, files[path])
    return todo
