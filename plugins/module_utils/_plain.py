"""Private helper: plain Python data out of whatever the runner handed over.

Ansible passes its own subclasses (tagged strings, lazy containers); meshstage's model and
templates work on plain dict, list, str, int, float, bool and None only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# A value may stand for at most this many values once what it shares is counted each time
# it occurs (YAML aliases share), or ten times the values it is made of, when that is more:
# far above any inventory or manifest, far below what exhausts time or memory.
MAX_EXPANDED = 1_000_000
EXPANSION_FACTOR = 10


class ExpansionError(ValueError):
    """A value that stands for too many values, or contains itself."""


def expansion_problem(root: Any, children: Callable[[Any], list[Any] | None]) -> str | None:
    """Why ``root`` is too large once shared parts are expanded, or None.

    ``children`` gives a container's parts (None for a leaf). Each distinct container is
    counted once, so the cost is linear in what is written, however much it expands."""
    sizes: dict[int, int] = {}
    cap = MAX_EXPANDED * EXPANSION_FACTOR + 1
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        value, done = stack.pop()
        parts = children(value)
        if parts is None:
            sizes.setdefault(id(value), 1)
        elif done:
            sizes[id(value)] = min(cap, 1 + sum(sizes[id(part)] for part in parts))
        elif sizes.get(id(value)) == -1:
            return "it contains itself (a recursive alias)"
        elif id(value) not in sizes:
            sizes[id(value)] = -1
            stack.append((value, True))
            stack.extend((part, False) for part in parts if sizes.get(id(part), -1) == -1)
    written, expanded = len(sizes), sizes[id(root)]
    bound = max(MAX_EXPANDED, EXPANSION_FACTOR * written)
    if expanded > bound:
        return (f"its aliases expand it to more than {bound:,} values (from {written:,} "
                "written; a \"billion laughs\" document?); meshstage reads nothing that large")
    return None


def parts_of(value: Any) -> list[Any] | None:
    """The parts of plain data: a mapping's keys and values, a list's items; None for a
    leaf."""
    if isinstance(value, Mapping):
        return [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        return list(value)
    return None


# Immutable plain types: a value of exactly one of them is its own plain copy
_PLAIN_LEAVES = frozenset({str, int, float, bool, type(None)})


def plain_data(value: Any, strict: bool = False) -> Any:
    """A deep copy as plain data; tuples become lists.

    ``strict`` (for JSON output) turns mapping keys into strings and raises ``TypeError`` on
    any other type; otherwise other types pass through, for validation to name them.
    """
    kind = type(value)  # the plain types first, by identity: most of what an inventory holds
    if kind in _PLAIN_LEAVES:
        return value
    if kind is dict:
        return {(str(key) if strict else plain_data(key)): plain_data(item, strict)
                for key, item in value.items()}
    if kind is list:
        return [plain_data(item, strict) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {(str(key) if strict else plain_data(key)): plain_data(item, strict)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(item, strict) for item in value]
    if strict:
        raise TypeError(f"unsupported type {type(value).__name__}")
    return value
