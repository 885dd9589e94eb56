"""Reading and writing the GitOps repository's files: never following a symlink or blocking on
a FIFO, each file written atomically, the file system flushed once per write."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from .._fork import ForkedCall, ThreadedCall
from .._io import (
    fsync_directory,
    tagged_name,
    temporary_tag,
    write_tagged_temporary,
    write_temporary,
)
from ..errors import GitOpsError
from .state import sha256

FILE_MODE = 0o644

# From this many files, a write creates and renames them on two threads (``_in_two``)
THREADED_AT = 2000

_T = TypeVar("_T")


_PARENT_IS_DIRECTORY = ""


def read_disk(
    root: Path, path: str, parents: dict[str, str | None] | None = None
) -> tuple[bytes | None, str | None]:
    """The bytes at ``root/path`` (None when absent), or a problem: symlink, directory, ...

    ``parents``, given for one scan of many files, remembers what each parent directory was
    found to be, so a directory shared by thousands of files is inspected once per scan.
    """
    top = str(root)
    end = path.find("/")
    while end != -1:
        prefix = path[:end]
        if parents is not None and prefix in parents:
            verdict = parents[prefix]
        else:
            verdict = _parent_verdict(root, prefix)
            if parents is not None:
                parents[prefix] = verdict
        if verdict is None:
            return None, None
        if verdict != _PARENT_IS_DIRECTORY:
            return None, verdict
        end = path.find("/", end + 1)
    target = f"{top}/{path}"
    try:
        info = os.lstat(target)
        if stat.S_ISLNK(info.st_mode):
            return None, "is a symlink"
        if not stat.S_ISREG(info.st_mode):
            return None, "is not a regular file"
        return _read_file(target, info.st_size), None
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"cannot read it: {error}"


# From this many owned files, a run reads them ahead of its plan (``OwnedRead``)
READ_AHEAD_AT = 2000


class OwnedRead:
    """The files one scope owns, read and hashed by ``read_disk`` in a forked child on the
    second core (``_fork.ForkedCall``) while the run renders, before ``GitOpsRepo.plan``
    reads them: which of them hold the bytes recorded for them (``recorded``: path ->
    sha256). ``plan`` then does not read again a file that holds them and that the run
    leaves as it is; every other file (absent, changed by hand, in a problem, or one the run
    changes or removes) it reads itself, as it did before.

    The run holds the repository's lock from before this read to its end, and ``apply``
    reads every file it touches again (``_recheck``), as after any plan. Where no fork is
    possible, or the child fails, the read is the caller's, when ``plan`` first asks."""

    def __init__(self, root: Path, scope: str, recorded: Mapping[str, str]) -> None:
        self.root = root
        self.scope = scope
        self._recorded = dict(recorded)
        self._call = ForkedCall(functools.partial(_not_as_recorded, root, self._recorded),
                                freeze=False)
        self._differ: frozenset[str] | None = None

    def as_recorded(self, path: str, sha: str) -> bool:
        """Whether ``path`` was read holding the bytes whose sha256 is ``sha``, recorded."""
        if self._differ is None:
            self._differ = self._call.result()
        return self._recorded.get(path) == sha and path not in self._differ

    def cancel(self) -> None:
        """Stop the child, if it still reads (the run failed before its plan)."""
        self._call.cancel()


def _not_as_recorded(root: Path, recorded: Mapping[str, str]) -> frozenset[str]:
    """The paths of ``recorded`` whose file does not hold the bytes recorded (absent, in a
    problem, or other bytes): few or none, so little goes back through the pipe."""
    parents: dict[str, str | None] = {}
    differ = []
    for path, sha in recorded.items():
        current, problem = read_disk(root, path, parents)
        if problem or current is None or sha256(current) != sha:
            differ.append(path)
    return frozenset(differ)


# Never follow a symlink swapped in since lstat, never block on a FIFO swapped in.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _read_file(target: str, size: int) -> bytes:
    """Every byte of a regular file, read to its end (``size`` is what lstat saw)."""
    fd = os.open(target, _READ_FLAGS)
    try:
        first = os.read(fd, size + 1)
        # a regular file's read stops short only at its end: one read for a file as lstat
        # saw it (a short read for another reason could only make the file look changed
        # by hand, a refusal, never a write)
        if len(first) <= size:
            return first
        chunks = [first]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 16))
    finally:
        os.close(fd)
    return b"".join(chunks)


def _parent_verdict(root: Path, parent: str) -> str | None:
    """A parent directory (relative to ``root``) on the way to a file: fine (""), absent
    (None), or a problem."""
    try:
        mode = os.lstat(f"{root}/{parent}").st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"cannot inspect {parent}: {error}"
    if stat.S_ISLNK(mode):
        return f"its parent {parent} is a symlink"
    if not stat.S_ISDIR(mode):
        return f"its parent {parent} is not a directory"
    return _PARENT_IS_DIRECTORY


def tagged_temporary(path: str, tag: str) -> str:
    """The temporary file ``write_files_atomic`` writes ``path``'s bytes to, tagged ``tag``
    (``_io.write_tagged_temporary``), relative to the repository as ``path`` is."""
    parent, _, name = path.rpartition("/")
    return f"{parent}/{tagged_name(name, tag)}" if parent else tagged_name(name, tag)


def put_in_place(root: Path, renames: Sequence[tuple[str, str]],
                 step: Callable[[str], None] | None = None) -> None:
    """Rename each temporary file over its path (both relative to ``root``), once the
    temporary files are flushed to disk; the renames flushed at the end."""
    if not renames:
        return
    reach = step or _nothing
    try:
        if _syncfs_function() is not None:
            _syncfs(root)
        else:
            for temporary, _path in renames:
                fsync_file(root / temporary)
        for temporary, path in renames:
            os.replace(root / temporary, root / path)
            reach("renamed")
    except OSError as error:
        raise GitOpsError(f"cannot put the written files in place in {root}: {error}") \
            from error
    _flush_renames(root, {str((root / path).parent) for _temporary, path in renames})


def _flush_renames(root: Path, directories: set[str]) -> None:
    """Make the renames into ``directories`` durable, best effort (as ``fsync_directory``):
    one ``syncfs`` where the platform has it, which commits every directory's changes at
    once (2,500 directories of a 5,000-service environment: 0.5 s of fsyncs, 0.04 s),
    else an fsync of each directory."""
    if _syncfs_function() is not None:
        with contextlib.suppress(OSError):
            _syncfs(root)
            return
    for directory in sorted(directories):
        fsync_directory(Path(directory))


def fsync_file(target: Path) -> None:
    """Flush one file's bytes to disk (never through a symlink)."""
    fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_files_atomic(root: Path, files: Sequence[tuple[str, bytes]],
                       step: Callable[[str], None] | None = None,
                       tag: str | None = None, settle: bool = False) -> None:
    """Write many files atomically, flushing the file system once, not once per file.

    Each file is written to a temporary file in its own directory, which replaces the target
    (``os.replace``) only once its bytes are on disk: after one ``syncfs`` of every
    temporary file where the platform has it (the idea of git's ``core.fsyncMethod=batch``),
    else after an ``fsync`` of the file. A second ``syncfs`` (else an fsync of each directory
    written into) makes the renames durable. A kill before the renames leaves temporary files,
    which the next run puts in place or removes (``journal.converge``). The temporary files
    are ``.<name>.<tag>.tmp``, with the write's journal's ``tag`` (a new one when None).
    Raises ``GitOpsError`` naming the file that failed. ``step`` is told of each temporary
    file written and each rename (the fault hook). From ``THREADED_AT`` files, the files
    are created, and then renamed, half on a second thread (``_in_two``). ``settle`` gives
    each file the mtime of the second before the write (``settled_times``).
    """
    reach = step or _nothing
    flush_once = _syncfs_function() is not None
    tag = tag or temporary_tag()
    top = str(root)
    times = settled_times() if settle else None
    # what each step did so far, on either thread (appending is atomic under the GIL)
    written: list[tuple[str, str, str]] = []  # path, target, its temporary file
    renamed: set[str] = set()  # the temporary files put in place

    def create(part: Sequence[tuple[str, bytes]]) -> None:
        made: set[str] = set()  # one mkdir per directory, not one per file
        for path, data in part:
            parent, _, name = path.rpartition("/")
            directory = f"{top}/{parent}" if parent else top
            try:
                if directory not in made:
                    os.makedirs(directory, exist_ok=True)
                    made.add(directory)
                temp = write_tagged_temporary(directory, name, data, FILE_MODE, tag, times) \
                    if flush_once else str(write_temporary(Path(directory, name), data,
                                                           FILE_MODE))
            except OSError as error:
                raise GitOpsError(f"{path}: cannot write it in {root}: {error}") from error
            written.append((path, f"{directory}/{name}", temp))
            reach("temporary")

    def rename(part: Sequence[tuple[str, str, str]]) -> None:
        for path, target, temp in part:
            try:
                os.replace(temp, target)
            except OSError as error:
                raise GitOpsError(f"{path}: cannot write it in {root}: {error}") from error
            renamed.add(temp)
            reach("renamed")

    try:
        _in_two(create, files)
        if flush_once and written:
            try:
                _syncfs(root)
            except OSError as error:
                raise GitOpsError(
                    f"cannot flush the written files to disk in {root}: {error}") from error
        _in_two(rename, sorted(written))
    finally:
        for _path, _target, temp in written:
            if temp not in renamed:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
    _flush_renames(root, {target.rpartition("/")[0] for _path, target, _temp in written})


def settled_times() -> tuple[int, int]:
    """The access and modification times (ns) a write gives its files: now, and the start of
    the second before this one.

    git tells a file from its index entry by its stat data, except where the file's mtime is
    not older than the index itself (to the second, in a git built without ``USE_NSEC``, as
    Debian's): such an entry is "racily clean", and git reads and hashes the file again on
    every status, ``update-index`` and commit until an index is written a second later
    (https://git-scm.com/docs/racy-git). meshstage writes thousands of files and commits them
    within the same second, so every git command of the run, and the next environment's,
    hashed them all again: at 1,000 services 0.03 s to 0.04 s in each commit and as much in
    each ``update-index``. A file whose mtime is the second before its write is older than
    any index written after it; a later change of it (by hand: now; by meshstage: a new
    file renamed over it, with a new inode) is still told from its entry. Not where git
    compares only the whole-second mtime and the size (``core.checkStat=minimal``, no inode):
    there two writes of a file in one second, of one size, would look the same to git, and
    its racy check is what tells them apart (``Git.checks_inodes``)."""
    now = time.time_ns()
    return now, (now // 1_000_000_000 - 1) * 1_000_000_000


def _in_two(work: Callable[[Sequence[_T]], None], items: Sequence[_T]) -> None:
    """``work`` over ``items``; from ``THREADED_AT`` items, the second half on a thread of its
    own (``ThreadedCall``) while this one does the first. Creating and renaming a file is
    nearly all system calls, which run without the GIL, so the kernel's work goes on two
    cores: 26,500 files of a 5,000-service environment were created in 0.36 s to 0.42 s
    instead of 0.54 s to 0.57 s. Both halves run to their end (or their first error); this
    thread's error is raised first, then the other's."""
    if len(items) < THREADED_AT:
        work(items)
        return
    half = len(items) // 2
    second = ThreadedCall(functools.partial(work, items[half:]))
    try:
        work(items[:half])
    except BaseException:
        with contextlib.suppress(BaseException):  # this thread's error is the one raised
            second.result()
        raise
    second.result()


def _nothing(_point: str) -> None:
    return None


# The temporary files of ``_io.write_temporary`` and ``write_tagged_temporary``:
# ``.<name>.<8 random characters>.tmp``.
_TEMPORARY = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")


def remove_temporaries(root: Path, paths: Iterable[str], keep: Iterable[str] = ()) -> int:
    """Remove the temporary files a killed write of ``paths`` left beside them, except those
    in ``keep`` (relative to ``root``); how many.

    Only names of the form ``_io.write_temporary`` gives a temporary file of one of these
    very paths are removed: never another file of the directory."""
    by_directory: dict[str, set[str]] = {}
    for path in paths:
        directory, _, name = path.rpartition("/")
        by_directory.setdefault(directory, set()).add(name)
    kept = {str(root / path) for path in keep}
    removed = 0
    for directory, names in sorted(by_directory.items()):
        removed += _remove_temporaries_in(root / directory if directory else root, names, kept)
    return removed


def _remove_temporaries_in(directory: Path, names: set[str], kept: set[str]) -> int:
    try:
        entries = [entry.name for entry in os.scandir(directory)]
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry)
        if match is not None and match.group(1) in names and str(directory / entry) not in kept:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / entry)
                removed += 1
    return removed


@functools.cache
def _syncfs_function() -> Callable[[int], int] | None:
    """``syncfs(2)`` from the C library (Linux), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def _syncfs(directory: Path) -> None:
    """Flush every written file of the file system that holds ``directory`` to disk."""
    function = _syncfs_function()
    assert function is not None
    fd = os.open(directory, os.O_RDONLY)
    try:
        if function(fd) != 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))
    finally:
        os.close(fd)


def prune_empty_dirs(root: Path, path: str) -> None:
    """Remove the directories a removal left empty, from the file's parent up to the root."""
    directory = (root / path).parent
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()  # fails unless empty: a user's file keeps the directory
        except OSError:
            return
        directory = directory.parent


def shown_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def git_text(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")
