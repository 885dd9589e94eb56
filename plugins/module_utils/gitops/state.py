"""What meshstage owns: ``.meshstage/state.json``, per scope the owned paths with the sha256 of
the bytes written, and the scope's metadata; written canonically, so it changes only when
something it records changes."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import GitOpsError
from .paths import path_problem

STATE_VERSION = 1


_SCOPE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ScopeState:
    """What the state file records for one scope: owned path -> sha256, and the metadata."""

    files: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(sorted(self.files.items()))))
        object.__setattr__(self, "meta", MappingProxyType(canonical_meta(self.meta)))

    def as_json(self) -> dict[str, Any]:
        """The scope's entry in ``state.json``."""
        return {"files": dict(self.files), "meta": canonical_meta(self.meta)}


@dataclass(frozen=True)
class State:
    """The whole state file: every scope's entry."""

    scopes: Mapping[str, ScopeState] = field(default_factory=dict)

    def scope(self, name: str) -> ScopeState:
        return self.scopes.get(name, ScopeState())

    def owners(self) -> dict[str, str]:
        """Owned path -> the scope that owns it."""
        return {path: name for name, entry in self.scopes.items() for path in entry.files}

    def shas(self) -> dict[str, str]:
        """Owned path -> recorded sha256, every scope."""
        return {path: sha for entry in self.scopes.values() for path, sha in entry.files.items()}

    def with_scope(self, name: str, entry: ScopeState) -> State:
        return State({**self.scopes, name: entry})

    def render(self) -> bytes:
        document = {
            "scopes": {name: entry.as_json() for name, entry in self.scopes.items()},
            "version": STATE_VERSION,
        }
        return _canonical_json(document).encode("utf-8")


def check_scope(scope: str) -> None:
    if not isinstance(scope, str) or not _SCOPE_RE.fullmatch(scope):
        raise GitOpsError(
            f"scope {scope!r} is not a valid scope name (letters, digits, '_', '.', '-')"
        )


def parse_state(data: bytes, where: str) -> State:
    """Parse and validate a state file; every path in it must be a safe path."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise GitOpsError(f"{where} is not valid JSON: {error}") from error
    if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
        raise GitOpsError(f"{where} is not a meshstage state file of version {STATE_VERSION}")
    scopes = document.get("scopes")
    if not isinstance(scopes, dict):
        raise GitOpsError(f"{where}: 'scopes' is not a mapping")
    entries: dict[str, ScopeState] = {}
    owners: dict[str, str] = {}
    for name, entry in sorted(scopes.items()):
        entries[name] = _parse_scope(name, entry, where)
        for path in entries[name].files:
            if path in owners:
                raise GitOpsError(f"{where}: {path} is owned by both {owners[path]!r} and {name!r}")
            owners[path] = name
    return State(entries)


def _parse_scope(name: str, entry: object, where: str) -> ScopeState:
    if not _SCOPE_RE.fullmatch(name) or not isinstance(entry, dict):
        raise GitOpsError(f"{where}: scope {name!r} is not a valid entry")
    files, meta = entry.get("files", {}), entry.get("meta", {})
    if not isinstance(files, dict) or not isinstance(meta, dict):
        raise GitOpsError(f"{where}: scope {name!r} has no valid 'files' and 'meta' mappings")
    for path, sha in files.items():
        problem = path_problem(path)
        if problem:
            raise GitOpsError(f"{where}: owned path {path!r} of scope {name!r} {problem}")
        if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
            raise GitOpsError(f"{where}: {path} of scope {name!r} has no valid sha256")
    return ScopeState(files, meta)


def meta_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return canonical_meta(meta)
    except GitOpsError:
        raise
    except (TypeError, ValueError) as error:
        raise GitOpsError(f"the scope metadata cannot be stored as JSON: {error}") from error


def canonical_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A deep, JSON-clean copy of ``meta``."""
    if not isinstance(meta, Mapping):
        raise GitOpsError(f"the scope metadata is a {type(meta).__name__}, not a mapping")
    return json.loads(_canonical_json(meta))


def _canonical_json(value: Any) -> str:
    return (
        json.dumps(
            value,
            sort_keys=True,
            indent=2,
            ensure_ascii=False,
            allow_nan=False,
            default=_json_default,
        )
        + "\n"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, set, frozenset)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
