"""Git, as meshstage runs it in the GitOps repository: in a clean environment (never another
repository's variables), reading ``HEAD`` and the index in batches, and with a fallback
identity where the user has set none."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from ..errors import GitOpsError
from .disk import git_text

FALLBACK_NAME = "meshstage"
FALLBACK_EMAIL = "meshstage@localhost"

# Variables that would point git at another repository, index or work tree than ours.
_GIT_ENV_DROP = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
)


# Operations git leaves half-done in the git directory: what is in progress, how to end it.
_IN_PROGRESS = (
    ("MERGE_HEAD", "a merge", "git merge --continue, or git merge --abort"),
    ("rebase-merge", "a rebase", "git rebase --continue, or git rebase --abort"),
    ("rebase-apply", "a rebase or git am", "git rebase --continue or git am --continue, "
     "or their --abort"),
    ("CHERRY_PICK_HEAD", "a cherry-pick", "git cherry-pick --continue, or git cherry-pick "
     "--abort"),
    ("REVERT_HEAD", "a revert", "git revert --continue, or git revert --abort"),
)


# --------------------------------------------------------------------------- the repository

DIFF_NAMES = ("--name-only", "-z", "--no-renames", "--no-ext-diff")
PATHS_ON_STDIN = ("--pathspec-from-file=-", "--pathspec-file-nul")
FILE_MODE_ENTRY = "100644"  # a regular file as git's index records FILE_MODE
# From this many files to stage, their blobs go into the object database as one pack.
PACK_AT = 100


def nul_list(paths: Sequence[str]) -> bytes:
    return b"".join(path.encode("utf-8", errors="surrogateescape") + b"\0" for path in paths)


# --------------------------------------------------------------------------- pure helpers


# git compresses each object it writes (a blob of ``fast-import``, a tree of ``commit``)
# with a zlib stream of its own, whose state (about 256 KB in pieces under glibc's mmap
# threshold) comes from the heap and goes back to it. With glibc's default trim threshold the
# heap's top is given back to the kernel after each object and taken again for the next, so
# every object's state is faulted in and zeroed anew: 25,000 blobs took ``git fast-import``
# 1.2 s, three quarters of it in brk and in memset's page faults (perf); with the top kept,
# 0.17 s. The threshold is glibc's ``M_TRIM_THRESHOLD`` (mallopt(3):
# "MALLOC_TRIM_THRESHOLD_"); another C library ignores the variable, and a value the user
# set is kept.
_GIT_TRIM_THRESHOLD = str(64 << 20)


def git_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _GIT_ENV_DROP}
    env.update(LC_ALL="C", GIT_LITERAL_PATHSPECS="1", GIT_TERMINAL_PROMPT="0")
    env.setdefault("MALLOC_TRIM_THRESHOLD_", _GIT_TRIM_THRESHOLD)
    return env


class Git:
    """git in one repository's work tree."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # the git directory found, with the identity of the ``.git`` it was found through
        self._git_dir: tuple[tuple[int, int], Path] | None = None

    def staged(self, paths: Sequence[str]) -> list[str]:
        """Which of ``paths`` the index holds changes for, against ``HEAD``."""
        wanted = set(paths)
        return [name for name in self.staged_status() if name in wanted]

    def staged_status(self) -> dict[str, str]:
        """Every path the index holds a change for, against ``HEAD``: its status letter
        (``A`` added, ``D`` deleted, ``M`` modified, ...)."""
        fields = self.names("diff", "--cached", "--name-status", *DIFF_NAMES[1:])
        return dict(zip(fields[1::2], fields[0::2], strict=True))

    def index_entries(self) -> dict[str, tuple[str, str]]:
        """Path -> (mode, object id) of every merged entry of the index."""
        entries: dict[str, tuple[str, str]] = {}
        for record in git_text(self.check("ls-files", "-s", "-z").stdout).split("\0"):
            info, tab, name = record.partition("\t")
            mode, _, rest = info.partition(" ")
            object_id, _, stage = rest.partition(" ")
            if tab and stage == "0":
                entries[name] = (mode, object_id)
        return entries

    def store_blobs(self, blobs: Iterable[bytes]) -> None:
        """Write ``blobs`` into the object database as one pack, not one file each."""
        self.check("fast-import", "--quiet", "--done", input=_fast_import_stream(blobs))

    def store_blobs_meanwhile(self, blobs: Sequence[bytes]) -> BackgroundStore:
        """``store_blobs`` in the background, while the caller goes on (``BackgroundStore``)."""
        return BackgroundStore(self.root, blobs)

    def head_object_ids(self, paths: Sequence[str]) -> dict[str, str]:
        """Path -> git's object id in ``HEAD``, for each of ``paths`` that ``HEAD`` holds:
        one ``git cat-file --batch-check`` given the paths on stdin, not the whole tree
        listed (``ls-tree -r`` of 70,000 files took 0.1 s to ask for one)."""
        if not paths or not self.has_head():
            return {}
        request = "".join(f"HEAD:{path}\n" for path in paths).encode()
        lines = git_text(self.check("cat-file", "--batch-check", input=request).stdout)
        ids: dict[str, str] = {}
        for path, line in zip(paths, lines.splitlines(), strict=True):
            fields = line.split(" ")  # "<id> <type> <size>", or "HEAD:<path> missing"
            if fields[-1] not in ("missing", "ambiguous") and len(fields) == 3:
                ids[path] = fields[0]
        return ids

    def head_blobs(self, paths: Sequence[str]) -> dict[str, bytes | None]:
        """Each path's bytes in ``HEAD`` (None where absent), read by one ``git cat-file``."""
        if not paths or not self.has_head():
            return dict.fromkeys(paths)
        request = "".join(f"HEAD:{path}\n" for path in paths).encode()
        argv = ["git", "-C", str(self.root), "cat-file", "--batch"]
        try:
            result = subprocess.run(argv, input=request, capture_output=True, env=git_env(),
                                    check=False)
        except OSError as error:
            raise GitOpsError(f"cannot run git: {error}") from error
        if result.returncode != 0:
            raise GitOpsError(f"git cat-file failed in {self.root}: "
                              f"{git_text(result.stderr).strip()}")
        blobs: dict[str, bytes | None] = {}
        output, offset = result.stdout, 0
        for path in paths:
            end = output.index(b"\n", offset)
            header = output[offset:end].split(b" ")
            offset = end + 1
            if header[-1] == b"missing" or len(header) != 3:
                blobs[path] = None
                continue
            size = int(header[2])
            blobs[path] = output[offset:offset + size]
            offset += size + 1
        return blobs

    def identity(self) -> list[str]:
        """``key=value`` settings for the fallback identity, each part the user has not set."""
        return [
            f"{key}={fallback}"
            for key, fallback in (("user.name", FALLBACK_NAME), ("user.email", FALLBACK_EMAIL))
            if self.run(["config", key]).returncode != 0
        ]

    def git_dir(self) -> Path:
        """The repository's git directory (a linked worktree's own one). Asked of git once
        while ``root/.git`` stays the same file or directory (a run asks several times)."""
        marker = dot_git_identity(self.root)
        if marker is not None and self._git_dir is not None and self._git_dir[0] == marker:
            return self._git_dir[1]
        found = Path(git_text(self.check("rev-parse", "--absolute-git-dir").stdout).strip())
        self._git_dir = (marker, found) if marker is not None else None
        return found

    def branch(self) -> str | None:
        """The branch ``HEAD`` is on (also before its first commit); None when detached."""
        result = self.run(["symbolic-ref", "--short", "-q", "HEAD"])
        if result.returncode != 0:
            return None
        return git_text(result.stdout).strip() or None

    def unfinished_operation(self) -> str | None:
        """Why the work tree may not be written now: a merge, rebase, cherry-pick or revert in
        progress, or a detached ``HEAD``, with what to do; None when it may."""
        git_dir = self.git_dir()
        for name, operation, advice in _IN_PROGRESS:
            if os.path.lexists(git_dir / name):
                return (f"{operation} is in progress in {self.root}; meshstage writes nothing "
                        f"until it is finished or aborted ({advice})")
        if self.branch() is None:
            at = git_text(self.run(["rev-parse", "--short", "HEAD"]).stdout).strip()
            return (f"HEAD is detached in {self.root} (at {at or 'no commit'}); meshstage "
                    "commits onto a branch: switch to the environment's branch first "
                    "(git switch <branch>)")
        return None

    def checks_inodes(self) -> bool:
        """Whether git tells a file from its index entry by its inode too (the default),
        not only by its whole-second mtime and its size (``core.checkStat=minimal``)."""
        result = self.run(["config", "--get", "core.checkStat"])
        return git_text(result.stdout).strip().lower() != "minimal"

    def has_head(self) -> bool:
        return self.run(["rev-parse", "--verify", "-q", "HEAD"]).returncode == 0

    def head_bytes(self, path: str) -> bytes | None:
        """The bytes of ``path`` in ``HEAD``; None where ``HEAD`` has no such file."""
        result = self.run(["cat-file", "blob", f"HEAD:{path}"])
        return result.stdout if result.returncode == 0 else None

    def head_object_id(self, path: str) -> str | None:
        """Git's object id of ``path`` in ``HEAD``; None where ``HEAD`` has nothing there."""
        result = self.run(["rev-parse", "--verify", "-q", f"HEAD:{path}"])
        return (git_text(result.stdout).strip() or None) if result.returncode == 0 else None

    def head_holds(self, path: str, data: bytes | None) -> bool:
        """Whether ``HEAD``'s file at ``path`` is ``data`` byte for byte (None: neither has
        one). Compared by git's object id, so the file is not read out of git: the state file
        of 5,000 services is megabytes, asked for several times a run."""
        return same_object(self.head_object_id(path), data)

    def names(self, *args: str) -> list[str]:
        """The NUL-separated path names a git command prints."""
        output = git_text(self.check(*args).stdout)
        return [name for name in output.split("\0") if name]

    def check(self, *args: str, config: Sequence[str] = (),
             input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run git in ``root``; raise ``GitOpsError`` with git's stderr when it fails."""
        result = self.run(list(args), config, input)
        if result.returncode != 0:
            detail = git_text(result.stderr).strip() or f"exit status {result.returncode}"
            raise GitOpsError(f"git {args[0]} failed in {self.root}: {detail}")
        return result

    def start(self, args: list[str]) -> subprocess.Popen[bytes] | None:
        """git ``args`` started in ``root`` with a clean environment, its output piped, while
        the caller goes on; None when git cannot be started (the caller runs it again)."""
        try:
            return subprocess.Popen(["git", "-C", str(self.root), *args], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env=git_env())
        except OSError:
            return None

    def run(
        self, args: list[str], config: Sequence[str] = (), input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run git in ``root`` with a clean environment; never raises on git's exit status.

        ``config`` holds ``key=value`` settings passed as ``git -c key=value``; ``input`` is
        git's stdin.
        """
        options = [option for setting in config for option in ("-c", setting)]
        argv = ["git", *options, "-C", str(self.root), *args]
        try:
            return subprocess.run(argv, input=input, capture_output=True, env=git_env(),
                                  check=False)
        except OSError as error:
            raise GitOpsError(f"cannot run git: {error}") from error


def dot_git_identity(root: Path) -> tuple[int, int] | None:
    """The device and inode of ``root/.git`` (a repository's directory, or a linked
    worktree's file); None when there is none. What git found through it stays true while
    it is the same one."""
    try:
        status = os.lstat(root / ".git")
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _fast_import_stream(blobs: Iterable[bytes]) -> bytes:
    """``git fast-import``'s input that stores each of ``blobs`` (and nothing else)."""
    return b"".join(b"blob\ndata %d\n%s\n" % (len(data), data) for data in blobs) + b"done\n"


class BackgroundStore:
    """Blobs written into the object database as one pack by a ``git fast-import`` that runs
    beside the caller: git compresses them on another core while the caller writes the same
    bytes to the work tree, so a commit finds them stored. ``start`` starts it, ``wait``
    waits for it and says whether every blob is in the object database (``stored``); as a
    context manager, leaving it waits. A failure is not raised: the commit stores what is
    missing itself, and reports git's error then. With no blobs nothing is started."""

    def __init__(self, root: Path, blobs: Sequence[bytes]) -> None:
        self.root = root
        self.blobs = blobs
        self.stored = False
        self._process: subprocess.Popen[bytes] | None = None
        self._feeder: threading.Thread | None = None

    def start(self) -> BackgroundStore:
        if not self.blobs:
            return self
        stream = _fast_import_stream(self.blobs)
        try:
            process = subprocess.Popen(
                ["git", "-C", str(self.root), "fast-import", "--quiet", "--done"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=git_env())
        except OSError:
            return self
        self._process = process
        # one write of the whole stream: the thread waits in the kernel (without the GIL)
        # while git reads, so the caller's own work goes on meanwhile
        self._feeder = threading.Thread(target=_feed, args=(process, stream), daemon=True,
                                        name="meshstage-fast-import")
        self._feeder.start()
        return self

    def wait(self) -> bool:
        if self._process is not None and self._feeder is not None:
            self._feeder.join()
            self.stored = self._process.wait() == 0
            self._process = self._feeder = None
        return self.stored

    def __enter__(self) -> BackgroundStore:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.wait()


def _feed(process: subprocess.Popen[bytes], stream: bytes) -> None:
    stdin = process.stdin
    assert stdin is not None
    with contextlib.suppress(OSError):  # git stopped early (BrokenPipeError): it failed
        stdin.write(stream)
    with contextlib.suppress(OSError):
        stdin.close()


def blob_id(data: bytes, index: Mapping[str, tuple[str, str]]) -> str:
    """Git's object id of a blob of ``data``, in the hash the repository's index uses."""
    sample = next(iter(index.values()), None)
    return object_id(data, sample is not None and len(sample[1]) == 64)


def same_object(committed: str | None, data: bytes | None) -> bool:
    """Whether the object ``committed`` (git's id; None: no file) is a blob of ``data``
    (None: no file), in the hash of the id."""
    if committed is None or data is None:
        return committed is None and data is None
    return committed == object_id(data, sha256=len(committed) == 64)


def object_id(data: bytes, sha256: bool = False) -> str:
    """Git's object id of a blob of ``data`` (SHA-1, or SHA-256 repositories' ids)."""
    header = b"blob %d\0" % len(data)
    if sha256:
        return hashlib.sha256(header + data).hexdigest()
    return hashlib.sha1(header + data).hexdigest()  # git's object id, not for security
