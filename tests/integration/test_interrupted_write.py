"""A run killed anywhere in a 1,000-service write: the next run, with no user action, ends in
exactly the tree and the commit an uninterrupted run gives, with no temporary file left and
no file of the user's touched.

Real processes and real git: each run is a Python process calling ``pipeline.run_stage``;
``MESHSTAGE_KILL_AT=<point>:<n>`` (``gitops/faults.py``) makes it SIGKILL itself the n-th
time it reaches a point of its write. The move is strict_mtls -> authorization with every
canary's weight changed, so the write adds, changes and removes thousands of files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SERVICES = 1000
ENVIRONMENT = "dev"
# Fixed identity and dates: two runs that commit the same tree with the same message onto
# the same parent make the very same commit id.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "meshstage test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "meshstage test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}
RUN = """
import json, sys
from pathlib import Path
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import StageOptions, run_stage
variables = json.loads(Path(sys.argv[1]).read_text())
result = run_stage(variables, StageOptions(gitops_dir=Path(sys.argv[2])))
print(json.dumps({"commit": result.commit, "warnings": result.warnings}))
"""
# (point, n): after the journal; amid the removals; amid the temporary files of a batch
# (before their renames, the batch before renamed); at the first rename and amid them; after
# the files, the state file, the staging and the commit.
KILLS = [
    ("journal", 1), ("removed", 1500), ("temporary", 700), ("renamed", 1), ("renamed", 1600),
    ("files", 1), ("state", 1), ("staged", 1), ("committed", 1),
]
# Atomicity is under test, not durability (a killed process loses nothing the kernel has):
# the repositories live in memory where there is a tmpfs, so fsync costs nothing.
SCRATCH = Path("/dev/shm")


def _bench_estate() -> ModuleType:
    """bench/estate.py, the generator of the benchmark's estates."""
    spec = importlib.util.spec_from_file_location("meshstage_bench_estate",
                                                  REPO / "bench" / "estate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ESTATE = _bench_estate()


def variables(stage: str, weight: int) -> dict:
    result = ESTATE.environments(SERVICES)[ENVIRONMENT]
    result["mesh_stage"] = stage
    for service in result["mesh_services"]:
        service["canary"]["weight"] = weight
    return result


def run(gitops: Path, intent: Path, kill: tuple[str, int] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_IDENTITY}
    if kill is not None:
        env["MESHSTAGE_KILL_AT"] = f"{kill[0]}:{kill[1]}"
    return subprocess.run([sys.executable, "-c", RUN, str(intent), str(gitops)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout


def work_tree(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file outside .git: inode, mtime and bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] != ".git" and path.is_file():
            info = path.stat()
            found[relative.as_posix()] = (info.st_ino, info.st_mtime_ns, path.read_bytes())
    return found


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory for the repositories, removed at the end."""
    if SCRATCH.is_dir() and os.access(SCRATCH, os.W_OK):
        top = Path(tempfile.mkdtemp(prefix="meshstage-interrupted-", dir=SCRATCH))
    else:
        top = tmp_path_factory.mktemp("interrupted")
    yield top
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def estate(scratch: Path) -> dict:
    """The repository before the write (committed at strict_mtls, with the user's files),
    and what an uninterrupted run of the write gives."""
    top = scratch
    before_intent, after_intent = top / "before.json", top / "after.json"
    before_intent.write_text(json.dumps(variables("strict_mtls", 10)))
    after_intent.write_text(json.dumps(variables("authorization", 20)))
    base = top / "base"
    assert run(base, before_intent).returncode == 0
    # the user's files: one committed, one untracked beside meshstage's, one in a
    # directory the write empties
    (base / "docs").mkdir()
    (base / "docs" / "runbook-notes.md").write_text("ours\n")
    git(base, "add", "docs/runbook-notes.md")
    git(base, "-c", "user.name=User", "-c", "user.email=user@example.invalid", "commit",
        "-qm", "notes")
    (base / "envs" / ENVIRONMENT / "notes.yaml").write_text("mine: true\n")
    reference = top / "reference"
    shutil.copytree(base, reference, symlinks=True)
    done = run(reference, after_intent)
    assert done.returncode == 0, done.stderr
    written = git(reference, "diff", "--no-renames", "--name-status", "HEAD~1", "HEAD")
    removed = [line.split("\t")[1] for line in written.splitlines() if line.startswith("D\t")]
    assert len(removed) > 1000
    emptied = Path(removed[0]).parent
    user_in_emptied = base / emptied / "keep-me.txt"
    user_in_emptied.write_text("the user's\n")
    # the write removed the emptied sync unit's folder; the user's file keeps it
    (reference / emptied).mkdir(parents=True, exist_ok=True)
    (reference / emptied / "keep-me.txt").write_text("the user's\n")
    # the renderings are cached: each killed run spends its time writing, not rendering
    shutil.rmtree(base / ".git" / "meshstage-cache")
    shutil.copytree(reference / ".git" / "meshstage-cache", base / ".git" / "meshstage-cache")
    counts = git(reference, "diff", "--no-renames", "--shortstat", "HEAD~1", "HEAD")
    return {"top": top, "base": base, "intent": after_intent, "reference": reference,
            "head": git(reference, "rev-parse", "HEAD").strip(), "shortstat": counts,
            "user": ["docs/runbook-notes.md", f"envs/{ENVIRONMENT}/notes.yaml",
                     f"{emptied.as_posix()}/keep-me.txt"]}


def test_the_reference_write_adds_changes_and_removes_thousands(estate: dict) -> None:
    files, inserted, deleted = (int(part.split()[0]) for part in
                                estate["shortstat"].strip().split(", "))
    assert files > 4000 and inserted > 0 and deleted > 0
    changed = git(estate["reference"], "diff", "--no-renames", "--name-status", "HEAD~1", "HEAD")
    kinds = {line[0] for line in changed.splitlines()}
    assert kinds == {"A", "M", "D"}


@pytest.mark.parametrize("kill", KILLS, ids=[f"{point}-{n}" for point, n in KILLS])
def test_a_killed_run_is_finished_by_the_next_one(estate: dict,
                                                   kill: tuple[str, int]) -> None:
    gitops = estate["top"] / f"{kill[0]}-{kill[1]}"
    shutil.copytree(estate["base"], gitops, symlinks=True)
    try:
        check_kill(estate, gitops, kill)
    finally:
        shutil.rmtree(gitops, ignore_errors=True)


def check_kill(estate: dict, gitops: Path, kill: tuple[str, int]) -> None:
    user_before = {path: data for path, data in work_tree(gitops).items()
                   if path in estate["user"]}
    head_before = git(gitops, "rev-parse", "HEAD")

    killed = run(gitops, estate["intent"], kill)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    if kill[0] != "committed":
        assert git(gitops, "rev-parse", "HEAD") == head_before, "killed before its commit"

    resumed = run(gitops, estate["intent"])
    assert resumed.returncode == 0, resumed.stderr
    assert git(gitops, "rev-parse", "HEAD").strip() == estate["head"]
    assert git(gitops, "status", "--porcelain=v1", "--untracked-files=all", "--ignored") == \
        git(estate["reference"], "status", "--porcelain=v1", "--untracked-files=all",
            "--ignored")
    after = work_tree(gitops)
    assert not [path for path in after if path.endswith(".tmp")], "no temporary file left"
    assert ".meshstage/journal.json" not in after
    assert {path: after.get(path) for path in estate["user"]} == user_before
    reference = work_tree(estate["reference"])
    assert {path: data[2] for path, data in after.items()} == \
        {path: data[2] for path, data in reference.items()}
    if kill[0] in ("journal", "removed", "temporary"):  # before its files were all on disk
        assert "undid the write of an interrupted meshstage run" in resumed.stdout
    elif kill[0] in ("renamed", "files"):  # from the temporary files it flushed
        assert "completed the write of an interrupted meshstage run" in resumed.stdout
