"""The parse-back by shape: a rendering that differs from an earlier one only in the values
the ``json`` filter printed is built from that earlier parse instead of being parsed again.

A template prints values only through the ``json`` filter (``renderer.py``). While a
template renders, each printed value is replaced by a slot mark (``\\ue000<n>\\ue001``: two
private-use characters around its number), so the text rendered is the rendering's *shape*:
its text without its values. Renderings of the same template for other services have the
same shape and differ only in the values in the slots. Once a shape has been seen twice, it
is learned: parsed with each slot as a plain scalar and again with each slot as a
double-quoted scalar. A shape is used only when, in both parses, every slot is exactly one
whole node, resolved from its text (no tag), nothing else holds a mark, and the document
has no alias, no merge key and no key written twice (its object would not say where each
value came from). A JSON value then reads back as that same node would: a JSON text is one
line, one flow node (a double-quoted string, a number, ``true``, ``false``, ``null``, a
flow collection), and its characters cannot end or extend the node around it. The shape
is then a function of the slots' values, compiled once; its result is checked against the
real parse of the rendering it was learned from, type for type, and a shape that differs,
or whose learning raises anything, is never used.

A value is built from its JSON text only where the parse back would read that text as the
JSON value; anything else is parsed back as before:

- the text is what the ``json`` filter writes for its value (checked once per distinct
  text: a template could build the filter's type itself) and ASCII (``json`` escapes every
  control character, DEL and what YAML would not read back, so ASCII JSON text is
  printable YAML);
- a key is a scalar, and its line is at most 1,000 characters long (YAML reads a key only
  when its ``:`` comes within 1,024 characters of its start, anchor and spaces included);
- a flow collection longer than 1,000 characters has no string key longer than 150
  characters (the same rule inside it; an escape takes at most six characters);
- the value is not deeper than Python's recursion lets the checks go.

A template that could use its printed text as a value is never rendered this way: one with
a block ``set``, a macro, a call or filter block, an ``include``, ``import``, ``extends`` or
``block``, an ``autoescape`` block, a recursive loop, or the mark characters in its source
(only ``for``, ``if``, ``with``, ``set`` of an expression and output statements are
allowed). Rendered any other way, its printed text is only ever written out, so replacing
each value by a mark changes the text and nothing else. Where the text rendered holds
marks other than those of its printed values, in order (a constant folded when the
template was compiled can print one), the template is rendered again without marks.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml
from jinja2 import nodes

from ..yaml_io import YAMLError, parse_back_loader

SLOT_OPEN, SLOT_CLOSE = "\ue000", "\ue001"
_SLOT_TEXT = re.compile("\ue000([0-9]+)\ue001")

# the statements a template may use and still be rendered by shape: none of them can see,
# capture or transform the text printed inside it
_STATEMENTS = (nodes.Output, nodes.For, nodes.If, nodes.With, nodes.Assign)

_KEY_LIMIT = 1000   # a key slot's line, at most (YAML's limit is 1,024 to the ``:``)
_FLOW_LIMIT = 1000  # a flow collection up to this long cannot hold a key past the limit
_INNER_KEY_LIMIT = 150  # a string key inside a longer one: at most 6 x 150 + 2 characters
_DEPTH_LIMIT = 60   # a deeper shape is parsed back instead (Python's parser nests to 200)
_WORDS = {"true": True, "false": False, "null": None}
_SHAPES_KEPT = 512  # shapes learned or refused, per renderer
_SEEN_KEPT = 8192   # shapes seen once, per renderer
_VERIFIED_KEPT = 16384  # JSON texts checked and kept, per renderer,
_VERIFIED_LENGTH = 1000  # each of at most this many characters
_UNSEEN = object()


def slot_mark(number: int) -> str:
    return _MARKS[number] if number < len(_MARKS) else f"{SLOT_OPEN}{number}{SLOT_CLOSE}"


_MARKS = [f"{SLOT_OPEN}{number}{SLOT_CLOSE}" for number in range(256)]


def fill(shape_text: str, printed: Sequence[str]) -> str | None:
    """The rendered text: each slot mark replaced by the value printed there; None unless
    the marks are exactly those of the printed values, in order (a constant the template
    folded could print one too)."""
    pieces: list[str] = []
    last = 0
    for number, match in enumerate(_SLOT_TEXT.finditer(shape_text)):
        if number >= len(printed) or int(match.group(1)) != number:
            return None
        pieces += (shape_text[last:match.start()], printed[number])
        last = match.end()
    if len(pieces) != 2 * len(printed):
        return None
    pieces.append(shape_text[last:])
    return "".join(pieces)


def shapes_allowed(source: str, template: nodes.Template) -> bool:
    """Whether a template's renderings may be built by shape (see the module)."""
    if SLOT_OPEN in source or SLOT_CLOSE in source:
        return False
    # a recursive loop's ``loop()`` returns the text printed inside it
    return all(isinstance(node, _STATEMENTS)
               and not (isinstance(node, nodes.For) and node.recursive)
               for node in template.find_all(nodes.Stmt))


class _Slot:
    """A printed value's place in a recipe: equal to the slot of the same number."""

    __slots__ = ("number",)

    def __init__(self, number: int) -> None:
        self.number = number

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Slot) and other.number == self.number

    def __hash__(self) -> int:
        return hash((_Slot, self.number))


class _Unusable(Exception):
    """A shape that is not built by shape: its renderings are parsed back."""


class Shape:
    """One learned shape: the function that builds its object from the printed values."""

    def __init__(self, build: Callable[[list[Any]], Any], slots: int,
                 key_lines: Mapping[int, tuple[int, tuple[int, ...]]],
                 encode: Callable[[Any], str], verified: dict[str, Any]) -> None:
        self._build = build
        self._slots = slots
        # each key slot: the static length of its line, and the slots on that line
        self._key_lines = key_lines
        self._encode = encode  # what the json filter writes for plain data
        self._verified = verified  # texts found to be the filter's (``_value``)

    def build(self, printed: Sequence[str]) -> Any:
        """The object, or None where a value must be parsed back (see the module)."""
        if len(printed) != self._slots:
            return None
        try:
            values = [_value(text, self._encode, self._verified) for text in printed]
            for number, (static, on_line) in self._key_lines.items():
                if static + sum(len(printed[n]) for n in on_line) > _KEY_LIMIT \
                        or isinstance(values[number], (dict, list)):
                    return None
            for text, value in zip(printed, values, strict=True):
                if len(text) > _FLOW_LIMIT and isinstance(value, (dict, list)) \
                        and _long_key(value):
                    return None
            return self._build(values)
        except (_NotJson, RecursionError):
            return None


class _NotJson(Exception):
    """A printed text the json filter would not have written for its value."""


def _value(text: str, encode: Callable[[Any], str], verified: dict[str, Any]) -> Any:
    """The value of a printed JSON text, when it is the json filter's text for that value
    and ASCII (raises ``_NotJson``). A text checked once is kept in ``verified`` with its
    value: a value printed for many objects (labels) is read and checked once. The value is
    shared by the objects built from it, which are only read until ``drop_nulls`` copies
    them (``Renderer.render_object``)."""
    if not text.isascii():
        raise _NotJson
    if text[0] == '"' and "\\" not in text:
        inner = text[1:-1]
        # a JSON string without escapes: no quote inside, nothing JSON would escape
        if len(text) >= 2 and text[-1] == '"' and '"' not in inner and inner.isprintable():
            return inner
    elif text in _WORDS:
        return _WORDS[text]
    elif text.isdigit() and (text[0] != "0" or len(text) == 1):  # JSON: no leading zero
        return int(text)
    value = verified.get(text, _UNSEEN)
    if value is not _UNSEEN:
        return value
    try:
        value = json.loads(text)
        same = encode(value) == text
    except Exception as error:  # not JSON, or not what the filter writes: parse it back
        raise _NotJson from error
    if not same:
        raise _NotJson
    if len(text) <= _VERIFIED_LENGTH:
        if len(verified) >= _VERIFIED_KEPT:
            verified.clear()
        verified[text] = value
    return value


def _long_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any((isinstance(key, str) and len(key) > _INNER_KEY_LIMIT) or _long_key(item)
                   for key, item in value.items())
    if isinstance(value, list):
        return any(_long_key(item) for item in value)
    return False


class Shapes:
    """The shapes one renderer has learned, and those it has seen once."""

    def __init__(self, encode: Callable[[Any], str]) -> None:
        self._encode = encode  # the json filter, whose texts the values are
        self._known: dict[str, Shape | None] = {}
        self._seen: set[int] = set()  # the hashes of shapes seen once (a text can be long)
        self._verified: dict[str, Any] = {}

    def build(self, shape_text: str, printed: Sequence[str]) -> Any:
        """The rendering's object built by its shape, or None: parse it back."""
        shape = self._known.get(shape_text)
        return None if shape is None else shape.build(printed)

    def learn(self, shape_text: str, printed: Sequence[str], parsed: Any) -> None:
        """After a rendering was parsed back into ``parsed``: learn its shape on its second
        sighting, and keep it only if it builds exactly ``parsed``."""
        if shape_text in self._known or len(self._known) >= _SHAPES_KEPT:
            return
        seen = hash(shape_text)  # a shape another one's hash stands for is learned early
        if seen not in self._seen:
            if len(self._seen) < _SEEN_KEPT:
                self._seen.add(seen)
            return
        self._seen.discard(seen)
        shape: Shape | None
        try:
            shape = learn_shape(shape_text, len(printed), self._encode, self._verified)
            if not same_data(shape.build(printed), parsed):
                shape = None
        except Exception:  # whatever learning meets, the shape is not used
            shape = None
        self._known[shape_text] = shape


def learn_shape(shape_text: str, slots: int, encode: Callable[[Any], str],
                verified: dict[str, Any]) -> Shape:
    """The shape of a rendering (raises ``_Unusable``): its two parses, the slots in the
    same places, each once, and a compiled function of the values."""
    plain = _recipe(shape_text, slots, quoted=False)
    quoted = _recipe(shape_text, slots, quoted=True)
    if not same_data(plain, quoted):
        raise _Unusable
    keys: set[int] = set()
    constants: list[Any] = []
    source = _source(plain, constants, keys)
    # the source holds brackets, "v[n]" and "c[n]" only (``_source``)
    build = eval(f"lambda v, c=c: {source}", {"__builtins__": {}}, {"c": tuple(constants)})
    return Shape(build, slots, _key_lines(shape_text, keys), encode, verified)


def _key_lines(shape_text: str, keys: set[int]) -> dict[int, tuple[int, tuple[int, ...]]]:
    """Each key slot's line: its length without the marks, and the slots on it. YAML reads
    an implicit key only when its ``:`` comes within 1,024 characters of the key's start
    (anchor, tag and spaces included), on the same line: within the line's length."""
    lines: dict[int, tuple[int, tuple[int, ...]]] = {}
    for line in shape_text.split("\n"):
        marks = [(int(m.group(1)), len(m.group())) for m in _SLOT_TEXT.finditer(line)]
        on_line = tuple(number for number, _length in marks)
        static = len(line) - sum(length for _number, length in marks)
        for number in on_line:
            if number in keys:
                lines[number] = (static, on_line)
    return lines


def _recipe(shape_text: str, slots: int, quoted: bool) -> Any:
    """The parse of the shape with each slot a plain (or a double-quoted) scalar, the slots
    as ``_Slot``; raises ``_Unusable`` unless each slot is one whole node read from its text
    (for a double-quoted one: as a quoted scalar, so no ``!`` tag turns it into another
    type), found exactly once, and the document has no alias, no merge key and no key given
    twice (the object would not say where each value came from)."""
    text = _SLOT_TEXT.sub(lambda m: f'"{m.group()}"', shape_text) if quoted else shape_text
    wanted = (False, True) if quoted else (True, False)
    resolved: dict[str, int] = {}
    base = parse_back_loader()

    class _Reader(base):  # type: ignore[misc,valid-type]
        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            if kind is yaml.ScalarNode and isinstance(value, str) and SLOT_OPEN in value:
                if implicit != wanted:
                    raise _Unusable
                resolved[value] = resolved.get(value, 0) + 1
            return super().resolve(kind, value, implicit)

    reader = _Reader(text)
    try:
        node = reader.get_single_node()  # more than one document: ComposerError
        if node is None:
            raise _Unusable
        _refuse_aliases_and_merges(node)  # before constructing, which merges in place
        document = reader.construct_document(node)
    except (YAMLError, RecursionError) as error:
        raise _Unusable from error
    finally:
        reader.dispose()
    found = [0] * slots
    recipe = _walk(document, node, found, 0)
    # each slot once in the object, and read once from its own text (a tagged one is not)
    if found != [1] * slots or resolved != {slot_mark(n): 1 for n in range(slots)}:
        raise _Unusable
    return recipe


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _refuse_aliases_and_merges(root: Any) -> None:
    """Raise ``_Unusable`` for a node met twice (an alias: its expansion counts towards
    ``load_all``'s limit, which values could then pass) or a merge key."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise _Unusable
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, item in node.value:
                if key.tag == _MERGE_TAG:
                    raise _Unusable
                stack += (key, item)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


def _walk(value: Any, node: Any, found: list[int], depth: int) -> Any:
    """The recipe of ``value``, the object ``node`` was constructed into, walked together."""
    if depth > _DEPTH_LIMIT:
        raise _Unusable
    kind = type(value)
    if kind is str:
        if SLOT_OPEN not in value and SLOT_CLOSE not in value:
            return value
        match = _SLOT_TEXT.fullmatch(value)
        if match is None or int(match.group(1)) >= len(found):
            raise _Unusable  # a mark inside a longer text: the value is part of a scalar
        number = int(match.group(1))
        found[number] += 1
        return _Slot(number)
    if kind is dict:
        # as many keys as the mapping wrote: none given twice, none merged in
        if not isinstance(node, yaml.MappingNode) or len(node.value) != len(value):
            raise _Unusable
        recipe = {}
        for (key, item), (key_node, item_node) in zip(value.items(), node.value, strict=True):
            recipe[_walk(key, key_node, found, depth + 1)] = \
                _walk(item, item_node, found, depth + 1)
        return recipe
    if kind is list:
        if not isinstance(node, yaml.SequenceNode) or len(node.value) != len(value):
            raise _Unusable
        return [_walk(item, item_node, found, depth + 1)
                for item, item_node in zip(value, node.value, strict=True)]
    if kind in (int, float, bool, type(None)):
        return value
    raise _Unusable  # a timestamp, bytes, a set: parsed back each time


def _source(recipe: Any, constants: list[Any], keys: set[int], key: bool = False) -> str:
    """Python source building ``recipe`` from ``v`` (the values) and ``c`` (its constants):
    nothing of the rendering's text reaches the source but numbers."""
    if isinstance(recipe, _Slot):
        if key:
            keys.add(recipe.number)
        return f"v[{recipe.number}]"
    if isinstance(recipe, dict):
        items = ", ".join(f"{_source(k, constants, keys, True)}: {_source(v, constants, keys)}"
                          for k, v in recipe.items())
        return "{" + items + "}"
    if isinstance(recipe, list):
        return "[" + ", ".join(_source(item, constants, keys) for item in recipe) + "]"
    constants.append(recipe)
    return f"c[{len(constants) - 1}]"


def same_data(one: Any, other: Any) -> bool:
    """Equal, type for type (``1``, ``1.0`` and ``True`` differ), keys in the same order;
    at any depth (no recursion)."""
    stack = [(one, other)]
    while stack:
        left, right = stack.pop()
        if type(left) is not type(right):
            return False
        if isinstance(left, dict):
            if len(left) != len(right):
                return False
            for (k1, v1), (k2, v2) in zip(left.items(), right.items(), strict=True):
                stack += ((k1, k2), (v1, v2))
        elif isinstance(left, list):
            if len(left) != len(right):
                return False
            stack += zip(left, right, strict=True)
        elif isinstance(left, float) and left != left:  # NaN
            if right == right:
                return False
        elif left != right:
            return False
    return True
