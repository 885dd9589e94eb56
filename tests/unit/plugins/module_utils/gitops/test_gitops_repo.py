"""The GitOps write path, against real git repositories in tmp_path."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import GitOpsError
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops import repo as repo_module
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.git import Git
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.journal import JOURNAL_PATH
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.paths import STATE_PATH
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.state import ScopeState
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.update import (
    FileChange,
    TreeUpdate,
    planned_bytes,
)

DEV = {
    "dev/kustomization.yaml": "resources:\n- 01-permissive-mtls/peer-authentication.yaml\n",
    "dev/01-permissive-mtls/peer-authentication.yaml": "kind: PeerAuthentication\n",
    "dev/04-traffic/reviews.yaml": "kind: VirtualService\nweight: 10\n",
}
DEV_META = {"provider": "istio", "stage": "traffic"}
STAGING = {"staging/kustomization.yaml": "resources: []\n"}
STAGING_META = {"provider": "linkerd", "stage": "injection"}


# ---------------------------------------------------------------------------- helpers


def git(root: Path, *args: str, input: str | None = None) -> str:
    env = {**os.environ, "LC_ALL": "C"}
    result = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, env=env, check=True,
        input=input,
    )
    return result.stdout


def user_git(root: Path, *args: str) -> str:
    """git as the user, with an identity of their own for the commits they make."""
    return git(root, "-c", "user.name=User", "-c", "user.email=user@example.com", *args)


def head_files(root: Path) -> list[str]:
    return sorted(git(root, "ls-tree", "-r", "--name-only", "HEAD").splitlines())


def commit_count(root: Path) -> int:
    return int(git(root, "rev-list", "--count", "HEAD").strip())


def staged_names(root: Path) -> list[str]:
    return sorted(git(root, "diff", "--cached", "--name-only").splitlines())


def untracked(root: Path) -> list[str]:
    return sorted(git(root, "ls-files", "--others", "--exclude-standard").splitlines())


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path outside .git, files with (inode, mtime_ns): what 'nothing was written' means."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if relative == ".git" or relative.startswith(".git/"):
            continue
        info = path.lstat()
        # Directories are listed by name only: renaming a file into one touches its mtime.
        found[relative] = (0, 0) if stat.S_ISDIR(info.st_mode) else (info.st_ino, info.st_mtime_ns)
    return found


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run(repo: GitOpsRepo, scope: str, desired: dict[str, str], meta: dict) -> TreeUpdate:
    update = repo.plan(scope, desired, meta)
    repo.apply(update)
    return update


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "gitops"


@pytest.fixture
def repo(root: Path) -> GitOpsRepo:
    return GitOpsRepo(root)


@pytest.fixture
def committed(repo: GitOpsRepo, root: Path) -> GitOpsRepo:
    """A repository where dev was written and committed once."""
    run(repo, "dev", DEV, DEV_META)
    assert repo.commit("meshstage: dev") is not None
    return repo


# ---------------------------------------------------------------------------- first run


def test_first_apply_creates_the_repo_and_one_commit(repo: GitOpsRepo, root: Path) -> None:
    assert not repo.exists()
    update = repo.plan("dev", DEV, DEV_META)
    assert not root.exists(), "plan never writes"
    assert update.changed
    assert update.counts() == {"add": 3, "change": 0, "remove": 0}
    assert [change.path for change in update.changes] == sorted(DEV)

    repo.apply(update)
    assert repo.exists()
    assert git(root, "symbolic-ref", "--short", "HEAD").strip() == "main"
    for path, text in DEV.items():
        assert (root / path).read_text() == text
        assert stat.S_IMODE((root / path).stat().st_mode) == 0o644

    sha = repo.commit("meshstage: dev at traffic")
    assert sha == git(root, "rev-parse", "HEAD").strip()
    assert commit_count(root) == 1
    assert head_files(root) == sorted([*DEV, STATE_PATH])
    assert git(root, "log", "-1", "--format=%s").strip() == "meshstage: dev at traffic"
    assert git(root, "status", "--porcelain").strip() == ""


def test_commit_falls_back_to_the_meshstage_identity(committed: GitOpsRepo, root: Path) -> None:
    identity = git(root, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip()
    assert identity == "meshstage <meshstage@localhost>|meshstage <meshstage@localhost>"
    # The fallback is passed to that one commit only: nothing was written to the config.
    assert subprocess.run(["git", "-C", str(root), "config", "user.email"]).returncode != 0


def test_commit_uses_the_configured_identity(repo: GitOpsRepo, root: Path) -> None:
    run(repo, "dev", DEV, DEV_META)
    git(root, "config", "user.name", "Ops Person")
    git(root, "config", "user.email", "ops@example.com")
    repo.commit("meshstage: dev")
    assert git(root, "log", "-1", "--format=%an <%ae>").strip() == "Ops Person <ops@example.com>"


def test_state_records_owned_files_and_meta(committed: GitOpsRepo, root: Path) -> None:
    assert committed.owned("dev") == {path: sha256(text) for path, text in DEV.items()}
    assert committed.owned() == committed.owned("dev")
    assert committed.owned("prod") == {}
    assert committed.scope_meta("dev") == DEV_META
    assert committed.scope_meta("prod") == {}
    assert committed.all_scope_meta() == {"dev": DEV_META}
    document = json.loads((root / STATE_PATH).read_text())
    assert document["scopes"]["dev"]["files"] == committed.owned("dev")


def test_state_file_is_canonical_and_byte_identical_across_runs(tmp_path: Path) -> None:
    texts = []
    for name in ("one", "two"):
        repo = GitOpsRepo(tmp_path / name)
        run(repo, "staging", STAGING, STAGING_META)
        run(repo, "dev", DEV, DEV_META)
        run(repo, "dev", DEV, DEV_META)
        texts.append((tmp_path / name / STATE_PATH).read_bytes())
    assert texts[0] == texts[1]
    text = texts[0].decode()
    document = json.loads(text)
    assert text == json.dumps(document, sort_keys=True, indent=2) + "\n"
    assert list(document["scopes"]) == ["dev", "staging"]


# ---------------------------------------------------------------------------- idempotence


def test_second_identical_run_writes_and_commits_nothing(committed: GitOpsRepo, root: Path) -> None:
    before = snapshot(root)
    head = git(root, "rev-parse", "HEAD")

    update = committed.plan("dev", DEV, DEV_META)
    assert not update.changed
    assert update.changes == ()
    assert update.counts() == {"add": 0, "change": 0, "remove": 0}
    assert update.ansible_diff() == []
    committed.apply(update)

    assert snapshot(root) == before
    assert committed.commit("meshstage: dev again") is None
    assert git(root, "rev-parse", "HEAD") == head


# ---------------------------------------------------------------------------- change, remove


def test_changing_one_file_rewrites_only_it(committed: GitOpsRepo, root: Path) -> None:
    changed_path = "dev/04-traffic/reviews.yaml"
    desired = {**DEV, changed_path: "kind: VirtualService\nweight: 50\n"}
    before = snapshot(root)

    update = committed.plan("dev", desired, DEV_META)
    assert update.counts() == {"add": 0, "change": 1, "remove": 0}
    assert update.changes == (
        FileChange(changed_path, "change", DEV[changed_path], desired[changed_path]),
    )
    assert update.ansible_diff() == [
        {
            "before_header": changed_path,
            "after_header": changed_path,
            "before": DEV[changed_path],
            "after": desired[changed_path],
        }
    ]
    committed.apply(update)

    after = snapshot(root)
    rewritten = {path for path in before if before[path] != after.get(path)}
    assert rewritten == {changed_path, STATE_PATH}
    # no temporary file is left behind; the journal stays until the write is committed
    assert set(after) - set(before) == {JOURNAL_PATH}
    assert (root / changed_path).read_text() == desired[changed_path]

    committed.commit("meshstage: dev weight 50")
    assert set(snapshot(root)) == set(before)
    assert commit_count(root) == 2
    changed_in_commit = git(root, "diff", "--name-only", "HEAD~1", "HEAD").split()
    assert sorted(changed_in_commit) == sorted([changed_path, STATE_PATH])


def test_meta_only_change_rewrites_the_state_and_commits(committed: GitOpsRepo, root: Path) -> None:
    update = committed.plan("dev", DEV, {**DEV_META, "stage": "strict_mtls"})
    assert update.changed and update.state_changed
    assert update.counts() == {"add": 0, "change": 0, "remove": 0}
    committed.apply(update)
    assert committed.scope_meta("dev")["stage"] == "strict_mtls"
    assert committed.commit("meshstage: dev at strict_mtls") is not None
    assert git(root, "diff", "--name-only", "HEAD~1", "HEAD").split() == [STATE_PATH]


def test_removal_prunes_emptied_directories_but_keeps_user_files(
    repo: GitOpsRepo, root: Path
) -> None:
    desired = {
        **DEV,
        "dev/06-authorization/deny/deny-all.yaml": "kind: AuthorizationPolicy\n",
        "dev/05-strict-mtls/strict.yaml": "kind: PeerAuthentication\n",
    }
    run(repo, "dev", desired, DEV_META)
    repo.commit("meshstage: dev")
    (root / "dev/05-strict-mtls/NOTES.md").write_text("the user's notes\n")

    update = repo.plan("dev", DEV, DEV_META)
    assert update.counts() == {"add": 0, "change": 0, "remove": 2}
    assert [(c.path, c.action, c.after) for c in update.changes] == [
        ("dev/05-strict-mtls/strict.yaml", "remove", None),
        ("dev/06-authorization/deny/deny-all.yaml", "remove", None),
    ]
    assert update.ansible_diff()[1]["before"] == "kind: AuthorizationPolicy\n"
    assert update.ansible_diff()[1]["after"] == ""
    repo.apply(update)

    assert not (root / "dev/06-authorization").exists(), "emptied directories go, up the tree"
    assert not (root / "dev/05-strict-mtls/strict.yaml").exists()
    assert (root / "dev/05-strict-mtls/NOTES.md").read_text() == "the user's notes\n"
    assert (root / "dev").is_dir()
    assert set(repo.owned("dev")) == set(DEV)

    repo.commit("meshstage: dev without strict")
    assert head_files(root) == sorted([*DEV, STATE_PATH])
    assert untracked(root) == ["dev/05-strict-mtls/NOTES.md"]


def test_only_paths_owned_by_the_scope_are_removed(repo: GitOpsRepo, root: Path) -> None:
    run(repo, "dev", DEV, DEV_META)
    (root / "dev/user.yaml").write_text("mine\n")
    run(repo, "dev", {}, DEV_META)
    assert (root / "dev/user.yaml").read_text() == "mine\n"
    assert sorted(p.relative_to(root).as_posix() for p in (root / "dev").rglob("*")) == [
        "dev/user.yaml"
    ]


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "user_path",
    ["dev/kustomization.yaml", "dev/04-traffic/reviews.yaml"],
)
def test_user_file_at_a_desired_path_is_never_overwritten(
    repo: GitOpsRepo, root: Path, user_path: str
) -> None:
    run(repo, "staging", STAGING, STAGING_META)
    (root / user_path).parent.mkdir(parents=True, exist_ok=True)
    (root / user_path).write_text("written by hand\n")
    before = snapshot(root)

    with pytest.raises(GitOpsError, match=re.escape(user_path)) as error:
        repo.plan("dev", DEV, DEV_META)
    assert "not owned by meshstage" in str(error.value)
    assert snapshot(root) == before
    assert (root / user_path).read_text() == "written by hand\n"


@pytest.mark.parametrize("ahead", [False, True], ids=["read-by-plan", "read-ahead"])
@pytest.mark.parametrize("still_desired", [None, True, False],
                         ids=["unchanged", "desired", "not-desired"])
@pytest.mark.parametrize(
    ("touch", "message"),
    [
        ("edit", "was changed by hand since meshstage wrote it; commit it elsewhere or revert it"),
        ("delete", "was deleted by hand since meshstage wrote it"),
        ("symlink", "is a symlink; meshstage owns it and will not touch it"),
    ],
)
def test_hand_edited_owned_file_is_an_error_and_kept(
    committed: GitOpsRepo, root: Path, touch: str, message: str, still_desired: bool | None,
    ahead: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = "dev/04-traffic/reviews.yaml"
    if touch == "edit":
        (root / path).write_text("kind: VirtualService\nweight: 99  # hot fix\n")
    elif touch == "delete":
        (root / path).unlink()
    else:  # the same bytes, behind a symlink
        (root / "elsewhere.yaml").write_text(DEV[path])
        (root / path).unlink()
        (root / path).symlink_to(root / "elsewhere.yaml")
    before = snapshot(root)
    desired = DEV if still_desired is None else \
        {**DEV, path: "kind: VirtualService\nweight: 20\n"} if still_desired else {}
    monkeypatch.setattr(repo_module, "READ_AHEAD_AT", 1)
    read_ahead = committed.read_owned_meanwhile("dev") if ahead else None
    assert ahead is (read_ahead is not None)

    with pytest.raises(GitOpsError, match=re.escape(path)) as error:
        committed.plan("dev", desired, DEV_META, read_ahead)
    if read_ahead is not None:
        read_ahead.cancel()  # as the run does: its child reaped, whether the plan asked
    assert message in str(error.value)
    assert snapshot(root) == before
    if touch == "edit":
        assert "hot fix" in (root / path).read_text()


def reading(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the plan reads from now on, in this process."""
    read: list[str] = []
    original = repo_module.read_disk

    def counted(root, path, parents=None):
        read.append(path)
        return original(root, path, parents)

    monkeypatch.setattr(repo_module, "read_disk", counted)
    return read


def test_a_read_ahead_spares_the_plan_every_file_it_leaves_as_recorded(
    committed: GitOpsRepo, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repo_module, "READ_AHEAD_AT", len(DEV))
    read_ahead = committed.read_owned_meanwhile("dev")
    assert read_ahead is not None and read_ahead._call.forked  # on the second core
    read = reading(monkeypatch)
    assert not committed.plan("dev", DEV, DEV_META, read_ahead).changed
    assert not set(read) & set(DEV)
    # a file the run changes is read for its diff, the others are not
    path = "dev/04-traffic/reviews.yaml"
    read_ahead = committed.read_owned_meanwhile("dev")
    read.clear()
    update = committed.plan("dev", {**DEV, path: "kind: VirtualService\nweight: 20\n"},
                            DEV_META, read_ahead)
    assert [(c.path, c.action, c.before) for c in update.changes] == [
        (path, "change", DEV[path])]
    assert set(read) & set(DEV) == {path}
    # below the threshold, or for another scope or repository, the plan reads them all
    monkeypatch.setattr(repo_module, "READ_AHEAD_AT", len(DEV) + 1)
    assert committed.read_owned_meanwhile("dev") is None
    monkeypatch.setattr(repo_module, "READ_AHEAD_AT", 1)
    for other in (committed.read_owned_meanwhile("staging"),
                  GitOpsRepo(root.parent / "other").read_owned_meanwhile("dev")):
        assert other is None
    for other in (repo_module.OwnedRead(root, "staging", committed.owned("dev")),
                  repo_module.OwnedRead(root.parent / "other", "dev", committed.owned("dev"))):
        read.clear()
        assert not committed.plan("dev", DEV, DEV_META, other).changed
        assert set(DEV) <= set(read)
        other.cancel()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child left, running or unreaped


def test_every_error_is_reported_before_anything_is_written(
    committed: GitOpsRepo, root: Path
) -> None:
    (root / "dev/kustomization.yaml").write_text("edited\n")
    (root / "dev/user.yaml").write_text("mine\n")
    with pytest.raises(GitOpsError) as error:
        committed.plan("dev", {**DEV, "dev/user.yaml": "x\n", "../escape": "x\n"}, DEV_META)
    text = str(error.value)
    for path in ("dev/kustomization.yaml", "dev/user.yaml", "../escape"):
        assert path in text


def test_apply_rechecks_and_writes_nothing_when_a_file_moved(
    committed: GitOpsRepo, root: Path
) -> None:
    desired = {**DEV, "dev/04-traffic/reviews.yaml": "weight: 1\n", "dev/new.yaml": "new\n"}
    update = committed.plan("dev", desired, DEV_META)
    (root / "dev/04-traffic/reviews.yaml").write_text("edited between plan and apply\n")
    before = snapshot(root)
    with pytest.raises(
        GitOpsError, match=re.escape("dev/04-traffic/reviews.yaml changed since plan")
    ):
        committed.apply(update)
    assert snapshot(root) == before


def test_apply_rechecks_that_added_paths_are_still_free(repo: GitOpsRepo, root: Path) -> None:
    run(repo, "staging", STAGING, STAGING_META)
    update = repo.plan("dev", DEV, DEV_META)
    (root / "dev").mkdir()
    (root / "dev/kustomization.yaml").write_text("the user was quicker\n")
    with pytest.raises(GitOpsError, match=re.escape("dev/kustomization.yaml changed since plan")):
        repo.apply(update)
    assert (root / "dev/kustomization.yaml").read_text() == "the user was quicker\n"
    assert sorted(p.name for p in (root / "dev").iterdir()) == ["kustomization.yaml"]


def test_a_stale_plan_of_another_scope_does_not_clobber_the_state(
    repo: GitOpsRepo, root: Path
) -> None:
    dev_update = repo.plan("dev", DEV, DEV_META)
    staging_update = repo.plan("staging", STAGING, STAGING_META)
    repo.apply(dev_update)
    repo.apply(staging_update)
    assert repo.all_scope_meta() == {"dev": DEV_META, "staging": STAGING_META}
    assert set(repo.owned()) == set(DEV) | set(STAGING)


def test_non_empty_non_git_directory_is_not_taken_over(root: Path) -> None:
    root.mkdir()
    (root / "README.md").write_text("somebody's directory\n")
    repo = GitOpsRepo(root)
    assert not repo.exists()
    with pytest.raises(GitOpsError, match="not an empty directory nor a git repository"):
        repo.plan("dev", DEV, DEV_META)
    assert sorted(p.name for p in root.iterdir()) == ["README.md"]


def test_apply_refuses_a_directory_that_filled_up_after_plan(root: Path) -> None:
    root.mkdir()
    repo = GitOpsRepo(root)
    update = repo.plan("dev", DEV, DEV_META)
    (root / "README.md").write_text("somebody's directory\n")
    with pytest.raises(GitOpsError, match=re.escape(str(root))):
        repo.apply(update)
    assert sorted(p.name for p in root.iterdir()) == ["README.md"]


def test_empty_directory_becomes_the_repo(root: Path) -> None:
    root.mkdir()
    repo = GitOpsRepo(root)
    run(repo, "dev", DEV, DEV_META)
    assert repo.exists()


def test_a_directory_inside_another_repo_gets_its_own_repo(tmp_path: Path) -> None:
    outer = tmp_path / "project"
    outer.mkdir()
    git(outer, "init", "-q", "-b", "main")
    repo = GitOpsRepo(outer / "build" / "gitops")
    assert not repo.exists(), "being inside another work tree is not being a repository"
    run(repo, "dev", DEV, DEV_META)
    assert repo.commit("meshstage: dev") is not None
    assert (outer / "build" / "gitops" / ".git").is_dir()
    assert git(outer, "rev-list", "--all").strip() == "", "the outer repository got no commit"


def test_git_is_asked_for_the_top_and_the_git_dir_once_while_dot_git_stays(
        committed: GitOpsRepo, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    ask = committed.git.run

    def counted(args: list[str], *rest: object) -> subprocess.CompletedProcess[bytes]:
        asked.append(" ".join(args))
        return ask(args, *rest)

    monkeypatch.setattr(committed.git, "run", counted)
    for _ in range(3):
        assert committed.exists()
        assert committed.git.git_dir() == root / ".git"
    assert asked == [], "both were found while the repository was written"
    # another repository in its place: asked again, and found again
    moved = root.parent / "old-git"
    (root / ".git").rename(moved)
    assert not committed.exists()
    git(root, "init", "-q", "-b", "main")
    assert committed.exists() and committed.git.git_dir() == root / ".git"
    assert asked.count("rev-parse --show-toplevel") == 2
    assert asked.count("rev-parse --absolute-git-dir") == 1


# ---------------------------------------------------------------------------- scopes


def test_two_scopes_own_disjoint_files(repo: GitOpsRepo, root: Path) -> None:
    run(repo, "dev", DEV, DEV_META)
    run(repo, "staging", STAGING, STAGING_META)
    assert set(repo.owned("dev")) == set(DEV)
    assert set(repo.owned("staging")) == set(STAGING)
    assert set(repo.owned()) == set(DEV) | set(STAGING)
    assert repo.all_scope_meta() == {"dev": DEV_META, "staging": STAGING_META}

    # Emptying staging removes only staging's files.
    run(repo, "staging", {}, STAGING_META)
    assert not (root / "staging").exists()
    assert all((root / path).is_file() for path in DEV)
    assert repo.owned("staging") == {}


def test_a_path_owned_by_another_scope_is_an_error(repo: GitOpsRepo, root: Path) -> None:
    run(repo, "dev", DEV, DEV_META)
    before = snapshot(root)
    with pytest.raises(
        GitOpsError, match=re.escape("dev/kustomization.yaml is owned by scope 'dev'")
    ):
        repo.plan("staging", {**STAGING, "dev/kustomization.yaml": "stolen\n"}, STAGING_META)
    assert snapshot(root) == before


def test_the_shared_scope_owns_the_top_level_index(repo: GitOpsRepo, root: Path) -> None:
    run(repo, "dev", DEV, DEV_META)
    run(repo, "_shared", {"kustomization.yaml": "resources:\n- dev\n"}, {})
    assert repo.owned("_shared") == {"kustomization.yaml": sha256("resources:\n- dev\n")}
    assert repo.scope_meta("_shared") == {}


@pytest.mark.parametrize("scope", ["", "../dev", "dev/x", "-rf", "a b"])
def test_invalid_scope_names(repo: GitOpsRepo, scope: str) -> None:
    with pytest.raises(GitOpsError, match="scope"):
        repo.plan(scope, {}, {})


# ---------------------------------------------------------------------------- path safety


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "dev/../../x",
        "/abs",
        "/etc/passwd",
        ".git/config",
        ".git/hooks/pre-commit",
        "dev/.git/config",
        ".meshstage/state.json",
        ".meshstage/other",
        "a//b",
        "a/./b",
        "./a",
        "a/",
        "",
    ],
)
def test_unsafe_paths_are_refused(repo: GitOpsRepo, root: Path, path: str) -> None:
    with pytest.raises(GitOpsError) as error:
        repo.plan("dev", {path: "x\n"}, DEV_META)
    assert repr(path) in str(error.value)
    assert not root.exists()


def test_symlinked_parent_is_refused(repo: GitOpsRepo, root: Path, tmp_path: Path) -> None:
    run(repo, "staging", STAGING, STAGING_META)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "dev").symlink_to(outside)
    with pytest.raises(
        GitOpsError, match=re.escape("dev/kustomization.yaml: its parent dev is a symlink")
    ):
        repo.plan("dev", DEV, DEV_META)
    assert list(outside.iterdir()) == []


def test_a_tampered_state_file_cannot_point_outside_the_repo(
    committed: GitOpsRepo, root: Path
) -> None:
    document = json.loads((root / STATE_PATH).read_text())
    document["scopes"]["dev"]["files"]["../victim"] = sha256("x")
    (root / STATE_PATH).write_text(json.dumps(document))
    with pytest.raises(GitOpsError, match=r"'\.\./victim'"):
        committed.plan("dev", DEV, DEV_META)


def test_a_broken_state_file_is_named(committed: GitOpsRepo, root: Path) -> None:
    (root / STATE_PATH).write_text("{not json")
    with pytest.raises(GitOpsError, match=r"\.meshstage/state\.json is not valid JSON"):
        committed.owned()


@pytest.mark.parametrize("wanted", ["kind: VirtualService\nweight: 20\n", None],
                         ids=["overwritten", "removed"])
def test_a_file_the_committed_record_vouches_for_but_the_commit_does_not_hold_is_kept(
        committed: GitOpsRepo, root: Path, wanted: str | None) -> None:
    """The user edited an owned file, recorded its new sha256 in the state file and
    committed the state file alone: the record is HEAD's, the file is not the one HEAD
    holds, so meshstage cannot show it wrote the file and neither overwrites nor removes
    it. Files it does not touch are not asked of git."""
    path = "dev/04-traffic/reviews.yaml"
    (root / path).write_text("kind: VirtualService\nweight: 99\n")
    state = json.loads((root / STATE_PATH).read_text())
    state["scopes"]["dev"]["files"][path] = sha256("kind: VirtualService\nweight: 99\n")
    (root / STATE_PATH).write_text(json.dumps(state, sort_keys=True, indent=2) + "\n")
    user_git(root, "add", STATE_PATH)
    user_git(root, "commit", "-q", "-m", "user: record my edit")
    desired = {**DEV, path: wanted} if wanted else {k: v for k, v in DEV.items() if k != path}
    before = snapshot(root)
    with pytest.raises(GitOpsError, match=re.escape(
            f"{path} is recorded as meshstage's in the committed {STATE_PATH}, but the "
            "commit does not hold the file meshstage wrote")) as refused:
        committed.plan("dev", desired, DEV_META)
    assert str(refused.value).count("is recorded as meshstage's") == 1
    assert snapshot(root) == before
    # the other files, unchanged in HEAD and on disk, are planned as any
    other = "dev/01-permissive-mtls/peer-authentication.yaml"
    update = committed.plan("dev", {**DEV, path: "kind: VirtualService\nweight: 99\n",
                                    other: "kind: PeerAuthentication\nmode: STRICT\n"},
                            DEV_META)
    assert [(c.path, c.action) for c in update.changes] == [(other, "change")]


# ---------------------------------------------------------------------------- the user's git


def test_untracked_user_files_stay_untracked(committed: GitOpsRepo, root: Path) -> None:
    (root / "scratch.txt").write_text("the user's scratch file\n")
    (root / "dev/local-notes.md").write_text("notes\n")
    run(committed, "dev", {**DEV, "dev/new.yaml": "new\n"}, DEV_META)
    assert committed.commit("meshstage: dev new") is not None
    assert "scratch.txt" not in head_files(root)
    assert untracked(root) == ["dev/local-notes.md", "scratch.txt"]


def test_user_staged_changes_stay_staged_and_out_of_meshstage_commit(
    committed: GitOpsRepo, root: Path
) -> None:
    """Chosen rule: the commit is limited to meshstage's paths (git commit --only)."""
    (root / "README.md").write_text("the user's readme, staged\n")
    user_git(root, "add", "README.md")
    run(committed, "dev", {**DEV, "dev/new.yaml": "new\n"}, DEV_META)

    assert committed.commit("meshstage: dev new") is not None
    in_commit = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(in_commit) == sorted(["dev/new.yaml", STATE_PATH])
    assert staged_names(root) == ["README.md"], "the user's staging is left as it was"


def test_user_staged_change_alone_makes_no_meshstage_commit(
    committed: GitOpsRepo, root: Path
) -> None:
    (root / "README.md").write_text("staged\n")
    user_git(root, "add", "README.md")
    assert committed.commit("meshstage: nothing") is None
    assert commit_count(root) == 1
    assert staged_names(root) == ["README.md"]


def test_foreign_staged_content_on_a_meshstage_path_is_refused(
    committed: GitOpsRepo, root: Path
) -> None:
    path = "dev/04-traffic/reviews.yaml"
    (root / path).write_text("the user's staged version\n")
    user_git(root, "add", path)
    (root / path).write_text(DEV[path])  # worktree back to meshstage's bytes, index not
    run(committed, "dev", {**DEV, "dev/new.yaml": "new\n"}, DEV_META)
    with pytest.raises(GitOpsError, match=re.escape(f"{path}: the index holds staged changes")):
        committed.commit("meshstage: dev new")
    assert commit_count(root) == 1
    assert git(root, "show", f":{path}") == "the user's staged version\n"


def test_meshstage_bytes_the_user_staged_are_committed_not_refused(
    committed: GitOpsRepo, root: Path
) -> None:
    """The index holds a change, but the very bytes meshstage wrote (the user ran ``git add``
    after the write): nothing foreign, so the commit takes it."""
    path = "dev/04-traffic/reviews.yaml"
    run(committed, "dev", {**DEV, path: "kind: VirtualService\nweight: 30\n"}, DEV_META)
    user_git(root, "add", path)
    assert committed.commit("meshstage: dev reviews") is not None
    assert git(root, "show", f"HEAD:{path}") == "kind: VirtualService\nweight: 30\n"
    assert staged_names(root) == []


def test_a_change_staged_on_a_path_the_write_rewrites_is_refused(
    committed: GitOpsRepo, root: Path
) -> None:
    """The status taken while the write wrote cannot tell whether a file it rewrote is what
    the index holds: git's diff decides, and content meshstage did not stage is refused."""
    path = "dev/04-traffic/reviews.yaml"
    (root / path).write_text("the user's staged version\n")
    user_git(root, "add", path)
    (root / path).write_text(DEV[path])
    run(committed, "dev", {**DEV, path: "kind: VirtualService\nweight: 40\n"}, DEV_META)
    with pytest.raises(GitOpsError, match=re.escape(f"{path}: the index holds staged changes")):
        committed.commit("meshstage: dev reviews")
    assert git(root, "show", f":{path}") == "the user's staged version\n"


def test_a_change_staged_as_the_write_then_writes_it_is_committed(
    committed: GitOpsRepo, root: Path
) -> None:
    """Staged before the run, the very bytes the run then writes: nothing foreign."""
    path = "dev/04-traffic/reviews.yaml"
    new = "kind: VirtualService\nweight: 40\n"
    (root / path).write_text(new)
    user_git(root, "add", path)
    (root / path).write_text(DEV[path])
    with committed.session("writing dev"):
        run(committed, "dev", {**DEV, path: new}, DEV_META)
        assert committed.commit("meshstage: dev reviews") is not None
    assert git(root, "show", f"HEAD:{path}") == new
    assert staged_names(root) == []


def test_the_commit_takes_the_status_its_write_started(
        committed: GitOpsRepo, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git's status of the tracked files runs while the files are written, and the commit
    after the write, in the same session, reads it rather than wait for one of its own; a
    hand edit of a tracked file the write does not touch is in it all the same."""
    started: list[list[str]] = []
    ran: list[list[str]] = []
    start, run_git = Git.start, Git.run
    monkeypatch.setattr(Git, "start", lambda self, args: started.append(args) or start(self, args))
    monkeypatch.setattr(Git, "run", lambda self, args, *rest: ran.append(args)
                        or run_git(self, args, *rest))
    (root / "README.md").write_text("edited by hand\n")
    git(root, "add", "README.md")
    git(root, "-c", "user.name=U", "-c", "user.email=u@example.com", "commit", "-qm", "readme")
    (root / "README.md").write_text("edited again, not staged\n")
    with committed.session("writing dev"):  # as a run holds it, from its plan to its commit
        run(committed, "dev", {**DEV, "dev/new.yaml": "new\n"}, DEV_META)
        assert [args[1] for args in started] == ["status"]
        ran.clear()
        assert committed.commit("meshstage: dev new") is not None
    assert not [args for args in ran if "status" in args[:2]]
    assert sorted(git(root, "show", "--name-only", "--format=", "HEAD").split()) == \
        sorted(["dev/new.yaml", STATE_PATH])
    assert git(root, "status", "--porcelain", "--untracked-files=no") == " M README.md\n"


def test_a_conflicted_meshstage_path_is_refused(committed: GitOpsRepo, root: Path) -> None:
    """An unmerged entry (a merge's three versions in the index) is content meshstage did not
    make, whatever the file on disk holds."""
    path = "dev/04-traffic/reviews.yaml"
    ours, theirs = (git(root, "hash-object", "-w", "--stdin", input=text).strip()
                    for text in ("ours\n", "theirs\n"))
    base = git(root, "rev-parse", f"HEAD:{path}").strip()
    git(root, "update-index", "--index-info", input=(
        f"0 {'0' * 40}\t{path}\n100644 {base} 1\t{path}\n"
        f"100644 {ours} 2\t{path}\n100644 {theirs} 3\t{path}\n"))
    run(committed, "dev", {**DEV, "dev/new.yaml": "new\n"}, DEV_META)
    with pytest.raises(GitOpsError, match=re.escape(f"{path}: the index holds staged changes")):
        committed.commit("meshstage: dev new")
    assert commit_count(root) == 1


def test_a_user_edit_after_meshstage_committed_is_left_alone(
    committed: GitOpsRepo, root: Path
) -> None:
    run(committed, "staging", STAGING, STAGING_META)
    committed.commit("meshstage: staging")
    (root / "staging/kustomization.yaml").write_text("hand edit\n")

    run(committed, "dev", {**DEV, "dev/new.yaml": "new\n"}, DEV_META)
    assert committed.commit("meshstage: dev new") is not None
    assert "staging/kustomization.yaml" not in git(root, "show", "--name-only", "HEAD")
    assert (root / "staging/kustomization.yaml").read_text() == "hand edit\n"


def test_a_user_edit_before_meshstage_committed_is_refused(repo: GitOpsRepo, root: Path) -> None:
    run(repo, "dev", DEV, DEV_META)
    (root / "dev/kustomization.yaml").write_text("hand edit\n")
    with pytest.raises(GitOpsError, match=re.escape("dev/kustomization.yaml was changed by hand")):
        repo.commit("meshstage: dev")
    assert (root / "dev/kustomization.yaml").read_text() == "hand edit\n"


def test_a_later_run_commits_what_an_interrupted_run_left(repo: GitOpsRepo, root: Path) -> None:
    run(repo, "dev", DEV, DEV_META)  # applied, never committed
    fresh = GitOpsRepo(root)
    assert not fresh.plan("dev", DEV, DEV_META).changed
    assert fresh.commit("meshstage: dev") is not None
    assert head_files(root) == sorted([*DEV, STATE_PATH])


def test_gitignored_meshstage_files_are_still_committed(repo: GitOpsRepo, root: Path) -> None:
    run(repo, "dev", DEV, DEV_META)
    (root / ".gitignore").write_text("*.yaml\n")
    assert repo.commit("meshstage: dev") is not None
    assert head_files(root) == sorted([*DEV, STATE_PATH])
    assert untracked(root) == [".gitignore"]


def test_a_commit_beyond_the_command_line_limit_is_made(repo: GitOpsRepo, root: Path) -> None:
    """Paths and message reach git on stdin and in a file: an estate of thousands of files
    (here 1,000 paths of 2.4 KB, more than the kernel's 2 MB for arguments) and a message
    longer than the 128 KB one argument may have are committed like any other."""
    deep = "/".join(f"{level:02d}" + "d" * 198 for level in range(12))
    desired = {f"dev/{deep}/object-{index:04d}.yaml": f"index: {index}\n"
               for index in range(1000)}
    assert sum(len(path) + 1 for path in desired) > 2 * 1024 * 1024
    run(repo, "dev", desired, DEV_META)
    message = "meshstage: dev\n\n" + "- Sidecar team/svc-00000\n" * 6000
    assert len(message) > 128 * 1024
    assert repo.commit(message) is not None
    assert head_files(root) == sorted([*desired, STATE_PATH])
    assert git(root, "log", "-1", "--format=%B") == message + "\n"


class Messages:
    """A commit's message function that records each call: the thread it ran on and the
    changes it was given (action, path, text before, text after)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str, str | None, str | None]]]] = []

    def __call__(self, changes: list[FileChange]) -> str:
        seen = [(c.action, c.path, c.before, c.after) for c in changes]
        self.calls.append((threading.current_thread().name, seen))
        return "meshstage: dev\n\n" + "".join(f"- {a} {p}\n" for a, p, _, _ in seen)


def test_the_message_is_written_while_git_stages_from_the_foretold_changes(
        committed: GitOpsRepo, root: Path) -> None:
    """The changes the state files foretell (added, changed, removed, against HEAD) are the
    ones git stages: the message is written once, on the commit's thread, from them."""
    desired = {**DEV, "dev/04-traffic/reviews.yaml": "kind: VirtualService\nweight: 20\n",
               "dev/05-strict-mtls/new.yaml": "kind: PeerAuthentication\n"}
    del desired["dev/01-permissive-mtls/peer-authentication.yaml"]
    run(committed, "dev", desired, DEV_META)
    messages = Messages()
    assert committed.commit(messages) is not None
    assert messages.calls == [("meshstage-meanwhile", [
        ("remove", "dev/01-permissive-mtls/peer-authentication.yaml",
         "kind: PeerAuthentication\n", None),
        ("change", "dev/04-traffic/reviews.yaml", "kind: VirtualService\nweight: 10\n",
         "kind: VirtualService\nweight: 20\n"),
        ("add", "dev/05-strict-mtls/new.yaml", None, "kind: PeerAuthentication\n")])]
    assert git(root, "log", "-1", "--format=%B") == messages(
        [FileChange(p, a, b, t) for a, p, b, t in messages.calls[0][1]]) + "\n"


def test_a_message_foretold_wrong_is_written_again_from_gits_status(
        committed: GitOpsRepo, root: Path) -> None:
    """A file HEAD holds that meshstage never recorded (the user committed it, then deleted
    it from the work tree) is foretold as added; git stages it as changed, so the message
    is written again from git's status, and the commit takes that one."""
    (root / "dev/notes.yaml").write_text("user notes\n")
    user_git(root, "add", "dev/notes.yaml")
    user_git(root, "commit", "-q", "-m", "user notes")
    (root / "dev/notes.yaml").unlink()
    run(committed, "dev", {**DEV, "dev/notes.yaml": "kind: ConfigMap\n"}, DEV_META)
    messages = Messages()
    assert committed.commit(messages) is not None
    (_thread, foretold), (thread, written) = messages.calls
    assert foretold == [("add", "dev/notes.yaml", None, "kind: ConfigMap\n")]
    assert thread == threading.current_thread().name
    assert written == [("change", "dev/notes.yaml", "user notes\n", "kind: ConfigMap\n")]
    assert git(root, "log", "-1", "--format=%B") == \
        "meshstage: dev\n\n- change dev/notes.yaml\n\n"


def test_commit_without_a_repository_is_none(repo: GitOpsRepo) -> None:
    assert repo.commit("nothing") is None


def _refusing_hook(root: Path) -> None:
    hook = root / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'policy says no' >&2\nexit 1\n")
    hook.chmod(0o755)


def test_git_failure_carries_git_stderr(root: Path) -> None:
    repo = GitOpsRepo(root, hooks=True)
    run(repo, "dev", DEV, DEV_META)
    _refusing_hook(root)
    with pytest.raises(GitOpsError, match="policy says no"):
        repo.commit("meshstage: dev")


def test_commits_run_without_the_repository_hooks_unless_asked(repo: GitOpsRepo,
                                                                root: Path) -> None:
    run(repo, "dev", DEV, DEV_META)
    _refusing_hook(root)
    (root / ".git" / "hooks" / "post-commit").write_text("#!/bin/sh\ntouch ran\n")
    (root / ".git" / "hooks" / "post-commit").chmod(0o755)
    assert repo.commit("meshstage: dev") is not None
    assert not (root / "ran").exists()


# ---------------------------------------------------------------------------- TreeUpdate alone


def test_tree_update_counts_and_diff() -> None:
    update = TreeUpdate(
        scope="dev",
        changes=(
            FileChange("a.yaml", "add", None, "a\n"),
            FileChange("b.yaml", "change", "b\n", "B\n"),
            FileChange("c.yaml", "remove", "c\n", None),
        ),
        state_after=ScopeState({"a.yaml": sha256("a\n"), "b.yaml": sha256("B\n")}),
    )
    assert update.changed
    assert update.counts() == {"add": 1, "change": 1, "remove": 1}
    assert [(d["before"], d["after"]) for d in update.ansible_diff()] == [
        ("", "a\n"),
        ("b\n", "B\n"),
        ("c\n", ""),
    ]
    assert TreeUpdate("dev", (), ScopeState()).changed is False


def test_a_path_wanted_as_file_and_directory_is_refused(repo: GitOpsRepo, root: Path) -> None:
    with pytest.raises(GitOpsError, match=re.escape("dev/a is wanted both as a file")):
        repo.plan("dev", {"dev/a": "x\n", "dev/a/b.yaml": "y\n"}, DEV_META)
    assert not root.exists()
    # deeper down, after other files of the same directories, each clash named once with
    # the first path that needs the file as a directory
    desired = {"dev/x/y.yaml": "y\n", "dev/x/z/b.yaml": "b\n", "dev/x/z/a/c.yaml": "c\n",
               "dev/x/z": "z\n", "dev/x/z/a": "a\n", "dev/w.yaml": "w\n",
               "dev/q": "q\n", "dev/q/r/s.yaml": "s\n"}  # dev/q needed two levels up only
    with pytest.raises(GitOpsError) as refused:
        repo.plan("dev", desired, DEV_META)
    assert [line.strip() for line in str(refused.value).splitlines()
            if "wanted both" in line] == [
        "- dev/q is wanted both as a file and as the directory of dev/q/r/s.yaml",
        "- dev/x/z is wanted both as a file and as the directory of dev/x/z/a",
        "- dev/x/z/a is wanted both as a file and as the directory of dev/x/z/a/c.yaml"]
    with pytest.raises(GitOpsError, match=re.escape(  # the only clash, two levels up
            "dev/q is wanted both as a file and as the directory of dev/q/r/s.yaml")):
        repo.plan("dev", {"dev/q": "q\n", "dev/q/r/s.yaml": "s\n"}, DEV_META)
    # files side by side in nested directories clash with nothing
    assert repo.plan("dev", {"dev/x/y.yaml": "y\n", "dev/x/z/b.yaml": "b\n",
                             "dev/x/z/a/c.yaml": "c\n"}, DEV_META).changed


@pytest.mark.parametrize(
    ("desired", "meta", "message"),
    [
        ({"dev/a.yaml": b"bytes"}, {}, "dev/a.yaml: the content is a bytes, not text"),
        ({"dev/a.yaml": "\udcff"}, {}, "dev/a.yaml: the content is not valid UTF-8"),
        ({}, {"when": object()}, "the scope metadata cannot be stored as JSON"),
        ({}, ["not", "a", "mapping"], "the scope metadata is a list, not a mapping"),
    ],
)
def test_bad_contents_and_meta_are_refused(
    repo: GitOpsRepo, root: Path, desired: dict, meta: object, message: str
) -> None:
    with pytest.raises(GitOpsError, match=re.escape(message)):
        repo.plan("dev", desired, meta)
    assert not root.exists()


def test_apply_of_an_unchanged_update_creates_nothing(repo: GitOpsRepo, root: Path) -> None:
    update = repo.plan("dev", {}, {})
    assert not update.changed
    repo.apply(update)
    assert not root.exists()


def test_a_failed_write_names_the_file_and_leaves_no_temporary_file(
        repo: GitOpsRepo, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    update = repo.plan("dev", DEV, DEV_META)
    real_replace = os.replace

    def replace(source: str, target: object) -> None:
        if str(target).endswith("reviews.yaml"):
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(GitOpsError, match=r"dev/04-traffic/reviews.yaml: cannot write it in .*"
                                          r"No space left on device"):
        repo.apply(update)
    leftovers = [p for p in root.rglob("*.tmp") if ".git" not in p.parts]
    assert leftovers == []
    assert not (root / STATE_PATH).exists(), "the state is written last, only after every file"


def test_files_are_written_in_batches_each_fully_on_disk(repo: GitOpsRepo, root: Path) -> None:
    desired = {f"dev/{index % 7}/object-{index:04d}.yaml": f"index: {index}\n"
               for index in range(1200)}  # more than two batches
    run(repo, "dev", desired, DEV_META)
    for path, text in desired.items():
        assert (root / path).read_text() == text
        assert stat.S_IMODE((root / path).stat().st_mode) == 0o644
    assert [p for p in root.rglob("*.tmp") if ".git" not in p.parts] == []


def count_objects(root: Path) -> dict[str, int]:
    lines = git(root, "count-objects", "-v").splitlines()
    return {key: int(value) for key, _, value in (line.partition(": ") for line in lines)
            if value.isdigit()}


def test_many_new_files_go_into_one_pack_not_loose_objects(repo: GitOpsRepo, root: Path) -> None:
    desired = {f"dev/{index % 5}/object-{index:04d}.yaml": f"index: {index}\n"
               for index in range(300)}
    run(repo, "dev", desired, DEV_META)
    assert repo.commit("meshstage: dev") is not None
    objects = count_objects(root)
    assert objects["in-pack"] >= 300
    assert objects["count"] < 50, "only trees, the state file and the commit are loose"
    git(root, "fsck", "--strict")
    assert head_files(root) == sorted([*desired, STATE_PATH])
    assert git(root, "status", "--porcelain").strip() == ""


def test_a_repository_with_sha256_object_ids_is_committed_to(repo: GitOpsRepo,
                                                              root: Path) -> None:
    root.mkdir()
    git(root, "init", "-q", "-b", "main", "--object-format=sha256")
    run(repo, "dev", DEV, DEV_META)
    assert repo.commit("meshstage: dev") is not None
    assert repo.commit("meshstage: dev again") is None
    changed = {**DEV, "dev/04-traffic/reviews.yaml": "kind: VirtualService\nweight: 20\n"}
    run(repo, "dev", changed, DEV_META)
    assert repo.commit("meshstage: dev at 20") is not None
    assert git(root, "show", "HEAD:dev/04-traffic/reviews.yaml").endswith("weight: 20\n")
    assert git(root, "status", "--porcelain").strip() == ""
    git(root, "fsck", "--strict")


def test_a_second_commit_of_unchanged_files_stages_nothing(committed: GitOpsRepo,
                                                           root: Path) -> None:
    index_before = (root / ".git" / "index").stat().st_mtime_ns
    assert committed.commit("meshstage: nothing") is None
    assert (root / ".git" / "index").stat().st_mtime_ns == index_before


def test_a_commit_with_nothing_to_commit_reads_only_the_state_file(
        committed: GitOpsRepo, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops import repo as gitops

    read: list[str] = []
    real = gitops.read_disk
    monkeypatch.setattr(gitops, "read_disk",
                        lambda base, path, *rest: read.append(path) or real(base, path, *rest))
    assert committed.commit("meshstage: nothing") is None
    assert read == [gitops.STATE_PATH]
    # the user staged a file of their own: the full path, which reads again only the owned
    # files git sees changed (none yet)
    owned = sorted(committed._load_state().shas())
    (root / "notes.txt").write_text("the user's\n")
    subprocess.run(["git", "-C", str(root), "add", "notes.txt"], check=True)
    read.clear()
    assert committed.commit("meshstage: nothing") is None
    assert not set(owned) & set(read)
    # an owned file edited by hand since its commit is read, and left alone
    (root / owned[0]).write_text("my edit\n")
    read.clear()
    assert committed.commit("meshstage: nothing") is None
    assert set(owned) & set(read) == {owned[0]}
    assert (root / owned[0]).read_text() == "my edit\n"


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the write path reads from disk, from now on."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops import repo as gitops

    read: list[str] = []
    real = gitops.read_disk
    monkeypatch.setattr(gitops, "read_disk",
                        lambda base, path, *rest: read.append(path) or real(base, path, *rest))
    return read


def test_a_commit_reads_again_only_what_is_not_committed_as_recorded(
        committed: GitOpsRepo, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staging reads the files this run wrote, not another scope's committed ones: those are
    what HEAD holds as recorded, and git's status says nothing moved them."""
    changed = {**DEV, "dev/04-traffic/reviews.yaml": "kind: VirtualService\nweight: 20\n"}
    run(committed, "dev", changed, DEV_META)
    read = _reads(monkeypatch)
    run(committed, "staging", STAGING, STAGING_META)
    read.clear()
    assert committed.commit("meshstage: staging") is not None
    owned_read = set(read) - {STATE_PATH}
    # dev's change was written and not committed yet: it is read and committed too
    assert owned_read == {*STAGING, "dev/04-traffic/reviews.yaml"}
    assert git(root, "show", "HEAD:dev/04-traffic/reviews.yaml") == changed[
        "dev/04-traffic/reviews.yaml"]
    assert sorted(git(root, "show", "--name-only", "--format=", "HEAD").split()) == sorted(
        ["dev/04-traffic/reviews.yaml", *STAGING, STATE_PATH])


def test_a_written_file_put_back_to_head_by_hand_before_the_commit_is_refused(
        committed: GitOpsRepo, root: Path) -> None:
    """git sees nothing moved, but the record says meshstage wrote other bytes: the file is
    read, and committing the record would be a lie."""
    path = "dev/04-traffic/reviews.yaml"
    run(committed, "dev", {**DEV, path: "kind: VirtualService\nweight: 20\n"}, DEV_META)
    user_git(root, "checkout", "--", path)
    with pytest.raises(GitOpsError, match=r"reviews\.yaml was changed by hand after meshstage "
                                           "wrote it and before it was committed"):
        committed.commit("meshstage: dev")


def test_the_commit_of_the_writing_session_stages_the_write_without_reading_it_back(
        committed: GitOpsRepo, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside one session (a run holds the repository from its write to its commit) the
    commit stages the bytes its write put in each file, as git reads them, without reading
    each file back first; in a session of its own it reads them back (the test above)."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops import repo as module

    read: list[str] = []
    real = module.read_disk

    def counting(where: Path, path: str, *rest: object) -> object:
        read.append(path)
        return real(where, path, *rest)

    monkeypatch.setattr(module, "read_disk", counting)
    path = "dev/04-traffic/reviews.yaml"
    with committed.session("one run"):
        run(committed, "dev", {**DEV, path: "kind: VirtualService\nweight: 20\n"}, DEV_META)
        read.clear()
        assert committed.commit("meshstage: dev") is not None
    assert path not in read
    assert git(root, "show", f"HEAD:{path}") == "kind: VirtualService\nweight: 20\n"
    assert git(root, "status", "--porcelain") == ""
    with committed.session("another run"):
        run(committed, "dev", {**DEV, path: "kind: VirtualService\nweight: 30\n"}, DEV_META)
    read.clear()
    assert committed.commit("meshstage: dev") is not None
    assert path in read


def test_an_owned_file_taken_out_of_git_by_hand_is_staged_again(
        committed: GitOpsRepo, root: Path) -> None:
    """A file the record and HEAD's record agree on, but that git no longer tracks (the user
    committed `git rm --cached`), is not taken as committed: it is read and staged again."""
    path = "dev/04-traffic/reviews.yaml"
    user_git(root, "rm", "-q", "--cached", path)
    user_git(root, "commit", "-q", "-m", "untrack")
    run(committed, "staging", STAGING, STAGING_META)
    assert committed.commit("meshstage: staging") is not None
    assert git(root, "show", f"HEAD:{path}") == DEV[path]
    assert git(root, "status", "--porcelain").strip() == ""


def test_a_hand_edit_the_user_committed_to_another_scope_does_not_stop_a_commit(
        committed: GitOpsRepo, root: Path) -> None:
    """An owned file the user edited and committed themself is theirs to keep: another
    scope's run commits, and leaves the file and its commit as they are (the file's own
    scope refuses to overwrite it when it next writes it)."""
    path = "dev/04-traffic/reviews.yaml"
    (root / path).write_text("kind: VirtualService\nweight: 50\n")
    user_git(root, "commit", "-q", "-am", "my weight")
    run(committed, "staging", STAGING, STAGING_META)
    assert committed.commit("meshstage: staging") is not None
    assert git(root, "show", f"HEAD:{path}") == "kind: VirtualService\nweight: 50\n"
    assert (root / path).read_text() == "kind: VirtualService\nweight: 50\n"
    with pytest.raises(GitOpsError, match=r"reviews\.yaml"):
        committed.plan("dev", {**DEV, path: "kind: VirtualService\nweight: 30\n"}, DEV_META)


def _path_problem_without_shortcut(path: str) -> bool:
    """The rules of path_problem, written out: True when the path is refused."""
    import posixpath

    parts = path.split("/")
    return (not path or "\0" in path or "\\" in path or path.startswith("/")
            or ".." in parts or posixpath.normpath(path) != path or "" in parts
            or "." in parts or parts[0] in (".git", ".meshstage")
            or any(part.lower() == ".git" for part in parts))


def test_the_plainly_safe_path_shortcut_agrees_with_every_rule() -> None:
    import random

    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.paths import path_problem

    rng = random.Random(5)
    alphabet = ["a", "b", "G", "i", "T", "0", "_", "-", ".", "/", "\\", " ", ".git",
                ".meshstage", "..", "é"]
    for _ in range(20000):
        path = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 9)))
        assert (path_problem(path) is not None) == _path_problem_without_shortcut(path), path


def test_a_plans_bytes_are_the_ones_written_and_an_update_that_disagrees_is_refused(
        repo: GitOpsRepo, root: Path) -> None:
    """``apply`` writes the bytes ``plan`` hashed into the state after; an update whose
    files are not the ones its state records (made or changed by hand) is checked file by
    file and refused before anything is written."""
    update = repo.plan("dev", DEV, DEV_META)
    assert planned_bytes(update) == {path: text.encode() for path, text in DEV.items()}
    path = "dev/04-traffic/reviews.yaml"
    wrong = [FileChange(c.path, c.action, c.before, "kind: Tampered\n" if c.path == path
                        else c.after) for c in update.changes]
    for tampered in (dataclasses.replace(update, changes=tuple(wrong), encoded={}),
                     dataclasses.replace(update, changes=tuple(wrong[1:]))):
        with pytest.raises(GitOpsError, match="does not match its planned state"):
            repo.apply(tampered)
        assert not [p for p in [*DEV, STATE_PATH, JOURNAL_PATH] if (root / p).exists()]
    repo.apply(update)
    assert (root / path).read_text() == DEV[path]
