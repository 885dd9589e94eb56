"""A run's write is one transaction: the journal, the lock, the trusted record, and what the
next run does after an interruption. Real git repositories in tmp_path, real processes for
the lock and the kills (the 1,000-service kill test is tests/integration/
test_interrupted_write.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gitops_helpers import repository_held

from ansible_collections.meshstage.mesh.plugins.module_utils._io import (
    temporary_tag,
    write_tagged_temporary,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import GitOpsError
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.disk import (
    FILE_MODE,
    remove_temporaries,
    write_files_atomic,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.journal import JOURNAL_PATH
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.paths import STATE_PATH
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.state import sha256

BEFORE = {f"dev/{index % 5}/object-{index:03d}.yaml": f"index: {index}\n" for index in range(60)}
# changes ten files, removes ten, adds twenty
AFTER = {**{path: text for path, text in BEFORE.items() if not path.endswith(("5.yaml",))},
         **{f"dev/{index % 5}/object-{index:03d}.yaml": f"index: {index}\nnew: true\n"
            for index in range(0, 60, 6)},
         **{f"dev/new/object-{index:03d}.yaml": f"added: {index}\n" for index in range(20)}}
META = {"provider": "istio", "stage": "traffic"}
WRITE = """
import json, sys
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo
root, desired = sys.argv[1], json.loads(sys.argv[2])
repo = GitOpsRepo(root)
with repo.session("writing dev"):
    repo.apply(repo.plan("dev", desired, {"provider": "istio", "stage": "traffic"}))
    repo.commit("meshstage: dev")
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout


def files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.relative_to(root).parts[0] != ".git"}


def commit(repo: GitOpsRepo, desired: dict[str, str], message: str = "meshstage: dev") -> None:
    repo.apply(repo.plan("dev", desired, META))
    assert repo.commit(message) is not None


def killed_write(root: Path, point: str, count: int = 1,
                 desired: dict[str, str] = AFTER) -> None:
    """Write ``desired`` in another process that kills itself at ``point``."""
    env = {**os.environ, "MESHSTAGE_KILL_AT": f"{point}:{count}"}
    result = subprocess.run([sys.executable, "-c", WRITE, str(root), json.dumps(desired)],
                            env=env, capture_output=True, text=True, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "gitops"
    commit(GitOpsRepo(root), BEFORE)
    return root


# ---------------------------------------------------------------------------- the next run


def test_an_interrupted_write_is_completed_by_the_next_run(root: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    commit(GitOpsRepo(reference), BEFORE)
    commit(GitOpsRepo(reference), AFTER)
    killed_write(root, "renamed", 7)
    assert (root / JOURNAL_PATH).exists()
    assert [p for p in files(root) if p.endswith(".tmp")], "the kill left temporary files"

    repo = GitOpsRepo(root)
    with repo.session("writing dev"):
        commit(repo, AFTER)
    assert files(root) == files(reference)
    assert git(root, "show", "--stat", "--format=", "HEAD") == \
        git(reference, "show", "--stat", "--format=", "HEAD")
    assert repo.notes and "completed the write of an interrupted meshstage run" in repo.notes[0]
    assert not [p for p in files(root) if p.endswith(".tmp")]


def test_a_write_interrupted_before_its_files_were_all_on_disk_is_undone(
        root: Path, tmp_path: Path) -> None:
    """Killed amid its temporary files, the write has no file in place yet and not every
    file's bytes after anywhere whole: the next run puts back what it removed, and then
    makes its own write."""
    reference = tmp_path / "reference"
    commit(GitOpsRepo(reference), BEFORE)
    commit(GitOpsRepo(reference), AFTER)
    killed_write(root, "temporary", 25)
    assert (root / JOURNAL_PATH).exists()
    assert any(not (root / path).exists() for path in BEFORE), "the removals came first"

    repo = GitOpsRepo(root)
    with repo.session("writing dev"):
        assert files(root) == files_of(BEFORE, root), "put back as it was"
        assert not (root / JOURNAL_PATH).exists(), "HEAD holds the state before"
        commit(repo, AFTER)
    assert files(root) == files(reference)
    assert repo.notes and "undid the write of an interrupted meshstage run" in repo.notes[0]


def test_a_write_killed_after_its_last_temporary_file_is_completed(
        root: Path, tmp_path: Path) -> None:
    """Every file's new bytes are in a temporary file, though none is flushed or in place
    yet: the next run puts them in place (after flushing them) rather than undo."""
    reference = tmp_path / "reference"
    commit(GitOpsRepo(reference), BEFORE)
    commit(GitOpsRepo(reference), AFTER)
    writes = sum(1 for path, text in AFTER.items() if BEFORE.get(path) != text)
    killed_write(root, "temporary", writes)
    assert all((root / path).read_text() == text for path, text in BEFORE.items()
               if path in AFTER and AFTER[path] != text), "no file in place yet"
    repo = GitOpsRepo(root)
    with repo.session("writing dev"):
        commit(repo, AFTER)
    assert files(root) == files(reference)
    assert "completed the write of an interrupted meshstage run" in repo.notes[0]


def files_of(desired: dict[str, str], root: Path) -> dict[str, bytes]:
    """What the tree of ``root`` holds when it is ``desired`` as committed (and its record)."""
    return {**{path: text.encode() for path, text in desired.items()},
            STATE_PATH: (root / STATE_PATH).read_bytes()}


def test_a_temporary_file_that_is_not_whole_makes_the_next_run_undo_the_write(
        root: Path) -> None:
    killed_write(root, "renamed", 3)
    journal = json.loads((root / JOURNAL_PATH).read_text())
    left = sorted(p for p in root.rglob(f".*.{journal['tag']}.tmp")
                  if ".meshstage" not in p.relative_to(root).parts)
    assert left, "the kill left temporary files to put in place"
    left[0].write_bytes(left[0].read_bytes()[:-1])  # cut short
    repo = GitOpsRepo(root)
    with repo.session("writing dev"):
        assert files(root) == files_of(BEFORE, root)
    assert "undid the write" in repo.notes[0]


def test_the_state_after_is_the_writes_temporary_file_and_the_journal_keeps_its_sha256(
        root: Path, tmp_path: Path) -> None:
    """Killed once every file is in place but before the state file: the journal holds the
    state files' sha256, not their text; the next run puts the write's temporary file of
    the state file in place. The same kill with that file cut short: the write goes back."""
    reference = tmp_path / "reference"
    commit(GitOpsRepo(reference), BEFORE)
    commit(GitOpsRepo(reference), AFTER)
    state_after = (reference / STATE_PATH).read_bytes()
    killed_write(root, "files")
    journal = json.loads((root / JOURNAL_PATH).read_text())
    assert journal["version"] == 3
    assert journal["state"] == {"before_sha256": sha256((root / STATE_PATH).read_bytes()),
                                "after_sha256": sha256(state_after)}
    temporary = root / ".meshstage" / f".state.json.{journal['tag']}.tmp"
    assert temporary.read_bytes() == state_after
    assert b'\\"scopes\\"' not in (root / JOURNAL_PATH).read_bytes(), "no state file's text"
    repo = GitOpsRepo(root)
    with repo.session("writing dev"):
        assert (root / STATE_PATH).read_bytes() == state_after
        commit(repo, AFTER)
    assert files(root) == files(reference)
    assert "completed the write" in repo.notes[0]

    again = tmp_path / "again"
    commit(GitOpsRepo(again), BEFORE)
    killed_write(again, "files")
    tag = json.loads((again / JOURNAL_PATH).read_text())["tag"]
    cut = again / ".meshstage" / f".state.json.{tag}.tmp"
    cut.write_bytes(cut.read_bytes()[:-1])
    repo = GitOpsRepo(again)
    with repo.session("writing dev"):
        assert files(again) == files_of(BEFORE, again), "put back as it was"
    assert "undid the write" in repo.notes[0]


def test_an_undone_write_keeps_the_uncommitted_write_before_it_trusted(root: Path) -> None:
    """A run killed after its state file but before its commit leaves a write for the next
    commit; a second run killed amid its temporary files is undone back to that write, whose
    record is not HEAD's: a journal of its own keeps it trusted until it is committed."""
    killed_write(root, "state")
    first = {path: data for path, data in files(root).items() if path != JOURNAL_PATH}
    second = {path: f"{text}second: true\n" for path, text in AFTER.items()}
    second.pop("dev/new/object-001.yaml")
    killed_write(root, "temporary", 5, desired=second)
    repo = GitOpsRepo(root)
    with repo.session("writing dev"):
        assert {path: data for path, data in files(root).items() if path != JOURNAL_PATH} \
            == first, "put back to the first write"
        assert json.loads((root / JOURNAL_PATH).read_text())["files"] == []
        commit(repo, second)
    assert not (root / JOURNAL_PATH).exists()
    assert git(root, "show", "HEAD:dev/new/object-000.yaml") == "added: 0\nsecond: true\n"
    assert git(root, "status", "--porcelain").strip() == ""


def completes_an_older_journal(root: Path, tmp_path: Path,
                               rewrite: Callable[[dict[str, Any]], None]) -> None:
    """Kill a write amid its renames, ``rewrite`` its journal (a document) as an earlier
    meshstage wrote it, with the state files as text, and assert the next run completes
    it into the tree of an uninterrupted write."""
    reference = tmp_path / "reference"
    commit(GitOpsRepo(reference), BEFORE)
    commit(GitOpsRepo(reference), AFTER)
    killed_write(root, "renamed", 7)
    document = json.loads((root / JOURNAL_PATH).read_text())
    (root / ".meshstage" / f".state.json.{document['tag']}.tmp").unlink()  # before version 3
    rewrite(document)
    document["state"] = {"before": git(root, "show", f"HEAD:{STATE_PATH}"),
                         "after": (reference / STATE_PATH).read_text()}
    (root / JOURNAL_PATH).write_text(json.dumps(document))
    repo = GitOpsRepo(root)
    with repo.session("writing dev"):
        commit(repo, AFTER)
    assert files(root) == files(reference)
    assert "completed the write" in repo.notes[0]


def test_a_journal_of_version_1_is_still_completed(root: Path, tmp_path: Path) -> None:
    """The journal of a meshstage before version 2 holds every file's bytes after, and no
    temporary files' tag: a run of this one completes it from those bytes."""
    def version_1(document: dict[str, Any]) -> None:
        remove_temporaries(root, [entry["path"] for entry in document["files"]])
        for entry in document["files"]:
            entry["after"] = AFTER.get(entry.pop("after_sha256") and entry["path"])
        document["version"] = 1
        del document["tag"]

    completes_an_older_journal(root, tmp_path, version_1)


def test_a_journal_of_version_2_is_still_completed(root: Path, tmp_path: Path) -> None:
    """The journal of a meshstage before version 3 holds the state files' texts and no
    temporary file of the state: a run of this one completes it from the text."""
    completes_an_older_journal(root, tmp_path, lambda document: document.update(version=2))


def test_the_journal_is_ascii_json_that_gives_back_every_byte() -> None:
    """Every file's bytes before come back from the journal as they went in (text that is
    not ASCII, and a byte that is not UTF-8 at all, carried as a surrogate escape); the bytes
    after, as their sha256."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.journal import (
        Journal,
        JournalEntry,
        parse_journal,
    )

    entries = (JournalEntry("dev/a.yaml", "name: café\n".encode(), "name: 日本\n".encode()),
               JournalEntry("dev/b.yaml", b"raw: \xff\n", None),
               JournalEntry("dev/c.yaml", None, b"added: true\n"))
    journal = Journal(entries, b"raw: \xfe\n", b'{"scopes": {}}\n', {"pid": 1, "scopes": ["dev"]},
                      "abcd_123")
    data = journal.render()
    assert data.isascii() and json.loads(data)["version"] == 3
    assert b"added: true" not in data and sha256(b"added: true\n") in data.decode()
    assert b'\\"scopes\\"' not in data, "the state files as their sha256 only, not as text"
    assert parse_journal(data) == Journal(
        tuple(JournalEntry(e.path, e.before, None, e.written) for e in entries),
        None, None, journal.run, journal.tag, sha256(b"raw: \xfe\n"),
        sha256(b'{"scopes": {}}\n'))


def test_a_file_changed_by_hand_after_the_interruption_is_named_not_overwritten(
        root: Path) -> None:
    killed_write(root, "renamed", 3)
    written = next(path for path, text in AFTER.items()
                   if BEFORE.get(path) != text and (root / path).exists()
                   and (root / path).read_text() == text)
    untouched = "dev/new/object-019.yaml"
    (root / written).write_text("my edit\n")
    (root / untouched).write_text("mine\n")
    before = files(root)
    with pytest.raises(GitOpsError) as raised:
        GitOpsRepo(root).plan("dev", AFTER, META)
    with pytest.raises(GitOpsError) as raised:
        with GitOpsRepo(root).session("writing dev"):
            pass
    message = str(raised.value)
    assert "a meshstage run was interrupted while writing (pid" in message
    assert f"{written} was changed by hand after the run was interrupted" in message
    assert f"{untouched} was changed by hand after the run was interrupted" in message
    assert "deleted by hand" not in message and "not owned" not in message
    assert files(root) == before


def test_a_write_that_fails_part_way_is_put_back(root: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    before = files(root)
    repo = GitOpsRepo(root)
    update = repo.plan("dev", AFTER, META)
    real_replace = os.replace

    def replace(source: str, target: object) -> None:
        if str(target).endswith("dev/new/object-004.yaml"):
            raise PermissionError(13, "Permission denied")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(GitOpsError, match=r"Permission denied\nNothing was changed: the files "
                                          "written before the failure were put back"):
        repo.apply(update)
    monkeypatch.setattr(os, "replace", real_replace)
    assert files(root) == before
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert not (root / "dev" / "new").exists(), "the directories it made are gone too"
    commit(repo, AFTER)


def test_a_failed_write_put_back_keeps_the_uncommitted_write_before_it_trusted(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put back after a failure, a write that started from an earlier run's uncommitted
    write leaves that write as it was, and trusted: the next run commits it with its own."""
    killed_write(root, "state")
    first = {path: data for path, data in files(root).items() if path != JOURNAL_PATH}
    second = {path: f"{text}second: true\n" for path, text in AFTER.items()}
    repo = GitOpsRepo(root)
    real_replace = os.replace

    def replace(source: str, target: object) -> None:
        if str(target).endswith("dev/new/object-004.yaml"):
            raise PermissionError(13, "Permission denied")
        real_replace(source, target)

    with repo.session("writing dev"):
        update = repo.plan("dev", second, META)
        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(GitOpsError, match="Nothing was changed"):
            repo.apply(update)
        monkeypatch.setattr(os, "replace", real_replace)
    assert {path: data for path, data in files(root).items() if path != JOURNAL_PATH} == first
    repo = GitOpsRepo(root)
    with repo.session("writing dev"):
        commit(repo, second)
    assert git(root, "show", "HEAD:dev/new/object-000.yaml") == "added: 0\nsecond: true\n"
    assert not (root / JOURNAL_PATH).exists()


def test_check_mode_says_an_interrupted_write_awaits_the_next_run(root: Path) -> None:
    killed_write(root, "removed", 4)
    before = files(root)
    with pytest.raises(GitOpsError, match="the next run that writes \\(without --check\\) "
                                          "finishes it by itself"):
        with GitOpsRepo(root).session("previewing dev", write=False):
            pass
    assert files(root) == before


def test_a_run_killed_after_its_commit_leaves_nothing_to_do(root: Path) -> None:
    killed_write(root, "committed")
    head = git(root, "rev-parse", "HEAD")
    repo = GitOpsRepo(root)
    assert not repo.plan("dev", AFTER, META).changed
    assert repo.commit("meshstage: dev") is None
    assert git(root, "rev-parse", "HEAD") == head
    assert not (root / JOURNAL_PATH).exists()


def test_git_lock_files_a_killed_commit_left_are_removed(root: Path) -> None:
    killed_write(root, "staged")
    (root / ".git" / "index.lock").write_text("")  # as a git killed mid-commit leaves it
    repo = GitOpsRepo(root)
    with repo.session("writing dev"):
        commit(repo, AFTER)
    assert not (root / ".git" / "index.lock").exists()
    assert any("index.lock" in note for note in repo.notes)


# ---------------------------------------------------------------------------- the record


def claim_a_user_file(root: Path) -> Path:
    """A file of the user's, recorded as dev's in the state file with its right sha."""
    user = root / "dev" / "0" / "my-notes.yaml"
    user.write_text("the user's\n")
    state = json.loads((root / STATE_PATH).read_text())
    state["scopes"]["dev"]["files"]["dev/0/my-notes.yaml"] = sha256(user.read_bytes())
    (root / STATE_PATH).write_text(json.dumps(state))
    return user


def test_a_state_file_edited_by_hand_never_makes_a_run_delete_a_user_file(root: Path) -> None:
    """A user file claimed in the state file (with its right sha) is not removed."""
    user = claim_a_user_file(root)
    with pytest.raises(GitOpsError, match=re.escape(f"{STATE_PATH} is not the one meshstage "
                                                    "committed and no interrupted run")):
        GitOpsRepo(root).plan("dev", BEFORE, META)
    assert user.read_text() == "the user's\n"


def test_a_committed_record_of_a_file_meshstage_never_committed_is_refused(root: Path) -> None:
    user = claim_a_user_file(root)
    git(root, "-c", "user.name=U", "-c", "user.email=u@example.invalid", "commit", "-qm",
        "tampered", "--", STATE_PATH)
    with pytest.raises(GitOpsError, match=re.escape("dev/0/my-notes.yaml is recorded as "
                                                    "meshstage's in the committed")):
        GitOpsRepo(root).plan("dev", BEFORE, META)
    assert user.read_text() == "the user's\n"


def test_a_deleted_state_file_is_named(root: Path) -> None:
    (root / STATE_PATH).unlink()
    with pytest.raises(GitOpsError, match=re.escape(f"{STATE_PATH} was deleted by hand")):
        GitOpsRepo(root).plan("dev", BEFORE, META)


# ---------------------------------------------------------------------------- the lock


def test_a_second_run_is_refused_naming_the_run_that_holds_the_repository(root: Path) -> None:
    with repository_held(root, "rendering prod") as pid:
        with pytest.raises(GitOpsError) as raised:
            commit(GitOpsRepo(root), AFTER)
    assert f"another meshstage run holds the GitOps repository {root} (pid {pid} on " \
        in str(raised.value)
    assert "rendering prod" in str(raised.value)
    commit(GitOpsRepo(root), AFTER)  # a killed holder holds nothing


# ---------------------------------------------------------------------------- the blobs


def test_a_large_write_stores_its_blobs_while_writing_and_the_commit_reuses_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From PACK_AT files on, ``git fast-import`` stores the write's blobs beside the file
    writes and the commit's reading (on another core); the commit waits for them before it
    stages, finds them stored and does not pack them again."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.git import PACK_AT, Git

    root = tmp_path / "gitops"
    repo = GitOpsRepo(root)
    desired = {f"dev/object-{n:04d}.yaml": f"n: {n}\n" for n in range(PACK_AT + 20)}
    repo.apply(repo.plan("dev", desired, META))

    def packed_again(self: Git, blobs: object) -> None:
        raise AssertionError("the commit packed blobs the write had stored")

    blobs_when_staged: list[int] = []
    check = Git.check

    def staging(self: Git, *args: str, **options: object):
        if args[0] == "update-index":
            stored = git(root, "cat-file", "--batch-check", "--batch-all-objects")
            blobs_when_staged.append(stored.count(" blob "))
        return check(self, *args, **options)

    monkeypatch.setattr(Git, "store_blobs", packed_again)
    monkeypatch.setattr(Git, "check", staging)
    assert repo.commit("meshstage: dev") is not None
    assert blobs_when_staged and blobs_when_staged[0] >= len(desired)
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "show", "HEAD:dev/object-0007.yaml") == "n: 7\n"


def test_a_background_store_that_fails_leaves_the_blobs_to_the_commit(tmp_path: Path) -> None:
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.git import Git

    (tmp_path / "not-a-repository").mkdir()
    with Git(tmp_path / "not-a-repository").store_blobs_meanwhile([b"a\n", b"b\n"]) as store:
        pass
    assert store.stored is False  # git failed: nothing is said stored, nothing is raised
    with Git(tmp_path).store_blobs_meanwhile([]) as nothing:
        pass
    assert nothing.stored is False  # nothing to store: no git started


# ---- the temporary files of a write of many files


def test_a_writes_temporary_files_share_one_tag_and_keep_the_files_mode(tmp_path: Path) -> None:
    """One tag per write, names of ``write_temporary``'s form (so an interrupted write's
    leftovers are found and removed), the file's mode whatever the umask."""
    tag = temporary_tag()
    assert re.fullmatch(r"[a-z0-9_]{8}", tag)
    old = os.umask(0o077)
    try:
        temp = write_tagged_temporary(str(tmp_path), "a.yaml", b"a: 1\n", FILE_MODE, tag)
    finally:
        os.umask(old)
    assert temp == f"{tmp_path}/.a.yaml.{tag}.tmp"
    assert Path(temp).read_bytes() == b"a: 1\n"
    assert os.stat(temp).st_mode & 0o777 == FILE_MODE
    assert remove_temporaries(tmp_path, ["a.yaml", "b.yaml"]) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_name_taken_already_is_left_alone(tmp_path: Path) -> None:
    """Creating a tagged temporary file is exclusive: a file of that name (a symlink, say)
    is never written through; another random name is taken."""
    tag = temporary_tag()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("mine\n")
    (tmp_path / f".a.yaml.{tag}.tmp").symlink_to(elsewhere)
    temp = write_tagged_temporary(str(tmp_path), "a.yaml", b"a: 1\n", FILE_MODE, tag)
    assert temp != f"{tmp_path}/.a.yaml.{tag}.tmp"
    assert Path(temp).read_bytes() == b"a: 1\n"
    assert elsewhere.read_text() == "mine\n"


def test_a_write_of_many_files_leaves_only_the_files(tmp_path: Path) -> None:
    files = [(f"envs/dev/{n % 3}/o{n}.yaml", f"n: {n}\n".encode()) for n in range(30)]
    write_files_atomic(tmp_path, [*files, ("README.md", b"top\n")])
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(["README.md", *(path for path, _ in files)])
    assert (tmp_path / "envs/dev/2/o29.yaml").read_bytes() == b"n: 29\n"


def test_a_large_write_creates_and_renames_on_two_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From ``THREADED_AT`` files, half of them are created and renamed on a second thread;
    every file ends up whole in its place, and no temporary file is left."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops import disk

    threads: set[str] = set()
    real = disk.write_tagged_temporary

    def noting(*args: Any) -> str:
        threads.add(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(disk, "write_tagged_temporary", noting)
    files = [(f"envs/dev/{n % 7}/o{n}.yaml", f"n: {n}\n".encode())
             for n in range(disk.THREADED_AT + 1)]
    write_files_atomic(tmp_path, files)
    assert len(threads) == 2
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(path for path, _ in files)
    assert all((tmp_path / path).read_bytes() == data for path, data in files)


def test_a_large_write_that_fails_on_the_second_thread_puts_nothing_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the second thread cannot create fails the whole write, naming it, before any
    rename: no file is put in place and no temporary file is left, on either thread."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops import disk

    monkeypatch.setattr(disk, "THREADED_AT", 10)
    files = [(f"envs/dev/{'blocked/' if n == 17 else ''}o{n:02d}.yaml", f"n: {n}\n".encode())
             for n in range(20)]  # the second thread takes the second half, o17 in it
    (tmp_path / "envs/dev").mkdir(parents=True)
    (tmp_path / "envs/dev/blocked").write_text("a file where a folder goes\n")
    monkeypatch.setattr(disk.os, "replace", lambda *args: pytest.fail("renamed"))
    with pytest.raises(GitOpsError, match=r"envs/dev/blocked/o17\.yaml: cannot write it"):
        write_files_atomic(tmp_path, files)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["envs/dev/blocked"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs(2) is Linux's")
def test_a_write_flushes_the_file_system_before_and_after_its_renames(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The files' bytes are on disk before the first rename, and the renames are made
    durable by a second flush, not by an fsync of each directory."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops import disk

    events: list[str] = []
    real_syncfs, real_replace = disk._syncfs, os.replace
    monkeypatch.setattr(disk, "_syncfs", lambda root: events.append("syncfs") or
                        real_syncfs(root))
    monkeypatch.setattr(disk.os, "replace", lambda source, target: events.append("rename") or
                        real_replace(source, target))
    monkeypatch.setattr(disk, "fsync_directory", lambda directory: events.append("fsync"))
    files = [(f"envs/dev/{n % 3}/o{n}.yaml", f"n: {n}\n".encode()) for n in range(30)]
    write_files_atomic(tmp_path, files)
    assert events == ["syncfs", *["rename"] * 30, "syncfs"]


def test_a_writes_files_are_older_than_any_index_written_after_them(root: Path) -> None:
    """Each file a write puts in place has the mtime of the second before the write, so git
    never takes an entry for racily clean and never reads the files again to tell; a change
    made by hand afterwards, of the same size, is still told from the entry."""
    commit(GitOpsRepo(root), AFTER)
    index = os.stat(root / ".git" / "index").st_mtime_ns // 1_000_000_000
    written = [path for path, text in AFTER.items() if BEFORE.get(path) != text]
    assert written and all(
        os.stat(root / path).st_mtime_ns // 1_000_000_000 < index for path in written)
    path = written[0]
    (root / path).write_text(AFTER[path].replace("new", "NEW"))
    assert git(root, "status", "--porcelain", "--untracked-files=no") == f" M {path}\n"


def test_where_git_checks_only_mtime_and_size_files_keep_their_own_mtime(
        tmp_path: Path) -> None:
    """With ``core.checkStat=minimal`` git tells a file from its entry by its whole-second
    mtime and its size alone: a file of the same size written again within the second must
    keep the mtime that makes git's racy check read it, or git would commit the old one."""
    root = tmp_path / "gitops"
    commit(GitOpsRepo(root), BEFORE)
    git(root, "config", "core.checkStat", "minimal")
    path = "dev/0/object-000.yaml"
    start = time.time_ns() // 1_000_000_000
    for text in ("index: A\n", "index: B\n"):  # the same size, one run after the other
        commit(GitOpsRepo(root), {**BEFORE, path: text})
        assert git(root, "show", f"HEAD:{path}") == text
    assert os.stat(root / path).st_mtime_ns // 1_000_000_000 >= start
