"""Where everything lives in the GitOps repository, and which paths meshstage may write.

    README.md                                  index of the environments and their stages
    .meshstage/state.json                      what meshstage owns (``state.py``)
    envs/<env>/                                an environment's tree (``env_dir``)
    envs/<env>/00-install/                     its control-plane install (``install_dir``)
    sync/<env>/                                the objects that sync it (``sync_dir``)
    hosts/<env>/<host>/                        a host sidecar's files (``host_dir``)
    hosts/<env>/prometheus-scrape-configs.yaml the jobs that scrape the host sidecars
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

STATE_PATH = ".meshstage/state.json"
INSTALL_FOLDER = "00-install"
# Top-level folders meshstage never writes into.
_RESERVED_TOP = (".git", ".meshstage")


def env_dir(environment: str) -> str:
    return f"envs/{environment}"


def sync_dir(environment: str) -> str:
    return f"sync/{environment}"


def install_dir(environment: str) -> str:
    return f"{env_dir(environment)}/{INSTALL_FOLDER}"


def host_dir(environment: str, host: str) -> str:
    return f"hosts/{environment}/{host}"


def scrape_config_path(environment: str) -> str:
    return f"hosts/{environment}/prometheus-scrape-configs.yaml"


# Paths every rule below accepts: components of letters, digits, '_', '.', '-' that start
# with a letter, digit or '_' (so never '.', '..', '.git' nor '.meshstage').
_PLAINLY_SAFE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")


def path_problem(path: object) -> str | None:
    """Why ``path`` may not be written by meshstage, or None when it is a safe path."""
    if isinstance(path, str) and _PLAINLY_SAFE_PATH.fullmatch(path):
        return None
    if not isinstance(path, str) or not path:
        return "is not a non-empty string"
    if "\0" in path or "\\" in path:
        return "contains a NUL or a backslash"
    if path.startswith("/"):
        return "is absolute; paths are relative to the repository root"
    parts = path.split("/")
    if ".." in parts:
        return "contains '..'"
    if posixpath.normpath(path) != path or "" in parts or "." in parts:
        return f"is not normalized (write {posixpath.normpath(path)!r})"
    if parts[0] in _RESERVED_TOP:
        return f"is inside {parts[0]}/, which meshstage never writes"
    if any(part.lower() == ".git" for part in parts):
        return "is inside a .git directory, which meshstage never writes"
    return None


def encode_desired(desired: Mapping[str, str]) -> tuple[dict[str, bytes], list[str]]:
    """Desired path -> bytes, and the problems of the paths and texts that are not valid."""
    wanted: dict[str, bytes] = {}
    problems: list[str] = []
    if not isinstance(desired, Mapping):
        return wanted, [f"the desired files are a {type(desired).__name__}, not a mapping"]
    for path in sorted(desired, key=str):
        problem = path_problem(path)
        text = desired[path]
        if problem:
            problems.append(f"{path!r} {problem}")
        elif not isinstance(text, str):
            problems.append(f"{path}: the content is a {type(text).__name__}, not text")
        else:
            try:
                wanted[path] = text.encode("utf-8")
            except UnicodeEncodeError as error:
                problems.append(f"{path}: the content is not valid UTF-8 text: {error}")
    return wanted, problems + _file_directory_clashes(wanted)


def _file_directory_clashes(wanted: Mapping[str, bytes]) -> list[str]:
    """Problems for desired paths that another desired path needs as a directory."""
    # every directory the paths need, each walked up from its files only until one seen
    # before (whose own parents are in already): about one step per file, not one join per
    # level of every path
    needed: set[str] = set()
    for path in wanted:
        directory, slash, _name = path.rpartition("/")
        while slash and directory not in needed:
            needed.add(directory)
            directory, slash, _name = directory.rpartition("/")
    if needed.isdisjoint(wanted):
        return []
    directories: dict[str, str] = {}  # a clash: name the first path that needs each one
    for path in sorted(wanted):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directories.setdefault("/".join(parts[:depth]), path)
    return [
        f"{path} is wanted both as a file and as the directory of {directories[path]}"
        for path in sorted(wanted)
        if path in directories
    ]
