"""Private helper: plain Python data out of whatever the runner handed over.

Ansible passes its own subclasses (tagged strings, lazy containers); meshstage's model and
templates work on plain dict, list, str, int, float, bool and None only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def plain_data(value: Any, strict: bool = False) -> Any:
    """A deep copy as plain data; tuples become lists.

    ``strict`` (for JSON output) turns mapping keys into strings and raises ``TypeError`` on
    any other type; otherwise other types pass through, for validation to name them.
    """
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
