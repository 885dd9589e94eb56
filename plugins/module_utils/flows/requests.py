"""The requests a flow stands for, when the flow does not say which (a declared call).

A policy that names methods or paths lets some requests of a caller through and not others.
To judge such a flow, the evaluators try a few requests: every method the policies name,
one they do not, and a path inside each path pattern they name plus one outside all of
them. The flow gets through when every request does, partly when some do, not at all when
none does. The patterns are the meshes' own: exact, ``prefix*``, ``*suffix`` and ``*``
(Istio, host RBAC), ``PathPrefix`` and ``Exact`` (Gateway API routes).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..analyze.analyzers.authorization_policies import pattern_matches
from ..intent.model import HTTP_METHODS
from .model import Request

OTHER_PATH = "/meshstage-flow-proof"


def sample_path(pattern: str, kind: str = "pattern") -> str:
    """A path the pattern matches: ``/api/*`` gives ``/api/x``."""
    if kind == "prefix":
        return pattern.rstrip("/") + "/x" if pattern != "/" else "/x"
    if kind == "regex":
        return OTHER_PATH
    if pattern == "*":
        return "/x"
    if pattern.endswith("*"):
        return pattern[:-1] + "x"
    if pattern.startswith("*"):
        return "/x" + pattern[1:]
    return pattern


def candidate_requests(methods: Iterable[str], paths: Iterable[str]) -> list[Request]:
    """The requests to try: each method named (and one not named, and GET), each path
    given (and one outside every pattern)."""
    named = sorted({m.upper() for m in methods})
    others = [m for m in HTTP_METHODS if m not in named]
    chosen = sorted({*named, "GET", *others[:1]})
    tried = sorted({*paths, OTHER_PATH, "/"})
    return [Request(method, path) for method in chosen for path in tried]


def string_matches(pattern: str, value: str | None) -> bool:
    """Istio's string match: exact, ``prefix*``, ``*suffix``; ``*`` is any non-empty value.
    A value that is not there (None, or empty) matches nothing."""
    return bool(value) and pattern_matches(pattern, str(value))


def describe(requests: Iterable[Request]) -> str:
    """``GET, POST on /api/x``: the requests that got through, short."""
    by_path: dict[str, list[str]] = {}
    for request in requests:
        by_path.setdefault(request.path, []).append(request.method)
    parts = [f"{', '.join(sorted(set(methods)))} {path}" for path, methods in
             sorted(by_path.items())]
    return "; ".join(parts[:4]) + (f" and {len(parts) - 4} more" if len(parts) > 4 else "")
