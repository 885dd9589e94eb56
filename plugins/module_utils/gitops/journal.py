"""A run's write as one transaction: ``.meshstage/journal.json``, beside the state file, holds
what the run is about to write (each file's bytes before and the sha256 of its bytes after,
the state file before and after, and the tag of the write's temporary files), on disk before
the first file is touched, and is removed once the write is committed.

A run that finds a journal knows a run was interrupted, and which files are its own: a file
that holds its version before or after the write is the interrupted run's; anything else was
changed by hand since. ``converge`` carries the write forward (a later run completes it, from
the temporary files the write flushed to disk before its first rename) or back (a run whose
write failed undoes it, and so does a later run when the interrupted write had not yet
written every temporary file), touching only the interrupted run's files.

The bytes after are the write's own temporary files (``.<name>.<tag>.tmp``), not a copy in
the journal: at 5,000 services a first run's journal carried each environment's 31 MB of new
files as JSON text, rendered and flushed once more beside the files themselves. From version
3 the state file is kept the same way: the journal holds the sha256 of the state file before
and after the write, and the state after is the write's temporary file of the state file,
flushed before the first file is written and put in place last (the state files of three
environments at 5,000 services came to 37 MB of the journals' 52 MB). The state before is
never written back from the journal: a write goes back only while the state file is still the
one before it (it is put in place last). Journals of versions 1 and 2, which hold the bytes
after (version 1) and the state files' texts, are still read and completed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write, fsync_directory, write_tagged_temporary
from ..errors import GitOpsError
from .disk import (
    FILE_MODE,
    fsync_file,
    prune_empty_dirs,
    put_in_place,
    read_disk,
    remove_temporaries,
    settled_times,
    tagged_temporary,
    write_files_atomic,
)
from .paths import STATE_PATH, path_problem
from .state import sha256
from .update import TreeUpdate, planned_bytes

JOURNAL_PATH = ".meshstage/journal.json"
JOURNAL_VERSION = 3
_READ_VERSIONS = (1, 2, 3)


@dataclass(frozen=True)
class JournalEntry:
    """One file of the write: its bytes before (None: absent), the sha256 of its bytes after
    (``written``; None: removed), and the bytes after where they are known (the writing run
    has them; a journal read back has them only from version 1)."""

    path: str
    before: bytes | None
    after: bytes | None
    written: str | None = None

    def __post_init__(self) -> None:
        if self.written is None and self.after is not None:
            object.__setattr__(self, "written", sha256(self.after))


@dataclass(frozen=True)
class Journal:
    """The whole write of one run, and who the run was.

    The state file before and after the write: their bytes where known (the writing run
    knows them; a journal of version 3 read back knows neither), and their sha256 (None
    before: there was no state file)."""

    entries: tuple[JournalEntry, ...]
    state_before: bytes | None
    state_after: bytes | None
    run: Mapping[str, Any] = field(default_factory=dict)
    tag: str | None = None  # of the write's temporary files (``disk.write_files_atomic``)
    before_sha256: str | None = None
    after_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.before_sha256 is None and self.state_before is not None:
            object.__setattr__(self, "before_sha256", sha256(self.state_before))
        if self.after_sha256 is None and self.state_after is not None:
            object.__setattr__(self, "after_sha256", sha256(self.state_after))
        if self.after_sha256 is None:
            raise GitOpsError(f"{JOURNAL_PATH} records no state after the write")

    def is_before(self, state: bytes | None) -> bool:
        """Whether ``state`` (the state file's bytes; None: none) is the state before."""
        return self.before_sha256 is None if state is None \
            else sha256(state) == self.before_sha256

    def is_after(self, state: bytes | None) -> bool:
        """Whether ``state`` (the state file's bytes; None: none) is the state after."""
        return state is not None and sha256(state) == self.after_sha256

    def render(self) -> bytes:
        document = {
            "version": JOURNAL_VERSION,
            "run": dict(self.run),
            "tag": self.tag,
            "state": {"before_sha256": self.before_sha256, "after_sha256": self.after_sha256},
            "files": [{"path": e.path, "before": _text(e.before), "after_sha256": e.written}
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
               run: Mapping[str, Any], tag: str | None = None) -> Journal:
    """The transaction of ``updates``: every file before and after, the state file too, and
    the tag of the temporary files the write gives the files after."""
    entries = []
    for update in updates:
        planned = planned_bytes(update)
        recorded = update.state_after.files
        for change in update.changes:
            before = None if change.before is None else change.before.encode("utf-8")
            entries.append(JournalEntry(change.path, before, planned.get(change.path),
                                        recorded.get(change.path)))
    return Journal(tuple(entries), state_before, state_after, run, tag)


def undo(root: Path, journal: Journal, error: GitOpsError, committed: bool = True) -> None:
    """After a failed write: put every file back as it was, or say the next run will
    complete it; always raises. ``committed``: whether ``HEAD`` holds the state before."""
    try:
        converge(root, journal, forward=False)
        settle_undone(root, journal, committed)
    except GitOpsError:
        raise GitOpsError(f"{error}\nThe write stopped part-way; the next run finishes it by "
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
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(document, dict) or version not in _READ_VERSIONS \
            or not isinstance(document.get("state"), dict) \
            or not isinstance(document.get("files"), list):
        raise GitOpsError(f"{JOURNAL_PATH} is not a meshstage journal of version "
                          f"{' or '.join(map(str, _READ_VERSIONS))}")
    entries = tuple(_entry(item, version) for item in document["files"])
    run, tag = document.get("run"), document.get("tag")
    if tag is not None and not (isinstance(tag, str) and _TAG.fullmatch(tag)):
        raise GitOpsError(f"{JOURNAL_PATH}: the temporary files' tag {tag!r} is not valid")
    run = run if isinstance(run, dict) else {}
    state = document["state"]
    if version < 3:  # the state files' texts
        return Journal(entries, _bytes(state.get("before"), JOURNAL_PATH),
                       _bytes(state.get("after"), JOURNAL_PATH), run, tag)
    before, after = (_sha256_or_none(state.get(key), key)
                     for key in ("before_sha256", "after_sha256"))
    return Journal(entries, None, None, run, tag, before, after)


def _sha256_or_none(value: object, key: str) -> str | None:
    if value is not None and not (isinstance(value, str) and _SHA256.fullmatch(value)):
        raise GitOpsError(f"{JOURNAL_PATH}: the state's {key} {value!r} is not a sha256")
    return value


_TAG = re.compile(r"[a-z0-9_]{8}")  # ``_io.temporary_tag``
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _entry(item: object, version: int) -> JournalEntry:
    path = item.get("path") if isinstance(item, dict) else None
    problem = path_problem(path)
    if problem or not isinstance(item, dict) or not isinstance(path, str):
        raise GitOpsError(f"{JOURNAL_PATH}: the path {path!r} {problem or 'is not valid'}")
    before = _bytes(item.get("before"), JOURNAL_PATH)
    if version == 1:
        return JournalEntry(path, before, _bytes(item.get("after"), JOURNAL_PATH))
    written = item.get("after_sha256")
    if written is not None and not (isinstance(written, str) and _SHA256.fullmatch(written)):
        raise GitOpsError(f"{JOURNAL_PATH}: {path}: after_sha256 {written!r} is not a sha256")
    return JournalEntry(path, before, None, written)


def write_journal(root: Path, journal: Journal) -> None:
    """The journal, on disk (file and directory entry) before anything else is written."""
    try:
        atomic_write(root / JOURNAL_PATH, journal.render(), FILE_MODE)
    except OSError as error:
        raise GitOpsError(f"{JOURNAL_PATH}: cannot write it in {root}: {error}") from error


def settle_undone(root: Path, journal: Journal, committed: bool) -> None:
    """The journal of a write that was undone: removed when ``HEAD`` holds the state before
    it (``committed``); else that state is the write of a run before it, still to be
    committed, and a journal of its own (no file, that state before and after) keeps it
    trusted until it is."""
    if committed or journal.before_sha256 is None:
        remove_journal(root)
    else:
        write_journal(root, Journal((), journal.state_before, journal.state_before, journal.run,
                                    None, journal.before_sha256, journal.before_sha256))


def remove_journal(root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(root / JOURNAL_PATH)


@dataclass
class _Steps:
    """What is left to do to bring the files to one side of the write."""

    removals: list[str] = field(default_factory=list)
    writes: list[tuple[str, bytes]] = field(default_factory=list)
    renames: list[tuple[str, str]] = field(default_factory=list)  # temporary file, path
    unwritten: list[str] = field(default_factory=list)  # no bytes to go forward with
    problems: list[str] = field(default_factory=list)
    # the state file: left as it is (None), or written (its bytes; None: removed), or put in
    # place from the write's temporary file of it
    state: tuple[bytes | None] | None = None
    state_from: str | None = None


def pending_steps(root: Path, journal: Journal, forward: bool) -> _Steps:
    """Compare each file with both sides of the write; a file on neither side was touched by
    hand since the run was interrupted, and is a problem. Going forward, a file's bytes after
    come from the journal (version 1) or from the write's temporary file, when it holds them
    whole; a file with neither is ``unwritten``, and the write can only go back."""
    steps = _Steps()
    parents: dict[str, str | None] = {}
    for entry in journal.entries:
        current, problem = read_disk(root, entry.path, parents)
        if problem:
            steps.problems.append(f"{entry.path}: {problem}")
            continue
        at_before = current == entry.before
        at_after = current is None if entry.written is None else \
            current is not None and sha256(current) == entry.written
        if at_after if forward else at_before:
            continue
        if not (at_before if forward else at_after):
            steps.problems.append(
                f"{entry.path} was changed by hand after the run was interrupted (it is "
                "neither meshstage's version before the run nor the one after it)")
        elif not forward:
            if entry.before is None:
                steps.removals.append(entry.path)
            else:
                steps.writes.append((entry.path, entry.before))
        elif entry.written is None:
            steps.removals.append(entry.path)
        elif entry.after is not None:
            steps.writes.append((entry.path, entry.after))
        else:
            temporary = _whole_temporary(root, journal.tag, entry, parents)
            if temporary is None:
                steps.unwritten.append(entry.path)
            else:
                steps.renames.append((temporary, entry.path))
    _state_steps(root, journal, forward, steps)
    return steps


def _state_steps(root: Path, journal: Journal, forward: bool, steps: _Steps) -> None:
    """What is left to do to the state file, into ``steps``."""
    state, problem = read_disk(root, STATE_PATH)
    if problem or not (journal.is_before(state) or journal.is_after(state)):
        steps.problems.append(f"{STATE_PATH} was changed by hand after the run was interrupted")
    elif forward and not journal.is_after(state):
        if journal.state_after is not None:
            steps.state = (journal.state_after,)
        else:
            steps.state_from = _whole_state_temporary(root, journal)
            if steps.state_from is None:
                steps.unwritten.append(STATE_PATH)
    elif not forward and not journal.is_before(state):
        if journal.state_before is not None or journal.before_sha256 is None:
            steps.state = (journal.state_before,)
        else:  # put in place last, so never while a file is still to go back: by hand
            steps.problems.append(f"{STATE_PATH} is the write's state after, and its state "
                                  "before is not kept to go back to")


def _whole_state_temporary(root: Path, journal: Journal) -> str | None:
    """The write's temporary file of the state file (its path in the repository), when it
    holds the state after whole (a journal of version 3)."""
    if journal.tag is None:
        return None
    temporary = tagged_temporary(STATE_PATH, journal.tag)
    data, problem = read_disk(root, temporary)
    return temporary if not problem and journal.is_after(data) else None


def _whole_temporary(root: Path, tag: str | None, entry: JournalEntry,
                     parents: dict[str, str | None]) -> str | None:
    """The write's temporary file of ``entry`` (its path in the repository), when it holds
    the bytes after whole."""
    if tag is None:
        return None
    temporary = tagged_temporary(entry.path, tag)
    data, problem = read_disk(root, temporary, parents)
    return temporary if not problem and data is not None and sha256(data) == entry.written \
        else None


def converge(root: Path, journal: Journal, forward: bool,
             step: Callable[[str], None] | None = None) -> bool:
    """Bring every file of the write to its version after it (``forward``) or before it,
    then the state file; remove the temporary files a kill left. Forward goes back instead
    when a file's bytes after are nowhere whole (the write was interrupted before its
    temporary files were all on disk, so no file was put in place yet). Raises
    ``GitOpsError``, writing nothing, when a file is on neither side. Whether it went
    forward."""
    steps = pending_steps(root, journal, forward)
    if forward and steps.unwritten and not steps.problems:
        forward, steps = False, pending_steps(root, journal, False)
    if steps.problems:
        lines = "\n".join(f"  - {problem}" for problem in steps.problems)
        raise GitOpsError(
            f"GitOps repository {root}: a meshstage run was interrupted while writing "
            f"({journal.describe()}); meshstage finishes such a write by itself, but "
            f"{len(steps.problems)} file(s) changed since:\n{lines}\n"
            "Put each back as meshstage left it (git checkout -- <path>, or remove a file "
            "meshstage was adding) and run again.")
    put_in_place(root, steps.renames, step)
    remove_temporaries(root, journal.paths(), keep=[steps.state_from] if steps.state_from else [])
    carry_out(root, steps.removals, steps.writes, steps.state[0] if steps.state else None, step,
              leave_state=steps.state is None and steps.state_from is None,
              state_from=steps.state_from)
    return forward


def carry_out(root: Path, removals: Sequence[str], writes: Sequence[tuple[str, bytes]],
              state: bytes | None, step: Callable[[str], None] | None = None,
              tag: str | None = None, *, leave_state: bool = False,
              state_from: str | None = None, settle: bool = False) -> None:
    """Remove, write (atomically, in batches; the temporary files tagged ``tag``), then put
    the state file in place last: ``state`` (None: no state file), from the temporary file
    ``state_from`` (relative to ``root``) when given, or left as it is (``leave_state``).

    With a ``tag``, the state after goes to its own temporary file of that tag, flushed
    before the first file is written, so a run that finds the write interrupted can put it
    in place (``converge``; the journal keeps only its sha256). ``settle``: the files are
    given the mtime of the second before the write (``disk.settled_times``)."""
    reach = step or _nothing
    current, _problem = read_disk(root, STATE_PATH)
    keep = leave_state or (state_from is None and current == state)
    flushed = False  # a state_from given may come from a run that never flushed it
    if not keep and state_from is None and state is not None and tag is not None:
        state_from, flushed = _write_state_temporary(root, state, tag, settle), True
    for path in removals:
        try:
            (root / path).unlink()
        except FileNotFoundError:
            pass
        except OSError as error:
            raise GitOpsError(f"{path}: cannot remove it from {root}: {error}") from error
        prune_empty_dirs(root, path)
        reach("removed")
    write_files_atomic(root, writes, reach, tag, settle)
    reach("files")
    if keep:
        return
    try:
        if state_from is not None:
            target = root / STATE_PATH
            if not flushed:
                fsync_file(root / state_from)
            os.replace(root / state_from, target)
            fsync_directory(target.parent)
        elif state is None:
            os.unlink(root / STATE_PATH)
        else:
            atomic_write(root / STATE_PATH, state, FILE_MODE)
    except OSError as error:
        raise GitOpsError(f"{STATE_PATH}: cannot write it in {root}: {error}") from error
    reach("state")


def _write_state_temporary(root: Path, state: bytes, tag: str, settle: bool) -> str:
    """The state after in the write's temporary file of the state file, on disk; its path
    relative to ``root``."""
    directory = root / STATE_PATH.rpartition("/")[0]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = write_tagged_temporary(str(directory), STATE_PATH.rpartition("/")[2], state,
                                         FILE_MODE, tag, settled_times() if settle else None)
        fsync_file(Path(written))
    except OSError as error:
        raise GitOpsError(f"{STATE_PATH}: cannot write it in {root}: {error}") from error
    return Path(written).relative_to(root).as_posix()


def steps_of(journal: Journal) -> tuple[list[str], list[tuple[str, bytes]]]:
    """A journal's removals and writes, for a write that starts from its side before."""
    removals = [entry.path for entry in journal.entries if entry.after is None]
    writes = sorted((entry.path, entry.after) for entry in journal.entries
                    if entry.after is not None)
    return removals, writes


def _nothing(_point: str) -> None:
    return None
