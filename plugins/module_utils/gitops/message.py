"""The commit message of a run: what was added, changed and removed (by object), and why.

It is written from what is actually committed, against ``HEAD``: an interrupted run that a
later run completes gets the message of everything it commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from ..intent.model import Intent
from ..stages import STAGE_PURPOSE
from ..yaml_io import canonical_header, load_yaml
from .paths import env_dir
from .update import FileChange


def gate_lines(verdicts: Sequence[Mapping[str, Any]], recorded: str | None,
               stage: str) -> list[str]:
    """The commit message's account of the gates that judged this run's move."""
    if not verdicts:
        return []
    lines = [f"Stage gates, moving from {recorded or 'nothing'} to {stage}:"]
    for verdict in verdicts:
        if verdict.get("forced"):
            lines.append(f"- {verdict.get('gate')}: FORCED (mesh_force_gates) over its "
                         f"refusal: {'; '.join(verdict.get('blockers') or ())}")
        else:
            lines.append(f"- {verdict.get('gate')}: passed: {verdict.get('summary')}")
    return lines


class Rendered(Protocol):
    """An object this run rendered, as ``object_changes`` may be told of it: its canonical
    text, and the object that text is the dump of (``render.tree.RenderedObject``)."""

    text: str

    @property
    def obj(self) -> dict[str, Any]: ...


def _objects_named(text: str | None, path: str,
                   known: Mapping[str, Rendered]) -> dict[str, Any]:
    """Kubernetes objects in a file of the tree, by ``Kind namespace/name``; a host
    sidecar's file as ``EnvoyConfig <env>/<host>/<file>``. A file that holds the text of
    the object ``known`` has for its path is named from that object, not read again."""
    if text is not None and path.startswith("hosts/"):
        return {f"EnvoyConfig {path.removeprefix('hosts/')}": text}
    if text is None or not path.endswith(".yaml") or path.rpartition("/")[2] == \
            "kustomization.yaml":
        return {}
    rendered = known.get(path)
    if rendered is not None and rendered.text == text and _identity_in_strings(rendered.obj):
        return _named(rendered.obj)  # the text is its dump, which loads back as it
    header = canonical_header(text)  # the files meshstage wrote: no full parse needed
    if header is not None:
        namespace = header.get("namespace")
        name = f"{namespace}/{header['name']}" if namespace else header["name"]
        return {f"{header['kind']} {name}": header}
    return _named(load_yaml(text))


def _identity_in_strings(obj: Mapping[str, Any]) -> bool:
    """Whether the kind, name and namespace an object is named by are strings (or absent),
    as in every Kubernetes object: then the object names itself as its dump does. (A
    mapping there would be written with its keys in the object's order, not the dump's.)"""
    meta = obj.get("metadata")
    fields = [obj.get("kind"), *((meta.get("name"), meta.get("namespace"))
                                 if isinstance(meta, Mapping) else ())]
    return isinstance(meta, Mapping | None) and all(
        field is None or isinstance(field, str) for field in fields)


def _named(obj: Any) -> dict[str, Any]:
    """An object by ``Kind namespace/name``; nothing for what is not a Kubernetes object."""
    if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
        return {}
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))
    return {f"{obj['kind']} {name}": obj}


def object_changes(changes: Iterable[FileChange],
                   known: Mapping[str, Rendered] | None = None) -> dict[str, list[str]]:
    """Objects added, changed and removed, by identity (a move between folders is a change).
    ``known``: the objects this run rendered, by path (a file that holds one's text is named
    from it); what is not among them is read from its text."""
    known = known or {}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for change in changes:
        before.update(_objects_named(change.before, change.path, known))
        after.update(_objects_named(change.after, change.path, known))
    return {
        "added": sorted(set(after) - set(before)),
        "changed": sorted(set(after) & set(before)),
        "removed": sorted(set(before) - set(after)),
    }


def commit_message(intent: Intent, counts: Mapping[str, list[str]],
                   switched_from: str | None = None, gates: Sequence[str] = (),
                   subject: str | None = None, paragraphs: Sequence[str] = ()) -> str:
    """The message; ``subject`` and ``paragraphs`` (a canary step's) replace the stage's
    counts as the title and come first in the body."""
    stage = intent.stage
    subject = subject or (
        f"{stage.value} stage, {len(counts['added'])} added, {len(counts['changed'])} changed, "
        f"{len(counts['removed'])} removed")
    lines = [
        f"meshstage({intent.environment}): {subject}",
        "",
        *(line for paragraph in paragraphs for line in (paragraph, "")),
        f"Environment {intent.environment} ({intent.provider}) is at stage {stage.number} "
        f"of 6, {stage.value}: {STAGE_PURPOSE[stage]}.",
    ]
    if switched_from:
        lines += ["", f"The environment moves from {switched_from} to {intent.provider}: this "
                  f"commit adds {intent.provider}'s tree and removes {switched_from}'s. "
                  f"Cut over in the order of {env_dir(intent.environment)}/RUNBOOK.md."]
    if gates:
        lines += ["", *gates]
    for heading, key in (("Added", "added"), ("Changed", "changed"), ("Removed", "removed")):
        if counts[key]:
            lines += ["", f"{heading}:"] + [f"- {name}" for name in counts[key]]
    return "\n".join(lines) + "\n"
