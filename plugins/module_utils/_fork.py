"""Private helper: one function run on the second core, in a forked child, while the caller
goes on with other work; the result as if the caller had run it. (``ThreadedCall``, at the
end, is the same on a thread, for work that overlaps a caller waiting for another process.)

A render's checks are independent CPU work in one Python process, which one core runs at a
time: the flow proof reads the rendered objects and nothing the schema check or the analysis
writes. ``ForkedCall`` runs such a function in a child forked from the caller, which shares
the caller's memory as it was at the fork (nothing is pickled on the way in), and takes the
child's pickled result back through a pipe.

It never changes an answer. The child is only a head start:

- Where a fork is not safe or not possible (no ``os.fork``, more than one thread in the
  process, the fork fails), nothing is forked and ``result()`` calls the function.
- When the child raises, dies, or hands back nothing it can unpickle, ``result()`` calls the
  function in the caller: the same exception, with its own traceback, or the same value.
- ``cancel()`` (the caller failed first) kills the child and reaps it.

While a child runs, the objects from before the fork are out of the garbage collector's
reach (``gc.freeze``): a collection on either side would touch the objects both share, and
every page it touches would be copied. At 5,000 services the proof's CPU time in the child
went from 8.9 s to 7.8 s with it (8.1 s without a fork).

The function must not write anything the caller reads afterwards except through its return
value: the child's writes to memory are its own. Standard library only.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# From this many objects to render or to prove, a fork gives back more than it costs (a
# fork of a process holding a large stage takes some milliseconds, and the pages either
# side writes are copied)
FORK_AT = 2000


def can_fork() -> bool:
    """Whether a fork is safe here: POSIX, and this process runs one thread (a lock another
    thread holds at the fork stays held in the child forever)."""
    return hasattr(os, "fork") and threading.active_count() == 1


class ForkedCall(Generic[T]):
    """``function()`` started in a forked child now; ``result()`` waits for its value."""

    def __init__(self, function: Callable[[], T], *, fork: bool = True,
                 freeze: bool = True) -> None:
        self._function = function
        self._pid: int | None = None
        self._read: int | None = None
        self.forked = False  # whether a child was started (for tests and the benchmark)
        self._froze = False  # whether this call froze the collector's objects (``_start``)
        if fork and can_fork():
            self._start(freeze)

    def _start(self, freeze: bool) -> None:
        read, write = os.pipe()
        # Every object so far out of the collector's reach until the child is done: a
        # collection would touch the objects either side shares with the other, and each
        # page it touches is copied (the advice of Python's gc.freeze documentation for a
        # fork). A process that froze objects itself keeps them as they are. ``freeze``
        # False: a child that reads little of the caller's memory and may outlive other
        # children forked meanwhile, which then freeze what they share themselves.
        self._froze = freeze and gc.get_freeze_count() == 0
        if self._froze:
            gc.freeze()
        try:
            pid = os.fork()
        except OSError:  # no memory or no process left: the caller runs it
            self._thaw()
            os.close(read)
            os.close(write)
            return
        if pid == 0:  # the child: run, hand back, and leave without the caller's clean-ups
            code = 1
            # No collection in the child: what it allocates lives until it leaves, and a
            # young collection of a million objects (a large stage's proof makes more) was
            # a tenth of a second of the proof that only the largest stages paid
            gc.disable()
            try:
                os.close(read)
                data = pickle.dumps(self._function(), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write, "wb") as stream:
                    stream.write(data)
                code = 0
            except BaseException:  # the caller runs it again, and raises
                pass
            finally:
                os._exit(code)
        os.close(write)
        self._pid, self._read, self.forked = pid, read, True

    def result(self) -> T:
        """The function's value: the child's, or the caller's own call when the child gave
        none (it raised, died, or was never started)."""
        if self._pid is not None and self._read is not None:
            with os.fdopen(self._read, "rb") as stream:
                data = stream.read()
            self._read = None
            _, status = os.waitpid(self._pid, 0)
            self._pid = None
            self._thaw()
            if os.waitstatus_to_exitcode(status) == 0 and data:
                try:
                    value: T = pickle.loads(data)
                except Exception:  # whatever the child sent, the caller runs it
                    pass
                else:
                    return value
        return self._function()

    def _thaw(self) -> None:
        if self._froze:
            gc.unfreeze()
            self._froze = False

    def cancel(self) -> None:
        """Stop the child, if it runs (the caller failed before it needed the result)."""
        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(self._pid, 0)
            self._pid = None
            self._thaw()
        if self._read is not None:
            os.close(self._read)
            self._read = None


class SharedChunks:
    """``count`` chunks of one piece of work, shared by the caller and the one child it forks
    next (``ForkedCall``), each taking the next chunk whenever it is free: the caller from the
    front, the child from the back. A pipe made before the fork holds one byte per chunk,
    and a read of one byte hands that chunk to exactly one of the two (a pipe's read is
    atomic). The caller must still do every chunk the child did not hand back: a child that
    dies keeps what it took.

    Made for the schema check and the flow proof's child (``pipeline.py``): the child, done
    with the proof, takes over what is left of the check instead of waiting."""

    # a pipe holds at least one page (pipe(7): 4,096 bytes when the user's pipes are over
    # their soft limit): the bytes are written before anyone reads, so never more
    MOST = 4096

    def __init__(self, count: int) -> None:
        if not 0 <= count <= self.MOST:
            raise ValueError(f"{count} chunks: at most {self.MOST}")
        self.count = count
        self._owner = os.getpid()
        self._taken = 0  # by this process, from its end
        self._read: int | None
        self._read, write = os.pipe()
        try:
            os.write(write, bytes(count))
        finally:
            os.close(write)  # once the bytes are read, a read returns nothing

    def take(self) -> int | None:
        """The next chunk for this process (the caller's from the front, a child's from the
        back), or None when every chunk is taken."""
        if self._read is None or not os.read(self._read, 1):
            return None
        index = self.count - 1 - self._taken if self.in_child() else self._taken
        self._taken += 1
        return index

    def in_child(self) -> bool:
        return os.getpid() != self._owner

    def close(self) -> None:
        """Take no more chunks (the caller, once its child is done or stopped)."""
        if self._read is not None:
            os.close(self._read)
            self._read = None


class ThreadedCall(Generic[T]):
    """``function()`` started on a thread now; ``result()`` waits for its value (or raises
    its exception).

    For work that overlaps the caller's where the GIL allows it: work that holds the GIL
    while the caller mostly waits for another process (a commit waits for git), or work
    that, like the caller's, is mostly system calls (a large write's files). The two then
    run on one core each instead of one after the other. The function must not touch what
    the caller changes meanwhile."""

    def __init__(self, function: Callable[[], T]) -> None:
        self._value: list[T] = []
        self._error: list[BaseException] = []

        def run() -> None:
            try:
                self._value.append(function())
            except BaseException as error:  # raised by ``result``, in the caller's thread
                self._error.append(error)

        self._thread = threading.Thread(target=run, name="meshstage-meanwhile", daemon=True)
        self._thread.start()

    def result(self) -> T:
        self._thread.join()
        if self._error:
            raise self._error[0]
        return self._value[0]
