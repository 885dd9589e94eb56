"""A hook for the fault-injection tests: ``MESHSTAGE_KILL_AT=<point>:<n>`` in the environment
kills the run with SIGKILL the n-th time it reaches ``<point>`` of its write (the points are
named where ``KillSwitch.reach`` is called: ``journal``, ``removed``, ``temporary``,
``renamed``, ``files``, ``state``, ``staged``, ``committed``). Unset, it does nothing."""

from __future__ import annotations

import os
import signal
import threading

KILL_AT = "MESHSTAGE_KILL_AT"


class KillSwitch:
    """Where and when to kill this run, read once from the environment."""

    def __init__(self) -> None:
        point, _, count = os.environ.get(KILL_AT, "").partition(":")
        self.point = point
        self.left = int(count) if count.isdigit() and int(count) > 0 else 1
        self._counting = threading.Lock()  # a large write reaches its points on two threads

    def reach(self, point: str) -> None:
        """Called at each named point of a write; kills the process at the chosen one."""
        if not self.point or point != self.point:
            return
        with self._counting:
            self.left -= 1
            if self.left == 0:
                os.kill(os.getpid(), signal.SIGKILL)
