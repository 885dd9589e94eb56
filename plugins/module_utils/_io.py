"""Private helper: the one atomic write of meshstage. A file is either its old bytes or its new
ones, never half written, and a failure leaves no temporary file behind.

Standard library only: the modules that run on the hosts (``envoy_config``,
``mesh_certificate``) ship it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_temporary(target: Path, data: bytes | Callable[[BinaryIO], object], mode: int, *,
                    fsync: bool = True) -> Path:
    """``data`` in a new temporary file beside ``target`` (same directory, so a rename is
    atomic), with ``mode``, on disk when ``fsync``; its path. Removed again on failure.
    ``data`` may be a function that writes the file's bytes to the stream it is given."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return Path(temp)


# The characters of ``tempfile``'s random names, which ``write_temporary`` gives its files
_NAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
    | getattr(os, "O_CLOEXEC", 0)


def temporary_tag() -> str:
    """Eight random characters for the temporary files of one write of many files
    (``write_tagged_temporary``): names of the same form as ``write_temporary``'s."""
    return "".join(secrets.choice(_NAME_CHARACTERS) for _ in range(8))


def tagged_name(name: str, tag: str) -> str:
    """The name of ``name``'s temporary file in a write tagged ``tag``
    (``write_tagged_temporary``)."""
    return f".{name}.{tag}.tmp"


def write_tagged_temporary(directory: str, name: str, data: bytes, mode: int,
                           tag: str, times_ns: tuple[int, int] | None = None) -> str:
    """``data`` in the new temporary file ``directory/.<name>.<tag>.tmp``, with ``mode``, not
    flushed (the caller flushes the whole write at once); its path.

    One ``tag`` serves a whole write: ``name`` is unique in its directory, so the temporary
    name is too, and creating it exclusively (``O_EXCL``, no symlink followed) never touches
    anything else. Should that name exist all the same, ``write_temporary`` picks one. A
    file and a syscall fewer than ``write_temporary`` each (no buffered file object, no
    name tried at random), which is most of the cost of a file on a fast disk. ``times_ns``,
    when given, are the file's access and modification times (``os.utime``)."""
    temp = f"{directory}/{tagged_name(name, tag)}"
    try:
        fd = os.open(temp, _CREATE, 0o600)
    except FileExistsError:
        return str(write_temporary(Path(directory, name), data, mode, fsync=False))
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if times_ns is not None:
            os.utime(fd, ns=times_ns)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    os.close(fd)
    return temp


def atomic_write(target: Path, data: bytes | str, mode: int = 0o644, *, fsync: bool = True,
                 make_dirs: bool = True) -> None:
    """Replace ``target`` with ``data`` atomically: a temporary file beside it, ``mode``, on
    disk (``fsync``), then renamed over it and the rename made durable. Watchers of the file
    (Envoy's SDS, LDS and CDS) see one move. Raises ``OSError``; nothing is left behind."""
    if make_dirs:
        target.parent.mkdir(parents=True, exist_ok=True)
    temp = write_temporary(target, data.encode("utf-8") if isinstance(data, str) else data,
                           mode, fsync=fsync)
    put_temporary(temp, target)
    if fsync:
        fsync_directory(target.parent)


def put_temporary(temp: Path, target: Path) -> None:
    """Rename the temporary file ``temp`` over ``target``; when that fails, ``temp`` is
    removed and the error raised (``OSError``): nothing is left behind."""
    try:
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


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
