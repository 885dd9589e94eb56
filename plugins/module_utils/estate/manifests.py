"""Reading manifests: YAML files, directories of them, or stdin, into resources.

Any Kubernetes manifests are accepted: a rendered GitOps tree, ``kubectl kustomize``
output, hand-written files, ``kubectl get -o yaml`` lists. Documents that are not objects
(no ``apiVersion``, ``kind`` or ``metadata.name``: kustomizations, Helm values) are counted
and skipped. A path that does not exist, or a file that is not UTF-8 YAML, is an error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MeshstageError
from ..yaml_io import YAMLError, load_manifests
from .index import MeshConfig
from .objects import Resource, make_resource

SUFFIXES = (".yaml", ".yml")


class ManifestError(MeshstageError):
    """Input that cannot be read as YAML manifests."""


@dataclass(frozen=True)
class ManifestPath:
    """A file or directory of manifests whose objects that name no namespace are in
    ``namespace``: where ``kubectl apply -n`` or ``helm install --namespace`` puts them
    (``helm template`` prints many charts' objects without one)."""

    path: Path
    namespace: str = "default"

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)


# what a run is given to read: a path (objects without a namespace in ``default``), or one
# with the namespace of those
SourcePath = str | Path | ManifestPath


@dataclass
class Manifests:
    resources: list[Resource] = field(default_factory=list)
    files: int = 0
    skipped: int = 0   # documents that are not Kubernetes objects


def _is_object(document: Any) -> bool:
    if not isinstance(document, Mapping):
        return False
    metadata = document.get("metadata")
    return (isinstance(document.get("apiVersion"), str) and isinstance(document.get("kind"), str)
            and isinstance(metadata, Mapping) and isinstance(metadata.get("name"), str)
            and bool(metadata.get("name")))


def _documents(text: str, source: str) -> list[Any]:
    try:
        return load_manifests(text)
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ManifestError(f"{source}:{where} is not valid YAML: {problem}") from error


def add_text(manifests: Manifests, text: str, source: str, context: bool = False,
             default_namespace: str = "default") -> None:
    """Add the objects of one YAML stream (several documents, ``kind: List`` expanded)."""
    documents = [d for d in _documents(text, source) if d is not None]
    manifests.files += 1
    several = len(documents) > 1
    for number, document in enumerate(documents):
        where = f"{source}#{number + 1}" if several else source
        items = (document.get("items") if isinstance(document, Mapping)
                 and document.get("kind") == "List" else [document])
        for item in items if isinstance(items, list) else []:
            if _is_object(item):
                manifests.resources.append(make_resource(item, where, context,
                                                         default_namespace))
            else:
                manifests.skipped += 1


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = []
    for candidate in sorted(path.rglob("*")):
        parts = candidate.relative_to(path).parts
        if any(part.startswith(".") for part in parts):
            continue  # .git, .meshstage and other hidden folders
        if candidate.suffix in SUFFIXES and candidate.is_file():
            found.append(candidate)
    return found


def read_manifests(paths: Iterable[SourcePath], context: bool = False, stdin: Any = None,
                   default_namespace: str = "default") -> Manifests:
    """Read files, directories (every ``*.yaml``/``*.yml`` below) and ``-`` (stdin).
    Objects without a namespace are in ``default_namespace``, or in the ``namespace`` of
    their ``ManifestPath``."""
    manifests = Manifests()
    for entry in paths:
        namespace = entry.namespace if isinstance(entry, ManifestPath) else default_namespace
        if str(entry) == "-":
            add_text(manifests, _read_stdin(stdin if stdin is not None else sys.stdin),
                     "<stdin>", context, namespace)
            continue
        path = Path(entry)
        if not path.exists():
            raise ManifestError(f"{path}: no such file or directory")
        if not (path.is_file() or path.is_dir()):
            raise ManifestError(f"{path}: is not a regular file or a directory (a FIFO or a "
                                "device); give its content on stdin (-) instead")
        for file in _files(path):
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise ManifestError(f"{file}: cannot be read as UTF-8 text: {error}") from error
            add_text(manifests, text, str(file), context, namespace)
    return manifests


def _read_stdin(stream: Any) -> str:
    """All of stdin as UTF-8 text; ``ManifestError`` when it is closed, unreadable, not
    UTF-8, or empty (a producer that failed upstream of a pipe writes nothing)."""
    if stream is None or getattr(stream, "closed", False):
        raise ManifestError("<stdin>: is closed: there is nothing to read")
    try:
        raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise ManifestError(f"<stdin>: cannot be read as UTF-8 text: {error}") from error
    if not text.strip():
        raise ManifestError("<stdin>: is empty: no manifests to check")
    return text


def read_mesh_config(path: str | Path) -> MeshConfig:
    """A MeshConfig from a file: plain MeshConfig YAML, or the ``istio`` ConfigMap."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"{source}: cannot be read: {error}") from error
    documents = [d for d in _documents(text, str(source)) if d is not None]
    data: Any = documents[0] if len(documents) == 1 else None
    if isinstance(data, Mapping) and data.get("kind") == "ConfigMap":
        mesh = (data.get("data") or {}).get("mesh")
        data = _documents(mesh, f"{source} data.mesh")[0] if isinstance(mesh, str) else None
    if not isinstance(data, Mapping):
        raise ManifestError(f"{source}: is not a MeshConfig (one YAML mapping, or the istio "
                            "ConfigMap with data.mesh)")
    return MeshConfig.from_mapping(data)
