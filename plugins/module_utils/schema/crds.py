"""Reading CustomResourceDefinitions from folders: every served version of each, indexed
by group, version and kind.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._fork import ForkedCall
from ..errors import MeshstageError
from ..yaml_io import YAMLError, load_manifests
from .violations import (
    join_api_version,
)


@dataclass(frozen=True)
class _ServedVersion:
    """One served version of one CRD: its schema and where it came from."""

    group: str
    version: str
    kind: str
    schema: Mapping[str, Any]
    source: Path


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(
        path for path in directory.rglob("*") if path.suffix in (".yaml", ".yml") and path.is_file()
    )


def yaml_documents(path: Path) -> list[Any]:
    # what the safe loader reads, built from the parser's events (a CRD file holds plain
    # data; one with an alias goes to the bounded loader): the 32 reference CRD files in
    # 0.15 s instead of 0.37 s
    try:
        return load_manifests(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError) as error:
        raise MeshstageError(f"{path}: cannot read CRDs: {error}") from error


def crd_files(dirs: Sequence[str | Path]) -> list[Path]:
    """The files ``CrdIndex.add_directory`` reads from each of ``dirs`` that is a directory,
    in the order it reads them."""
    return [path for directory in dirs if Path(directory).is_dir()
            for path in _yaml_files(Path(directory))]


class CrdPrefetch:
    """The CRDs of ``files`` read in a forked child (``_fork.ForkedCall``) from now, while
    the caller does other work: the reference CRDs take 0.15 s to parse, which a run's first
    environment can spend on the second core while it parses its intent and plans (the
    stage cache answers the files it read before, so a later run starts none).

    ``reader(parse)`` is ``parse`` answered from the child's documents; a file the child
    could not read (or all of them, when nothing was forked) is read by ``parse`` itself,
    which names the problem as it always does. Leave its ``with`` block (or call ``collect``)
    before forking again: that waits for the child and lets the collector see the objects
    made since; an exception out of the block stops the child instead."""

    def __init__(self, files: Sequence[Path]) -> None:
        self._documents: dict[Path, list[Any]] = {}
        self._child: ForkedCall[dict[Path, list[Any]]] | None = \
            ForkedCall(functools.partial(_read_crds, list(files))) if files else None

    def __enter__(self) -> CrdPrefetch:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.collect()
        elif self._child is not None:
            self._child.cancel()
            self._child = None

    def collect(self) -> None:
        if self._child is not None:
            child, self._child = self._child, None
            self._documents = child.result()

    def reader(self, parse: Callable[[Path], list[Any]]) -> Callable[[Path], list[Any]]:
        self.collect()

        def read(path: Path) -> list[Any]:
            documents = self._documents.pop(path, None)
            return parse(path) if documents is None else documents

        return read


def _read_crds(files: Sequence[Path]) -> dict[Path, list[Any]]:
    """The CRDs of each file that reads; one that does not is left to the caller's reader."""
    documents: dict[Path, list[Any]] = {}
    for path in files:
        try:
            documents[path] = [document for document in yaml_documents(path)
                               if is_crd(document)]
        except MeshstageError:
            continue
    return documents


def is_crd(document: Any) -> bool:
    return (
        isinstance(document, Mapping)
        and document.get("kind") == "CustomResourceDefinition"
        and str(document.get("apiVersion", "")).startswith("apiextensions.k8s.io/")
    )


def _crd_versions(
    document: Mapping[str, Any], source: Path
) -> Iterator[tuple[_ServedVersion, bool]]:
    """Every version of one CRD, with whether it is served."""
    try:
        spec = document["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        for entry in spec["versions"]:
            schema = (entry.get("schema") or {}).get("openAPIV3Schema") or {}
            served = _ServedVersion(group, entry["name"], kind, schema, source)
            yield served, bool(entry.get("served"))
    except (KeyError, TypeError, AttributeError) as error:
        raise MeshstageError(
            f"{source}: a CustomResourceDefinition lacks spec.group, spec.names.kind or "
            f"spec.versions[].name ({type(error).__name__}: {error})"
        ) from error


class CrdIndex:
    """Served CRD versions by (group, version, kind), and every version of each CRD kind."""

    def __init__(self) -> None:
        self.served: dict[tuple[str, str, str], _ServedVersion] = {}
        self.kinds: dict[tuple[str, str], set[str]] = {}

    def add_directory(self, directory: Path,
                      read_documents: Callable[[Path], list[Any]] | None = None) -> None:
        if not directory.is_dir():
            problem = "is not a directory" if directory.exists() else "does not exist"
            raise MeshstageError(f"CRD directory {directory} {problem}")
        count = 0
        for path in _yaml_files(directory):
            for document in (read_documents or yaml_documents)(path):
                if is_crd(document):
                    self._add_crd(document, path)
                    count += 1
        if count == 0:
            raise MeshstageError(f"CRD directory {directory} holds no CustomResourceDefinition")

    def _add_crd(self, document: Mapping[str, Any], source: Path) -> None:
        for entry, served in _crd_versions(document, source):
            self.kinds.setdefault((entry.group, entry.kind), set())
            if not served:
                continue
            key = (entry.group, entry.version, entry.kind)
            other = self.served.get(key)
            if other is not None and other.schema != entry.schema:
                raise MeshstageError(
                    f"{join_api_version(entry.group, entry.version)} {entry.kind} is served by "
                    f"two CRDs with different schemas: {other.source} and {source}"
                )
            self.served[key] = entry
            self.kinds[(entry.group, entry.kind)].add(entry.version)
