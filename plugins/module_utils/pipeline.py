"""The one way through: intent -> model -> plan -> render -> analyze -> prove -> write -> commit.

``run_stage`` is what the ``meshstage.mesh.render_stage`` action calls, and what scripts and
tests call directly. Everything is checked before anything is written: a wrong intent, a
template error, a schema violation or a request flow the change would stop (the flow proof,
``flows/``) leaves the GitOps repository untouched.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _fork
from ._fork import ForkedCall, SharedChunks, ThreadedCall
from ._plain import plain_data
from .analyze.context import analyze_rendered
from .canary.messages import CanaryCommit, runbook_section
from .canary.record import CanaryState
from .canary.shaping import effective_intent
from .errors import AnalysisError, GitOpsError, IntentError, IntentErrors, SchemaError
from .estate.estate import Estate
from .estate.manifests import SourcePath
from .flows.stage import ProofStart, StageProof, prove_stage, start_proof
from .gitops.disk import OwnedRead
from .gitops.message import commit_message, gate_lines, object_changes
from .gitops.paths import env_dir, install_dir
from .gitops.repo import GitOpsRepo
from .gitops.update import FileChange, TreeUpdate
from .intent.model import Intent
from .intent.parse import parse_plain_intent
from .kube import DEFAULT_KUBERNETES_VERSION
from .plan.memo import PlanMemo
from .plan.model import StagePlan
from .plan.stage_plan import plan_stage
from .providers.envoy_hosts.mesh_ca import ca_inside_repository
from .providers.envoy_hosts.regex_check import refused_regexes
from .providers.envoy_hosts.validate import check_rendered, find_envoy
from .providers.provider import ControlPlane
from .render.control_plane import SCHEMA_OPTIONAL, control_plane, install_tree
from .render.renderer import BUILTIN_TEMPLATES, Renderer
from .render.runbook import ObjectSections, object_sections, runbook_markdown
from .render.stage_cache import StageCache, pickled
from .render.sync import flux_cuts, sync_objects
from .render.tree import (
    RenderedObject,
    extra_files,
    index_markdown,
    kustomizations,
    place_objects,
    render_host_files,
)
from .schema.crds import CrdPrefetch, crd_files
from .schema.registry import SchemaRegistry
from .schema.violations import SchemaViolation
from .yaml_io import load_yaml

SHARED_SCOPE = "_shared"


@dataclass(frozen=True)
class StageOptions:
    gitops_dir: Path
    crd_dirs: Sequence[Path] = ()
    template_dirs: Sequence[Path] = ()
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    check_mode: bool = False
    # the estate's own manifests, analyzed against instead of the intent's stand-ins
    check_paths: Sequence[SourcePath] = ()
    envoy_binary: str | None = None  # for `envoy --mode validate` of host sidecars
    # the stage gates' verdicts on this run's move (meshstage.mesh.stage_gates)
    gate_verdicts: Sequence[Mapping[str, Any]] = ()
    git_hooks: bool = False  # mesh_git_hooks: commit with the repository's git hooks
    ca_dir: Path | None = None  # mesh_ca_dir: the hosts' mesh CA, never in the repository
    # the caller/callee edges Prometheus showed the gates (``Call`` fields), for the proof
    observed_calls: Sequence[Mapping[str, Any]] = ()


@dataclass
class RenderedStage:
    """An environment's stage, rendered and validated, not yet written."""

    intent: Intent
    plan: StagePlan
    objects: list[RenderedObject]
    files: dict[str, str]
    warnings: list[str]
    unvalidated: list[str] = field(default_factory=list)
    install: ControlPlane | None = None
    stage_objects: list[RenderedObject] = field(default_factory=list)
    canary: CanaryState = field(default_factory=lambda: CanaryState({}))
    # what the repository records and the runbook keeps saying: the provider the
    # environment switched from, and the gates forced in it
    migrated_from: str | None = None
    forced_gates: list[dict[str, Any]] = field(default_factory=list)
    canary_record: Any = None  # the canary entry of the record, as the repository holds it
    flows: StageProof = field(default_factory=StageProof)  # the flow proof's table
    # the units and Flux sync folders cut in parts (their hash bits): a cut is kept
    unit_cuts: dict[str, int] = field(default_factory=dict)
    # the runbook's parts that read the objects alone, and its canary section, when made
    # already (``render_stage``)
    sections: ObjectSections | None = None
    canary_section: list[str] | None = None

    def runbook(self) -> str:
        """The environment's RUNBOOK.md (with the cut-over when the provider changed, the
        gates forced so far, and the table of the stage's flows)."""
        canary = self.canary_section if self.canary_section is not None \
            else runbook_section(self.intent, self.canary)
        return runbook_markdown(self.plan, self.stage_objects, self.warnings, self.install,
                                self.migrated_from, self.forced_gates, canary,
                                self.flows.section, self.sections)

    def record(self) -> dict[str, Any]:
        """What the GitOps repository records for the environment after this run."""
        meta: dict[str, Any] = {"provider": self.intent.provider,
                                "stage": self.intent.stage.value}
        if self.canary_record:
            meta["canary"] = self.canary_record
        if self.migrated_from:
            # the runbook orders the cut-over for as long as the environment has this provider
            meta["migrated_from"] = self.migrated_from
        if self.forced_gates:
            meta["forced_gates"] = self.forced_gates  # the runbook keeps saying it
        if self.unit_cuts:
            meta["unit_cuts"] = dict(sorted(self.unit_cuts.items()))
        return meta


@dataclass
class _Rendered:
    """The render step's output: the objects of the stage folders, the sync objects and the
    control plane's install, and the install's other files."""

    stage_objects: list[RenderedObject]
    everything: list[RenderedObject]
    install: ControlPlane | None
    install_files: dict[str, str]
    warnings: list[str]
    unvalidated: list[str] = field(default_factory=list)
    cuts: dict[str, int] = field(default_factory=dict)  # units and sync folders cut in parts
    keys: list[str | None] = field(default_factory=list)  # each planned object's cache key


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
                 cache: StageCache | None = None,
                 recorded: Mapping[str, Any] | None = None,
                 prove: bool = True,
                 planned: Callable[[], None] | None = None) -> RenderedStage:
    """Everything before a write: parse, plan, render, validate, analyze, tree, prove.
    ``planned`` is called once the plan is made or loaded (``run_stage`` starts reading the
    environment's files then).

    ``cache`` (the environment's stage cache, see ``render/stage_cache.py``) answers
    renderings and validations the same code already did for the same inputs. ``recorded``
    is what the GitOps repository records for the environment (its scope metadata): a
    recorded canary run shapes the weights rendered (``canary/shaping.py``), a provider it
    ran before orders a cut-over, the gates forced so far stay in the runbook, and the
    recorded stage is the one the flow proof judges every flow at, beside the target's
    (``prove=False`` leaves the proof to the caller: ``meshstage flows`` prints it).
    """
    recorded = recorded or {}
    # the CRD files, when the stage cache holds none, read on the second core meanwhile: in
    # hand before the render forks, and the child stopped if parsing or planning fails
    with _prefetch_crds(options, cache) if registry is None else CrdPrefetch(()) as crds:
        # the last run's intent and plan, when its inputs were the same (``plan/memo.py``)
        memo = PlanMemo(cache, plain_data(variables), recorded)
        intent, warnings, canary = memo.parsed() or _parse(memo.variables, recorded)
        parse_warnings = tuple(warnings)
        memo.identify(intent)
        _check_header_regexes(intent, options, cache)
        # the estate's manifests, read once: the planners and the analysis judge against them
        estate = Estate.read(options.check_paths, intent.replaced) if options.check_paths \
            else None
        plan = memo.plan(estate) or plan_stage(intent, estate)
        if planned is not None:
            planned()
        # kept for the next run: now when templates of the user's render (one could change the
        # values it is given), else while the proof's child works, before this process takes
        # its share of the schema check (nothing after planning changes them: ``plan/memo.py``),
        # with the planned objects' cache keys
        keep = functools.partial(memo.keep, intent, parse_warnings, canary, estate, plan)
        if options.template_dirs:
            canary_section = _canary_section(memo, intent, canary)
            keep(None, canary_section)
        renderer = Renderer(options.template_dirs, cache=cache)
    kept = recorded.get("unit_cuts")
    rendered = _render(plan, renderer, kept if isinstance(kept, Mapping) else None,
                       memo.render_keys(plan))
    warnings += plan.warnings + [str(gap) for gap in plan.gaps] + rendered.warnings
    files, hosts = _tree(plan, rendered, renderer)
    files.update(hosts)
    # The flow proof reads the rendered tree and nothing the checks below write (nor the
    # kustomizations, made meanwhile): on a large stage it runs on the second core
    # meanwhile (``_fork.py``), and then takes its share of the schema check
    # (``_SchemaCheck``). Its refusal still comes after theirs, as one after the other; and
    # the schema check's refusal before the analysis's.
    start = start_proof(intent, files, options.check_paths, options.gitops_dir, recorded,
                        cache, options.observed_calls) if prove else None
    check, schema_warnings = _validate(intent, rendered, options, registry, cache, crds)
    fork = start is not None and start.known is None \
        and len(rendered.everything) >= _fork.FORK_AT
    if fork:
        check.share()
    proving = ForkedCall(functools.partial(
        _prove, intent, rendered.stage_objects, files, options, recorded, cache, start,
        check), fork=fork)
    try:
        try:
            files.update(kustomizations(plan, rendered.stage_objects, renderer))
            analysis = _analyze(intent, rendered.stage_objects, estate, cache)
            if not options.template_dirs:
                # meanwhile the child takes more chunks; a refusal saves no cache
                canary_section = _canary_section(memo, intent, canary)
                keep(rendered.keys, canary_section)
            valid = check.run()
            if valid:
                _check_host_configs(plan, hosts, options, cache)
        except Exception:
            proving.cancel()
            check.finish({})  # a schema violation is the refusal, as when it came first
            raise
        if not valid:
            proving.cancel()
            check.finish({})  # raises, naming every violation
        warnings += schema_warnings + analysis
        # the runbook's parts the flow proof does not decide, made while its child may still
        # be proving (at 5,000 services the child is the longer side)
        sections = object_sections(rendered.stage_objects, intent.environment, intent.stage)
        proof = StageProof()
        helped: dict[int, list[SchemaViolation]] = {}
        if prove:
            try:
                proof, checks, helped = proving.result()
            except Exception:
                check.finish({})  # whatever the child took and did not hand back
                raise
            if cache is not None:
                cache.keep_checks(checks)
        check.finish(helped)
    finally:
        proving.cancel()
        check.close()
    warnings += proof.warnings
    stage = RenderedStage(intent, plan, rendered.everything, files, warnings,
                          rendered.unvalidated, rendered.install, rendered.stage_objects, canary,
                          migrated_from_provider(recorded, intent.provider),
                          forced_gates(recorded, options.gate_verdicts, intent.stage.value),
                          recorded.get("canary"), proof, rendered.cuts, sections,
                          canary_section)
    files[f"{env_dir(intent.environment)}/RUNBOOK.md"] = stage.runbook()
    return stage


def run_stage(variables: Mapping[str, Any], options: StageOptions,
              registry: SchemaRegistry | None = None,
              canary: CanaryCommit | None = None) -> StageResult:
    """Render an environment's stage into the GitOps repository and commit it.

    The environment's canary record is read from the repository and kept; ``canary`` (a step
    of ``playbooks/canary.yml``) replaces it and titles the commit.
    """
    problem = ca_inside_repository(options.ca_dir, options.gitops_dir) \
        if options.ca_dir is not None else None
    if problem:  # before anything is written: the host play would commit nothing, too late
        raise GitOpsError(problem)
    repo = GitOpsRepo(options.gitops_dir, hooks=options.git_hooks)
    purpose = f"rendering {variables.get('mesh_environment')}"
    with repo.session(purpose, write=not options.check_mode):
        return _run_locked(repo, variables, options, registry, canary)


def _run_locked(repo: GitOpsRepo, variables: Mapping[str, Any], options: StageOptions,
                registry: SchemaRegistry | None, canary: CanaryCommit | None) -> StageResult:
    """``run_stage`` while the run holds the repository (and completed what an interrupted
    run left)."""
    cache = StageCache.open(
        options.gitops_dir, _cache_scope(variables), options.template_dirs, BUILTIN_TEMPLATES,
        options.crd_dirs, options.kubernetes_version)
    previous = recorded_meta(repo, variables)
    recorded = {**previous, "canary": canary.state} if canary is not None else previous
    # the environment's owned files read on the second core while it renders, from when
    # its plan is known (not beside the plan memo's load: each page that allocates while a
    # child lives is copied): its plan reads none of them again that hold what was recorded
    # and stay as they are
    read_ahead: list[OwnedRead | None] = []

    def start_reading() -> None:
        scope = variables.get("mesh_environment")
        read_ahead.append(repo.read_owned_meanwhile(scope) if isinstance(scope, str) else None)

    try:
        rendered = render_stage(variables, options, registry, cache, recorded,
                                planned=start_reading)
        intent = rendered.intent
        meta = {**rendered.record(), "branch": repo.branch_for(
            intent.environment, previous.get("branch"), intent.gitops.branch)}
        env_update = repo.plan(intent.environment, rendered.files, meta,
                               read_ahead[0] if read_ahead else None)
    finally:
        for reading in read_ahead:
            if reading is not None:
                reading.cancel()
    environments = {**repo.all_scope_meta(), intent.environment: meta}
    environments.pop(SHARED_SCOPE, None)
    shared_update = repo.plan(SHARED_SCOPE, {"README.md": index_markdown(environments)}, {})
    updates = [env_update, shared_update]
    switched = rendered.migrated_from \
        if previous.get("provider") == rendered.migrated_from else None
    gates = gate_lines(options.gate_verdicts, previous.get("stage"), intent.stage.value)
    titled = (canary.subject, canary.body) if canary is not None else (None, ())

    def message_of(counts: Mapping[str, list[str]]) -> str:
        return commit_message(intent, counts, switched, gates, *titled)

    changed = any(update.changed for update in updates)
    sha = None
    counts: dict[str, list[str]] | None = None
    rendered_at = {item.path: item for item in rendered.objects}  # to name what they hold
    if not options.check_mode:
        repo.apply(updates)
        committed: dict[str, list[str]] = {}

        def message_for(changes: Sequence[FileChange]) -> str:
            # what is committed, against HEAD: also right when it completes a run that
            # was interrupted between writing and committing (a file that holds what this
            # run rendered is named from its object); on the commit's thread, and called
            # again when git staged other changes than foretold (every key is replaced)
            committed.update(object_changes(changes, rendered_at))
            return message_of(committed)

        # the stage cache is pickled and staged on a thread while git stages and commits
        # (the commit mostly waits for git), and kept only once the commit is made
        staging = ThreadedCall(cache.staged)
        try:
            sha = repo.commit(message_for)
        except BaseException:
            with contextlib.suppress(Exception):  # the commit's error is the one to raise
                cache.discard(staging.result())
            raise
        cache.put_in_place(staging.result())
        if sha is not None:
            counts, changed = committed, True
    if counts is None:  # nothing committed: the changes as planned (a check run's diff)
        counts = object_changes((change for update in updates for change in update.changes),
                                rendered_at)
    message = message_of(counts)
    return StageResult(
        environment=intent.environment, stage=intent.stage.value, provider=intent.provider,
        changed=changed, commit=sha, objects=counts,
        files=_file_counts(updates), message=message,
        warnings=[*repo.notes, *rendered.warnings],
        diff=[d for update in updates for d in update.ansible_diff()],
    )


def _canary_section(memo: PlanMemo, intent: Intent, canary: CanaryState) -> list[str]:
    """The runbook's canary section: the plan memo's, made of the same intent and canary
    state, else made now."""
    kept = memo.canary_section()
    return kept if kept is not None else runbook_section(intent, canary)


def recorded_meta(repo: GitOpsRepo, variables: Mapping[str, Any]) -> dict[str, Any]:
    """What the repository records for the variables' environment (before they are parsed:
    its canary record shapes the render)."""
    environment = variables.get("mesh_environment")
    return repo.scope_meta(environment) if isinstance(environment, str) else {}


def migrated_from_provider(previous: Mapping[str, Any], provider: str) -> str | None:
    """The provider an environment moved from: the one its last run recorded, when that was
    another; kept while the provider stays the same."""
    before = previous.get("provider")
    if before and before != provider:
        return str(before)
    recorded = previous.get("migrated_from")
    return str(recorded) if before == provider and recorded else None


def forced_gates(previous: Mapping[str, Any], verdicts: Sequence[Mapping[str, Any]],
                 stage: str) -> list[dict[str, Any]]:
    """The gates forced in this environment: those recorded before, and this run's."""
    records = [dict(r) for r in previous.get("forced_gates") or () if isinstance(r, Mapping)]
    for verdict in verdicts:
        if verdict.get("forced"):
            record = {"gate": verdict.get("gate"), "from": previous.get("stage"), "to": stage,
                      "refusal": "; ".join(verdict.get("blockers") or ())}
            if record not in records:
                records.append(record)
    return records


# --------------------------------------------------------------------------- the steps


def _parse(variables: Mapping[str, Any], recorded: Mapping[str, Any],
           ) -> tuple[Intent, list[str], CanaryState]:
    """The intent, as the recorded canary runs shape it, and the warnings of both
    (``variables``: plain data, ``plain_data``'s copy)."""
    intent, warnings = parse_plain_intent(variables)
    canary = CanaryState.from_meta(recorded.get("canary"))
    intent, canary_warnings = effective_intent(intent, canary)
    return intent, [*warnings, *canary_warnings], canary


def _render(plan: StagePlan, renderer: Renderer, kept: Mapping[str, int] | None,
            keys: Sequence[str | None] | None = None) -> _Rendered:
    """Every object of the plan in its sync unit, the sync objects, the install. ``kept``:
    the cuts of units and sync folders the repository recorded, kept (``render/units.py``);
    ``keys``: the planned objects' stage-cache keys the plan memo kept with the plan."""
    intent = plan.intent
    installed, install_files, warnings = install_tree(intent, renderer)
    placed, cuts, keys = place_objects(plan, renderer, kept, keys)
    units = [item.unit for item in placed if item.unit is not None]
    flux_parts, flux_record = flux_cuts(intent.environment, units, kept)
    cuts.update(flux_record)
    objects = placed + sync_objects(
        intent, renderer, units, flux_parts,
        install_dir(intent.environment) if installed else None)
    return _Rendered(objects, objects + installed,
                     control_plane(intent) if installed else None, install_files, warnings,
                     cuts=cuts, keys=keys)


def _prefetch_crds(options: StageOptions, cache: StageCache | None) -> CrdPrefetch:
    """The CRD files of ``options`` being read in a forked child (``schema/crds.py``), when
    the stage cache holds none from an earlier run (a repository's first environment, or no
    cache). A later run reads and hashes no CRD file to decide: it reads none until the
    render needs the schemas, and then the cache answers them, or reads a changed file."""
    if cache is not None and cache.holds_crds():
        return CrdPrefetch(())
    return CrdPrefetch(crd_files(options.crd_dirs))


def _crd_reader(cache: StageCache | None, crds: CrdPrefetch,
                parse: Callable[[Path], list[Any]]) -> Callable[[Path], list[Any]]:
    """A CRD file's documents: from the stage cache, else from ``crds``, else ``parse``."""
    parse = crds.reader(parse)
    return cache.crd_loader(parse) if cache is not None else parse


def _validate(intent: Intent, rendered: _Rendered, options: StageOptions,
              registry: SchemaRegistry | None, cache: StageCache | None,
              crds: CrdPrefetch) -> tuple[_SchemaCheck, list[str]]:
    """The schema check of every object against the schemas in force (``_SchemaCheck``:
    ``SchemaError`` on a violation), and the warnings for kinds left unvalidated. Objects the
    stage cache saw valid are not judged again, and the CRDs are read only when something
    needs them (``crds``: those read beforehand)."""
    warnings: list[str] = []

    def schemas() -> SchemaRegistry:
        nonlocal registry
        if registry is None:
            registry = SchemaRegistry.from_crd_dirs(
                options.crd_dirs, options.kubernetes_version,
                read_documents=functools.partial(_crd_reader, cache, crds))
        return registry

    def knows(item: RenderedObject) -> bool:
        api_version, kind = item.api_version, item.kind
        if api_version is None or kind is None:
            api_version, kind = item.obj["apiVersion"], item.obj["kind"]
        if cache is None:
            return schemas().knows(api_version, kind)
        return cache.knows(api_version, kind, lambda: schemas().knows(api_version, kind))

    checked = rendered.everything
    if not options.crd_dirs and (registry is None or not registry.has_crds):
        # Core kinds are always validated; custom ones only against CRDs the user names.
        checked = [o for o in checked if knows(o)]
        known = {id(o) for o in checked}
        rendered.unvalidated = sorted({o.planned.kind for o in rendered.everything
                                       if id(o) not in known})
    else:
        optional = [o for o in checked
                    if (o.api_version, o.kind) in SCHEMA_OPTIONAL and not knows(o)]
        left_out = {id(o) for o in optional}
        checked = [o for o in checked if id(o) not in left_out]
        if optional:
            warnings.append(", ".join(sorted({f"{o.planned.kind} ({o.api_version})"
                                              for o in optional}))
                            + " not validated: the CRD directories hold no CRD for it")
    if rendered.unvalidated:
        warnings.append("no mesh_crd_dir given: " + ", ".join(rendered.unvalidated)
                        + " were not validated against CRD schemas")
    pending = [o for o in checked if cache is None or not cache.known_valid(o.text)]
    return _SchemaCheck(intent.environment, pending, schemas, cache), warnings


class _SchemaCheck:
    """The objects a stage's schema check judges, in chunks. The caller judges them; while
    a large stage's flow proof runs in a forked child (``render_stage``), the two share the
    chunks (``_fork.SharedChunks``): the caller takes them from the front once its analysis
    is done, the child from the back once its proof is done, so neither waits for the other
    while chunks are left. The verdict is the same as one process judging every object in
    order: the violations are kept by chunk and listed in the objects' order."""

    # objects per chunk: at least this many (a chunk costs a read of one byte), and so
    # many that there are at most ``SharedChunks.MOST`` chunks
    SMALLEST = 32

    def __init__(self, environment: str, pending: Sequence[RenderedObject],
                 schemas: Callable[[], SchemaRegistry], cache: StageCache | None) -> None:
        self._environment, self._pending, self._schemas = environment, pending, schemas
        self._cache = cache
        self._size = max(self.SMALLEST, -(-len(pending) // SharedChunks.MOST))
        self._count = -(-len(pending) // self._size)
        self._done: dict[int, list[SchemaViolation]] = {}
        self._shared: SharedChunks | None = None

    def share(self) -> None:
        """Let the child forked next take chunks too (``help``): the registry is read now,
        for the child to have it."""
        if self._count > 1:
            self._schemas()
            self._shared = SharedChunks(self._count)

    def help(self) -> dict[int, list[SchemaViolation]]:
        """In the child: judge chunks until none is left; the violations of each."""
        found: dict[int, list[SchemaViolation]] = {}
        if self._shared is not None and self._shared.in_child():
            while (index := self._shared.take()) is not None:
                found[index] = self._judge(index)
        return found

    def run(self) -> bool:
        """In the caller: judge chunks until none is left or one has a violation; whether
        every chunk judged so far is valid."""
        while (index := self._next()) is not None:
            self._done[index] = self._judge(index)
            if self._done[index]:
                return False
        return True

    def _next(self) -> int | None:
        if self._shared is not None:
            return self._shared.take()
        return len(self._done) if len(self._done) < self._count else None

    def finish(self, helped: Mapping[int, list[SchemaViolation]]) -> None:
        """Judge every chunk neither the caller nor the child judged (the child stopped, or
        died with some it took), and raise ``SchemaError`` on a violation; else the stage
        cache learns the objects are valid."""
        self.close()
        self._done.update(helped)
        for index in range(self._count):
            if index not in self._done:
                self._done[index] = self._judge(index)
        violations = [v for index in range(self._count) for v in self._done[index]]
        if violations:
            raise SchemaError([f"{self._environment}: {v}" for v in violations])
        if self._cache is not None:
            for item in self._pending:
                self._cache.mark_valid(item.text)

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()

    def _judge(self, index: int) -> list[SchemaViolation]:
        chunk = self._pending[index * self._size:(index + 1) * self._size]
        return self._schemas().validate_all(item.obj for item in chunk)


def _tree(plan: StagePlan, rendered: _Rendered,
          renderer: Renderer) -> tuple[dict[str, str], dict[str, str]]:
    """Every file of the environment but its kustomizations (``render_stage`` adds them
    while the proof's child works: no flow reads them, ``flows.states.relevant``): objects,
    the install's files and extra files; and apart, the host sidecars' files
    (``_check_host_configs`` checks them)."""
    files = {item.path: item.text for item in rendered.everything}
    files.update(rendered.install_files)
    files.update(extra_files(plan, renderer))
    return files, render_host_files(plan, renderer)


def _prove(intent: Intent, objects: Sequence[RenderedObject], files: Mapping[str, str],
           options: StageOptions, recorded: Mapping[str, Any], cache: StageCache | None,
           start: ProofStart | None, check: _SchemaCheck,
           ) -> tuple[StageProof, dict[str, Any], dict[int, list[SchemaViolation]]]:
    """The flow proof of the stage, as the run keeps it (its table, warnings and figures,
    not the proof itself), the checks the stage cache keeps after it, and, in a forked
    child, the chunks of the schema check it judged once done: the child hands all three
    back (``render_stage``)."""
    proof = prove_stage(intent, objects, files, options.check_paths, options.gitops_dir,
                        recorded, cache, options.observed_calls, start)
    return (StageProof(proof.section, proof.warnings, proof.counts),
            cache.kept_checks() if cache is not None else {}, check.help())


def _analyze(intent: Intent, objects: Sequence[RenderedObject], estate: Estate | None,
             cache: StageCache | None) -> list[str]:
    """The analyzers over the rendered objects: their warnings, or ``AnalysisError``.

    An analysis that passed is kept in the stage cache under everything it read (the
    rendered texts and the intent its stand-ins are made from); manifests given with
    ``check_paths`` are read afresh every run, so that analysis is never kept."""
    key = None
    if cache is not None and estate is None:
        # the stand-ins are made from the intent: its pickle stands for them (as for
        # renderings: what pickle refuses is analyzed every time)
        stand_ins = pickled(intent)
        if stand_ins is not None:
            key = cache.check_key("analysis", [intent.provider, intent.root_namespace,
                                               intent.trust_domain, stand_ins,
                                               *(item.text for item in objects)])
    if key is not None and cache is not None:
        known = cache.passed(key)
        if isinstance(known, list):
            return [str(line) for line in known]
    analysis = analyze_rendered(intent, [item.obj for item in objects],
                                estate=estate.resources if estate is not None else None,
                                sources=[item.path for item in objects])
    if analysis.errors:
        raise AnalysisError(f"{intent.environment} ({intent.stage.value})",
                            [finding.line() for finding in analysis.errors])
    lines = [finding.line() for finding in analysis.warnings]
    if key is not None and cache is not None:
        cache.mark_passed(key, lines)
    return lines


def _check_host_configs(plan: StagePlan, rendered: Mapping[str, str],
                        options: StageOptions, cache: StageCache | None = None) -> None:
    """Every host sidecar's files, checked with the real ``envoy --mode validate``.

    A host whose files, directories and envoy binary passed before (the stage cache) is not
    checked again; a failed check is never kept."""
    by_host: dict[str, dict[str, str]] = {}
    for path, text in rendered.items():
        parts = path.split("/")
        if len(parts) == 4:  # hosts/<env>/<host>/<file>
            by_host.setdefault(parts[2], {})[parts[3]] = text
    if not by_host:
        return
    envoy = find_envoy(options.envoy_binary)
    binary = os.stat(envoy)
    intent = plan.intent
    for host in intent.hosts:
        texts = by_host.get(host.name)
        if texts is None:
            continue
        key = None
        if cache is not None:
            key = cache.check_key("envoy", [
                envoy, f"{binary.st_size} {binary.st_mtime_ns}", host.config_dir,
                host.log_dir, *(part for name in sorted(texts) for part in (name, texts[name]))])
            if cache.passed(key):
                continue
        check_rendered(f"{intent.environment}/{host.name}", host.config_dir, host.log_dir,
                       {name: load_yaml(text) for name, text in texts.items()}, envoy)
        if key is not None and cache is not None:
            cache.mark_passed(key)


def _check_header_regexes(intent: Intent, options: StageOptions,
                          cache: StageCache | None) -> None:
    """Every header regex of the intent, compiled by Envoy's RE2 (``regex_check.py``);
    ``IntentErrors`` naming the field and the value of each one it refuses. Regexes that
    compiled before (the stage cache) are not compiled again."""
    regexes = {
        f"{intent.service_path(service)} ({service.name}).traffic.header_routes[{number}]"
        f".headers."
        f"{match.header}.regex": match.value
        for service in intent.services
        for number, route in enumerate(service.traffic.header_routes)
        for match in route.headers if match.kind == "regex"}
    if not regexes:
        return
    envoy = find_envoy(options.envoy_binary)
    key = cache.check_key("regex", [envoy, *sorted(regexes.values())]) if cache else None
    if key is not None and cache is not None and cache.passed(key):
        return
    refused = refused_regexes(regexes, envoy)
    if refused:
        raise IntentErrors([IntentError(path, regexes[path], "is not a regular expression "
                                        f"Envoy's RE2 compiles: {problem}")
                            for path, problem in sorted(refused.items())])
    if key is not None and cache is not None:
        cache.mark_passed(key)


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


