"""The one seam for YAML in and out: every YAML meshstage reads or writes goes through here.

- ``load_yaml`` / ``load_all``: the safe loader (libyaml's C loader where it is present).
- ``parse_back_loader``: the same loader, faster on the plain documents rendering produces.
- ``dump_canonical``: the one canonical text of an object (keys sorted, block style), byte
  for byte as PyYAML writes it; ``canonical_header`` reads an object's identity back from
  that text without parsing it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable
from typing import Any

import yaml

from ._plain import expansion_problem

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


# What PyYAML's safe constructor raises for a scalar its explicit tag cannot read
# (``!!int nope``: ValueError; ``!!timestamp x``: AttributeError)
_SCALAR_ERRORS = (ValueError, TypeError, AttributeError, OverflowError)


def _unreadable(node: Any) -> yaml.YAMLError:
    """The error for a scalar ``node`` its tag cannot read (``_SCALAR_ERRORS``): its value,
    its tag and its place."""
    return yaml.constructor.ConstructorError(
        None, None, f"{node.value!r} cannot be read as {node.tag.rpartition(':')[2]}",
        node.start_mark)


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

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            except _SCALAR_ERRORS as error:
                if node.__class__ is not yaml.ScalarNode:
                    raise
                raise _unreadable(node) from error

        def _plain(self, node: Any, built: dict[int, Any]) -> Any:
            kind = node.__class__
            if kind is yaml.ScalarNode:
                if node.tag == _TAG + "str":
                    return node.value
                if node.tag in _SCALAR_TAGS:
                    try:
                        return self.yaml_constructors[node.tag](self, node)
                    except _SCALAR_ERRORS as error:
                        raise _unreadable(node) from error
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


# Plain scalars that YAML 1.1 (go-yaml v2: y, n, on, off) or YAML 1.2 (kustomize's go-yaml
# v3: 1e3, 0o17, 0x1F, .5) reads as a boolean or a number, though PyYAML's resolver reads
# them as strings: a string that looks like one is quoted in every file meshstage writes.
# (https://yaml.org/type/bool.html, https://yaml.org/spec/1.2.2/#1032-tag-resolution)
_OTHER_READINGS = (
    ("bool", r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE"
             r"|on|On|ON|off|Off|OFF)$", "yYnNtTfFoO"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
              r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+.0123456789"),
)


def _read_as_other_types(resolver: type[yaml.resolver.BaseResolver]) -> None:
    """Teach a resolver class the readings above (only where it decides what to quote)."""
    for name, pattern, first in _OTHER_READINGS:
        resolver.add_implicit_resolver(_TAG + name, re.compile(pattern), list(first))


class _Dumper(_BaseDumper):
    """Safe dumper that writes multi-line strings as literal blocks, for readable diffs, and
    quotes every string another YAML reader would take for a boolean or a number."""


class _PlainDumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting as ``_Dumper`` does."""


class _QuotingResolver(yaml.resolver.Resolver):
    """The resolver the canonical dump asks whether a string may be written plain."""


for _quoting in (_Dumper, _PlainDumper, _QuotingResolver):
    _read_as_other_types(_quoting)


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
_resolver = _QuotingResolver()


def _string_scalar(text: str) -> str | None:
    """How PyYAML writes ``text`` as a key, a value or an item, on one line; None when it
    takes more than one line or would not be a simple key (PyYAML then dumps the object).

    The common strings are decided here: plain when the resolver reads them back as strings,
    single-quoted when it would read another type ("true", "1"). Any other one-line string
    is written once by PyYAML itself, as a mapping's value, and its form is kept."""
    try:  # one look-up for the strings seen before, nearly all of them
        return _scalars[text]
    except KeyError:
        pass
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


class _Frame:
    """No key awaited yet (a marker no YAML value can be)."""


_SAFE_SCALARS = yaml.SafeLoader.yaml_constructors


def _events_to_documents(text: str) -> list[Any]:
    """Every document of ``text``, built straight from the C parser's events: what the safe
    loader builds, without composing a node (and two marks) for every value, which is most
    of its time on a large export. A document with what only the safe constructor builds
    (merge and value keys, other tags, unhashable keys) or with an alias, which the bounded
    loader judges, is read alone by that loader (``_unusual_document``), and the events go
    on with the next document: one alias in an export of thousands of objects no longer
    sends the whole stream to the slow loader. Raises ``_Unusual`` where a document cannot
    be read alone (a stream that starts with a byte order mark).

    Each open collection is a frame ``[container, is a mapping, the key awaiting a value]``
    (``_Frame`` as the key: none awaited)."""
    documents: list[Any] = []
    stack: list[list[Any]] = []
    frame: list[Any] | None = None
    anchors: dict[str, Any] = {}
    root: Any = None
    started: Any = None  # the mark where the document being read starts
    resolved: dict[tuple[str, Any], str] = {}
    resolve = yaml.resolver.Resolver().resolve
    scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
    mapping_start, sequence_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
    ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    document_start, document_end = yaml.DocumentStartEvent, yaml.DocumentEndEvent
    loader = _Loader(text)
    events = iter(loader.get_event, None)
    try:
        while True:  # again after a document read alone, from the next event
            try:
                for event in events:
                    kind = event.__class__
                    opened = False
                    if kind is scalar_event:
                        tag = event.tag
                        if tag is None or tag == "!":
                            key = (event.value, event.implicit)
                            tag = resolved.get(key)
                            if tag is None:
                                tag = resolved[key] = resolve(yaml.ScalarNode, event.value,
                                                              event.implicit)
                        if tag == _STR_TAG:
                            value: Any = event.value
                        elif tag in _SCALAR_TAGS:
                            scalar = yaml.ScalarNode(tag, event.value, event.start_mark)
                            try:
                                value = _SAFE_SCALARS[tag](_SCALAR_LOADER, scalar)
                            except _SCALAR_ERRORS as error:
                                raise _unreadable(scalar) from error
                        else:
                            raise _Unusual  # merge and value keys, other tags
                        if event.anchor is not None:
                            anchors[event.anchor] = value
                    elif kind is mapping_start or kind is sequence_start:
                        if event.tag not in (None, "!", _TAG + (
                                "map" if kind is mapping_start else "seq")):
                            raise _Unusual
                        value = {} if kind is mapping_start else []
                        if event.anchor is not None:
                            anchors[event.anchor] = value
                        opened = True
                    elif kind in ends:
                        stack.pop()
                        frame = stack[-1] if stack else None
                        continue
                    elif kind is alias_event:
                        # the bounded loader (load_all) judges every alias: how far it
                        # expands ("billion laughs", MAX_EXPANDED_NODES), a recursive or
                        # an unknown one
                        raise _Unusual
                    elif kind is document_start:
                        root, anchors, started = None, {}, event.start_mark
                        continue
                    elif kind is document_end:
                        documents.append(root)
                        continue
                    else:
                        continue  # stream start and end
                    if frame is None:
                        root = value
                    elif not frame[1]:
                        frame[0].append(value)
                    elif frame[2] is _Frame:
                        if not isinstance(value, Hashable):
                            raise _Unusual
                        frame[2] = value
                    else:
                        frame[0][frame[2]] = value
                        frame[2] = _Frame
                    if opened:
                        frame = [value, kind is mapping_start, _Frame]
                        stack.append(frame)
                break
            except _Unusual:
                if started is None or text.startswith("\ufeff"):
                    raise  # marks counted after a byte order mark: the whole stream
                ended = next((e for e in events if e.__class__ is document_end), None)
                if ended is None:
                    raise
                documents.append(_unusual_document(text, started, ended.end_mark))
                stack, frame, root = [], None, None
    finally:
        loader.dispose()
    return documents


def _unusual_document(text: str, started: Any, ended: Any) -> Any:
    """The document of ``text`` from the line of mark ``started`` to mark ``ended``, read
    alone by the bounded safe loader, as it reads it in the whole stream: aliases are
    bounded per document, and a document's directives, anchors and tags are its own. An
    error's marks are moved to the stream's lines."""
    start = started.index - started.column  # the document's first line
    try:
        found = load_all(text[start:ended.index], parse_back_loader())
    except yaml.MarkedYAMLError as error:
        error.context_mark, error.problem_mark = (
            None if mark is None else yaml.Mark(mark.name, mark.index + start,
                                                mark.line + started.line, mark.column,
                                                None, 0)
            for mark in (error.context_mark, error.problem_mark))
        raise
    if len(found) != 1:
        raise _Unusual  # not one document alone: the whole stream
    return found[0]


_SCALAR_LOADER = yaml.SafeLoader("")


def load_yaml(text: str) -> Any:
    """Parse one YAML document with the same loader the renderer uses (aliases bounded)."""
    documents = load_all(text)
    if len(documents) > 1:
        raise yaml.composer.ComposerError(
            "expected a single document in the stream", None,
            "but found another document", None)
    return documents[0] if documents else None


class AliasExpansionError(yaml.YAMLError):
    """A document whose aliases expand past ``_plain.MAX_EXPANDED`` nodes, or that contains
    itself: a few hundred bytes can stand for billions of nodes ("billion laughs")."""


def _node_parts(node: Any) -> list[Any] | None:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return None


def check_expansion(node: yaml.Node) -> None:
    """Raise ``AliasExpansionError`` when ``node`` stands for too many nodes."""
    problem = expansion_problem(node, _node_parts)
    if problem:
        raise AliasExpansionError(problem)


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
    ``parse_back_loader``'s); raises ``YAMLError``, and ``AliasExpansionError`` for a
    document whose aliases expand past ``MAX_EXPANDED_NODES``."""
    if "&" not in text or "*" not in text:  # no anchor and alias: nothing to expand
        return list(yaml.load_all(text, Loader=loader or _Loader))
    parser = (loader or _Loader)(text)
    documents = []
    try:
        while parser.check_node():
            node = parser.get_node()
            check_expansion(node)
            documents.append(parser.construct_document(node))
    finally:
        parser.dispose()
    return documents


def duplicate_keys(text: str) -> list[tuple[str, int, int]]:
    """Keys given twice in one mapping with different values, anywhere in a YAML stream:
    (the key's path, the line of each), for a file Ansible reads (it keeps the last value,
    with a warning at most). Raises ``YAMLError``."""
    found: list[tuple[str, int, int]] = []
    parser = _Loader(text)
    try:
        while parser.check_node():
            _walk_duplicates(parser, parser.get_node(), found)
    finally:
        parser.dispose()
    return found


def _walk_duplicates(parser: Any, root: yaml.Node, found: list[tuple[str, int, int]]) -> None:
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen or isinstance(node, yaml.ScalarNode):
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{number}]") for number, item in enumerate(node.value))
            continue
        first: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            child = f"{path}.{name}" if path else name
            earlier = first.setdefault(name, value)
            if earlier is not value and parser.construct_object(earlier, deep=True) != \
                    parser.construct_object(value, deep=True):
                found.append((child, earlier.start_mark.line + 1, value.start_mark.line + 1))
            stack.append((value, child))


def load_manifests(text: str) -> list[Any]:
    """Every document of a stream of manifests (a cluster export, a tree): exactly what the
    safe loader reads, built from the parser's events where a document is plain data
    (several times faster on a large export), and by the bounded safe loader where it is
    not (an alias, a merge key, another tag: that document alone, ``_events_to_documents``);
    raises ``YAMLError``."""
    try:
        return _events_to_documents(text)
    except _Unusual:
        return load_all(text, parse_back_loader())


def dump_plain(obj: Any, *, sort_keys: bool = True, flow: bool | None = False,
               width: int | None = None) -> str:
    """PyYAML's safe dump, for a file a person reads rather than an object meshstage owns
    (Prometheus scrape jobs, an inventory snippet)."""
    return yaml.dump(obj, Dumper=_PlainDumper, sort_keys=sort_keys, default_flow_style=flow,
                     width=width)


YAMLError = yaml.YAMLError
# True when libyaml's C loader and emitter are in use (part of the stage cache's key).
WITH_LIBYAML: bool = bool(getattr(yaml, "__with_libyaml__", False))


def flow_text(value: Any) -> str:
    """``value`` on one line, in YAML's flow style (``[a, b]``, ``{port: 80}``, a quoted
    scalar where YAML would read the plain text otherwise): for files a person reads."""
    kind = type(value)
    if kind is list:
        return "[" + ", ".join(flow_text(item) for item in value) + "]"
    if kind is dict:
        return "{" + ", ".join(f"{flow_text(k)}: {flow_text(v)}" for k, v in value.items()) \
            + "}"
    if kind is str:
        written = _string_scalar(value)
        if written is not None and written == value and not _FLOW_INDICATORS.search(value):
            return written
        return json.dumps(value, ensure_ascii=False)  # a double-quoted YAML scalar
    if value is None:
        return "null"
    try:
        return _fast_scalar(value)
    except _Unusual:
        return json.dumps(value)


# Characters that end a plain scalar inside a flow collection (YAML 1.1, 7.3.3).
_FLOW_INDICATORS = re.compile(r"[,\[\]{}#]|: |:$")
