"""A run's write as one transaction: ``.meshstage/journal.json``, beside the state file, holds
everything the run is about to write (each file before and after, the state file before and
after), on disk before the first file is touched, and is removed once the write is committed.

A run that finds a journal knows a run was interrupted, and which files are its own: a file
that holds its version before or after the write is the interrupted run's; anything else was
changed by hand since. ``converge`` carries the write forward (a later run completes it) or
back (a run whose write failed undoes it), touching only the interrupted run's files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write
from ..errors import GitOpsError
from .disk import FILE_MODE, prune_empty_dirs, read_disk, remove_temporaries, write_files_atomic
from .paths import STATE_PATH, path_problem
from .update import TreeUpdate, planned_bytes

JOURNAL_PATH = ".meshstage/journal.json"
JOURNAL_VERSION = 1


@dataclass(frozen=True)
class JournalEntry:
    """One file of the write: its bytes before and after (None: absent)."""

    path: str
    before: bytes | None
    after: bytes | None


@dataclass(frozen=True)
class Journal:
    """The whole write of one run, and who the run was."""

    entries: tuple[JournalEntry, ...]
    state_before: bytes | None
    state_after: bytes
    run: Mapping[str, Any] = field(default_factory=dict)

    def render(self) -> bytes:
        document = {
            "version": JOURNAL_VERSION,
            "run": dict(self.run),
            "state": {"before": _text(self.state_before), "after": _text(self.state_after)},
            "files": [{"path": e.path, "before": _text(e.before), "after": _text(e.after)}
                      for e in self.entries],
        }
        # no indent: json's C encoder (with one, it is the Python one, ten times slower on
        # the megabytes of a large write); ASCII escapes, its fastest path (a third faster
        # than UTF-8 on a large write), which also carries a byte that is not UTF-8 (a
        # surrogate escape) back as itself
        return (json.dumps(document) + "\n").encode("ascii")

    def paths(self) -> list[str]:
        """Every path the write touches, the state file and the journal included."""
        return [*(entry.path for entry in self.entries), STATE_PATH, JOURNAL_PATH]

    def describe(self) -> str:
        """The interrupted run, as a user reads it."""
        run = self.run
        return (f"pid {run.get('pid')} on {run.get('host')}, writing "
                f"{', '.join(run.get('scopes') or ()) or 'the repository'}, "
                f"started {run.get('started')}")


def run_record(scopes: Sequence[str], branch: str | None) -> dict[str, Any]:
    """Who writes: the process, the host, the scopes, the branch, when."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "scopes": list(scopes),
            "branch": branch,
            "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _text(data: bytes | None) -> str | None:
    # meshstage writes UTF-8 text only (paths.encode_desired): every side is text
    return None if data is None else data.decode("utf-8", errors="surrogateescape")


def _bytes(value: object, where: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise GitOpsError(f"{where} is not a meshstage journal: a file's content is not text")
    return value.encode("utf-8", errors="surrogateescape")


def journal_of(updates: Sequence[TreeUpdate], state_before: bytes | None, state_after: bytes,
               run: Mapping[str, Any]) -> Journal:
    """The transaction of ``updates``: every file before and after, the state file too."""
    entries = []
    for update in updates:
        planned = planned_bytes(update)
        for change in update.changes:
            before = None if change.before is None else change.before.encode("utf-8")
            entries.append(JournalEntry(change.path, before, planned.get(change.path)))
    return Journal(tuple(entries), state_before, state_after, run)


def undo(root: Path, journal: Journal, error: GitOpsError) -> None:
    """After a failed write: put every file back as it was, or say the next run will
    complete it; always raises."""
    try:
        converge(root, journal, forward=False)
        remove_journal(root)
    except GitOpsError:
        raise GitOpsError(f"{error}\nThe write stopped part-way; the next run completes it by "
                          "itself once the cause is fixed.") from error
    raise GitOpsError(f"{error}\nNothing was changed: the files written before the failure "
                      "were put back as they were.") from error


def read_journal(root: Path) -> Journal | None:
    """The journal of an unfinished write, or None."""
    data, problem = read_disk(root, JOURNAL_PATH)
    if problem:
        raise GitOpsError(f"{JOURNAL_PATH}: {problem}")
    return None if data is None else parse_journal(data)


def parse_journal(data: bytes) -> Journal:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise GitOpsError(f"{JOURNAL_PATH} is not valid JSON ({error}); it is not a journal "
                          "meshstage wrote") from error
    if not isinstance(document, dict) or document.get("version") != JOURNAL_VERSION \
            or not isinstance(document.get("state"), dict) \
            or not isinstance(document.get("files"), list):
        raise GitOpsError(f"{JOURNAL_PATH} is not a meshstage journal of version "
                          f"{JOURNAL_VERSION}")
    entries = tuple(_entry(item) for item in document["files"])
    after = _bytes(document["state"].get("after"), JOURNAL_PATH)
    if after is None:
        raise GitOpsError(f"{JOURNAL_PATH} records no state after the write")
    run = document.get("run")
    return Journal(entries, _bytes(document["state"].get("before"), JOURNAL_PATH), after,
                   run if isinstance(run, dict) else {})


def _entry(item: object) -> JournalEntry:
    path = item.get("path") if isinstance(item, dict) else None
    problem = path_problem(path)
    if problem or not isinstance(item, dict) or not isinstance(path, str):
        raise GitOpsError(f"{JOURNAL_PATH}: the path {path!r} {problem or 'is not valid'}")
    return JournalEntry(path, _bytes(item.get("before"), JOURNAL_PATH),
                        _bytes(item.get("after"), JOURNAL_PATH))


def write_journal(root: Path, journal: Journal) -> None:
    """The journal, on disk (file and directory entry) before anything else is written."""
    try:
        atomic_write(root / JOURNAL_PATH, journal.render(), FILE_MODE)
    except OSError as error:
        raise GitOpsError(f"{JOURNAL_PATH}: cannot write it in {root}: {error}") from error


def remove_journal(root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(root / JOURNAL_PATH)


@dataclass
class _Steps:
    """What is left to do to bring the files to one side of the write."""

    removals: list[str] = field(default_factory=list)
    writes: list[tuple[str, bytes]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def pending_steps(root: Path, journal: Journal, forward: bool) -> _Steps:
    """Compare each file with both sides of the write; a file on neither side was touched by
    hand since the run was interrupted, and is a problem."""
    steps = _Steps()
    parents: dict[str, str | None] = {}
    for entry in journal.entries:
        want, other = (entry.after, entry.before) if forward else (entry.before, entry.after)
        current, problem = read_disk(root, entry.path, parents)
        if problem:
            steps.problems.append(f"{entry.path}: {problem}")
        elif current == want:
            continue
        elif current != other:
            steps.problems.append(
                f"{entry.path} was changed by hand after the run was interrupted (it is "
                "neither meshstage's version before the run nor the one after it)")
        elif want is None:
            steps.removals.append(entry.path)
        else:
            steps.writes.append((entry.path, want))
    state, problem = read_disk(root, STATE_PATH)
    if problem or state not in (journal.state_before, journal.state_after):
        steps.problems.append(f"{STATE_PATH} was changed by hand after the run was interrupted")
    return steps


def converge(root: Path, journal: Journal, forward: bool,
             step: Callable[[str], None] | None = None) -> None:
    """Bring every file of the write to its version after it (``forward``) or before it,
    then the state file; remove the temporary files a kill left. Raises ``GitOpsError``,
    writing nothing, when a file is on neither side."""
    steps = pending_steps(root, journal, forward)
    if steps.problems:
        lines = "\n".join(f"  - {problem}" for problem in steps.problems)
        raise GitOpsError(
            f"GitOps repository {root}: a meshstage run was interrupted while writing "
            f"({journal.describe()}); meshstage completes such a write by itself, but "
            f"{len(steps.problems)} file(s) changed since:\n{lines}\n"
            "Put each back as meshstage left it (git checkout -- <path>, or remove a file "
            "meshstage was adding) and run again.")
    remove_temporaries(root, journal.paths())
    carry_out(root, steps.removals, steps.writes,
              journal.state_after if forward else journal.state_before, step)


def carry_out(root: Path, removals: Sequence[str], writes: Sequence[tuple[str, bytes]],
              state: bytes | None, step: Callable[[str], None] | None = None) -> None:
    """Remove, write (atomically, in batches), then write the state file last."""
    reach = step or _nothing
    for path in removals:
        try:
            (root / path).unlink()
        except FileNotFoundError:
            pass
        except OSError as error:
            raise GitOpsError(f"{path}: cannot remove it from {root}: {error}") from error
        prune_empty_dirs(root, path)
        reach("removed")
    write_files_atomic(root, writes, reach)
    reach("files")
    current, _problem = read_disk(root, STATE_PATH)
    if current == state:
        return
    try:
        if state is None:
            os.unlink(root / STATE_PATH)
        else:
            atomic_write(root / STATE_PATH, state, FILE_MODE)
    except OSError as error:
        raise GitOpsError(f"{STATE_PATH}: cannot write it in {root}: {error}") from error
    reach("state")


def steps_of(journal: Journal) -> tuple[list[str], list[tuple[str, bytes]]]:
    """A journal's removals and writes, for a write that starts from its side before."""
    removals = [entry.path for entry in journal.entries if entry.after is None]
    writes = sorted((entry.path, entry.after) for entry in journal.entries
                    if entry.after is not None)
    return removals, writes


def _nothing(_point: str) -> None:
    return None
