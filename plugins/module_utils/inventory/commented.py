"""Inventory YAML with comments: each value's notes beside it (``  # ...``) or, when they do
not fit on its line, above it. Short collections are written in flow style (``[v1, v2]``,
``{name: http, port: 9080, protocol: HTTP}``), the rest in block style, two spaces a level.

Notes are keyed by field path, as intent errors name fields (``mesh_services[2].ports[0]``);
a value written on one line carries the notes of everything inside it. The text is parsed
back and compared with the data before it is returned: a comment can never change a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import MeshstageError
from ..yaml_io import flow_text, load_manifests

WIDTH = 100
_FLOW_WIDTH = 72


def commented_yaml(data: Mapping[str, Any], notes: Mapping[str, Sequence[str]],
                   header: Sequence[str] = (), footer: Sequence[str] = ()) -> str:
    """``data`` (a mapping of variables) as commented YAML text."""
    notes = _Notes(notes)
    lines = ["---", *_comment(header, "")]
    for key, value in data.items():
        lines.append("")
        lines += _entry(f"{key}:", value, key, 0, notes)
    if footer:
        lines.append("")
        lines += _comment(footer, "")
    text = "\n".join(lines) + "\n"
    if load_manifests(text) != [dict(data)]:
        raise MeshstageError("the commented inventory does not read back as written "
                             "(a meshstage bug; please report it)")
    return text


def _comment(texts: Sequence[str], pad: str) -> list[str]:
    lines = []
    for text in texts:
        if not text:
            lines.append(f"{pad}#")
            continue
        for line in text.splitlines() or [""]:
            lines += [f"{pad}# {part}".rstrip() for part in _wrap(line, WIDTH - len(pad) - 2)]
    return lines


def _wrap(line: str, width: int) -> list[str]:
    """``line`` in lines of at most ``width`` (a word longer stays whole); the lines after
    the first indented two more than it."""
    inner = " " * (len(line) - len(line.lstrip()))
    words = line.split()
    if len(line) <= width or not words:
        return [line.rstrip()]
    lines, current = [], inner + words[0]
    for word in words[1:]:
        if len(current) + 1 + len(word) > width:
            lines.append(current)
            current = inner + "  " + word
        else:
            current += " " + word
    return [*lines, current]


def _flowing(value: Any) -> bool:
    if isinstance(value, Mapping):
        return all(not isinstance(v, Mapping) and _flowing(v) for v in value.values()) \
            and len(flow_text(value)) <= _FLOW_WIDTH
    if isinstance(value, list):
        return all(not isinstance(v, Mapping | list) for v in value) \
            and len(flow_text(value)) <= _FLOW_WIDTH
    return True


_PARENT = re.compile(r"(\.[^.\[]*|\[\d+\])$")


class _Notes(dict[str, Sequence[str]]):
    """The notes by path, and every path's notes with its descendants' (``deep``), gathered
    once: a value written on one line carries them all."""

    def __init__(self, notes: Mapping[str, Sequence[str]]) -> None:
        super().__init__(notes)
        self.deep: dict[str, list[str]] = {}
        for path, texts in notes.items():
            while True:
                self.deep.setdefault(path, []).extend(texts)
                parent = _PARENT.sub("", path)
                if parent == path or not parent:
                    break
                path = parent


def _deep_notes(notes: Mapping[str, Sequence[str]], path: str) -> list[str]:
    deep = notes.deep if isinstance(notes, _Notes) else {}
    return list(dict.fromkeys(deep.get(path, ())))


def _entry(head: str, value: Any, path: str, indent: int,
           notes: Mapping[str, Sequence[str]]) -> list[str]:
    pad = " " * indent
    if _flowing(value):
        line = f"{pad}{head} {flow_text(value)}"
        texts = _deep_notes(notes, path)
        if len(texts) == 1 and len(line) + 4 + len(texts[0]) <= WIDTH:
            return [f"{line}  # {texts[0]}"]
        return [*_comment(texts, pad), line]
    lines = _comment(notes.get(path, ()), pad)
    if isinstance(value, Mapping):
        body = [line for key, item in value.items()
                for line in _entry(f"{_key(key)}:", item, f"{path}.{key}", indent + 2, notes)]
    else:
        body = [line for number, item in enumerate(value)
                for line in _item(item, f"{path}[{number}]", indent + 2, notes)]
    return [*lines, f"{pad}{head}", *body]


def _item(value: Any, path: str, indent: int,
          notes: Mapping[str, Sequence[str]]) -> list[str]:
    pad = " " * indent
    if _flowing(value) or not isinstance(value, Mapping):
        return _entry("-", value, path, indent, notes)
    lines = _comment(notes.get(path, ()), pad)
    first = True
    for key, item in value.items():
        entry = _entry(f"{_key(key)}:", item, f"{path}.{key}", indent + 2, notes)
        if first:
            at = next(n for n, line in enumerate(entry) if not line.lstrip().startswith("#"))
            entry[at] = f"{pad}- {entry[at][indent + 2:]}"
            first = False
        lines += entry
    return lines


def _key(key: Any) -> str:
    return flow_text(key)
