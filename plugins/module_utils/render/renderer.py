"""Render: Jinja templates in, canonical YAML objects out.

A template prints values only through the ``json`` filter, which emits a JSON scalar or
a JSON subtree (JSON is YAML); the environment's ``finalize`` hook refuses any other
printed value, so no value can ever add YAML structure or be evaluated as Jinja. The
rendered text is parsed back and dumped canonically (keys sorted, nulls dropped), so the
same values always give the same bytes.

Templates are looked up in the user's template directories first, then in the built-in
``templates/`` of the collection.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from .. import _fork
from .._fork import ForkedCall
from .._plain import plain_data
from ..cluster.apply import apply_class
from ..errors import RenderError
from ..yaml_io import YAMLError, dump_canonical, load_all, parse_back_loader
from .shapes import Shapes, fill, shapes_allowed, slot_mark
from .stage_cache import Rendering, StageCache, rendering_entry, rendering_of

BUILTIN_TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


# Characters JSON leaves raw but YAML does not read back as themselves: DEL and the C1
# controls (refused, or NEL folded into a space), U+2028/U+2029 and U+FFFE/U+FFFF. They can
# only occur inside a JSON string, where a \u escape means the same in JSON and in YAML.
_YAML_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029\ufffe\uffff]")


# A JSON number with an exponent and no fraction (Python writes 1e-05): YAML 1.1, as PyYAML
# reads it back, takes it for a string; with ".0" (1.0e-05) both read the same float.
# Strings are matched whole first, so a number inside one is left alone.
_EXPONENT_ONLY = re.compile(r'("(?:[^"\\]|\\.)*")|(?<![\d.])(-?\d+)(e[-+]\d+)')


class JsonText(str):
    """Text the ``json`` filter produced: the only thing a template may print."""


# Types whose values json.dumps writes as they are: no plain copy needed first (a subclass,
# such as Ansible's tagged strings, is copied as before). None of them is written with an
# exponent: a string is one JSON string, which the exponent fix leaves alone.
_JSON_AS_IS = frozenset({str, int, bool, type(None)})

# json.dumps with these settings, made once (json.dumps makes an encoder per call for any
# setting not its default); the text is json.dumps's, character for character.
_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(", ", ": "),
                         allow_nan=False)
# what that encoder writes for a str (``JSONEncoder.encode``'s own shortcut for one)
_encode_string = json.encoder.encode_basestring


def json_value(value: Any) -> JsonText:
    """The ``json`` filter: a value as one JSON scalar or subtree, on one line."""
    if type(value) is str:  # most values: what json_text writes for a string, directly
        return JsonText(_yaml_safe(_encode_string(value)))
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    try:
        return JsonText(json_text(value if type(value) in _JSON_AS_IS
                                  else plain_data(value, strict=True)))
    except (TypeError, ValueError) as error:
        raise RenderError(f"value {value!r} cannot be written as JSON: {error}") from error


def json_text(plain: Any) -> str:
    """What the ``json`` filter writes for plain data (JSON's types only, as
    ``plain_data`` gives them); raises ``TypeError`` or ``ValueError`` for what JSON cannot
    hold."""
    kind = type(plain)
    if kind is bool or plain is None:
        return "true" if plain is True else "false" if plain is False else "null"
    # an int as json writes it, without the encoder json makes for each number
    text = int.__repr__(plain) if kind is int else _JSON.encode(plain)
    # only a text with "e-" or "e+" can hold such a number: most subtrees are left unread
    if kind not in _JSON_AS_IS and ("e-" in text or "e+" in text):
        text = _EXPONENT_ONLY.sub(lambda m: m.group(1) or f"{m.group(2)}.0{m.group(3)}", text)
    return _yaml_safe(text)


def _yaml_safe(text: str) -> str:
    """JSON text with what YAML would not read back as itself escaped (``_YAML_UNSAFE``)."""
    if not text.isascii() or "\x7f" in text:  # else none of _YAML_UNSAFE's characters
        text = _YAML_UNSAFE.sub(_unicode_escape, text)
    return text


def _unicode_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _only_json(value: Any) -> Any:
    if isinstance(value, JsonText):
        return value
    raise RenderError(
        f"a template printed {value!r} without the json filter; write {{{{ ... | json }}}}"
    )


class Renderer:
    """Renders templates from the user's directories first, then the built-in ones."""

    def __init__(self, template_dirs: Sequence[str | Path] = (),
                 cache: StageCache | None = None) -> None:
        for directory in template_dirs:
            if not Path(directory).is_dir():
                raise RenderError(f"template directory {str(directory)!r} does not exist")
        search = [str(d) for d in template_dirs] + [str(BUILTIN_TEMPLATES)]
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            finalize=self._finalize,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["json"] = json_value
        self._templates: dict[str, jinja2.Template] = {}
        self._by_shape: dict[str, bool] = {}  # template: may be rendered by shape
        self._cache = cache
        self._loader = parse_back_loader()
        # while a template renders by shape: the text each slot stands for (``shapes.py``)
        self._printed: list[str] | None = None
        self._shapes = Shapes(json_text)

    def _finalize(self, value: Any) -> Any:
        text = value if type(value) is JsonText else _only_json(value)
        printed = self._printed
        if printed is None:
            return text
        printed.append(text)
        return slot_mark(len(printed) - 1)

    def _template(self, name: str) -> jinja2.Template:
        template = self._templates.get(name)
        if template is None:
            try:
                template = self._env.get_template(name)
            except jinja2.TemplateNotFound as error:
                raise RenderError(f"template {name!r} not found in the template path") \
                    from error
            except jinja2.TemplateSyntaxError as error:
                raise RenderError(
                    f"template {name!r} line {error.lineno}: {error.message}") from error
            self._templates[name] = template
            self._by_shape[name] = self._shapes_allowed(name)
        return template

    def _shapes_allowed(self, name: str) -> bool:
        try:
            source, _filename, _uptodate = self._env.loader.get_source(  # type: ignore[union-attr]
                self._env, name)
            return shapes_allowed(source, self._env.parse(source))
        except jinja2.TemplateError:
            return False

    def render_text(self, name: str, context: Mapping[str, Any]) -> str:
        """The raw text of one template, before parsing back."""
        template = self._template(name)
        try:
            return template.render(context)
        except RenderError as error:
            raise RenderError(f"template {name!r}: {error}") from error
        except jinja2.TemplateError as error:
            raise RenderError(f"template {name!r}: {error}") from error

    def render_object(self, name: str, context: Mapping[str, Any]) -> dict[str, Any]:
        """Render one template and parse it back into exactly one object: built from the
        shape of earlier renderings where that gives the same object (``shapes.py``)."""
        self._template(name)  # loaded, and whether it may render by shape decided
        if not self._by_shape[name]:
            return self._rendered_plainly(name, context)
        printed: list[str] = []
        self._printed = printed
        try:
            shape_text = self.render_text(name, context)
        finally:
            self._printed = None
        built = self._shapes.build(shape_text, printed)
        if type(built) is dict:
            return drop_nulls(built)
        text = fill(shape_text, printed)
        if text is None:  # marks the template printed as constants: render it plainly
            return self._rendered_plainly(name, context)
        obj = self._parse_back(name, text)
        self._shapes.learn(shape_text, printed, obj)
        return drop_nulls(obj)

    def _rendered_plainly(self, name: str, context: Mapping[str, Any]) -> dict[str, Any]:
        """The object from the text rendered without slot marks, parsed back."""
        return drop_nulls(self._parse_back(name, self.render_text(name, context)))

    def _parse_back(self, name: str, text: str) -> dict[str, Any]:
        try:
            documents = [doc for doc in load_all(text, self._loader) if doc is not None]
        except YAMLError as error:
            raise RenderError(
                f"template {name!r} rendered text that is not YAML: {error}") from error
        if len(documents) != 1 or not isinstance(documents[0], dict):
            got = (f"{len(documents)} documents" if len(documents) != 1
                   else f"one {type(documents[0]).__name__}")
            raise RenderError(f"template {name!r} must render exactly one YAML mapping, "
                              f"got {got}")
        return documents[0]

    def render_canonical(self, name: str, context: Mapping[str, Any]) -> tuple[dict[str, Any],
                                                                             str]:
        """One object and its canonical text; from the stage cache when the same template
        and values were rendered by the same code before."""
        rendering = self.render_deferred(name, context)
        return rendering.load(), rendering.text

    def render_deferred(self, name: str, context: Mapping[str, Any]) -> Rendering:
        """``render_canonical``, where an object from the stage cache is decoded only when
        ``load`` is called (a run that changes nothing needs the texts, not the objects)."""
        key, cached = self._look_up(name, context)
        return cached if cached is not None else self._render_new(name, context, key)

    def _look_up(self, name: str, context: Mapping[str, Any]) -> tuple[str | None,
                                                                       Rendering | None]:
        """The stage cache's key of one rendering (None: not kept), and what the cache holds
        under it."""
        cache = self._cache
        key = cache.key(name, context) if cache is not None else None
        return key, cache.rendered(key) if key is not None and cache is not None else None

    def keys_for(self, items: Sequence[tuple[str, Mapping[str, Any]]],
                 kept: Sequence[str | None] | None) -> Sequence[str | None]:
        """Each item's key: ``kept``, the keys made before for the same items (the plan memo
        keeps them with the plan), when there is one for each; else ``keys_of``."""
        return kept if kept is not None and len(kept) == len(items) else self.keys_of(items)

    def keys_of(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str | None]:
        """The stage cache's key of each ``(template, context)`` (None: not kept)."""
        cache = self._cache
        if cache is None:
            return [None] * len(items)
        return [cache.key(name, context) for name, context in items]

    def render_all(self, items: Sequence[tuple[str, Mapping[str, Any]]],
                   keys: Sequence[str | None] | None = None) -> list[Rendering]:
        """``render_deferred`` of each ``(template, context)``, in order. ``keys``: each
        one's key, when the caller has them (``keys_for``).

        From ``_fork.FORK_AT`` renderings the stage cache does not hold, a forked child
        renders the second half of them while this process renders the first (``_fork.py``),
        and hands back each one's cache entry (its text, the object as JSON, its identity).
        The error of a failed rendering is the one rendering in order gives: the first half's
        first, then, when the child failed, this process renders the second half itself."""
        cache = self._cache
        keys = self.keys_for(items, keys)
        renderings: list[Rendering | None] = [
            cache.rendered(key) if key is not None and cache is not None else None
            for key in keys]
        missing = [number for number, rendering in enumerate(renderings) if rendering is None]
        half = len(missing) // 2 if len(missing) >= _fork.FORK_AT else len(missing)
        second = missing[half:]
        child = ForkedCall(functools.partial(self._entries, [items[n] for n in second]),
                           fork=bool(second))
        try:
            if not child.forked:
                half, second = len(missing), []
            for number in missing[:half]:
                renderings[number] = self._render_new(*items[number], keys[number])
            entries = child.result() if second else []
        finally:
            child.cancel()
        for number, entry in zip(second, entries, strict=True):
            key = keys[number]
            if key is not None and cache is not None:
                cache.keep_rendering(key, entry)
            renderings[number] = rendering_of(entry)
        return [rendering for rendering in renderings if rendering is not None]

    def _render_new(self, name: str, context: Mapping[str, Any], key: str | None) -> Rendering:
        obj = self.render_object(name, context)
        text = dump_canonical(obj)
        if key is not None and self._cache is not None:
            self._cache.remember(key, obj, text)
        return Rendering(text, lambda: obj, obj.get("apiVersion"), obj.get("kind"),
                         apply_class(obj))

    def _entries(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[Any]]:
        """What a forked child hands back of each rendering (``rendering_entry``)."""
        entries = []
        for name, context in items:
            obj = self.render_object(name, context)
            entries.append(rendering_entry(obj, dump_canonical(obj)))
        return entries


_EMPTIED = object()


def drop_nulls(value: Any) -> Any:
    """Remove keys whose value is null, recursively: an absent option is an absent key.

    A mapping whose keys were all null is absent too (``trafficPolicy`` with no policy
    set), but a mapping written empty on purpose (``spec: {}``) stays, and so does an
    item of a list.
    """
    result = _drop(value)
    return {} if result is _EMPTIED else result


def _drop(value: Any) -> Any:
    # a scalar is kept as it is: only collections are walked (most values are scalars)
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            if item is None:
                continue
            if isinstance(item, (dict, list)):
                item = _drop(item)
                if item is _EMPTIED:
                    continue
            kept[key] = item
        return _EMPTIED if value and not kept else kept
    if isinstance(value, list):
        return [{} if item is _EMPTIED else item
                for item in (_drop(i) if isinstance(i, (dict, list)) else i for i in value)
                if item is not None]
    return value


