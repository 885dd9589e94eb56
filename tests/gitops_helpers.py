"""Helpers of the GitOps tests: another run that holds a repository."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

HOLD = """
import sys
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo
with GitOpsRepo(sys.argv[1]).session(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.readline()
"""


@contextlib.contextmanager
def repository_held(root: Path, purpose: str) -> Iterator[int]:
    """Another process holds ``root`` (a session, as a run takes one) until the block ends;
    its pid."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root), purpose],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()
