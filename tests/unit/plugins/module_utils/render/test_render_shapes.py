"""The parse-back by shape gives exactly what parsing each rendering back gives: the same
object, type for type, or the same error; and it is used where it may be."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from plan_helpers import every_inventory

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render import (
    renderer as renderer_module,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render import (
    shapes as shapes_module,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import (
    Renderer,
    drop_nulls,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.shapes import same_data
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


VALUES: list[Any] = [
    "abc", "with: colon # and hash", 'quote"s', "back\\slash", "new\nline", "", "123",
    "true", "null", "- item", "&anchor", "*alias", "!tag", "{a: 1}", "[1]", 123, -7, 0,
    1.5, -0.0, 1e-05, 1e20, True, False, None, [1, "a", None], [], {},
    {"k": None, "j": {"x": None}}, {"a": {"b": [1, {"c": None}]}}, "é unicode", "\x7f DEL",
    "line\u2028separator", "nul\x00", "x" * 1100, {"k" * 1100: 1}, {"a": "v" * 1100},
    ["w" * 200] * 6, "\ue000" "0\ue001", "\ue001", "surrogate \udc80", nested(400),
]

TEMPLATES: dict[str, str] = {
    "values": "a: {{ x | json }}\nb: {{ y | json }}\nc: static\n",
    "keys": "{{ x | json }}: 1\nstatic: {{ y | json }}\n",
    "flow": "a: [{{ x | json }}, 2]\nb: {c: {{ y | json }}}\n",
    "document": "{{ x | json }}\n",
    "str_tag": "a: !!str {{ x | json }}\nb: {{ y | json }}\n",
    "bang_tag": "a: ! {{ x | json }}\nb: {{ y | json }}\n",
    "quoted": 'a: "{{ x | json }}"\nb: {{ y | json }}\n',
    "inside_a_scalar": "a: pre-{{ x | json }}\nb: {{ x | json }}{{ y | json }}\n",
    "comment_and_block": "a: 1 # {{ x | json }}\nb: |\n  {{ y | json }}\nc: {{ y | json }}\n",
    "anchors": "a: &v {{ x | json }}\nb: *v\nc: &m {k: {{ y | json }}}\nd:\n  <<: *m\n"
               "  z: 1\n",
    "set_block": "{% set s %}{{ x | json }}{% endset %}a: {{ (s | length > 5) | json }}\n"
                 "b: {{ x | json }}\n",
    "filter_block": "a: {% filter lower %}{{ x | json }}{% endfilter %}\n\nb: 1\n",
    "call_block": "{% macro m() %}{{ caller() | length | json }}{% endmacro %}"
                  "a: {% call m() %}{{ x | json }}{% endcall %}\nb: {{ y | json }}\n",
    "autoescape": "{% autoescape true %}a: {{ x | json }}{% endautoescape %}\nb: 1\n",
    "recursive_loop": "{% for i in [[x]] recursive %}{% if i is string %}{{ i | json }}"
                      "{% else %}a: {{ loop(i) }}{% endif %}{% endfor %}\nb: 1\n",
    "duplicate_keys": "{{ x | json }}: 1\n{{ y | json }}: 2\n",
    "loop": "items:\n{% for item in [x, y, x] %}  - {{ item | json }}\n{% endfor %}",
    "mark_in_source": 'a: "\ue000' '0\ue001"\nb: {{ x | json }}\n',
    "key_after_value": "a: {{ x | json }}: 1\n",
    "continued": "a: {{ x | json }}\n  more\n",
    "sequence": "a:\n  - {{ x | json }}\n  - b\n  - {{ y | json }}\n",
    "constant": "a: {{ 'folded' | json }}\nb: {{ x | json }}\n",
    "static_alias": "a: &x [1, 2]\nb: *x\nc: {{ x | json }}\nd: {{ y | json }}\n",
    "static_keys_twice": "a: 1\n{{ x | json }}: 2\na: 3\nb: {{ y | json }}\n",
    "merge": "b:\n  <<: {a: 1, {{ x | json }}: 2}\nc: {{ y | json }}\n",
    "int_tag": "a: !!int {{ x | json }}\nb: {{ y | json }}\n",
    "key_far_from_colon": "{{ x | json }}" + " " * 990 + ": 1\nb: {{ y | json }}\n",
    "forged": "a: {{ (1 | json).__class__(x) }}\nb: {{ y | json }}\n",
    "folded_mark": 'a: {{ "\\ue0000\\ue001" | json }}\nb: {{ x | json }}\n',
    "static_null": "a: null\nb: {{ x | json }}\nc: {d: {{ y | json }}}\ne: [null, 1]\n",
}


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "object", call()
    except Exception as error:  # the same error, whatever it is
        return "error", f"{type(error).__name__}: {error}"


def reference(renderer: Renderer, name: str, context: dict[str, Any]) -> tuple[str, Any]:
    """Parsing the rendered text back, as every rendering was before shapes."""
    return outcome(lambda: drop_nulls(renderer._parse_back(name,
                                                           renderer.render_text(name, context))))


def same_outcome(one: tuple[str, Any], other: tuple[str, Any]) -> bool:
    return one[0] == other[0] and (same_data(one[1], other[1]) if one[0] == "object"
                                   else one[1] == other[1])


class Counting:
    """Counts the renderings a renderer built by shape."""

    def __init__(self, renderer: Renderer) -> None:
        self.built = 0
        shapes = renderer._shapes
        build = shapes.build

        def counted(shape_text: str, printed: Any) -> Any:
            result = build(shape_text, printed)
            self.built += type(result) is dict
            return result

        shapes.build = counted


def renderers(tmp_path: Path) -> tuple[Renderer, Renderer]:
    for name, text in TEMPLATES.items():
        (tmp_path / f"{name}.yaml.j2").write_text(text, encoding="utf-8")
    return Renderer([tmp_path]), Renderer([tmp_path])


def contexts() -> list[dict[str, Any]]:
    """Every value in each slot, and each one again after a benign one (a shape is learned
    on its second sighting, so later renderings are built from it)."""
    return [{"x": x, "y": y} for x in VALUES for y in ("plain", x, 5)]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_rendering_by_shape_gives_what_parsing_back_gives(tmp_path: Path, name: str):
    by_shape, parsed = renderers(tmp_path)
    counting = Counting(by_shape)
    template = f"{name}.yaml.j2"
    for context in contexts():
        assert same_outcome(outcome(lambda c=context: by_shape.render_object(template, c)),
                            reference(parsed, template, context)), context
    # the plain templates are built by shape most of the time; a template that could see
    # or change its printed text never is
    if name in ("values", "keys", "flow", "loop", "sequence", "constant", "duplicate_keys",
                "static_null"):
        assert counting.built > len(contexts()) / 2
    if name == "document":  # a shape is learned from a rendering that parsed
        assert counting.built > 0
    if name in ("set_block", "filter_block", "call_block", "autoescape", "recursive_loop",
                "mark_in_source",
                "str_tag", "bang_tag", "quoted", "inside_a_scalar", "anchors",
                "comment_and_block", "static_alias", "static_keys_twice", "merge", "int_tag",
                "folded_mark"):
        assert counting.built == 0


def test_a_tag_or_a_captured_text_would_change_the_object(tmp_path: Path):
    """The cases refused above are real: rendered by shape, they would give other objects."""
    by_shape, _parsed = renderers(tmp_path)
    assert by_shape.render_object("str_tag.yaml.j2", {"x": 5, "y": 1}) == {"a": "5", "b": 1}
    assert by_shape.render_object("bang_tag.yaml.j2", {"x": "7", "y": 1}) == {"a": 7, "b": 1}
    assert by_shape.render_object("set_block.yaml.j2", {"x": "ab", "y": 1}) == \
        {"a": False, "b": "ab"}
    assert by_shape.render_object("filter_block.yaml.j2", {"x": "AB", "y": 1}) == \
        {"a": "ab", "b": 1}


@pytest.mark.parametrize(("template", "values"), [
    # a key whose ":" is far from its start (anchor or spaces): YAML refuses it
    ("{{ k | json }}" + " " * 1000 + ": 1\n", ["a", "b", "x" * 30]),
    ("&" + "a" * 1000 + " {{ k | json }}: 1\n", ["a", "b", "x" * 30]),
    ("m: { {{ k | json }}" + " " * 1000 + ": 1 }\n", ["a", "b", "x" * 30]),
    # a text that is not what the json filter writes for its value
    ("a: {{ (1 | json).__class__(k) }}\n", ["1", "2", "1e5", "NaN", "09", '"a" # b"']),
    # tags whose constructor fails on a mark while the shape is learned
    ("a: !!int {{ k | json }}\n", [1, 2, 3]),
    ("a: !!float {{ k | json }}\n", [1.5, 2.5, 3.5]),
    ("a: !!bool {{ k | json }}\n", [True, False, True]),
    ("a: !!timestamp {{ k | json }}\n", ["2001-01-01", "2001-01-02", "2001-01-03"]),
    # a key given twice around a printed key, and merged keys
    ("a: 1\n{{ k | json }}: 2\na: 3\n", ["p", "q", "a"]),
    ("b:\n  <<: {a: 1, {{ k | json }}: 2}\n", ["p", "q", "a"]),
    ("<<: { {{ k | json }}: 1, {{ k | json }}: 2 }\n", [3, 4, 3]),
    # deeper than the recursion the checks can take
    ("b: {{ k | json }}\n", [1, 2, nested(400), nested(450)]),
    ("b: {{ k | json }}\n", [nested(400), nested(400), nested(400)]),
])
def test_what_a_review_found_renders_as_parsed_back(tmp_path: Path, template: str,
                                                    values: list[Any]):
    """The counterexamples of a review of the shapes (each failed before its fix)."""
    (tmp_path / "t.yaml.j2").write_text(template, encoding="utf-8")
    by_shape, parsed = Renderer([tmp_path]), Renderer([tmp_path])
    for value in values:
        context = {"k": value}
        assert same_outcome(outcome(lambda c=context: by_shape.render_object("t.yaml.j2", c)),
                            reference(parsed, "t.yaml.j2", context)), value


def test_random_values_render_the_same_by_shape(tmp_path: Path):
    ascii_chars = 'ab :#"\\\n\t-{}[],&*!|>%@`\'\x00\x1f\x7f0.e+'
    other_chars = "\x85\u2028é\ue000\ue001\ufeff"
    rng = random.Random(17)

    def text(length: int) -> str:
        return "".join(rng.choice(other_chars if rng.random() < 0.02 else ascii_chars)
                       for _ in range(rng.randint(0, length)))

    def value(depth: int = 0) -> Any:
        roll = rng.random()
        if roll < 0.45 or depth > 2:
            return text(12)
        if roll < 0.6:
            return rng.choice([0, -1, 10**30, 1.25, 3e-9, 2.5e300, True, False, None])
        if roll < 0.8:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {text(6): value(depth + 1) for _ in range(rng.randint(0, 3))}

    by_shape, parsed = renderers(tmp_path)
    counting = Counting(by_shape)
    rendered = 0
    for _ in range(600):
        for name in ("values", "keys", "flow", "document", "loop", "duplicate_keys"):
            context = {"x": value(), "y": value()}
            template = f"{name}.yaml.j2"
            assert same_outcome(outcome(lambda t=template, c=context: by_shape.render_object(t, c)),
                                reference(parsed, template, context)), (name, context)
            rendered += 1
    assert counting.built > rendered / 4


def test_a_shape_that_builds_another_object_is_never_used(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    learn = shapes_module.learn_shape

    def wrong(shape_text: str, slots: int, encode: Any, verified: Any) -> shapes_module.Shape:
        shape = learn(shape_text, slots, encode, verified)
        build = shape._build
        shape._build = lambda values: {**build(values), "extra": 1}
        return shape

    monkeypatch.setattr(shapes_module, "learn_shape", wrong)
    by_shape, _parsed = renderers(tmp_path)
    counting = Counting(by_shape)
    for x in ("a", "b", "c", "d"):
        assert by_shape.render_object("values.yaml.j2", {"x": x, "y": 1}) == \
            {"a": x, "b": 1, "c": "static"}
    assert counting.built == 0


def test_every_inventory_renders_the_same_files_by_shape(monkeypatch: pytest.MonkeyPatch,
                                                         crd_dir: Path):
    """The built-in templates on the example inventories at every stage and the upstream
    estates, both providers: every file is the same byte for byte with and without shapes,
    and a good part of the objects are built by shape (each run learns its own shapes, on
    their second sighting: small inventories have many shapes seen once)."""
    registry = SchemaRegistry.from_crd_dirs([crd_dir])
    built = [0]
    build = shapes_module.Shapes.build

    def counted(self: shapes_module.Shapes, shape_text: str, printed: Any) -> Any:
        result = build(self, shape_text, printed)
        built[0] += type(result) is dict
        return result

    monkeypatch.setattr(shapes_module.Shapes, "build", counted)
    objects = 0
    for variables, paths in every_inventory():
        options = StageOptions(gitops_dir=Path("/nonexistent"), check_paths=paths)
        with_shapes = render_stage(variables, options, registry).files
        with monkeypatch.context() as patch:
            patch.setattr(renderer_module, "shapes_allowed", lambda *_args: False)
            without = render_stage(variables, options, registry).files
        assert with_shapes == without
        objects += len(with_shapes)
    assert objects > 1_000
    assert built[0] > objects / 3
