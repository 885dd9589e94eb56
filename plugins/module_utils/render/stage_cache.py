"""The stage cache: what the last run of an environment rendered and validated.

Rendering an object (Jinja, parse back, canonical dump) and validating it are pure
functions of their inputs. When an estate of thousands of objects is run again with nothing
or one service changed, nearly every object comes out byte for byte as last time. The stage
cache keeps that work, per environment:

* **rendered objects**, keyed on a hash of the renderer's fingerprint, the template name and
  the template's values (their ``pickle``, which tells a tuple from a list and ``1`` from
  ``"1"``; these pickles are only hashed, never loaded). The value is the canonical text and the
  object parsed back (as JSON, when the object survives JSON unchanged; else it is parsed
  from the text again), its identity and its class in the apply order.
* **validation verdicts**: the sha256 of each text that passed schema validation, kept
  under the fingerprint of the schemas.
* **checks that passed**: the analysis of the rendered objects (its warnings) and the
  ``envoy --mode validate`` of each host sidecar, keyed on a hash of everything the check
  reads (the rendered texts and the intent the stand-ins are made from; the host's files,
  directories and envoy binary), kept under the renderer's fingerprint (so under the same
  analyzer code). A check that failed is never kept: it runs again, and fails again, every time.
* **the intent and the plan** of the last run, pickled (``plan/memo.py``), under a hash of
  the variables and the canary record they were made from: one entry per environment, bytes
  that only ``plan/memo.py`` reads back, with an unpickler of its own.
* **CRD documents** (``crds.json``, shared by every environment): the CRDs of each file in
  the CRD directories, keyed on the sha256 of the file's bytes, so a run reads JSON instead
  of parsing megabytes of YAML.

An environment's file, ``stage-<environment>.pickle``, is plain data (dicts, lists,
strings, numbers) pickled: it is read back four times faster than the same data as JSON
(0.06 s against 0.24 s for the 44 MB of an environment at 5,000 services), and read with an
unpickler that refuses every class and function (``_PlainUnpickler``, the "restricting
globals" recipe of Python's ``pickle`` documentation), so a file someone else put there
builds plain data or nothing; it never runs code.

Fingerprints: the renderer's is every file of the template search path (names and bytes),
the source of meshstage's module_utils, and the versions of Python, Jinja2 and PyYAML. The
schemas' is every CRD file (names and bytes), the Kubernetes version, the same source and
the versions of jsonschema and kubernetes-validate. Any change to one of them starts that
part of the cache afresh: the cache only ever answers what the same inputs and the same
code gave before.

Where: ``<repository>/.git/meshstage-cache/``, inside the GitOps repository's git
directory. It is never committed, goes with the clone, and can be deleted at any time (the
next run renders and validates everything). A repository whose ``.git`` is not a
directory (a linked worktree) gets no cache on disk. A cache file that cannot be read is
ignored. Check mode reads the cache and writes nothing.

What it never does: decide anything about the files of the tree. The write path
(``gitops.py``) reads every owned file from disk and compares it with the state file, cache
or not.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import pickle
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .._io import put_temporary, write_temporary
from ..cluster.apply import apply_class
from ..schema.crds import is_crd
from ..yaml_io import WITH_LIBYAML, load_yaml

CACHE_VERSION = 2
CACHE_DIR = "meshstage-cache"
_MODULE_UTILS = Path(__file__).resolve().parents[1]
_CRDS_FILE = "crds.json"


# --------------------------------------------------------------------------- fingerprints


def _versions(*distributions: str) -> str:
    found = []
    for name in distributions:
        try:
            found.append(f"{name}={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name}=none")
    return ";".join(found)


def files_fingerprint(directories: Iterable[str | Path], suffixes: Sequence[str] = ()) -> str:
    """sha256 over every file below ``directories`` (relative name and bytes), in order.

    ``suffixes``, when given, limits the files to those names' endings.
    """
    digest = hashlib.sha256()
    for index, directory in enumerate(directories):
        base = Path(directory)
        digest.update(f"\0dir {index}\0".encode())
        if not base.is_dir():
            digest.update(b"missing")
            continue
        for path in sorted(base.rglob("*")):
            if not path.is_file() or (suffixes and path.suffix not in suffixes):
                continue
            data = path.read_bytes()
            digest.update(f"\0{path.relative_to(base).as_posix()}\0{len(data)}\0".encode())
            digest.update(data)
    return digest.hexdigest()


def code_fingerprint() -> str:
    """The source of meshstage's module_utils and the Python version."""
    return files_fingerprint([_MODULE_UTILS], (".py",)) + sys.version


def renderer_fingerprint(template_dirs: Sequence[str | Path], builtin: Path) -> str:
    text = "\0".join([
        code_fingerprint(), files_fingerprint([*template_dirs, builtin]),
        _versions("jinja2", "PyYAML"), str(WITH_LIBYAML),
    ])
    return hashlib.sha256(text.encode()).hexdigest()


def schema_fingerprint(crd_dirs: Sequence[str | Path], kubernetes_version: str) -> str:
    text = "\0".join([
        code_fingerprint(), files_fingerprint(crd_dirs, (".yaml", ".yml")),
        kubernetes_version, _versions("jsonschema", "kubernetes-validate"),
    ])
    return hashlib.sha256(text.encode()).hexdigest()


def _json_exact(value: Any) -> str | None:
    """``value`` as JSON text when JSON gives back the very same value.

    For what YAML parses (dict, list, str, int, float, bool, None, and dates, bytes and
    sets, which JSON refuses) JSON keeps ``1``, ``1.0`` and ``true`` apart; what it loses
    is a key that is not a string (``9080`` becomes ``"9080"``), and then the value read
    back is not equal.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return text if json.loads(text) == value else None


# --------------------------------------------------------------------------- the cache


@dataclass(frozen=True)
class Rendering:
    """A rendered object: its canonical text, its identity, its place in the apply order
    (``cluster/apply.py``'s ``apply_class``), and ``load()`` for the object."""

    text: str
    load: Callable[[], dict[str, Any]]
    api_version: Any
    kind: Any
    apply_class: str


class StageCache:
    """One environment's rendered objects and validation verdicts, from the last run."""

    def __init__(self, gitops_dir: Path | None, environment: str, renderer_key: str,
                 schema_key: str) -> None:
        self._gitops_dir = gitops_dir
        self._environment = environment
        self.renderer_key = renderer_key
        self.schema_key = schema_key
        self._objects_before: dict[str, list[str | None]] = {}
        self._valid_before: set[str] = set()
        self._objects: dict[str, list[str | None]] = {}
        self._valid: set[str] = set()
        self._kinds_before: dict[str, bool] = {}
        self._kinds: dict[str, bool] = {}
        self._crds_before: dict[str, Any] = {}
        self._crds: dict[str, Any] = {}
        self._passed_before: dict[str, Any] = {}
        self._passed: dict[str, Any] = {}
        self._plan_before: list[Any] | None = None
        self._plan: list[Any] | None = None
        self.hits = 0
        self.misses = 0

    # ---- opening and saving

    @classmethod
    def open(cls, gitops_dir: str | Path, environment: str,
             template_dirs: Sequence[str | Path], builtin_templates: Path,
             crd_dirs: Sequence[str | Path], kubernetes_version: str) -> StageCache:
        """The cache of ``environment`` in the repository at ``gitops_dir`` (empty when there
        is none yet, or it was made by other code, templates or schemas)."""
        cache = cls(Path(gitops_dir), environment,
                    renderer_fingerprint(template_dirs, builtin_templates),
                    schema_fingerprint(crd_dirs, kubernetes_version))
        directory = cache._directory()
        if directory is None:
            return cache
        document = _read_plain(directory / cache._file_name())
        if document.get("version") == CACHE_VERSION:
            if document.get("renderer") == cache.renderer_key:
                objects = document.get("objects")
                cache._objects_before = objects if isinstance(objects, dict) else {}
                passed = document.get("passed")
                cache._passed_before = passed if isinstance(passed, dict) else {}
                plan = document.get("plan")
                cache._plan_before = plan if isinstance(plan, list) and len(plan) == 2 \
                    and isinstance(plan[0], str) and isinstance(plan[1], bytes) else None
            if document.get("schema") == cache.schema_key:
                valid = document.get("valid")
                cache._valid_before = set(valid) if isinstance(valid, list) else set()
                kinds = document.get("kinds")
                cache._kinds_before = {key: value for key, value in kinds.items()
                                       if isinstance(value, bool)} \
                    if isinstance(kinds, dict) else {}
        crds = _read_json(directory / _CRDS_FILE)
        if crds.get("version") == CACHE_VERSION and isinstance(crds.get("files"), dict):
            cache._crds_before = crds["files"]
        return cache

    def save(self) -> None:
        """Keep what this run used (and nothing else) for the next run; best effort."""
        self.put_in_place(self.staged())

    def staged(self) -> list[tuple[Path, Path]]:
        """What ``save`` keeps, written to temporary files beside the cache's files and not
        put in place yet: (temporary file, cache file) pairs, for ``put_in_place`` or
        ``discard``. A part that cannot be written is left out (best effort). Reads the
        cache and changes nothing: a thread can stage it while the run commits."""
        directory = self._directory()
        if directory is None:
            return []
        staged: list[tuple[Path, Path]] = []
        if self._objects != self._objects_before or self._valid != self._valid_before \
                or self._kinds != self._kinds_before or self._passed != self._passed_before \
                or self._plan != self._plan_before:
            document = {
                "version": CACHE_VERSION, "renderer": self.renderer_key,
                "schema": self.schema_key, "objects": self._objects,
                "valid": sorted(self._valid), "kinds": dict(sorted(self._kinds.items())),
                "passed": dict(sorted(self._passed.items())), "plan": self._plan,
            }
            target = directory / self._file_name()
            with contextlib.suppress(OSError, pickle.PicklingError):
                # pickled straight into the file, frame by frame: no copy of it in memory
                staged.append((_staged_file(target, lambda stream: pickle.dump(
                    document, stream, protocol=pickle.HIGHEST_PROTOCOL)), target))
        if self._crds and self._crds.keys() != self._crds_before.keys():
            target = directory / _CRDS_FILE
            with contextlib.suppress(OSError, ValueError):
                data = json.dumps({"version": CACHE_VERSION, "files": self._crds},
                                  ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                staged.append((_staged_file(target, data), target))
        return staged

    def put_in_place(self, staged: Sequence[tuple[Path, Path]]) -> None:
        """Rename each staged file over its cache file (``staged``); best effort."""
        for temporary, target in staged:
            try:
                put_temporary(temporary, target)
            except OSError:
                continue
            if target.name == self._file_name():
                with contextlib.suppress(OSError):  # the JSON file of meshstage before it
                    (target.parent / f"stage-{self._environment}.json").unlink(missing_ok=True)

    @staticmethod
    def discard(staged: Sequence[tuple[Path, Path]]) -> None:
        """Remove the staged files (the run failed: nothing of it is kept)."""
        for temporary, _target in staged:
            with contextlib.suppress(OSError):
                os.unlink(temporary)

    def _directory(self) -> Path | None:
        if self._gitops_dir is None:
            return None
        git_dir = self._gitops_dir / ".git"
        return git_dir / CACHE_DIR if git_dir.is_dir() and not git_dir.is_symlink() else None

    def _file_name(self) -> str:
        return f"stage-{self._environment}.pickle"

    # ---- rendered objects

    def key(self, template: str, context: Mapping[str, Any]) -> str | None:
        """The key of one rendering, or None when its values cannot be fingerprinted."""
        values = pickle_or_none(context)  # what pickle refuses is simply rendered every time
        return self.check_key(template, [values]) if values is not None else None

    def rendered(self, key: str) -> Rendering | None:
        """What was rendered last time for ``key``, if anything: the canonical text and the
        object's identity at once, the object itself when ``load()`` is called."""
        entry = self._objects.get(key) or self._objects_before.get(key)
        if not (isinstance(entry, list) and len(entry) == 5 and isinstance(entry[0], str)
                and (entry[1] is None or isinstance(entry[1], str))
                and isinstance(entry[4], str)):
            self.misses += 1
            return None
        self._objects[key] = entry
        self.hits += 1
        return rendering_of(entry)

    def remember(self, key: str, obj: dict[str, Any], text: str) -> None:
        self._objects[key] = rendering_entry(obj, text)

    def keep_rendering(self, key: str, entry: list[Any]) -> None:
        """Keep a rendering's entry (``rendering_entry``) made elsewhere: in a forked child."""
        self._objects[key] = entry

    # ---- the intent and the plan (``plan/memo.py``)

    def planned(self, key: str) -> bytes | None:
        """The pickled intent and plan the last run kept under ``key``; None when it kept
        none, or under another key."""
        return self._plan_before[1] if self._plan_before and self._plan_before[0] == key \
            else None

    def keep_plan(self, key: str, data: bytes) -> None:
        """Keep this run's pickled intent and plan (the only ones an environment keeps)."""
        self._plan = [key, data]

    # ---- validation verdicts

    def known_valid(self, text: str) -> bool:
        """True when this very text passed validation against the same schemas before."""
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if digest in self._valid_before or digest in self._valid:
            self._valid.add(digest)
            return True
        return False

    def mark_valid(self, text: str) -> None:
        self._valid.add(hashlib.sha256(text.encode("utf-8")).hexdigest())

    def knows(self, api_version: str, kind: str, ask: Callable[[], bool]) -> bool:
        """Whether the schemas know ``api_version``/``kind``: ``ask()``'s answer, kept under
        the same schemas' fingerprint (so a run that validates nothing reads no CRD)."""
        key = f"{api_version} {kind}"
        answer = self._kinds.get(key, self._kinds_before.get(key))
        if answer is None:
            answer = bool(ask())
        self._kinds[key] = answer
        return answer

    # ---- checks that passed

    def check_key(self, check: str, parts: Iterable[str | bytes]) -> str:
        """The key of ``check`` (a check, or a template) over ``parts`` (everything it
        reads), under the renderer's fingerprint."""
        digest = hashlib.sha256(f"{self.renderer_key}\0{check}\0".encode())
        for part in parts:
            data = part.encode("utf-8") if isinstance(part, str) else part
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return digest.hexdigest()

    def passed(self, key: str) -> Any | None:
        """What the check with this key returned when it passed last time (None: unknown)."""
        if key in self._passed:
            return self._passed[key]
        if key in self._passed_before:
            self._passed[key] = self._passed_before[key]
            return self._passed[key]
        return None

    def mark_passed(self, key: str, result: Any = True) -> None:
        """Keep a check that passed, with what it returned (JSON: warnings, say)."""
        self._passed[key] = result

    def kept_checks(self) -> dict[str, Any]:
        """Every check this run used or kept so far, with what it returned (what a forked
        child hands back to the run: ``keep_checks``)."""
        return dict(self._passed)

    def keep_checks(self, checks: Mapping[str, Any]) -> None:
        """Keep ``checks`` (``kept_checks`` of a forked child) as this run's own."""
        self._passed.update(checks)

    # ---- CRD documents

    def holds_crds(self) -> bool:
        """Whether ``crd_loader`` answers some CRD file from an earlier run (a repository's
        first run answers none)."""
        return bool(self._crds or self._crds_before)

    def crd_loader(self, parse: Callable[[Path], list[Any]]) -> Callable[[Path], list[Any]]:
        """``parse`` (a CRD file's documents), answered from the cache when the file's bytes
        are the same; only CustomResourceDefinitions are kept."""

        def load(path: Path) -> list[Any]:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                return parse(path)  # let the parser name the problem
            cached = self._crds.get(digest) or self._crds_before.get(digest)
            if isinstance(cached, str):
                self._crds[digest] = cached
                return list(json.loads(cached))
            documents = [doc for doc in parse(path) if is_crd(doc)]
            text = _json_exact(documents)
            if text is not None:
                self._crds[digest] = text
            return documents

        return load


_LAST_PICKLED: list[tuple[Any, bytes | None]] = []


def pickled(value: Any) -> bytes | None:
    """``value``'s pickle, the stand-in of everything derived from it in a cache key (the
    intent, for the analysis and the flow proof); None when pickle refuses it (then what
    depends on it is done every time). The last value's is kept: the analysis and the
    proof of one run pickle the same intent."""
    if _LAST_PICKLED and _LAST_PICKLED[0][0] is value:
        return _LAST_PICKLED[0][1]
    data = pickle_or_none(value)
    _LAST_PICKLED[:] = [(value, data)]
    return data


def pickled_as(value: Any, stand_in: bytes) -> None:
    """Let ``stand_in`` be ``value``'s pickle in the keys that follow: what names it exactly
    and does not change when it is pickled and read back (the intent's: the hash of the
    variables it was parsed from, ``plan/memo.py``; a pickled and loaded intent no longer
    shares the string objects the parse shared, so its pickle is not the same bytes)."""
    _LAST_PICKLED[:] = [(value, stand_in)]


def pickle_or_none(value: Any) -> bytes | None:
    """``value``'s pickle for a cache key (protocol 4: the same bytes on every Python this
    runs on); None when pickle refuses it."""
    try:
        return pickle.dumps(value, protocol=4)
    except Exception:  # anything pickle refuses
        return None


def rendering_entry(obj: dict[str, Any], text: str) -> list[Any]:
    """What the cache keeps of a rendering, and what a forked child hands back of one: the
    canonical text, the object as JSON (None when JSON would not give it back exactly), its
    ``apiVersion`` and ``kind``, its apply class."""
    return [text, _json_exact(obj), obj.get("apiVersion"), obj.get("kind"), apply_class(obj)]


def rendering_of(entry: list[Any]) -> Rendering:
    """The rendering an entry of ``rendering_entry`` stands for; the object decoded when
    ``load()`` is called."""
    text, obj_json, api_version, kind, order = entry
    return Rendering(text, functools.partial(_load_rendered, text, obj_json), api_version, kind,
                     order)


def _load_rendered(text: str, obj_json: str | None) -> dict[str, Any]:
    if obj_json is None:  # the object did not survive JSON: parse the text
        obj: dict[str, Any] = load_yaml(text)
        return obj
    loaded: dict[str, Any] = json.loads(obj_json)
    return loaded


class _PlainUnpickler(pickle.Unpickler):
    """Builds plain data only: every class and function a pickle names is refused, so no
    constructor, ``__reduce__`` or ``__setstate__`` can run (Python's documentation of
    ``pickle``, "Restricting Globals")."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def _read_plain(path: Path) -> dict[str, Any]:
    """A stage file's document; ``{}`` when it is missing, not plain data, or damaged."""
    try:
        with path.open("rb") as stream:
            document = _PlainUnpickler(stream).load()
    except Exception:  # a cache that cannot be read is ignored, whatever the reason
        return {}
    return document if isinstance(document, dict) else {}


def _staged_file(target: Path, data: bytes | Callable[[BinaryIO], object]) -> Path:
    """A new temporary file beside ``target`` holding ``data`` (or what a function of it
    writes), not flushed (a cache lost in a crash is rebuilt); raises what writing raises
    (``OSError``, ...), leaving nothing behind (``_io.write_temporary``)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_temporary(target, data, 0o644, fsync=False)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


