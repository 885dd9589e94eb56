"""The one write path of meshstage: desired files for one scope into the GitOps repository.

A *scope* is an environment (``dev``, ``staging``, ...) or the shared scope ``_shared`` (the
top-level index). For each scope meshstage owns a set of files, and only those.

Ownership rules
---------------
* The ownership state lives in the repository itself, at ``.meshstage/state.json``, and is
  committed with the files. Per scope it records every owned path (posix, relative to the
  repository root) with the sha256 of the bytes meshstage wrote, and the scope's metadata
  (e.g. ``{"provider": "istio", "stage": "traffic"}``). It is written canonically (sorted keys,
  2-space indent, trailing newline), so it changes only when the owned set, a sha or the
  metadata changes.
* A path belongs to at most one scope. A scope never writes a path owned by another scope.
* meshstage never overwrites a file it does not own: a desired path that already exists on
  disk but is not owned is an error (it is a file the user wrote).
* meshstage never loses a hand edit: an owned file whose bytes no longer match the recorded
  sha (edited or deleted by hand) is an error, whether the scope still wants it or not.
* Removals are exactly the paths owned by the scope that it no longer desires; a directory is
  removed only when such a removal left it empty. Nothing else is ever deleted.
* Paths must be relative, normalized posix paths outside ``.git/`` and ``.meshstage/``.
* The state file is trusted only when it is ``HEAD``'s or the one an unfinished write left
  (its journal's); a record of a file ``HEAD`` does not hold as recorded is refused.
* ``plan`` only reads; ``apply`` re-checks that nothing moved since the plan and writes the
  run's files as one transaction (``journal.py``); ``commit`` stages and commits only
  meshstage's paths, and ends the transaction. A session (``guard.py``) holds the lock.

Example::

    repo = GitOpsRepo("build/gitops")
    update = repo.plan("dev", {"dev/app.yaml": text}, {"provider": "istio"})
    repo.apply(update)
    sha = repo.commit("meshstage: dev at traffic")
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from .._fork import ThreadedCall
from .._io import temporary_tag
from ..errors import GitOpsError, MeshstageError
from .disk import READ_AHEAD_AT, OwnedRead, git_text, read_disk, shown_text
from .faults import KillSwitch
from .git import (
    DIFF_NAMES,
    FILE_MODE_ENTRY,
    PACK_AT,
    PATHS_ON_STDIN,
    BackgroundStore,
    Git,
    blob_id,
    dot_git_identity,
    nul_list,
    same_object,
)
from .guard import RunGuard
from .journal import (
    JOURNAL_PATH,
    carry_out,
    journal_of,
    read_journal,
    remove_journal,
    run_record,
    steps_of,
    undo,
    write_journal,
)
from .paths import STATE_PATH, encode_desired
from .state import ScopeState, State, canonical_meta, check_scope, meta_of, parse_state, sha256
from .update import FileChange, TreeUpdate, unproven


class GitOpsRepo:
    """A GitOps repository on disk that meshstage writes into, scope by scope."""

    def __init__(self, root: str | Path, hooks: bool = False) -> None:
        self.root = Path(root).expanduser().resolve()
        self.git = Git(self.root)
        self.hooks = hooks  # run the repository's git hooks when committing
        self._kill = KillSwitch()
        self.guard = RunGuard(self.root, self.git, self._kill, self.exists)
        # The sha256 of the contents whose blobs this object's writes stored in git's object
        # database (``apply``): the commit does not store them a second time.
        self._stored: set[str] = set()
        # the blobs of the last write still being stored (``apply``), with their sha256: the
        # commit waits for them only where it needs them
        self._storing: tuple[BackgroundStore, list[str]] | None = None
        # the ``.git`` through which ``exists`` last found ``root`` the top of a work tree
        self._top: tuple[int, int] | None = None
        # what the last write put in each file (path -> sha256, the text the update holds,
        # and the bytes written: its UTF-8), and the session it wrote in: the commit of that
        # session stages them without reading them back or encoding them again
        self._written: tuple[int | None, dict[str, tuple[str, str, bytes]]] = (None, {})
        # git's status of the tracked files, taken while the last write wrote (its session,
        # the process, the paths the write touched): ``_tracked_changes``
        self._status_meanwhile: tuple[int | None, subprocess.Popen[bytes],
                                      frozenset[str]] | None = None

    @property
    def notes(self) -> list[str]:
        """What completing an interrupted run did, for the run's warnings."""
        return self.guard.notes

    def session(self, purpose: str, write: bool = True) -> contextlib.AbstractContextManager[None]:
        """Hold the repository for one run (``RunGuard.session``)."""
        return self.guard.session(purpose, write)

    def branch_for(self, scope: str, recorded: str | None, declared: str) -> str:
        """The branch this run writes ``scope`` on (``RunGuard.branch_for``)."""
        return self.guard.branch_for(scope, recorded, declared)

    # ---- reading

    def exists(self) -> bool:
        """True when ``root`` is the top of a git work tree (not merely inside another one)."""
        if not self.root.is_dir():
            return False
        marker = dot_git_identity(self.root)  # asked of git once while .git stays the same
        if marker is not None and marker == self._top:
            return True
        result = self.git.run(["rev-parse", "--show-toplevel"])
        if result.returncode != 0:
            return False
        top = git_text(result.stdout).strip()
        found = bool(top) and os.path.samefile(top, self.root)
        self._top = marker if found else None
        return found

    def owned(self, scope: str | None = None) -> dict[str, str]:
        """Owned path -> sha256 of what meshstage wrote, for ``scope`` or every scope."""
        state = self._load_state()
        if scope is None:
            return dict(sorted(state.shas().items()))
        return dict(state.scope(scope).files)

    def scope_meta(self, scope: str) -> dict[str, Any]:
        """The metadata recorded for ``scope``; ``{}`` when the scope is unknown."""
        return canonical_meta(self._load_state().scope(scope).meta)

    def all_scope_meta(self) -> dict[str, dict[str, Any]]:
        """Scope -> its recorded metadata, every scope."""
        state = self._load_state()
        return {name: canonical_meta(entry.meta) for name, entry in sorted(state.scopes.items())}

    # ---- plan

    def read_owned_meanwhile(self, scope: str) -> OwnedRead | None:
        """``scope``'s owned files read ahead of ``plan`` on the second core
        (``disk.OwnedRead``), from ``READ_AHEAD_AT`` of them; None below that, or when the
        state file cannot be read (``plan`` then says why)."""
        try:
            files = self.owned(scope)
        except MeshstageError:
            return None
        return OwnedRead(self.root, scope, files) if len(files) >= READ_AHEAD_AT else None

    def plan(self, scope: str, desired: Mapping[str, str], meta: Mapping[str, Any],
             read_ahead: OwnedRead | None = None) -> TreeUpdate:
        """Compare ``desired`` (path -> text) with the disk; read only, never write.
        ``read_ahead``: ``read_owned_meanwhile(scope)``, started earlier in the session.

        Raises ``GitOpsError`` naming every offending file (see the module docstring).
        """
        check_scope(scope)
        if self._root_kind() == "foreign":
            raise GitOpsError(_foreign_root_message(self.root))
        state = self._trusted_state()
        before = state.scope(scope)
        wanted, problems = encode_desired(desired)
        shas = {path: sha256(data) for path, data in wanted.items()}
        if read_ahead is not None and (read_ahead.root != self.root
                                       or read_ahead.scope != scope):
            read_ahead = None
        owners = state.owners()
        changes: list[FileChange] = []
        parents: dict[str, str | None] = {}
        for path in sorted(set(wanted) | set(before.files)):
            if read_ahead is not None and shas.get(path) == before.files.get(path) \
                    and read_ahead.as_recorded(path, before.files[path]):
                continue  # the run leaves it as it is, and the disk holds it as recorded
            # a wanted file's text is the desired text itself: its bytes are that text
            # encoded strictly, so decoding them would give the same text as a copy
            if path in before.files:
                change, problem = self._plan_owned(
                    path, before.files[path], wanted.get(path),
                    desired[path] if path in wanted else None, parents)
            else:
                change, problem = self._plan_new(path, wanted[path], desired[path], scope,
                                                 owners.get(path), parents)
            if problem:
                problems.append(problem)
            elif change:
                changes.append(change)
        problems += self._unproven(changes, before.files)
        if problems:
            raise GitOpsError(self._problems_message(problems))
        after = ScopeState(shas, meta_of(meta))
        encoded = {change.path: wanted[change.path] for change in changes
                   if change.action != "remove"}
        return TreeUpdate(scope, tuple(changes), state_after=after, state_before=before,
                          encoded=encoded)

    def _trusted_state(self) -> State:
        """The state file, when it is the one meshstage committed (``HEAD``'s) or the one an
        unfinished write of meshstage left (its journal's); otherwise it was changed by hand
        and nothing it records is trusted: ``GitOpsError``."""
        state = self._load_state()
        data, _problem = read_disk(self.root, STATE_PATH)
        journal = read_journal(self.root) if self.exists() else None
        if journal is not None:
            if journal.is_after(data):
                return state
            raise GitOpsError(
                f"GitOps repository {self.root}: a meshstage run was interrupted while writing "
                f"({journal.describe()}); the next run that writes finishes it by itself")
        committed = self.git.head_object_id(STATE_PATH) if self.exists() else None
        if data is None and committed is not None:
            raise GitOpsError(
                f"GitOps repository {self.root}: {STATE_PATH} was deleted by hand; it is "
                "meshstage's record of the files it owns: restore it (git checkout -- "
                f"{STATE_PATH}) and run again")
        if not same_object(committed, data):
            raise GitOpsError(
                f"GitOps repository {self.root}: {STATE_PATH} is not the one meshstage "
                f"committed{'' if committed else ' (HEAD has none)'} and no interrupted run "
                "of meshstage explains it: it was changed by hand, and meshstage trusts only "
                "its own record of the files it owns. Restore it (git checkout -- "
                f"{STATE_PATH}{'' if committed else ', or remove it'}) and run again.")
        return state

    def _unproven(self, changes: Sequence[FileChange], recorded: Mapping[str, str]) -> list[str]:
        """Files the plan would overwrite or remove whose record meshstage committed, but
        not the file as recorded (``update.unproven``)."""
        touched = [change.path for change in changes if change.action != "add"]
        if not touched or not self.git.has_head():
            return []
        return unproven(changes, recorded, self._head_state().shas(),
                        self.git.head_object_ids(touched))

    def _plan_owned(
        self, path: str, recorded: str, wanted: bytes | None, text: str | None,
        parents: dict[str, str | None] | None = None,
    ) -> tuple[FileChange | None, str | None]:
        """A path this scope owns: unchanged, changed, removed, or touched by hand."""
        current, problem = read_disk(self.root, path, parents)
        if problem:
            return None, f"{path}: {problem}; meshstage owns it and will not touch it"
        if current is None:
            return None, (
                f"{path} was deleted by hand since meshstage wrote it; "
                f"restore it (git checkout -- {path}) or commit the deletion elsewhere"
            )
        if sha256(current) != recorded:
            return None, (
                f"{path} was changed by hand since meshstage wrote it; "
                "commit it elsewhere or revert it"
            )
        if wanted is None:
            return FileChange(path, "remove", shown_text(current), None), None
        if wanted == current:
            return None, None
        return FileChange(path, "change", shown_text(current), text), None

    def _plan_new(
        self, path: str, wanted: bytes, text: str, scope: str, owner: str | None,
        parents: dict[str, str | None] | None = None,
    ) -> tuple[FileChange | None, str | None]:
        """A desired path this scope does not own yet: it must be free."""
        if owner is not None:
            return None, f"{path} is owned by scope {owner!r}, not {scope!r}"
        current, problem = read_disk(self.root, path, parents)
        if problem:
            return None, f"{path}: {problem}"
        if current is not None:
            return None, (
                f"{path} exists but is not owned by meshstage (a file you wrote); "
                "meshstage never overwrites it: move or remove it"
            )
        return FileChange(path, "add", None, text), None

    # ---- apply

    def apply(self, updates: TreeUpdate | Sequence[TreeUpdate]) -> None:
        """Write ``updates`` as one transaction: the journal, removals, files, the state file.

        Writes nothing at all when no update changes anything. Re-checks first that the
        repository still is as ``plan`` saw it, and raises ``GitOpsError`` (writing nothing)
        when it is not. Creates the repository (``git init -b main``) when needed. A write
        that fails part-way is put back as it was; one that is killed is completed by the
        next run (``journal.py``). The journal stays until ``commit`` has recorded the state.
        """
        changed = [u for u in ([updates] if isinstance(updates, TreeUpdate) else updates)
                   if u.changed]
        if not changed:
            return
        for update in changed:
            check_scope(update.scope)
        kind = self._root_kind()
        if kind == "foreign":
            raise GitOpsError(_foreign_root_message(self.root))
        with self.session(f"writing {', '.join(u.scope for u in changed)}"):
            state = self._load_state()
            for update in changed:
                self._recheck(update, state)
            if kind in ("missing", "empty"):
                self._init()
            before, _problem = read_disk(self.root, STATE_PATH)
            state_after = self._after_state(changed, state).render()
            journal = journal_of(changed, before, state_after,
                                 run_record([u.scope for u in changed], self.git.branch()),
                                 temporary_tag())
            write_journal(self.root, journal)
            self._kill.reach("journal")
            removals, writes = steps_of(journal)
            # the commit's blobs, stored by git on another core while the files are written
            # and the commit reads what it stages (``_settle_store``)
            self._settle_store()
            store = self.git.store_blobs_meanwhile(
                [data for _path, data in writes] if len(writes) >= PACK_AT else ()).start()
            if kind == "repo":  # git's status while the files are written, for the commit
                self._start_status(changed)
            try:
                carry_out(self.root, removals, writes, state_after, self._kill.reach,
                          journal.tag, settle=self.git.checks_inodes())
            except GitOpsError as error:
                store.wait()
                self._reap_status()
                undo(self.root, journal, error,
                     journal.is_before(self.git.head_bytes(STATE_PATH)))
            except BaseException:
                store.wait()
                self._reap_status()
                raise
            after = self._after_state(changed, state)
            shas = after.shas()  # the state after records each written file's sha256
            self._storing = (store, [shas[path] for path, _data in writes if path in shas])
            data_of = dict(writes)
            self._written = (self.guard.current, {
                change.path: (shas[change.path], change.after, data_of[change.path])
                for update in changed for change in update.changes
                if change.after is not None and change.path in shas
                and change.path in data_of})
            _remember_state(state_after, after)

    def _settle_store(self) -> None:
        """Wait for the blobs the last write stored beside it (``apply``); when git stored
        all of them, the commit does not store them again."""
        if self._storing is None:
            return
        store, shas = self._storing
        self._storing = None
        if store.wait():
            self._stored.update(shas)

    def _after_state(self, updates: Sequence[TreeUpdate], state: State) -> State:
        for update in updates:
            state = state.with_scope(update.scope, update.state_after)
        return state

    def _recheck(self, update: TreeUpdate, state: State) -> None:
        """Raise unless the state and every file to touch are as ``plan`` saw them."""
        problems: list[str] = []
        if state.scope(update.scope) != update.state_before:
            problems.append(
                f"{STATE_PATH}: the state of scope {update.scope!r} changed since plan; plan again"
            )
        owners = state.owners()
        parents: dict[str, str | None] = {}
        for change in update.changes:
            current, problem = read_disk(self.root, change.path, parents)
            if change.action == "add":
                moved = problem or current is not None or change.path in owners
                expected = "absent"
            else:
                recorded = update.state_before.files.get(change.path)
                moved = problem or current is None or sha256(current) != recorded
                expected = "as meshstage wrote it"
            if moved:
                problems.append(
                    f"{change.path} changed since plan (expected {expected}); plan again"
                )
        if problems:
            raise GitOpsError(self._problems_message(problems))

    def _init(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise GitOpsError(
                f"cannot create the GitOps repository {self.root}: {error}"
            ) from error
        self.git.check("init", "-q", "-b", "main")
        self.guard.take_lock()

    # ---- commit

    def commit(self, message: str | Callable[[list[FileChange]], str]) -> str | None:
        """Stage and commit meshstage's pending changes; the new commit's sha, or None.

        ``message`` is the commit message, or a function that writes it from the changes
        actually committed (each file against ``HEAD``, the state file left out), so the
        message is right even when it commits what an interrupted run left behind. The
        function is called on a thread while git stages the files (``_Foretold``), and
        again from git's status when that names other changes: its value must depend on the
        changes alone, and the commit takes the last call's.

        The paths are derived from the repository, not from memory: every owned path (every
        scope) plus the paths owned in ``HEAD``'s state but not any more (removals), plus the
        state file. So a commit left over by an interrupted run is picked up by the next one.
        An owned file is read again unless it is committed as recorded already: the same
        sha256 in ``HEAD``'s record, and nothing git's status names (``_committed_as_recorded``);
        or unless this session's write put it there (``apply``, the repository held since).

        Already-staged user changes: the commit is *limited* to meshstage's paths
        (``git commit --only -- <paths>``), so whatever else the user staged stays staged and
        is not part of meshstage's commit. On meshstage's own paths, where a limited commit
        would replace the user's staged content, meshstage refuses instead (``GitOpsError``)
        when the index holds content that is neither ``HEAD``'s nor the file on disk.
        Files are staged by path (``git update-index --add --remove``, never the whole tree,
        and only those whose content or mode in the index differs): untracked user files stay
        untracked. The paths reach git on stdin, never on the command line, and thousands of
        new files are first written to the object database as one pack (``git fast-import``)
        rather than one loose object each.
        """
        if not self.exists():
            self._settle_store()
            return None
        with self.session("committing"):
            try:
                sha = self._commit(message)
            finally:
                self._settle_store()
            if os.path.lexists(self.root / JOURNAL_PATH):
                state, _problem = read_disk(self.root, STATE_PATH)
                if self.git.head_holds(STATE_PATH, state):
                    remove_journal(self.root)  # the write is recorded: the transaction ends
            return sha

    def _commit(self, message: str | Callable[[list[FileChange]], str]) -> str | None:
        has_head = self.git.has_head()
        if has_head:
            moved = self._tracked_changes()
        else:
            moved = None
            self._reap_status()
        if moved is not None and not moved and self._state_file_is_heads():
            return None  # nothing to commit for sure: a no-op reads no owned file again
        recorded = self._load_state().shas()
        committed = (self._head_state() if has_head else State()).shas()
        index = self.git.index_entries()
        to_add, texts = self._paths_to_add(
            recorded, has_head, self._committed_as_recorded(recorded, committed, index, moved))
        to_remove = [
            path
            for path in sorted(set(committed) - set(recorded))
            if not os.path.lexists(self.root / path)
        ]
        state_bytes, _problem = read_disk(self.root, STATE_PATH)
        if state_bytes is not None:
            to_add[STATE_PATH] = state_bytes
        paths = [*to_add, *to_remove]
        if not paths:
            return None
        self._refuse_foreign_staging(paths, moved)
        # a path the index does not hold is staged without hashing its bytes here
        updates = [path for path, data in to_add.items()
                   if (entry := index.get(path)) is None
                   or entry != (FILE_MODE_ENTRY, blob_id(data, index))]
        self._settle_store()  # what the write stored meanwhile, now that it is needed
        unstored = [path for path in updates if recorded.get(path) not in self._stored]
        if len(unstored) >= PACK_AT:
            self.git.store_blobs(to_add[path] for path in unstored)
        updates += [path for path in to_remove if path in index]
        # the message is written on a thread while git stages, from the changes the record
        # foretells; taken only when git's status shows those changes (``_Foretold``)
        foretold = _Foretold(self, message, recorded, committed, to_add, texts, to_remove) \
            if callable(message) and updates else None
        try:
            if updates:
                self.git.check("update-index", "--add", "--remove", "-z", "--stdin",
                               input=nul_list(updates))
            staged_anywhere = self.git.staged_status()
        except BaseException:
            if foretold is not None:
                foretold.drop()
            raise
        wanted = set(paths)
        staged = [name for name in staged_anywhere if name in wanted]
        told = foretold.message(staged, staged_anywhere) if foretold is not None else None
        self._kill.reach("staged")
        if not staged:
            return None
        if told is not None:
            message = told
        elif callable(message):
            message = message(self._committed_changes(staged, staged_anywhere, to_add, texts))
        # Limited to meshstage's paths when the user staged something else; when the index
        # holds only meshstage's changes, committing the index is the same commit.
        only = () if len(staged) == len(staged_anywhere) else ("--only", *PATHS_ON_STDIN)
        with tempfile.TemporaryDirectory(prefix="meshstage-commit-") as temp:
            message_file = Path(temp) / "message"
            message_file.write_text(message, encoding="utf-8")
            hooks = () if self.hooks else ("core.hooksPath=/dev/null",)
            self.git.check("commit", "-q", "-F", str(message_file), *only,
                           input=nul_list(staged) if only else None,
                           config=[*self.git.identity(), *hooks])
        self._kill.reach("committed")
        return git_text(self.git.check("rev-parse", "HEAD").stdout).strip()

    def _state_file_is_heads(self) -> bool:
        """Whether the state file on disk is the one ``HEAD`` holds."""
        state_bytes, problem = read_disk(self.root, STATE_PATH)
        return not problem and state_bytes is not None and \
            self.git.head_holds(STATE_PATH, state_bytes)

    def _start_status(self, updates: Sequence[TreeUpdate]) -> None:
        """Start git's status of the tracked files (``_tracked_changes``) in the background,
        before ``apply`` writes ``updates``: the commit after the write takes it instead of
        waiting for a status of its own. The files the write touches are left to the write:
        the status names them as the write touches them (``_WRITTEN``)."""
        self._reap_status()
        process = self.git.start(_STATUS)
        if process is not None:
            touched = frozenset({STATE_PATH, *(change.path for update in updates
                                              for change in update.changes)})
            self._status_meanwhile = (self.guard.current, process, touched)

    def _reap_status(self) -> None:
        if self._status_meanwhile is not None:
            self._status_meanwhile[1].communicate()
            self._status_meanwhile = None

    def _tracked_changes(self) -> dict[str, str] | None:
        """Every tracked path whose file or index entry is not ``HEAD``'s (git's status of
        the tracked files: staged, modified, deleted, its mode changed), with its two status
        letters (the index against ``HEAD``, the file against the index; ``git status
        --porcelain``), or None when git cannot tell. A path it does not name is, on disk and
        in the index, what ``HEAD`` holds (git compares a file's content wherever its stat
        data cannot tell).

        The status this session's write started (``_start_status``) is taken when there is
        one: the write touched no tracked path but its own (no file, a directory only once
        empty, and the journal is untracked), so the paths it did not touch are as git saw
        them, and each path it touched is named, with its index's letter and ``_WRITTEN``
        for the file's."""
        early, self._status_meanwhile = self._status_meanwhile, None
        if early is not None:
            session, process, touched = early
            output, _ = process.communicate()
            if session == self.guard.current and process.returncode == 0:
                found = _status_letters(output)
                for path in touched:
                    found[path] = found.get(path, " ")[0] + _WRITTEN
                return found
        # --no-optional-locks: a status only reads; it never rewrites the index
        status = self.git.run(_STATUS)
        if status.returncode != 0:
            return None
        return _status_letters(status.stdout)

    @staticmethod
    def _committed_as_recorded(recorded: Mapping[str, str], committed: Mapping[str, str],
                               index: Mapping[str, tuple[str, str]],
                               moved: Mapping[str, str] | None) -> frozenset[str]:
        """Owned paths the commit need not read again: recorded with the same sha256 in the
        state file (``recorded``) and in ``HEAD``'s (``committed``), in the index, and named
        by no status (``moved``).

        Such a file is, on disk and in the index, what ``HEAD`` holds, and every commit
        meshstage makes holds each owned path as recorded (``_paths_to_add`` stages a file
        only when its bytes are the record's, and keeps ``HEAD``'s only when that is the
        record's). So it is the record's, or a hand edit the user committed themself,
        which is the user's to keep: staging it would change nothing either way. A run
        reads again only what it wrote, what an interrupted run left, and what git sees
        changed; at 5,000 services the commit of a third environment no longer reads the
        other two's 46,000 files."""
        if moved is None:
            return frozenset()
        return frozenset(path for path, sha in recorded.items()
                         if committed.get(path) == sha and path in index and path not in moved)

    def _committed_changes(self, staged: Sequence[str], status: Mapping[str, str],
                           staged_bytes: Mapping[str, bytes],
                           staged_texts: Mapping[str, str]) -> list[FileChange]:
        """The staged files (not the state file) as changes against ``HEAD``.

        ``status`` is git's status letter of each staged path (only a path that is not
        ``A``dded has bytes in ``HEAD`` to read); ``staged_bytes`` what was just staged, and
        ``staged_texts`` the text of those this session wrote (the same text, not decoded
        again into a copy of its own).
        """
        paths = sorted(path for path in staged if path != STATE_PATH)
        blobs = self.git.head_blobs([path for path in paths if status.get(path) != "A"])
        changes = []
        for path in paths:
            blob = blobs.get(path)
            before = shown_text(blob) if blob is not None else None
            after = staged_texts.get(path)  # the text this session wrote: not decoded again
            if after is None:
                current = staged_bytes.get(path)
                if current is None:
                    current, _problem = read_disk(self.root, path)
                after = shown_text(current) if current is not None else None
            action: Literal["add", "change", "remove"] = (
                "add" if before is None else "remove" if after is None else "change")
            changes.append(FileChange(path, action, before, after))
        return changes

    def _paths_to_add(self, recorded: Mapping[str, str], has_head: bool,
                      settled: frozenset[str] = frozenset(),
                      ) -> tuple[dict[str, bytes], dict[str, str]]:
        """Owned paths to stage, with their bytes: those whose disk bytes are what meshstage
        wrote (``recorded``: every scope's path -> sha256); and the text of each of them this
        session wrote (the bytes are its encoding), which the message reads. ``settled``
        paths are committed as recorded already (``_committed_as_recorded``) and are not
        read, nor are those this session wrote with the bytes recorded: their bytes are the
        write's own (``git update-index`` reads each file to stage it in any case).

        An owned file changed by hand *after* meshstage's version was committed is the user's
        own edit and is left alone; one changed before it was committed would be committed as
        meshstage's, so that is an error.
        """
        paths: dict[str, bytes] = {}
        texts: dict[str, str] = {}
        parents: dict[str, str | None] = {}
        session, written = self._written
        if session is None or session != self.guard.current:
            written = {}  # written in another session: read back like any file
        for path, sha in sorted(recorded.items()):
            if path in settled:
                continue
            mine = written.get(path)
            if mine is not None and mine[0] == sha:
                # this session wrote it, holding the repository (``planned_bytes``'s bytes)
                paths[path] = mine[2]
                texts[path] = mine[1]
                continue
            current, _problem = read_disk(self.root, path, parents)
            if current is not None and sha256(current) == sha:
                paths[path] = current
            elif not (has_head and self._head_sha256(path) == sha):
                raise GitOpsError(
                    f"{path} was changed by hand after meshstage wrote it and before it was "
                    "committed; commit it elsewhere or revert it"
                )
        return paths, texts

    def _refuse_foreign_staging(self, paths: Sequence[str],
                                moved: Mapping[str, str] | None = None) -> None:
        """Raise when the index holds, for one of ``paths``, content meshstage did not write:
        a change staged (the index is not ``HEAD``'s) and the file not what is staged.
        ``moved`` is the status this commit took (``_tracked_changes``), whose two letters
        say both; without one, git is asked for each (``git diff --cached``, ``git diff``).
        Nothing writes the index between that status and this check: the repository is held."""
        wanted = set(paths)
        # a path this session wrote over a change staged already: whether the file is what is
        # staged, only git's diff can say now
        if moved is not None and not any(letters[1] == _WRITTEN and letters[0] != " "
                                         for path, letters in moved.items() if path in wanted):
            foreign = sorted(path for path, letters in moved.items()
                             if path in wanted and letters[0] != " " and letters[1] != " ")
        else:
            staged = set(self.git.staged(paths))
            unstaged = set(self.git.names("diff", *DIFF_NAMES)) & wanted
            foreign = sorted(staged & unstaged)
        if foreign:
            listed = ", ".join(foreign)
            raise GitOpsError(
                f"{listed}: the index holds staged changes meshstage did not make; "
                f"commit or unstage them first (git restore --staged -- {listed})"
            )

    def _head_state(self) -> State:
        data = self.git.head_bytes(STATE_PATH)
        return State() if data is None else self._parsed_state(data, f"HEAD:{STATE_PATH}")

    def _head_sha256(self, path: str) -> str | None:
        data = self.git.head_bytes(path)
        return sha256(data) if data is not None else None

    # ---- helpers

    def _root_kind(self) -> Literal["missing", "empty", "repo", "foreign"]:
        """What ``root`` is: absent, an empty directory, our git repository, or anything else."""
        if not os.path.lexists(self.root):
            return "missing"
        if not self.root.is_dir():
            return "foreign"
        if self.exists():
            return "repo"
        if os.path.lexists(self.root / ".git"):
            detail = git_text(self.git.run(["rev-parse", "--show-toplevel"]).stderr).strip()
            raise GitOpsError(f"{self.root} has a .git that git cannot use: {detail}")
        return "foreign" if any(self.root.iterdir()) else "empty"

    def _load_state(self) -> State:
        if os.path.lexists(self.root) and not self.root.is_dir():
            raise GitOpsError(_foreign_root_message(self.root))
        data, problem = read_disk(self.root, STATE_PATH)
        if problem:
            raise GitOpsError(f"{STATE_PATH}: {problem}")
        return State() if data is None else self._parsed_state(data, STATE_PATH)

    def _parsed_state(self, data: bytes, where: str) -> State:
        state = _PARSED_STATES.get(data)
        if state is None:
            state = parse_state(data, where)  # raises naming ``where``
            _remember_state(data, state)
        return state

    def _problems_message(self, problems: list[str]) -> str:
        if len(problems) == 1:
            return f"GitOps repository {self.root}: {problems[0]}"
        lines = "\n".join(f"  - {problem}" for problem in problems)
        return f"GitOps repository {self.root}: {len(problems)} problem(s):\n{lines}"


# Parsed state files by their exact bytes, for every GitOpsRepo of the process (the run's,
# and the flow proof's, which reads what the repository owns): parsing is a pure function
# of the bytes, and a State is immutable. The files are read fresh from disk each time; only
# the parsing of the same bytes is done once (a few tenths of a second at 5,000 services).
_PARSED_STATES: dict[bytes, State] = {}


class _Foretold:
    """A commit's message, written on a thread (``ThreadedCall``) while git stages the files:
    from the changes the state files foretell, each staged path against ``HEAD``. A path of
    ``to_add`` differs from ``HEAD`` when ``HEAD``'s record (``committed``) has another
    sha256 for it than the one recorded now, and is added when ``HEAD`` records none; a path
    of ``to_remove`` is removed. ``message`` gives the text only when git's status names
    exactly those paths, each added or not as foretold: then the changes are the ones
    ``_committed_changes`` makes of git's status (the same bytes of ``HEAD`` and of the
    disk), and so is the text. Otherwise, or when the thread failed, it gives None and the
    caller writes the message from git's status, as without it."""

    def __init__(self, repo: GitOpsRepo, message: Callable[[list[FileChange]], str],
                 recorded: Mapping[str, str], committed: Mapping[str, str],
                 to_add: Mapping[str, bytes], texts: Mapping[str, str],
                 to_remove: Sequence[str]) -> None:

        def foretell() -> tuple[list[str], dict[str, str], str]:
            staged = sorted([
                *(path for path in to_add
                  if path != STATE_PATH and committed.get(path) != recorded.get(path)),
                *(path for path in to_remove if path in committed)])
            status = {path: "M" if path in committed else "A" for path in staged}
            return staged, status, message(repo._committed_changes(staged, status, to_add,
                                                                   texts))

        self._call = ThreadedCall(foretell)

    def message(self, staged: Sequence[str], status: Mapping[str, str]) -> str | None:
        """The message, when git staged what was foretold; else None."""
        try:
            foretold, kinds, text = self._call.result()
        except Exception:  # the caller writes it again, and meets the error itself
            return None
        if sorted(path for path in staged if path != STATE_PATH) != foretold \
                or any((status.get(path) == "A") != (kind == "A") for path, kind in kinds.items()):
            return None
        return text

    def drop(self) -> None:
        """Wait for the thread, whatever it gives: the commit failed."""
        with contextlib.suppress(Exception):
            self._call.result()


# ``git status`` of the tracked files, read-only, as ``_tracked_changes`` reads it
_STATUS = ["--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=no",
           "--ignore-submodules=none", "--no-renames"]
# the second status letter of a path this session's write touched (``_tracked_changes``)
_WRITTEN = "W"


def _status_letters(output: bytes) -> dict[str, str]:
    """Path -> its two letters, from ``git status --porcelain=v1 -z``."""
    return {entry[3:]: entry[:2] for entry in git_text(output).split("\0") if entry}


def _remember_state(data: bytes, state: State) -> None:
    if len(_PARSED_STATES) >= 4:
        _PARSED_STATES.clear()
    _PARSED_STATES[data] = state


def _foreign_root_message(root: Path) -> str:
    if not root.is_dir():
        return (f"{root} is a file, not a directory: the GitOps repository (mesh_gitops_dir) "
                "must be a directory, a git repository or one to create")
    return (
        f"{root} exists and is not an empty directory nor a git repository of its own; "
        "meshstage does not take over a directory with other content"
    )


