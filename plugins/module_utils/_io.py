"""Private helper: the one atomic write of meshstage. A file is either its old bytes or its new
ones, never half written, and a failure leaves no temporary file behind.

Standard library only: the modules that run on the hosts (``envoy_config``,
``mesh_certificate``) ship it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_temporary(target: Path, data: bytes, mode: int, *, fsync: bool = True) -> Path:
    """``data`` in a new temporary file beside ``target`` (same directory, so a rename is
    atomic), with ``mode``, on disk when ``fsync``; its path. Removed again on failure."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return Path(temp)


def atomic_write(target: Path, data: bytes | str, mode: int = 0o644, *, fsync: bool = True,
                 make_dirs: bool = True) -> None:
    """Replace ``target`` with ``data`` atomically: a temporary file beside it, ``mode``, on
    disk (``fsync``), then renamed over it and the rename made durable. Watchers of the file
    (Envoy's SDS, LDS and CDS) see one move. Raises ``OSError``; nothing is left behind."""
    if make_dirs:
        target.parent.mkdir(parents=True, exist_ok=True)
    temp = write_temporary(target, data.encode("utf-8") if isinstance(data, str) else data,
                           mode, fsync=fsync)
    try:
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if fsync:
        fsync_directory(target.parent)


def fsync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` durable; best effort where directories cannot be
    opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
