"""The one way through: intent -> model -> plan -> render -> analyze -> write -> commit.

``run_stage`` is what the ``meshstage.mesh.render_stage`` action calls, and what scripts and
tests call directly. Everything is checked before anything is written: a wrong intent, a
template error or a schema violation leaves the GitOps repository untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SchemaError
from .gitops import FileChange, GitOpsRepo, TreeUpdate
from .intent import Intent, parse_intent
from .plan import StagePlan, plan_stage
from .render import BUILTIN_TEMPLATES, Renderer, canonical_header, load_yaml
from .runbook import runbook_markdown
from .schema import SchemaRegistry
from .stage_cache import StageCache
from .stages import STAGE_PURPOSE
from .tree import (
    RenderedObject,
    env_dir,
    extra_files,
    index_markdown,
    kustomizations,
    render_objects,
    sync_objects,
)

SHARED_SCOPE = "_shared"


@dataclass(frozen=True)
class StageOptions:
    gitops_dir: Path
    crd_dirs: Sequence[Path] = ()
    template_dirs: Sequence[Path] = ()
    kubernetes_version: str = "1.33.0"
    check_mode: bool = False


@dataclass
class RenderedStage:
    """An environment's stage, rendered and validated, not yet written."""

    intent: Intent
    plan: StagePlan
    objects: list[RenderedObject]
    files: dict[str, str]
    warnings: list[str]
    unvalidated: list[str] = field(default_factory=list)


@dataclass
class StageResult:
    environment: str
    stage: str
    provider: str
    changed: bool
    commit: str | None
    objects: dict[str, list[str]]
    files: dict[str, int]
    message: str
    warnings: list[str]
    diff: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment, "stage": self.stage, "provider": self.provider,
            "changed": self.changed, "commit": self.commit, "objects": self.objects,
            "files": self.files, "message": self.message, "warnings": self.warnings,
        }


def render_stage(variables: Mapping[str, Any], options: StageOptions,
                 registry: SchemaRegistry | None = None,
                 cache: StageCache | None = None) -> RenderedStage:
    """Validate the intent, plan, render and schema-check; write nothing.

    ``cache`` (the environment's stage cache, see ``stage_cache.py``) answers renderings and
    validations the same code already did for the same inputs.
    """
    intent, warnings = parse_intent(variables)
    plan = plan_stage(intent)
    renderer = Renderer(options.template_dirs, cache=cache)
    objects = render_objects(plan, renderer) + sync_objects(intent, renderer)
    unvalidated: list[str] = []
    checked = objects
    if not options.crd_dirs:
        if registry is None:
            registry = SchemaRegistry.from_crd_dirs((), options.kubernetes_version)
        if not registry.has_crds:
            # Core kinds are always validated; custom ones only against CRDs the user names.
            checked = [o for o in objects
                       if registry.knows(o.obj["apiVersion"], o.obj["kind"])]
            unvalidated = sorted({o.planned.kind for o in objects if o not in checked})
    pending = [o for o in checked if cache is None or not cache.known_valid(o.text)]
    if pending:
        if registry is None:  # the CRDs are read only when something needs them
            registry = SchemaRegistry.from_crd_dirs(
                options.crd_dirs, options.kubernetes_version,
                read_documents=cache.crd_loader if cache is not None else None)
        violations = registry.validate_all(item.obj for item in pending)
        if violations:
            raise SchemaError([f"{intent.environment}: {v}" for v in violations])
    if cache is not None:
        for item in pending:
            cache.mark_valid(item.text)
    if unvalidated:
        warnings = [*warnings, "no mesh_crd_dir given: " + ", ".join(unvalidated)
                    + " were not validated against CRD schemas"]
    files = {item.path: item.text for item in objects}
    files.update(kustomizations(plan, objects, renderer))
    files.update(extra_files(plan, renderer))
    files[f"{env_dir(intent.environment)}/RUNBOOK.md"] = runbook_markdown(plan, objects, warnings)
    return RenderedStage(intent, plan, objects, files, warnings, unvalidated)


def run_stage(variables: Mapping[str, Any], options: StageOptions,
              registry: SchemaRegistry | None = None) -> StageResult:
    """Render an environment's stage into the GitOps repository and commit it."""
    cache = StageCache.open(
        options.gitops_dir, _cache_scope(variables), options.template_dirs, BUILTIN_TEMPLATES,
        options.crd_dirs, options.kubernetes_version)
    rendered = render_stage(variables, options, registry, cache)
    intent = rendered.intent
    repo = GitOpsRepo(options.gitops_dir)
    meta = {"provider": intent.provider, "stage": intent.stage.value}
    env_update = repo.plan(intent.environment, rendered.files, meta)
    environments = {**repo.all_scope_meta(), intent.environment: meta}
    environments.pop(SHARED_SCOPE, None)
    shared_update = repo.plan(SHARED_SCOPE, {"README.md": index_markdown(environments)}, {})
    updates = [env_update, shared_update]
    counts = object_changes(change for update in updates for change in update.changes)
    message = commit_message(intent, counts)
    changed = any(update.changed for update in updates)
    sha = None
    if not options.check_mode:
        for update in updates:
            repo.apply(update)
        committed: dict[str, list[str]] = {}

        def message_for(changes: Sequence[FileChange]) -> str:
            # what is committed, against HEAD: also right when it completes a run that
            # was interrupted between writing and committing
            committed.update(object_changes(changes))
            return commit_message(intent, committed)

        sha = repo.commit(message_for)
        if sha is not None:
            counts, message, changed = committed, commit_message(intent, committed), True
        cache.save()
    return StageResult(
        environment=intent.environment, stage=intent.stage.value, provider=intent.provider,
        changed=changed, commit=sha, objects=counts,
        files=_file_counts(updates), message=message, warnings=rendered.warnings,
        diff=[d for update in updates for d in update.ansible_diff()],
    )


def _cache_scope(variables: Mapping[str, Any]) -> str:
    """The environment's name as a file name for its stage cache ('_' when it is not one)."""
    name = variables.get("mesh_environment")
    return name if isinstance(name, str) and name.isascii() and \
        name.replace("-", "").isalnum() else "_"


def _file_counts(updates: Sequence[TreeUpdate]) -> dict[str, int]:
    total = {"add": 0, "change": 0, "remove": 0}
    for update in updates:
        for key, value in update.counts().items():
            total[key] += value
    return total


def _identities(text: str | None, path: str) -> dict[str, Any]:
    """Kubernetes objects in a file of the tree, by ``Kind namespace/name``."""
    if text is None or not path.endswith(".yaml") or path.rpartition("/")[2] == \
            "kustomization.yaml":
        return {}
    header = canonical_header(text)  # the files meshstage wrote: no full parse needed
    if header is not None:
        namespace = header.get("namespace")
        name = f"{namespace}/{header['name']}" if namespace else header["name"]
        return {f"{header['kind']} {name}": header}
    obj = load_yaml(text)
    if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
        return {}
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))
    return {f"{obj['kind']} {name}": obj}


def object_changes(changes: Iterable[FileChange]) -> dict[str, list[str]]:
    """Objects added, changed and removed, by identity (a move between folders is a change)."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for change in changes:
        before.update(_identities(change.before, change.path))
        after.update(_identities(change.after, change.path))
    return {
        "added": sorted(set(after) - set(before)),
        "changed": sorted(set(after) & set(before)),
        "removed": sorted(set(before) - set(after)),
    }


def commit_message(intent: Intent, counts: Mapping[str, list[str]]) -> str:
    stage = intent.stage
    lines = [
        f"meshstage({intent.environment}): {stage.value} stage, "
        f"{len(counts['added'])} added, {len(counts['changed'])} changed, "
        f"{len(counts['removed'])} removed",
        "",
        f"Environment {intent.environment} ({intent.provider}) is at stage {stage.number} "
        f"of 6, {stage.value}: {STAGE_PURPOSE[stage]}.",
    ]
    for heading, key in (("Added", "added"), ("Changed", "changed"), ("Removed", "removed")):
        if counts[key]:
            lines += ["", f"{heading}:"] + [f"- {name}" for name in counts[key]]
    return "\n".join(lines) + "\n"
