"""One run at a time in a GitOps repository, and what an interrupted run left: the lock is
taken, git's state is checked, and a write a killed run left is completed, before a run reads
anything to plan."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import GitOpsError
from .disk import read_disk, remove_temporaries, tagged_temporary
from .faults import KillSwitch
from .git import Git
from .journal import JOURNAL_PATH, Journal, converge, read_journal, settle_undone
from .lock import LOCK_NAME, RunLock
from .paths import STATE_PATH


class RunGuard:
    """The sessions of one ``GitOpsRepo``: its lock, and the recovery of interrupted runs."""

    def __init__(self, root: Path, git: Git, kill: KillSwitch,
                 exists: Callable[[], bool]) -> None:
        self.root = root
        self.exists = exists  # the root is a git repository of its own
        self.git = git
        self.kill = kill
        # what completing an interrupted run did, for the run's warnings
        self.notes: list[str] = []
        self._purpose: str | None = None  # the session in progress
        self._lock: RunLock | None = None
        self._sessions = 0  # outermost sessions begun (``current``)

    @contextlib.contextmanager
    def session(self, purpose: str, write: bool = True) -> Iterator[None]:
        """Hold the repository for one run: its lock, then git's state checked, then the
        write an interrupted run left completed (``write``) or refused (a read-only run).
        Re-entrant; the lock is given back when the outermost session ends."""
        if self._purpose is not None:
            yield
            return
        self._purpose = purpose
        self._sessions += 1
        try:
            if self.take_lock():
                problem = self.git.unfinished_operation()
                if problem:
                    raise GitOpsError(problem)
                self._recover(write)
            yield
        finally:
            self._purpose = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    @property
    def current(self) -> int | None:
        """The number of the session in progress (each outermost session has its own), or
        None between sessions."""
        return self._sessions if self._purpose is not None else None

    def take_lock(self) -> bool:
        """Take the lock once the repository exists; False while it does not."""
        if self._purpose is None or not self.exists():
            return False
        if self._lock is None:
            self._lock = RunLock(self.git.git_dir() / LOCK_NAME, self.root)
            self._lock.acquire(self._purpose)
        return True

    def _recover(self, write: bool) -> None:
        """Complete the write of an interrupted run, or refuse when this run may not write."""
        remove_temporaries(self.root, [JOURNAL_PATH])
        journal = read_journal(self.root)
        # a killed atomic write's leftovers, but not the write's own state after: going
        # forward puts it in place (``journal.carry_out``)
        remove_temporaries(self.root, [STATE_PATH], keep=[
            tagged_temporary(STATE_PATH, journal.tag)] if journal and journal.tag else [])
        if journal is None:
            return
        state, _problem = read_disk(self.root, STATE_PATH)
        self._remove_stale_git_locks(journal)
        if journal.is_after(state):
            return  # written (the state file is written last), waiting for its commit
        if not write:
            raise GitOpsError(
                f"GitOps repository {self.root}: a meshstage run was interrupted while writing "
                f"({journal.describe()}); the next run that writes (without --check) "
                "finishes it by itself, and then this one can be previewed")
        branch, recorded = self.git.branch(), journal.run.get("branch")
        if recorded and branch != recorded:
            raise GitOpsError(
                f"GitOps repository {self.root}: a meshstage run was interrupted while writing "
                f"on branch {recorded} ({journal.describe()}), and the repository is now on "
                f"{branch or 'a detached HEAD'}: switch back (git switch {recorded}) so "
                "meshstage can complete it")
        if converge(self.root, journal, forward=True, step=self.kill.reach):
            self.notes.append(f"completed the write of an interrupted meshstage run "
                              f"({journal.describe()}): {len(journal.entries)} file(s)")
            return
        # it stopped before its files were all on disk, and was undone
        settle_undone(self.root, journal, journal.is_before(self.git.head_bytes(STATE_PATH)))
        self.notes.append(f"undid the write of an interrupted meshstage run "
                          f"({journal.describe()}): it stopped before its "
                          f"{len(journal.entries)} file(s) were all written, and each is as "
                          "before it")

    def _remove_stale_git_locks(self, journal: Journal) -> None:
        """git's own lock files that a killed run's git left (newer than its journal)."""
        since = os.stat(self.root / JOURNAL_PATH).st_mtime
        git_dir = self.git.git_dir()
        branch = journal.run.get("branch")
        names = ["index.lock", "HEAD.lock", *([f"refs/heads/{branch}.lock"] if branch else [])]
        for name in names:
            path = git_dir / name
            with contextlib.suppress(OSError):
                if path.stat().st_mtime >= since:
                    path.unlink()
                    self.notes.append(f"removed {name}, left by the interrupted run's git")

    def branch_for(self, scope: str, recorded: str | None, declared: str) -> str:
        """The branch this run writes ``scope`` on, to be recorded with it: the one ``HEAD``
        is on. Raises ``GitOpsError`` when the scope is recorded on another branch, unless
        it is ``declared`` (``mesh_gitops.branch``, the one Argo CD and Flux sync)."""
        if not self.exists():
            return "main"  # what a new repository starts on
        current = self.git.branch()
        if current is None:
            raise GitOpsError(self.git.unfinished_operation() or "HEAD is detached")
        if recorded and current not in (recorded, declared):
            raise GitOpsError(
                f"GitOps repository {self.root} is on branch {current}, but {scope} is "
                f"recorded on branch {recorded} (and mesh_gitops.branch is {declared}); "
                f"switch back (git switch {recorded}), or set mesh_gitops.branch: {current} "
                "to move the environment to this branch on purpose")
        return current
