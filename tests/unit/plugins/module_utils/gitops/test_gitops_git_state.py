"""Git's own state is checked before a run writes anything: operations in progress, a detached
HEAD, another branch than the environment's. Through ``pipeline.run_stage`` (what the
render_stage action calls), on real repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import GitOpsError
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    run_stage,
)

USER = ("-c", "user.name=User", "-c", "user.email=user@example.invalid")


def git(root: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(["git", "-C", str(root), *USER, *args], capture_output=True,
                          text=True, check=check).stdout


def files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.relative_to(root).parts[0] != ".git"}


@pytest.fixture
def gitops(tmp_path: Path, example_intent) -> Path:
    root = tmp_path / "gitops"
    run_stage(example_intent("prod"), StageOptions(gitops_dir=root))
    return root


def conflicting_commits(root: Path) -> None:
    """Two branches that change the user's notes.md each its own way."""
    (root / "notes.md").write_text("base\n")
    git(root, "add", "notes.md")
    git(root, "commit", "-qm", "notes")
    git(root, "switch", "-qc", "other")
    (root / "notes.md").write_text("other\n")
    git(root, "commit", "-qam", "other notes")
    git(root, "switch", "-q", "main")
    (root / "notes.md").write_text("main\n")
    git(root, "commit", "-qam", "main notes")


@pytest.mark.parametrize("start, refusal", [
    (("rebase", "other"), "a rebase is in progress"),
    (("cherry-pick", "other"), "a cherry-pick is in progress"),
    (("revert", "--no-edit", "HEAD"), None),  # no conflict: nothing in progress
])
def test_an_operation_in_progress_is_refused_before_anything_is_written(
        gitops: Path, example_intent, start: tuple[str, ...], refusal: str | None) -> None:
    conflicting_commits(gitops)
    git(gitops, *start, check=False)
    before = files(gitops)
    variables = example_intent("prod", mesh_stage="observability")
    if refusal is None:
        assert run_stage(variables, StageOptions(gitops_dir=gitops)).commit
        return
    with pytest.raises(GitOpsError, match=refusal):
        run_stage(variables, StageOptions(gitops_dir=gitops))
    with pytest.raises(GitOpsError, match=refusal):
        run_stage(variables, StageOptions(gitops_dir=gitops, check_mode=True))
    assert files(gitops) == before


def test_a_detached_head_is_refused_saying_what_to_do(gitops: Path, example_intent) -> None:
    git(gitops, "switch", "-q", "--detach", "HEAD")
    before = files(gitops)
    with pytest.raises(GitOpsError, match=r"HEAD is detached in .* \(at [0-9a-f]+\); meshstage "
                                          r"commits onto a branch: switch to"):
        run_stage(example_intent("prod", mesh_stage="observability"),
                  StageOptions(gitops_dir=gitops))
    assert files(gitops) == before


def test_another_branch_than_the_recorded_one_is_refused(gitops: Path, example_intent) -> None:
    assert GitOpsRepo(gitops).scope_meta("prod")["branch"] == "main"
    git(gitops, "switch", "-qc", "feature")
    before = files(gitops)
    with pytest.raises(GitOpsError, match="is on branch feature, but prod is recorded on "
                                          "branch main"):
        run_stage(example_intent("prod", mesh_stage="observability"),
                  StageOptions(gitops_dir=gitops))
    assert files(gitops) == before
    # naming the branch in mesh_gitops moves the environment there on purpose
    moved = {"repo_url": "https://git.example.invalid/platform/mesh-gitops.git",
             "branch": "feature"}
    assert run_stage(example_intent("prod", mesh_stage="observability", mesh_gitops=moved),
                     StageOptions(gitops_dir=gitops)).commit
    assert GitOpsRepo(gitops).scope_meta("prod")["branch"] == "feature"


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_head_holds_compares_a_file_with_head_by_object_id(tmp_path: Path,
                                                           object_format: str) -> None:
    """The state file is compared with HEAD's without reading it out of git: by git's object
    id, in the repository's hash (SHA-1 or SHA-256)."""
    root = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", f"--object-format={object_format}", str(root)],
                   check=True)
    repo = GitOpsRepo(root)
    assert repo.git.head_holds("a.json", None)  # no HEAD: neither has the file
    assert not repo.git.head_holds("a.json", b"{}\n")
    (root / "a.json").write_bytes(b'{"a": 1}\n')
    git(root, "add", "a.json")
    git(root, "commit", "-qm", "a")
    assert repo.git.head_holds("a.json", b'{"a": 1}\n')
    assert not repo.git.head_holds("a.json", b'{"a": 2}\n')
    assert not repo.git.head_holds("a.json", None)  # HEAD has it, the disk has not
    assert repo.git.head_holds("b.json", None)
    assert not repo.git.head_holds("b.json", b"")


def test_git_runs_with_the_heap_kept_between_objects_unless_the_user_says(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every git meshstage starts keeps its heap's top between the objects it compresses
    (glibc's trim threshold, ``git.py``); a threshold the user set is theirs."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.git import git_env

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert int(git_env()["MALLOC_TRIM_THRESHOLD_"]) >= 1 << 20
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4096")
    assert git_env()["MALLOC_TRIM_THRESHOLD_"] == "4096"
