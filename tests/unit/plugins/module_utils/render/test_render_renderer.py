"""The renderer: the json filter, null dropping, the canonical dump, the template path."""

from __future__ import annotations

import copy
import json
import math
import os
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils import yaml_io as render_module
from ansible_collections.meshstage.mesh.plugins.module_utils._plain import plain_data
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import RenderError
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render import (
    renderer as renderer_module,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import (
    BUILTIN_TEMPLATES,
    JsonText,
    Renderer,
    drop_nulls,
    json_value,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.yaml_io import (
    AliasExpansionError,
    canonical_header,
    dump_canonical,
    dump_plain,
    load_manifests,
    load_yaml,
    parse_back_loader,
)

LABELS = {"app.kubernetes.io/managed-by": "meshstage", "meshstage.io/environment": "dev"}

VIRTUAL_SERVICE = {
    "name": "reviews", "namespace": "bookinfo", "labels": LABELS, "host": "reviews",
    "http": [{"match": None, "timeout": "10s", "retries": None, "destinations": [
        {"host": "reviews", "subset": "v1", "weight": 90, "port": None},
        {"host": "reviews", "subset": "v2", "weight": 10, "port": None},
    ]}],
}


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------------------- json filter


@pytest.mark.parametrize(("value", "text"), [
    pytest.param(0, "0", id="zero"),
    pytest.param(-7, "-7", id="negative"),
    pytest.param(1.5, "1.5", id="float"),
    pytest.param(True, "true", id="true"),
    pytest.param(False, "false", id="false"),
    pytest.param(None, "null", id="null"),
    pytest.param("", '""', id="empty-string"),
    pytest.param("v1", '"v1"', id="string"),
    pytest.param("true", '"true"', id="bool-like-string"),
    pytest.param("10", '"10"', id="number-like-string"),
    pytest.param("a: b # c", '"a: b # c"', id="yaml-syntax"),
    pytest.param('say "hi"\n', '"say \\"hi\\"\\n"', id="quotes-and-newline"),
    pytest.param("é ✓ 日本 😀", '"é ✓ 日本 😀"', id="unicode-unescaped"),
    pytest.param("a\u2028b\x85c", '"a\\u2028b\\u0085c"', id="yaml-line-breaks-escaped"),
    pytest.param("a\x7fb\x9f", '"a\\u007fb\\u009f"', id="yaml-unprintable-escaped"),
    pytest.param([1, "a", None], '[1, "a", null]', id="list"),
    pytest.param((1, 2), "[1, 2]", id="tuple"),
    pytest.param({"b": 1, "a": {"d": [True], "c": None}},
                 '{"a": {"c": null, "d": [true]}, "b": 1}', id="subtree-sorted"),
    pytest.param({8080: "DISABLE"}, '{"8080": "DISABLE"}', id="integer-key"),
    pytest.param({}, "{}", id="empty-mapping"),
])
def test_json_filter_prints_one_json_line(value: Any, text: str):
    printed = json_value(value)
    assert printed == text
    assert isinstance(printed, JsonText)
    assert "\n" not in printed


@pytest.mark.parametrize("value", [
    "plain", "a: b", "- x", "# c", "{{ x }}", "'q'", '"q"', "*", "&a", "!!str x", "~", "null",
    "yes", "0o17", "1e3", ".inf", "é", "a\u2028b", "a\x85b", "a\x80b", "\ufeffbom",
    "a\ufffeb", "multi\nline\n", {"nested": ["a: b", {"k": "v #"}]}, [None, 1.25, "x"],
])
def test_json_filter_output_reads_back_as_the_same_value_in_yaml(value: Any):
    assert yaml.safe_load(json_value(value)) == value
    assert load_yaml(f"key: {json_value(value)}\n") == {"key": value}


def _every_fix(value: Any) -> str:
    """The filter's text as written before its fast paths: json.dumps of the plain copy,
    then both fixes over the whole text, whatever the value's type."""
    text = json.dumps(plain_data(value, strict=True), ensure_ascii=False, sort_keys=True,
                      separators=(", ", ": "), allow_nan=False)
    text = renderer_module._EXPONENT_ONLY.sub(
        lambda m: m.group(1) or f"{m.group(2)}.0{m.group(3)}", text)
    return renderer_module._YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def test_json_filter_fast_paths_write_what_every_fix_writes():
    """Strings, integers, booleans and null skip the exponent fix, and ASCII text without
    DEL skips the escape of YAML's unsafe characters: the text is the same as with both."""
    pool = 'ae1+-.0"\\ \x00\ud800\x7f\x80\x85\x9f\xa0\u2028\u2029\ufeff\ufffe\uffff\U0001f600'
    draw = random.Random(17)
    strings = ["".join(draw.choice(pool) for _ in range(draw.randrange(12)))
               for _ in range(3000)]
    numbers = [0, -7, 10**30, 1e-05, 1e16, -2.5e300, 1.0, 0.1, 123456789.0, 5e-324]
    values: list[Any] = [*strings, *numbers, True, False, None, "1e5", "\x7f",
                         {"e": 1e-07, "s": "1e+20", "l": [1e22, "x\x7f"]}, ["\u2028", 3e40]]
    for value in values:
        assert json_value(value) == _every_fix(value), repr(value)


def test_json_filter_turns_string_subclasses_into_plain_strings():
    class Tagged(str):
        pass

    assert json_value({Tagged("k"): Tagged("v")}) == '{"k": "v"}'


@pytest.mark.parametrize("value", [
    pytest.param(object(), id="object"),
    pytest.param({1, 2}, id="set"),
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="infinity"),
    pytest.param(b"bytes", id="bytes"),
])
def test_json_filter_refuses_what_json_cannot_hold(value: Any):
    with pytest.raises(RenderError, match="cannot be written as JSON"):
        json_value(value)


def test_json_filter_in_a_template_prints_subtrees(tmp_path: Path):
    write(tmp_path, "t.yaml.j2", """\
        kind: Test
        metadata:
          labels: {{ labels | json }}
        spec:
          items: {{ items | json }}
          name: {{ name | json }}
        """)
    context = {"labels": {"b": "2", "a": "1"}, "items": [{"x": 1}, ["y"]], "name": "ünï"}
    assert Renderer([tmp_path]).render_object("t.yaml.j2", context) == {
        "kind": "Test", "metadata": {"labels": {"a": "1", "b": "2"}},
        "spec": {"items": [{"x": 1}, ["y"]], "name": "ünï"},
    }


# ---------------------------------------------------------------------------- nulls


@pytest.mark.parametrize(("before", "after"), [
    pytest.param({"a": 1, "b": None}, {"a": 1}, id="null-key-dropped"),
    pytest.param({"kind": "X", "spec": {"tls": None, "pool": {"tcp": None}}}, {"kind": "X"},
                 id="all-null-mappings-dropped"),
    pytest.param({"kind": "X", "spec": {"tls": None, "mode": "STRICT"}},
                 {"kind": "X", "spec": {"mode": "STRICT"}}, id="partly-null-mapping-kept"),
    pytest.param({"kind": "X", "spec": {}}, {"kind": "X", "spec": {}},
                 id="explicit-empty-mapping-kept"),
    pytest.param({"kind": "X", "items": []}, {"kind": "X", "items": []},
                 id="explicit-empty-list-kept"),
    pytest.param({"items": [{"a": None}, 1, "x", {"b": 2, "c": None}, {}]},
                 {"items": [{}, 1, "x", {"b": 2}, {}]}, id="list-items-kept-in-order"),
    pytest.param({"a": False, "b": 0, "c": "", "d": "null"},
                 {"a": False, "b": 0, "c": "", "d": "null"}, id="falsy-values-kept"),
    pytest.param({"a": None}, {}, id="everything-null"),
])
def test_drop_nulls(before: dict[str, Any], after: dict[str, Any]):
    original = copy.deepcopy(before)
    assert drop_nulls(before) == after
    assert before == original  # the input is not changed


def test_null_values_in_a_template_are_absent_keys(tmp_path: Path):
    write(tmp_path, "t.yaml.j2", """\
        kind: Test
        spec:
          tls: {{ tls | json }}
          policy:
            lb: {{ lb | json }}
          empty: {}
          rules:
          - from: {{ none | json }}
        """)
    obj = Renderer([tmp_path]).render_object("t.yaml.j2", {"tls": None, "lb": None,
                                                           "none": None})
    assert obj == {"kind": "Test", "spec": {"empty": {}, "rules": [{}]}}


# ---------------------------------------------------------------------------- canonical dump

OBJECT = {
    "spec": {"zeta": [3, 1, 2], "alpha": {"y": "é", "x": True}},
    "metadata": {"name": "n", "labels": {"b": "2", "a": "1"}},
    "kind": "Test", "apiVersion": "v1",
}


def test_canonical_dump_sorts_keys():
    assert dump_canonical(OBJECT) == textwrap.dedent("""\
        apiVersion: v1
        kind: Test
        metadata:
          labels:
            a: '1'
            b: '2'
          name: 'n'
        spec:
          alpha:
            x: true
            'y': é
          zeta:
          - 3
          - 1
          - 2
        """)


@pytest.mark.parametrize("text", ["y", "Y", "n", "No", "on", "OFF", "1e3", "-1E+3", "0o17",
                                  "0x1F", ".5", "+.inf", ".NaN", "10"])
def test_strings_other_yaml_readers_take_for_booleans_or_numbers_are_quoted(text):
    """YAML 1.1 (go-yaml v2: y, n, on) and YAML 1.2 (kustomize's go-yaml v3: 1e3, 0o17)
    read these as booleans or numbers; PyYAML reads them as strings. Every file quotes them,
    the canonical dump and the plain one alike, as a value and as a key."""
    for dumped in (dump_canonical({text: text}), dump_plain({text: text})):
        assert dumped == f"'{text}': '{text}'\n"
        assert load_yaml(dumped) == {text: text}


def test_a_float_with_an_exponent_renders_as_a_float(tmp_path):
    (tmp_path / "t.yaml.j2").write_text("kind: Test\nvalue: {{ value | json }}\n"
                                        "text: {{ text | json }}\n")
    obj = Renderer([tmp_path]).render_object("t.yaml.j2", {"value": 0.00001, "text": "1e-05"})
    assert obj == {"kind": "Test", "value": 0.00001, "text": "1e-05"}


def test_canonical_dump_does_not_depend_on_insertion_order():
    reordered = {key: OBJECT[key] for key in reversed(list(OBJECT))}
    reordered["spec"] = {"alpha": {"x": True, "y": "é"}, "zeta": [3, 1, 2]}
    assert dump_canonical(reordered) == dump_canonical(OBJECT)
    assert dump_canonical(OBJECT) == dump_canonical(copy.deepcopy(OBJECT))


def test_canonical_dump_is_byte_identical_across_runs(tmp_path: Path):
    """Separate interpreters with different hash seeds build the mapping from a set (so in
    a different order) and dump it: the bytes are the same."""
    script = tmp_path / "dump.py"
    script.write_text(textwrap.dedent("""\
        import sys
        from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import (
            dump_canonical)
        names = {"reviews", "ratings", "details", "productpage", "payment-service"}
        obj = {"kind": "Test", "data": {name: {"multi": "a\\nb\\n", "n": len(name)}
                                        for name in names}, "list": sorted(names)}
        sys.stdout.buffer.write(dump_canonical(obj).encode("utf-8"))
        """))
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outputs.add(subprocess.run([sys.executable, str(script)], env=env, check=True,
                                   capture_output=True).stdout)
    assert len(outputs) == 1
    text = outputs.pop().decode("utf-8")
    assert text.index("details:") < text.index("payment-service:") < text.index("reviews:")


def test_canonical_dump_keeps_long_lines_and_unicode():
    long = "x" * 300
    text = dump_canonical({"a": long, "b": "日本語"})
    assert text == f"a: {long}\nb: 日本語\n"


@pytest.mark.parametrize("text", [
    pytest.param("one\ntwo", id="no-final-newline"),
    pytest.param("one\ntwo\n", id="final-newline"),
    pytest.param("one\ntwo\n\n", id="trailing-blank-lines"),
    pytest.param("  indented first\nsecond\n", id="indented-first-line"),
    pytest.param("\nleading newline", id="leading-newline"),
    pytest.param("scrape_configs:\n- job_name: istiod\n  scrape_interval: 15s\n",
                 id="yaml-in-a-string"),
    pytest.param("# not a comment\n: colon\n- dash\n{{ x }}\n", id="yaml-syntax-lines"),
])
def test_multi_line_strings_are_literal_blocks(text: str):
    dumped = dump_canonical({"data": {"file": text}})
    assert dumped.startswith("data:\n  file: |")
    assert load_yaml(dumped) == {"data": {"file": text}}
    assert yaml.safe_load(dumped) == {"data": {"file": text}}


@pytest.mark.parametrize("text", [
    pytest.param("trailing space \nnext", id="trailing-space"),
    pytest.param("tab\there\nnext", id="tab"),
    pytest.param("a\r\nb", id="crlf"),
])
def test_multi_line_strings_that_cannot_be_blocks_still_round_trip(text: str):
    dumped = dump_canonical({"file": text})
    assert load_yaml(dumped) == {"file": text}


def test_single_line_strings_stay_plain_or_quoted():
    assert dump_canonical({"a": "v1", "b": "true", "c": "a: b"}) == \
        "a: v1\nb: 'true'\nc: 'a: b'\n"


# ---------------------------------------------------------------------------- template path


def test_user_template_dir_is_searched_first(tmp_path: Path):
    builtin = (BUILTIN_TEMPLATES / "istio" / "virtual_service.yaml.j2").read_text()
    assert "  labels: {{ labels | json }}\n" in builtin
    write(tmp_path, "istio/virtual_service.yaml.j2", builtin.replace(
        "  labels: {{ labels | json }}\n",
        "  labels: {{ dict(labels, team='reviews-owners') | json }}\n"))

    mine = Renderer([tmp_path]).render_object("istio/virtual_service.yaml.j2",
                                              VIRTUAL_SERVICE)
    stock = Renderer().render_object("istio/virtual_service.yaml.j2", VIRTUAL_SERVICE)
    assert mine["metadata"]["labels"] == {**LABELS, "team": "reviews-owners"}
    assert stock["metadata"]["labels"] == LABELS
    mine["metadata"]["labels"].pop("team")
    assert mine == stock


def test_templates_missing_from_the_user_dir_come_from_the_builtin_ones(tmp_path: Path):
    write(tmp_path, "istio/virtual_service.yaml.j2", "kind: Mine\n")
    renderer = Renderer([tmp_path])
    assert renderer.render_object("istio/virtual_service.yaml.j2", {}) == {"kind": "Mine"}
    namespace = renderer.render_object("istio/namespace.yaml.j2", {
        "name": "bookinfo", "labels": {"istio-injection": "enabled"}, "annotations": None})
    assert namespace == {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "bookinfo", "labels": {"istio-injection": "enabled"}}}


def test_user_template_dirs_in_order(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    write(first, "t.yaml.j2", "kind: First\n")
    write(second, "t.yaml.j2", "kind: Second\n")
    write(second, "u.yaml.j2", "kind: OnlySecond\n")
    renderer = Renderer([first, second])
    assert renderer.render_object("t.yaml.j2", {}) == {"kind": "First"}
    assert renderer.render_object("u.yaml.j2", {}) == {"kind": "OnlySecond"}


def test_user_template_is_used_by_render_stage(tmp_path: Path, crd_dir: Path):
    builtin = (BUILTIN_TEMPLATES / "istio" / "virtual_service.yaml.j2").read_text()
    templates = tmp_path / "templates"
    write(templates, "istio/virtual_service.yaml.j2", builtin.replace(
        "  labels: {{ labels | json }}\n",
        "  labels: {{ dict(labels, team='reviews-owners') | json }}\n"))
    variables = {
        "mesh_environment": "dev", "mesh_stage": "traffic",
        "mesh_services": [{"name": "reviews", "namespace": "bookinfo",
                           "versions": ["v1", "v2"],
                           "canary": {"subset": "v2", "weight": 10}}],
    }
    result = render_stage(variables, StageOptions(gitops_dir=tmp_path / "unused",
                                                  crd_dirs=[crd_dir],
                                                  template_dirs=[templates]))
    unit = "envs/dev/04-traffic/04-bookinfo"
    vs = load_yaml(result.files[f"{unit}/virtualservice.bookinfo.reviews.yaml"])
    assert vs["metadata"]["labels"]["team"] == "reviews-owners"
    dr = load_yaml(result.files[f"{unit}/destinationrule.bookinfo.reviews.yaml"])
    assert "team" not in dr["metadata"]["labels"]


def test_missing_template_dir_is_named(tmp_path: Path):
    missing = tmp_path / "no-such-templates"
    with pytest.raises(RenderError,
                       match=re.escape(f"template directory '{missing}' does not exist")):
        Renderer([tmp_path, missing])


def test_missing_template_is_named(tmp_path: Path):
    with pytest.raises(RenderError, match=re.escape("template 'istio/nothing.yaml.j2' not found")):
        Renderer([tmp_path]).render_object("istio/nothing.yaml.j2", {})


# ---------------------------------------------------------------------------- bad templates


@pytest.mark.parametrize(("text", "got"), [
    pytest.param("kind: A\n---\nkind: B\n", "got 2 documents", id="two-documents"),
    pytest.param("---\n", "got 0 documents", id="no-document"),
    pytest.param("", "got 0 documents", id="empty"),
    pytest.param("- kind: A\n- kind: B\n", "got one list", id="list"),
    pytest.param("just a string\n", "got one str", id="scalar"),
    pytest.param("{{ 1 | json }}\n", "got one int", id="number"),
])
def test_template_must_render_exactly_one_mapping(tmp_path: Path, text: str, got: str):
    write(tmp_path, "t.yaml.j2", text)
    with pytest.raises(RenderError, match=re.escape(
            f"template 't.yaml.j2' must render exactly one YAML mapping, {got}")):
        Renderer([tmp_path]).render_object("t.yaml.j2", {})


@pytest.mark.parametrize(("text", "line"), [
    pytest.param("kind: Test\nname: {{ name | json\n", 2, id="unclosed-expression"),
    pytest.param("kind: Test\n\n{% for x in items %}\n- {{ x | json }}\n", 4,
                 id="unclosed-for"),
    pytest.param("a: 1\nb: 2\nc: {{ x | no_such_filter }}\n", 3, id="unknown-filter"),
    pytest.param("{% endif %}\n", 1, id="stray-endif"),
])
def test_template_syntax_error_names_template_and_line(tmp_path: Path, text: str,
                                                       line: int):
    write(tmp_path, "istio/broken.yaml.j2", text)
    with pytest.raises(RenderError, match=re.escape(
            f"template 'istio/broken.yaml.j2' line {line}: ")):
        Renderer([tmp_path]).render_object("istio/broken.yaml.j2", {"name": "x"})


def test_template_rendering_text_that_is_not_yaml(tmp_path: Path):
    write(tmp_path, "t.yaml.j2", "kind: [Test\n")
    with pytest.raises(RenderError,
                       match=re.escape("template 't.yaml.j2' rendered text that is not YAML")):
        Renderer([tmp_path]).render_object("t.yaml.j2", {})


def test_undefined_value_names_the_template(tmp_path: Path):
    write(tmp_path, "t.yaml.j2", "kind: {{ kind | json }}\n")
    with pytest.raises(RenderError, match=re.escape("template 't.yaml.j2': 'kind' is undefined")):
        Renderer([tmp_path]).render_object("t.yaml.j2", {})


def test_printing_without_the_json_filter_is_refused(tmp_path: Path):
    write(tmp_path, "t.yaml.j2", "kind: Test\nname: {{ name }}\n")
    with pytest.raises(RenderError, match="without the json filter"):
        Renderer([tmp_path]).render_object("t.yaml.j2", {"name": "a\nb: c"})


def test_every_builtin_template_compiles():
    renderer = Renderer()
    names = sorted(str(p.relative_to(BUILTIN_TEMPLATES))
                   for p in BUILTIN_TEMPLATES.rglob("*.j2"))
    assert names
    for name in names:
        renderer._template(name)


# ---------------------------------------------------------------------------- canonical_header

_TRICKY = ["svc-00001", "v1", "networking.istio.io/v1", "yes", "No", "on", "OFF", "true",
           "null", "~", "123", "0x1f", "0o17", "017", "1_000", "1e3", "1.5", ".5", ".inf",
           "2001-12-14", "1:20", "a: b", "a #b", "#a", "- a", "-a", "?a", ":a", "'a'",
           '"a"', "*a", "&a", "!a", "|", ">", "%a", "@a", "`a", "[a]", "{a}", "a,b", "",
           " a", "a ", "a\tb", "añ", "a\nb", "é", "=", "<<"]


def _header_by_parsing(text: str) -> dict[str, Any]:
    obj = load_yaml(text)
    meta = obj["metadata"]
    header = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"]}
    if "namespace" in meta:
        header["namespace"] = meta["namespace"]
    return header


@pytest.mark.parametrize("value", _TRICKY)
@pytest.mark.parametrize("field", ["apiVersion", "kind", "name", "namespace"])
def test_canonical_header_reads_what_parsing_reads_or_gives_up(field, value):
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "x", "namespace": "ns", "labels": {"name": "not-this"},
                        "annotations": {"a": "line\n  name: evil\n"}},
           "data": {"name": "also-not-this"}}
    if field in ("name", "namespace"):
        obj["metadata"][field] = value
    else:
        obj[field] = value
    text = dump_canonical(obj)
    header = canonical_header(text)
    if header is not None:  # when it answers, it is exactly what parsing gives
        assert header == _header_by_parsing(text)
        assert all(isinstance(v, str) for v in header.values())


def test_canonical_header_of_plain_objects_needs_no_parse():
    text = dump_canonical({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
                           "metadata": {"name": "svc-00001", "namespace": "team-000",
                                        "labels": {"name": "x"}},
                           "spec": {"egress": [{"hosts": ["a/*"]}]}})
    assert canonical_header(text) == {"apiVersion": "networking.istio.io/v1",
                                      "kind": "Sidecar", "name": "svc-00001",
                                      "namespace": "team-000"}
    cluster = dump_canonical({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": "team-000"}})
    assert canonical_header(cluster) == {"apiVersion": "v1", "kind": "Namespace",
                                         "name": "team-000"}


@pytest.mark.parametrize("text", [
    "---\napiVersion: v1\nkind: A\nmetadata:\n  name: a\n",
    "apiVersion: v1\nkind: A\nkind: B\nmetadata:\n  name: a\n",
    "apiVersion: v1\nkind: A\nmetadata: {name: a}\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n  name: b\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  namespace: n\n",
    "apiVersion: v1\n'kind': A\nmetadata:\n  name: a\n",
    "- apiVersion: v1\n",
    "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n# comment\n",
])
def test_canonical_header_gives_up_on_what_it_cannot_read_plainly(text):
    assert canonical_header(text) is None


# ---------------------------------------------------------------------------- parse_back_loader

_DOCUMENTS = [
    "a: 1\nb: [x, 'y', \"z\", 1.5, .inf, -.inf, .nan, ~, null, true, no, on, 0x1f, 017]\n",
    "when: 2024-01-02\nat: 2024-01-02T10:00:00Z\nbin: !!binary aGVsbG8=\n",
    "anchor: &a {x: 1}\nalias: *a\nlist: &l [1, 2]\nagain: *l\n",
    "base: &b {x: 1, y: 2}\nmerged:\n  <<: *b\n  y: 3\n",
    "=: value\nother: 1\n",
    "set: !!set {a, b}\nomap: !!omap [{a: 1}, {b: 2}]\npairs: !!pairs [{a: 1}]\n",
    "recursive: &r [*r]\n",
    "? [a, b]\n: unhashable key\n",
    "dup: 1\ndup: 2\n",
    "tagged: !!str 123\nint: !!int '7'\nfloat: !!float '1'\nnull: !!null ''\n",
    "custom: !mine x\n",
    "python: !!python/tuple [1, 2]\n",
    "a: !\n",
    "key: '='\nv: =\n",
    "text: |\n  line one\n  line two\nfolded: >\n  a\n  b\n",
    "- 1\n- {a: [2, {b: 3}]}\n",
    "1: int key\n2.5: float key\nnull: null key\ntrue: bool key\n",
    "",
    "--- a\n--- b\n",
    "a: [1, 2\n",
    "a: *undefined\n",
    "{a: 1}: flow map key\n",
]


def _outcome(text: str, loader: type) -> tuple[str, str]:
    try:
        return "ok", repr(list(yaml.load_all(text, Loader=loader)))
    except yaml.YAMLError as error:
        return type(error).__name__, str(error)


@pytest.mark.parametrize("text", _DOCUMENTS)
def test_the_parse_back_loader_reads_what_the_safe_loader_reads(text):
    loader = parse_back_loader()
    safe = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for _ in range(2):  # the second time with the scalar tags remembered
        assert _outcome(text, loader) == _outcome(text, safe)


def test_the_parse_back_loader_shares_aliased_objects_like_the_safe_loader():
    (document,) = yaml.load_all("a: &x {k: 1}\nb: *x\n", Loader=parse_back_loader())
    assert document["a"] is document["b"]


def _manifests_outcome(text: str) -> tuple[str, str]:
    try:
        return "ok", repr(load_manifests(text))
    except yaml.YAMLError as error:
        return type(error).__name__, str(error)


@pytest.mark.parametrize("text", _DOCUMENTS)
def test_a_stream_of_manifests_reads_each_document_as_the_safe_loader_reads_it(text):
    """A document only the safe loader builds (an alias, a merge key, a tag, an unhashable
    key), amid plain ones, is read alone: the same documents or the same error, at the
    stream's line, as the bounded safe loader reading the whole stream (which refuses a
    recursive alias the plain safe loader builds)."""
    stream = "kind: A\nn: 1\n---\n" + text + "\n---\nkind: B\nlist: [1, 2]\n"

    def whole_stream() -> tuple[str, str]:
        try:
            return "ok", repr(render_module.load_all(stream, parse_back_loader()))
        except yaml.YAMLError as error:
            return type(error).__name__, str(error)

    assert _manifests_outcome(stream) == whole_stream()


@pytest.mark.parametrize("stream", [
    "\ufeffa: 1\n---\nb: &x {[1]: 2}\nc: *x\n",  # a byte order mark: the whole stream
    "  a: &x [1]\n  b: *x\n---\nc: 2\n",  # an indented first document
    "a: 1\n...\n---\nb: &x 1\nc: *x\n...\n# between\n---\nd: &y 2\ne: *y\n",
    "%YAML 1.1\n%TAG !k! tag:yaml.org,2002:\n--- !k!map\na: &x 1\nb: *x\n---\nc: 3\n",
    "a: 1\n--- &x [1, 2]\n--- {k: v, <<: {m: 1}}\n---\n- &z 3\n- *z\n- !!str 4\n",
    "a: 1\n---\nb: &x 1\n---\nc: *x\n",  # an alias of another document's anchor
    "a: 1\n---\nb: &x {[1]: 2}\nc: *x\n",  # an unhashable key, at the stream's line
])
def test_streams_of_unusual_documents_read_as_the_whole_stream(stream):
    try:
        expected = "ok", repr(render_module.load_all(stream, parse_back_loader()))
    except yaml.YAMLError as error:
        expected = type(error).__name__, str(error)
    assert _manifests_outcome(stream) == expected


@pytest.mark.parametrize(("text", "line", "problem"), [
    ("kind: A\n---\ndata: {b: !!int nope}\n", 2, "'nope' cannot be read as int"),
    ("kind: A\n---\na: &x 1\nb: *x\nc: !!timestamp nope\n", 4,
     "'nope' cannot be read as timestamp"),
    ("a: !!float x\n", 0, "'x' cannot be read as float"),
])
def test_a_scalar_its_explicit_tag_cannot_read_is_a_yaml_error_at_its_line(text, line,
                                                                          problem):
    """PyYAML's constructor raises Python's ValueError or AttributeError for these: a
    manifest with one is bad input, named with its line, not a crash."""
    with pytest.raises(yaml.constructor.ConstructorError) as refused:
        load_manifests(text)
    assert refused.value.problem == problem and refused.value.problem_mark.line == line


def test_only_the_unusual_document_of_a_stream_goes_to_the_safe_loader(monkeypatch):
    texts: list[str] = []
    load_all = render_module.load_all
    monkeypatch.setattr(render_module, "load_all",
                        lambda text, loader=None: texts.append(text) or load_all(text, loader))
    plain = "".join(f"---\nkind: K\nmetadata: {{name: n{i}}}\n" for i in range(50))
    aliased = "---\nkind: Shared\nspec: {a: &s [1, 2], b: *s}\n"
    documents = load_manifests(plain + aliased + plain)
    assert len(documents) == 101 and documents[50]["spec"] == {"a": [1, 2], "b": [1, 2]}
    assert texts == [aliased]
    # a document whose aliases expand past the bound is refused as in the whole stream
    laughs = "---\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n"
        for i in range(7))
    with pytest.raises(AliasExpansionError):
        load_manifests(plain + laughs + plain)


def test_canonical_header_of_a_text_ending_in_metadata_gives_up():
    assert canonical_header("apiVersion: v1\nkind: A\nmetadata:") is None
    assert canonical_header("metadata:\n  name: a\napiVersion: v1\nkind: A\n") == {
        "apiVersion": "v1", "kind": "A", "name": "a"}


# --------------------------------------------------------------------------- the fast dump

GOLDEN = Path(__file__).resolve().parents[4] / "golden"
# the strings the fast dump writes itself, and the ones next to them it must leave to PyYAML
_CHARS = "aZ09_./$@=+~%*()-,?[]{}: #'\"!&|>\t\né"
_WORDS = ["true", "null", "1", "0x1", "1e3", ".inf", "on", "yes", "~", "2020-01-01", "12:30",
          "0o7", "1_0", "+1", "-1", ".5", "NaN", "Y", "=", "1:2:3", "...", "---", "<<", "- ",
          "? ", ": ", "spiffe://td/ns/a/sa/b", "5xx,reset", "$values/x"]


def _random_text(rng: Any, chars: str) -> str:
    return "".join(rng.choice(chars) if rng.random() < 0.8 else rng.choice(_WORDS)
                   for _ in range(rng.randint(0, 6)))


def _random_value(rng: Any, chars: str, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice([_random_text(rng, chars), _random_text(rng, chars),
                           rng.randint(-5, 10**6), rng.random() < 0.5, {}, [],
                           rng.choice([1.5, 0.0, -0.0, 1e20, float("inf"), float("nan")])])
    if roll < 0.75:
        return {_random_text(rng, chars): _random_value(rng, chars, depth + 1)
                for _ in range(rng.randint(1, 4))}
    return [_random_value(rng, chars, depth + 1) for _ in range(rng.randint(1, 4))]


def pyyaml_dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=render_module._Dumper, sort_keys=True,
                     default_flow_style=False, allow_unicode=True, width=1 << 16, indent=2)


def test_the_fast_dump_writes_pyyamls_bytes_for_every_golden_object():
    objects = [doc for path in sorted(GOLDEN.rglob("*.yaml"))
               for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
               if isinstance(doc, dict)]
    assert len(objects) > 250
    fast = 0
    for obj in objects:
        assert dump_canonical(obj) == pyyaml_dump(obj)
        try:
            render_module._fast_lines(obj, 0)
            fast += 1
        except render_module._Unusual:
            pass
    assert fast >= 0.95 * len(objects)  # nearly every object takes the fast path


@pytest.mark.parametrize("chars", [_CHARS, "aZ09_./$@=+~%*()-,?[]{}: ", "a0.:- ,?/$e+"],
                         ids=["everything", "plain-kinds", "resolver-edges"])
def test_the_fast_dump_writes_pyyamls_bytes_for_random_objects(chars):
    import random

    rng = random.Random(chars)
    taken = 0
    for _ in range(4000):
        obj = {_random_text(rng, chars) or "k": _random_value(rng, chars)
               for _ in range(rng.randint(1, 4))}
        assert dump_canonical(obj) == pyyaml_dump(obj), obj
    for _ in range(20000):
        text = _random_text(rng, chars) or "k"
        written = render_module._string_scalar(text)
        if written is not None:
            taken += 1
            assert pyyaml_dump({text: [text]}) == f"{written}:\n- {written}\n", text
    assert taken > 1000  # the fast path was exercised, not only the fallback
