"""What one run writes for one scope: the files added, changed and removed, and the scope's
state before and after (the result of ``GitOpsRepo.plan``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import GitOpsError
from .git import object_id
from .paths import STATE_PATH
from .state import (
    ScopeState,
    sha256,
)

Action = Literal["add", "change", "remove"]


@dataclass(frozen=True)
class FileChange:
    """One file meshstage adds, changes or removes."""

    path: str
    action: Action
    before: str | None
    after: str | None


@dataclass(frozen=True)
class TreeUpdate:
    """The result of ``GitOpsRepo.plan``: what ``apply`` will write for one scope.

    ``state_before`` is the scope's state as ``plan`` read it; ``apply`` refuses to write when
    the repository no longer matches it.
    """

    scope: str
    changes: tuple[FileChange, ...]
    state_after: ScopeState
    state_before: ScopeState = field(default_factory=ScopeState)
    # the bytes ``plan`` hashed into ``state_after`` for each file added or changed (each
    # change's text, encoded): ``planned_bytes`` takes them instead of encoding and hashing
    # every text again
    encoded: Mapping[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    @property
    def state_changed(self) -> bool:
        """True when the scope's entry in the state file changes (owned set, a sha, meta)."""
        return self.state_after != self.state_before

    @property
    def changed(self) -> bool:
        """True when ``apply`` would write anything: a file, or the scope's state."""
        return bool(self.changes) or self.state_changed

    def counts(self) -> dict[str, int]:
        """How many files are added, changed and removed."""
        counts = {"add": 0, "change": 0, "remove": 0}
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def ansible_diff(self) -> list[dict[str, str]]:
        """Ansible's diff format, one dict per file; ``""`` for the missing side."""
        return [
            {
                "before_header": change.path,
                "after_header": change.path,
                "before": change.before or "",
                "after": change.after or "",
            }
            for change in self.changes
        ]


def planned_bytes(update: TreeUpdate) -> dict[str, bytes]:
    """The bytes to write for each added or changed file, checked against the planned sha:
    the ones ``plan`` hashed (``encoded``) when it gave them for exactly those files."""
    written = [change.path for change in update.changes if change.action != "remove"]
    if update.encoded and len(update.encoded) == len(written) \
            and all(path in update.encoded for path in written):
        return {path: update.encoded[path] for path in written}
    planned: dict[str, bytes] = {}
    for change in update.changes:
        if change.action == "remove":
            continue
        data = (change.after or "").encode("utf-8")
        if update.state_after.files.get(change.path) != sha256(data):
            raise GitOpsError(f"{change.path}: the update does not match its planned state")
        planned[change.path] = data
    return planned


def unproven(changes: Sequence[FileChange], recorded: Mapping[str, str],
             committed: Mapping[str, str], tree: Mapping[str, str]) -> list[str]:
    """Problems for files ``changes`` would overwrite or remove that the committed record
    (``committed``: path -> sha256) lists as ``recorded`` but the commit's ``tree`` (path ->
    object id, of those files at least) does not hold as meshstage wrote them: the record
    is not meshstage's, so neither is the file."""
    sha256_ids = len(next(iter(tree.values()), "")) == 64
    return [
        f"{change.path} is recorded as meshstage's in the committed {STATE_PATH}, but the "
        "commit does not hold the file meshstage wrote; meshstage never overwrites or "
        "removes a file it cannot show it wrote: restore the file or the record"
        for change in changes
        if change.action != "add" and committed.get(change.path) == recorded.get(change.path)
        and tree.get(change.path) != object_id((change.before or "").encode("utf-8"),
                                               sha256_ids)
    ]
