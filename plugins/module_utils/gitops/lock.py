"""One writer per GitOps repository: an exclusive ``flock`` on a file in the git directory,
held for a whole run and released by the kernel when the run ends, even when it is killed.
The holder writes who it is into the file, so the run that loses says which run holds it."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
from pathlib import Path

from ..errors import GitOpsError

# In the git directory (never in the work tree: git status does not show it, a clone does
# not carry it).
LOCK_NAME = "meshstage-lock"


class RunLock:
    """The lock of one repository, taken once by a run (``acquire``) and given back at its
    end (``release``)."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, purpose: str) -> None:
        """Take the lock at once or raise ``GitOpsError`` naming the run that holds it."""
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as error:
            raise GitOpsError(f"cannot open the run lock {self.path}: {error}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise GitOpsError(
                f"another meshstage run holds the GitOps repository {self.root} ({holder}); "
                "wait for it to end and run again (a run that is killed releases it by itself)"
            ) from None
        _describe(fd, purpose)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _describe(fd: int, purpose: str) -> None:
    """Write who holds the lock into the lock file (best effort: the lock is the flock)."""
    record = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
              "since": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record, sort_keys=True) + "\n").encode(), 0)


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return "a run that has not said who it is yet"
    if not isinstance(record, dict):
        return "a run that has not said who it is yet"
    return (f"pid {record.get('pid')} on {record.get('host')}, {record.get('purpose')}, "
            f"since {record.get('since')}")
