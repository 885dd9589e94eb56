"""The one seam for YAML in and out: every YAML meshstage reads or writes goes through here.

- ``load_yaml`` / ``load_all``: the safe loader (libyaml's C loader where it is present).
- ``parse_back_loader``: the same loader, faster on the plain documents rendering produces.
- ``dump_canonical``: the one canonical text of an object (keys sorted, block style), byte
  for byte as PyYAML writes it; ``canonical_header`` reads an object's identity back from
  that text without parsing it.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

import yaml

try:  # the C loader and emitter are much faster; fall back where libyaml is missing
    _Loader: type = yaml.CSafeLoader
    _BaseDumper: type = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - libyaml is present on supported platforms
    _Loader = yaml.SafeLoader
    _BaseDumper = yaml.SafeDumper


_TAG = "tag:yaml.org,2002:"
# Scalar tags whose safe constructor is a plain function of the node's text.
_SCALAR_TAGS = frozenset(_TAG + name for name in
                         ("null", "bool", "int", "float", "timestamp", "binary"))
_RESOLVED_TAGS_KEPT = 4096
_STR_TAG = _TAG + "str"


class _Unusual(Exception):
    """A document the plain construction does not cover: the safe constructor builds it."""


def parse_back_loader() -> type:
    """A safe loader (the C one where libyaml is present) that builds plain documents faster.

    It reads exactly what ``_Loader`` reads. Two things are faster: the tag of a plain
    scalar is resolved once per distinct text (the resolver is a pure function of it), and
    a document of mappings, sequences and the standard scalar types is built by one plain
    recursion instead of the constructor's generators. Anything else (merge keys, ``=``
    keys, other tags, unhashable or recursive keys) is built by the safe constructor
    itself, errors included. Each call gives a class with its own bounded memory of tags.
    """
    resolved: dict[tuple[str, tuple[bool, bool]], str] = {}

    class _ParseBackLoader(_Loader):
        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            if kind is not yaml.ScalarNode:
                return super().resolve(kind, value, implicit)
            key = (value, implicit)
            tag = resolved.get(key)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(resolved) < _RESOLVED_TAGS_KEPT:
                    resolved[key] = tag
            return tag

        def construct_document(self, node: Any) -> Any:
            try:
                return self._plain(node, {})
            except _Unusual:
                return super().construct_document(node)

        def _plain(self, node: Any, built: dict[int, Any]) -> Any:
            kind = node.__class__
            if kind is yaml.ScalarNode:
                if node.tag == _TAG + "str":
                    return node.value
                if node.tag in _SCALAR_TAGS:
                    return self.yaml_constructors[node.tag](self, node)
                raise _Unusual
            if id(node) in built:  # an alias: the same object, as the constructor shares it
                if built[id(node)] is _Unusual:
                    raise _Unusual  # a recursive document
                return built[id(node)]
            built[id(node)] = _Unusual
            result: Any
            if kind is yaml.MappingNode and node.tag == _TAG + "map":
                result = {}
                for key_node, value_node in node.value:
                    if key_node.tag in (_TAG + "merge", _TAG + "value"):
                        raise _Unusual
                    key = self._plain(key_node, built)
                    if not isinstance(key, Hashable):
                        raise _Unusual
                    result[key] = self._plain(value_node, built)
            elif kind is yaml.SequenceNode and node.tag == _TAG + "seq":
                result = [self._plain(item, built) for item in node.value]
            else:
                raise _Unusual
            built[id(node)] = result
            return result

    return _ParseBackLoader


class _Dumper(_BaseDumper):
    """Safe dumper that writes multi-line strings as literal blocks, for readable diffs."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_canonical(obj: Any) -> str:
    """The one canonical YAML text of an object: keys sorted, block style, UTF-8.

    The text is PyYAML's (``_Dumper``, the options below). ``_fast_lines`` writes the
    same bytes without PyYAML for the common objects; whatever it is not sure of goes to
    PyYAML whole."""
    try:
        return "".join(_fast_lines(obj, 0)) if type(obj) is dict and obj else _yaml_dump(obj)
    except _Unusual:
        return _yaml_dump(obj)


def _yaml_dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1 << 16, indent=2)


# A string PyYAML can write plain in block context: a letter, digit or one of "_./$" first,
# then those and "@=+~%*()-,?[]{}" (flow indicators only matter in flow context), a ":" or a
# single space only before one of them (so no ": ", no " #", no trailing space or colon).
# ASCII only, shorter than a simple key's limit, and not "..." first (a document end).
_PLAIN_CHAR = r"[A-Za-z0-9_./$@=+~%*()\-,?\[\]{}]"
_PLAIN_TEXT = re.compile(rf"[A-Za-z0-9_./$](?:{_PLAIN_CHAR}|[: ](?={_PLAIN_CHAR}))*")
_SCALARS_KEPT = 1 << 16
_LINE_BREAKS = re.compile("[\r\n\x85\u2028\u2029]")
_scalars: dict[str, str | None] = {}
_floats: dict[str, str] = {}
_resolver = yaml.resolver.Resolver()


def _string_scalar(text: str) -> str | None:
    """How PyYAML writes ``text`` as a key, a value or an item, on one line; None when it
    takes more than one line or would not be a simple key (PyYAML then dumps the object).

    The common strings are decided here: plain when the resolver reads them back as strings,
    single-quoted when it would read another type ("true", "1"). Any other one-line string
    is written once by PyYAML itself, as a mapping's value, and its form is kept."""
    if text in _scalars:
        return _scalars[text]
    written = None
    if _PLAIN_TEXT.fullmatch(text) is not None and len(text) < 128 \
            and not text.startswith("..."):  # a document end marker
        plain = _resolver.resolve(yaml.ScalarNode, text, (True, False)) == _STR_TAG
        written = text if plain else f"'{text}'"
    elif len(text) < 128 and not _LINE_BREAKS.search(text):
        written = _pyyaml_value(text)
    if len(_scalars) < _SCALARS_KEPT:
        _scalars[text] = written
    return written


def _pyyaml_value(value: Any) -> str | None:
    """How PyYAML writes ``value`` as a mapping's value, when that takes one line."""
    dumped = _yaml_dump({"k": value})
    if dumped.startswith("k: ") and dumped.count("\n") == 1 and dumped.endswith("\n"):
        return dumped[3:-1]
    return None


def _fast_scalar(value: Any) -> str:
    kind = type(value)
    if kind is str:
        written = _string_scalar(value)
        if written is not None:
            return written
    elif kind is bool:
        return "true" if value else "false"
    elif kind is int:
        return str(value)
    elif kind is float:
        key = repr(value)  # not the float: 0.0 == -0.0
        written = _floats.get(key)
        if written is None:  # as PyYAML writes it (.nan, 1.0e+20, ...), once per value
            written = _pyyaml_value(value)
            if written is None:
                raise _Unusual
            if len(_floats) < _SCALARS_KEPT:
                _floats[key] = written
        return written
    elif kind is dict and not value:
        return "{}"
    elif kind is list and not value:
        return "[]"
    raise _Unusual


def _fast_lines(mapping: dict[Any, Any], column: int) -> list[str]:
    """A non-empty mapping as PyYAML's block lines, each starting at ``column``."""
    pad = " " * column
    lines: list[str] = []
    try:
        keys = sorted(mapping)
    except TypeError:  # keys of mixed types: PyYAML keeps their order
        raise _Unusual from None
    for key in keys:
        written = _string_scalar(key) if type(key) is str else None
        if written is None:
            raise _Unusual
        value = mapping[key]
        kind = type(value)
        if kind is dict and value:
            lines.append(f"{pad}{written}:\n")
            lines += _fast_lines(value, column + 2)
        elif kind is list and value:
            lines.append(f"{pad}{written}:\n")
            lines += _fast_items(value, column)  # PyYAML does not indent them under a key
        else:
            lines.append(f"{pad}{written}: {_fast_scalar(value)}\n")
    return lines


def _fast_items(items: list[Any], column: int) -> list[str]:
    """A non-empty sequence as PyYAML's block lines: ``- `` at ``column``."""
    pad = " " * column
    lines: list[str] = []
    for item in items:
        kind = type(item)
        if (kind is dict or kind is list) and item:
            inner = (_fast_lines(item, column + 2) if kind is dict
                     else _fast_items(item, column + 2))
            lines.append(f"{pad}- {inner[0][column + 2:]}")
            lines += inner[1:]
        else:
            lines.append(f"{pad}- {_fast_scalar(item)}\n")
    return lines


def load_yaml(text: str) -> Any:
    """Parse one YAML document with the same loader the renderer uses."""
    return yaml.load(text, Loader=_Loader)


_TOP_LINES = re.compile(r"^[^ \n][^\n]*", re.MULTILINE)
_TOP_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_]*):(?: (.*))?")
_META_LINES = re.compile(r"^  [^ \n-][^\n]*", re.MULTILINE)
_META_KEY = re.compile(r"  ([A-Za-z][A-Za-z0-9_]*):(?: (.*))?")


def canonical_header(text: str) -> dict[str, str] | None:
    """``apiVersion``, ``kind``, ``metadata.name`` and ``metadata.namespace`` of an object in
    the canonical dump, read from its lines without parsing the whole document.

    Returns None unless the text is plainly one block mapping whose identity fields are plain
    scalars that YAML reads as strings (the resolver is asked), each given once: the caller
    then parses the text. So the answer, when there is one, is what ``load_yaml`` gives.
    """
    top: dict[str, str | None] = {}
    for line in _TOP_LINES.findall(text):
        match = _TOP_KEY.fullmatch(line)
        if match is None or match.group(1) in top:
            return None  # a document marker, a comment, a list, a quoted or repeated key
        top[match.group(1)] = match.group(2)
    if "metadata" not in top or top["metadata"] is not None:
        return None  # no metadata, or not a block mapping
    at = 0 if text.startswith("metadata:\n") else text.find("\nmetadata:\n") + 1
    if at == 0 and not text.startswith("metadata:\n"):
        return None  # "metadata:" is the last line: nothing below it
    start = at + len("metadata:\n")
    following = _TOP_LINES.search(text, start)
    meta: dict[str, str | None] = {}
    for line in _META_LINES.findall(text, start, following.start() if following else len(text)):
        match = _META_KEY.fullmatch(line)
        if match is None or match.group(1) in meta:
            return None
        meta[match.group(1)] = match.group(2)
    header = {"apiVersion": top.get("apiVersion"), "kind": top.get("kind"),
              "name": meta.get("name"), "namespace": meta.get("namespace")}
    for key, value in header.items():
        if value is None and key == "namespace" and "namespace" not in meta:
            continue
        if value is None or not _plain_string(value):
            return None
    return {key: value for key, value in header.items() if value is not None}


def _plain_string(value: str) -> bool:
    """True when ``value``, written plain, reads back as this very string: when the dump
    writes it plain (``_string_scalar``, which the canonical dump itself uses)."""
    return _string_scalar(value) == value


def load_all(text: str, loader: type | None = None) -> list[Any]:
    """Every document of a YAML stream, with the safe loader (or ``loader``, one of
    ``parse_back_loader``'s); raises ``YAMLError``."""
    return list(yaml.load_all(text, Loader=loader or _Loader))


def dump_plain(obj: Any, *, sort_keys: bool = True, flow: bool | None = False,
               width: int | None = None) -> str:
    """PyYAML's safe dump, for a file a person reads rather than an object meshstage owns
    (Prometheus scrape jobs, an inventory snippet)."""
    return yaml.safe_dump(obj, sort_keys=sort_keys, default_flow_style=flow, width=width)


YAMLError = yaml.YAMLError
# True when libyaml's C loader and emitter are in use (part of the stage cache's key).
WITH_LIBYAML: bool = bool(getattr(yaml, "__with_libyaml__", False))
