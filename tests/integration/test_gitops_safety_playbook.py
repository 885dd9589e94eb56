"""What the GitOps repository's own state stops, through playbooks/migrate.yml: the
repository's git hooks (run only with mesh_git_hooks), git operations in progress, another
run holding the repository, a hand-edited state file. Real ansible-playbook and real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from gitops_helpers import repository_held
from test_migrate_playbook import git, playbook

pytestmark = pytest.mark.integration

USER = ("-c", "user.name=User", "-c", "user.email=user@example.invalid", "-c",
        "core.hooksPath=/dev/null")


def files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.relative_to(root).parts[0] != ".git"}


@pytest.fixture
def gitops(tmp_path: Path, crd_dir: Path) -> Path:
    """dev rendered and committed once, in a repository with a pre-commit hook that leaves a
    mark and refuses every commit."""
    root = tmp_path / "gitops"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    hook = root / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path}/hook-ran\necho 'hook says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    playbook("dev", root, crd_dir)
    return root


def test_commits_skip_the_repository_hooks_unless_mesh_git_hooks(gitops: Path,
                                                                  crd_dir: Path) -> None:
    assert git(gitops, "log", "--format=%s").startswith("meshstage(dev)")
    assert not (gitops.parent / "hook-ran").exists()
    result = playbook("dev", gitops, crd_dir, "-e", "mesh_stage=strict_mtls", "-e",
                      "mesh_git_hooks=true", expect_ok=False)
    assert "hook says no" in result.stdout
    assert (gitops.parent / "hook-ran").exists()


def test_a_merge_in_progress_is_refused_before_anything_is_written(gitops: Path,
                                                                   crd_dir: Path) -> None:
    (gitops / "notes.md").write_text("one\n")
    git(gitops, "add", "notes.md")
    git(gitops, *USER, "commit", "-qm", "notes")
    git(gitops, "switch", "-qc", "other", "HEAD~1")
    (gitops / "notes.md").write_text("two\n")
    git(gitops, "add", "notes.md")
    git(gitops, *USER, "commit", "-qm", "other notes")
    git(gitops, "switch", "-q", "main")
    merge = subprocess.run(["git", "-C", str(gitops), *USER, "merge", "other"],
                           capture_output=True, text=True, check=False)
    assert merge.returncode != 0 and (gitops / ".git" / "MERGE_HEAD").exists()
    before = files(gitops)
    result = playbook("dev", gitops, crd_dir, "-e", "mesh_stage=strict_mtls", expect_ok=False)
    assert "a merge is in progress in" in result.stdout
    assert "git merge --abort" in result.stdout
    assert files(gitops) == before


def test_a_second_run_is_told_which_run_holds_the_repository(gitops: Path,
                                                             crd_dir: Path) -> None:
    with repository_held(gitops, "rendering staging") as pid:
        result = playbook("dev", gitops, crd_dir, "-e", "mesh_stage=strict_mtls",
                          expect_ok=False)
    assert f"another meshstage run holds the GitOps repository {gitops} (pid {pid} on" \
        in result.stdout
    assert "rendering staging" in result.stdout
