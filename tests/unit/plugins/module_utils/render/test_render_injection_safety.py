"""No value of the intent can add YAML structure or be evaluated as Jinja.

Names, label values, paths, header values, principals, annotation text, filters and URLs
containing ``: ``, ``#``, ``{{ }}``, ``{% %}``, newlines, quotes and ``*`` are rendered at the
authorization stage (every object kind). Each one is either refused with an error naming the
field path and the value, or comes out as the exact string, in the expected field, with the
rendered objects otherwise identical to those of a benign value.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import (
    IntentErrors,
    RenderError,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    RenderedStage,
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import Renderer
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry

LABELS = {"app.kubernetes.io/managed-by": "meshstage", "meshstage.io/environment": "dev"}
REPO_URL = "https://git.example.invalid/platform/mesh.git"

BASE: dict[str, Any] = {
    "mesh_environment": "dev",
    "mesh_stage": "authorization",
    "mesh_services": [
        {"name": "web", "namespace": "shop", "ports": [{"name": "http", "port": 8080}],
         "versions": ["v1"], "calls": ["api"], "ingress": True},
        {"name": "api", "namespace": "shop", "ports": [{"name": "http", "port": 9090}],
         "versions": [{"name": "v1", "labels": {"version": "v1"}}, "v2"],
         "traffic": {"header_routes": [{"headers": {"x-user": {"exact": "tester"}},
                                        "subset": "v2"}]}},
        {"name": "db", "namespace": "data",
         "ports": [{"name": "tcp", "port": 5432, "protocol": "TCP"}], "inject": False},
        # referenced nowhere, so renaming it breaks no reference
        {"name": "extra", "namespace": "misc", "ports": [{"name": "http", "port": 80}]},
    ],
    "mesh_mtls_exceptions": [{"service": "db", "mode": "DISABLE", "reason": "legacy appliance"}],
    "mesh_telemetry": {"access_log_filter": "response.code >= 400"},
    "mesh_authorization": [{"service": "api", "allow": [{
        "from": ["web"], "principals": ["cluster.local/ns/ops/sa/robot"],
        "methods": ["GET"], "paths": ["/api/*"],
    }]}],
    "mesh_gitops": {"repo_url": REPO_URL},
}

HOSTILE: dict[str, str] = {
    "colon-space": "a: b",
    "colon-space-pairs": "key: value, other: thing",
    "hash": "# not a comment",
    "hash-after-space": "x #y",
    "jinja-expression": "{{ 7*7 }}",
    "jinja-tight": "{{7*7}}",
    "jinja-concat": "{{ 'EVAL' ~ 'UATED' }}",
    "jinja-statement": "{% for i in [1, 2] %}L{{ i }}{% endfor %}",
    "jinja-comment": "{# hidden #}visible",
    "newline": "one\ntwo",
    "newline-mapping": "a\nb: c",
    "crlf": "a\r\nb",
    "unicode-line-separator": "a\u2028b",
    "next-line-control": "a\x85b",
    "tab": "a\tb",
    "apostrophe": "it's",
    "single-quoted": "'quoted'",
    "double-quoted": '"quoted"',
    "mixed-quotes": "\"'\\",
    "star": "*",
    "star-alias": "*alias",
    "anchor": "&anchor x",
    "tag": "!!python/object/apply:os.system ['id']",
    "flow-sequence": "[a, b]",
    "flow-mapping": "{a: b}",
    "dash": "- item",
    "document-start": "---",
    "literal-block": "|",
    "bool-like": "true",
    "null-like": "null",
    "tilde": "~",
    "number-like": "0x1F",
}

# What evaluating the Jinja values above would print; none may appear in any file.
EVALUATED = ("49", "EVALUATED", "L1L2")


# ---------------------------------------------------------------------------- the fields


@dataclass(frozen=True)
class Field:
    """Where a hostile value goes in, and where it must come out."""

    name: str
    path: Callable[[str], str]  # the error path for a value
    put: Callable[[dict[str, Any], str], None]
    # (kind, name, keys into the object) -> the container, and what it must equal exactly
    expect: Callable[[str], list[tuple[str, str, tuple[Any, ...], Any]]]
    benign: str
    prefix: str = ""  # put before the hostile value (an authorization path starts with /)
    # a name also makes up file names, principals, hosts and lists of namespaces
    name_like: bool = False


def _service(index: int, key: str) -> Callable[[dict[str, Any], str], None]:
    def put(variables: dict[str, Any], value: str) -> None:
        variables["mesh_services"][index][key] = value
    return put


def _put_version_label(variables: dict[str, Any], value: str) -> None:
    variables["mesh_services"][1]["versions"][0] = {"name": "v1", "labels": {"version": value}}


def _put_rule(key: str) -> Callable[[dict[str, Any], str], None]:
    def put(variables: dict[str, Any], value: str) -> None:
        variables["mesh_authorization"][0]["allow"][0][key] = [value]
    return put


def _put_header_value(variables: dict[str, Any], value: str) -> None:
    variables["mesh_services"][1]["traffic"]["header_routes"][0]["headers"] = {
        "x-user": {"exact": value}}


def _put_header_name(variables: dict[str, Any], value: str) -> None:
    variables["mesh_services"][1]["traffic"]["header_routes"][0]["headers"] = {
        value: {"exact": "tester"}}


def _put_reason(variables: dict[str, Any], value: str) -> None:
    variables["mesh_mtls_exceptions"][0]["reason"] = value


def _put_filter(variables: dict[str, Any], value: str) -> None:
    variables["mesh_telemetry"]["access_log_filter"] = value


def _put_repo_url(variables: dict[str, Any], value: str) -> None:
    variables["mesh_gitops"]["repo_url"] = value


FIELDS = [
    Field("service-name", lambda v: "mesh_services[3].name", _service(3, "name"),
          lambda v: [("Sidecar", v, ("metadata",),
                      {"name": v, "namespace": "misc", "labels": LABELS})],
          benign="extra", name_like=True),
    Field("namespace", lambda v: "mesh_services[3] (extra).namespace", _service(3, "namespace"),
          lambda v: [("Sidecar", "extra", ("metadata",),
                      {"name": "extra", "namespace": v, "labels": LABELS})],
          benign="misc", name_like=True),
    Field("version-label-value", lambda v: "mesh_services[1] (api).versions[0].labels.version",
          _put_version_label,
          lambda v: [("DestinationRule", "api", ("spec", "subsets", 0),
                      {"name": "v1", "labels": {"version": v}})],
          benign="v1"),
    Field("authorization-path", lambda v: "mesh_authorization[0].allow[0].paths[0]",
          _put_rule("paths"),
          lambda v: [("AuthorizationPolicy", "api-allow", ("spec", "rules", 0, "to"),
                      [{"operation": {"methods": ["GET"], "paths": [v]}}])],
          benign="/api/*", prefix="/"),
    Field("header-match-value",
          lambda v: "mesh_services[1] (api).traffic.header_routes[0].headers.x-user.exact",
          _put_header_value,
          lambda v: [("VirtualService", "api", ("spec", "http", 0, "match"),
                      [{"headers": {"x-user": {"exact": v}}}])],
          benign="tester"),
    Field("header-name",
          lambda v: f"mesh_services[1] (api).traffic.header_routes[0].headers.{v}",
          _put_header_name,
          lambda v: [("VirtualService", "api", ("spec", "http", 0, "match"),
                      [{"headers": {v: {"exact": "tester"}}}])],
          benign="x-user"),
    Field("principal", lambda v: "mesh_authorization[0].allow[0].principals[0]",
          _put_rule("principals"),
          lambda v: [("AuthorizationPolicy", "api-allow", ("spec", "rules", 0, "from"),
                      [{"source": {"principals": ["cluster.local/ns/shop/sa/web", v]}}])],
          benign="cluster.local/ns/ops/sa/robot"),
    Field("mtls-exception-reason", lambda v: "mesh_mtls_exceptions[0].reason", _put_reason,
          lambda v: [("PeerAuthentication", "db-mtls-exception", ("metadata",),
                      {"name": "db-mtls-exception", "namespace": "data", "labels": LABELS,
                       "annotations": {"meshstage.io/reason": v}})],
          benign="legacy appliance"),
    Field("access-log-filter", lambda v: "mesh_telemetry.access_log_filter", _put_filter,
          lambda v: [("Telemetry", "mesh-default", ("spec", "accessLogging"),
                      [{"providers": [{"name": "envoy"}], "filter": {"expression": v}}])],
          benign="response.code >= 400"),
    Field("repo-url", lambda v: "mesh_gitops.repo_url", _put_repo_url,
          lambda v: [("ApplicationSet", "meshstage-dev", ("spec", "template", "spec", "source"),
                      {"path": "envs/dev/{{.unit}}", "repoURL": v, "targetRevision": "main"}),
                     ("GitRepository", "meshstage-dev", ("spec",),
                      {"interval": "5m", "url": v, "ref": {"branch": "main"}})],
          benign=REPO_URL),
    Field("repo-url-path", lambda v: "mesh_gitops.repo_url", _put_repo_url,
          lambda v: [("ApplicationSet", "meshstage-dev",
                      ("spec", "template", "spec", "source", "repoURL"), v),
                     ("GitRepository", "meshstage-dev", ("spec", "url"), v)],
          benign=REPO_URL, prefix="https://git.example.invalid/"),
]

CASES = [
    pytest.param(field, field.prefix + hostile, id=f"{field.name}-{label}")
    for field in FIELDS for label, hostile in HOSTILE.items()
]


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    """The CRD schemas, loaded once for the module (render_stage would load them per call)."""
    return SchemaRegistry.from_crd_dirs([crd_dir], "1.33.0")


def render(variables: dict[str, Any], crd_dir: Path, tmp_path: Path,
           registry: SchemaRegistry) -> RenderedStage:
    options = StageOptions(gitops_dir=tmp_path / "unused", crd_dirs=[crd_dir])
    return render_stage(variables, options, registry)


def objects_of(result: RenderedStage) -> dict[str, Any]:
    """Every rendered YAML file, parsed: each must be exactly one document."""
    parsed = {}
    for path, text in result.files.items():
        if path.endswith(".yaml"):
            documents = list(yaml.safe_load_all(text))
            assert len(documents) == 1, path
            parsed[path] = documents[0]
    return parsed


def find(objects: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    found = [obj for obj in objects.values() if isinstance(obj, dict)
             and obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name]
    assert len(found) == 1, f"{kind} {name}: found {len(found)}"
    return found[0]


def dig(obj: Any, keys: tuple[Any, ...]) -> Any:
    for key in keys:
        obj = obj[key]
    return obj


def restore(value: Any, hostile: str, benign: str) -> Any:
    """The rendered data with every occurrence of the hostile string (as a whole string or
    mapping key) put back to the benign one."""
    if isinstance(value, dict):
        return {restore(k, hostile, benign): restore(v, hostile, benign)
                for k, v in value.items()}
    if isinstance(value, list):
        return [restore(item, hostile, benign) for item in value]
    if value == hostile and isinstance(value, str):
        return benign
    return value


def shape(value: Any, hostile: str, benign: str) -> Any:
    """The structure of rendered data: mappings (keys restored), lists and non-string
    scalars, every string replaced by ''."""
    if isinstance(value, dict):
        return {restore(k, hostile, benign): shape(v, hostile, benign) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(item, hostile, benign) for item in value]
    return "" if isinstance(value, str) else value


def restore_path(path: str, hostile: str, benign: str) -> str:
    """A file path with the hostile value put back where it is a whole name in it (between
    '/', '.' or '-': a sync unit's folder is ``<RR>-<namespace>``)."""
    return "/".join(".".join("-".join(benign if token == hostile else token
                                      for token in piece.split("-"))
                             for piece in part.split("."))
                    for part in path.split("/"))


def evaluated_counts(result: RenderedStage) -> dict[str, int]:
    return {marker: sum(text.count(marker) for text in result.files.values())
            for marker in EVALUATED}


@pytest.fixture(scope="module")
def baseline(crd_dir: Path, registry: SchemaRegistry,
             tmp_path_factory: pytest.TempPathFactory) -> RenderedStage:
    return render(copy.deepcopy(BASE), crd_dir, tmp_path_factory.mktemp("baseline"), registry)


# ---------------------------------------------------------------------------- the table


def test_base_renders_every_field(baseline: RenderedStage):
    objects = objects_of(baseline)
    for field in FIELDS:
        if field.prefix:
            continue
        for kind, name, keys, expected in field.expect(field.benign):
            assert dig(find(objects, kind, name), keys) == expected, field.name


@pytest.mark.parametrize(("field", "value"), CASES)
def test_hostile_value_is_refused_or_exact(field: Field, value: str, crd_dir: Path,
                                           tmp_path: Path, registry: SchemaRegistry,
                                           baseline: RenderedStage):
    variables = copy.deepcopy(BASE)
    field.put(variables, value)
    try:
        result = render(variables, crd_dir, tmp_path, registry)
    except IntentErrors as refused:
        path = field.path(value)
        named = [e for e in refused.errors if e.path == path and e.value == value]
        assert named, f"no error names {path} and {value!r}: {refused}"
        assert f"{path}: {value!r} " in str(refused)
        # nothing else is blamed: the one bad value gives errors at its own path only
        assert {e.path for e in refused.errors} == {path}, str(refused)
        return

    objects = objects_of(result)
    # the value is exactly where it belongs, in an object of exactly the expected shape
    for kind, name, keys, expected in field.expect(value):
        assert dig(find(objects, kind, name), keys) == expected
    # every other file and field is what a benign value gives: no extra structure anywhere
    assert {restore_path(path, value, field.benign) for path in result.files} \
        == set(baseline.files)
    expected = objects_of(baseline)
    shapes = {restore_path(path, value, field.benign): shape(obj, value, field.benign)
              for path, obj in objects.items()}
    assert shapes == {path: shape(obj, "", "") for path, obj in expected.items()}
    if not field.name_like:
        # and every string but the one changed is the same
        assert {path: restore(obj, value, field.benign) for path, obj in objects.items()} \
            == expected
    # Jinja in the value was never evaluated
    assert evaluated_counts(result) == evaluated_counts(baseline)


# ---------------------------------------------------------------------------- the renderer


def _renderer(tmp_path: Path, text: str) -> Renderer:
    (tmp_path / "t.yaml.j2").write_text(text)
    return Renderer([tmp_path])


@pytest.mark.parametrize("template", [
    pytest.param("value: {{ value }}\n", id="bare-value"),
    pytest.param("value: {{ value | string }}\n", id="string-filter"),
    pytest.param("value: {{ value | json | upper }}\n", id="filter-after-json"),
    pytest.param("value: {{ (value | json) ~ ': x' }}\n", id="concatenated-after-json"),
    pytest.param("value: {{ 7 * 7 }}\n", id="constant-expression"),
    pytest.param("value: {{ 'literal' }}\n", id="constant-string"),
])
def test_a_value_printed_without_the_json_filter_is_refused(tmp_path: Path, template: str):
    with pytest.raises(RenderError, match="without the json filter"):
        _renderer(tmp_path, template).render_object("t.yaml.j2", {"value": "a: b"})


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_json_filter_prints_any_value_as_one_exact_scalar(tmp_path: Path, value: str):
    renderer = _renderer(tmp_path, "kind: Test\nvalue: {{ value | json }}\n"
                                   "items:\n- {{ value | json }}\n")
    obj = renderer.render_object("t.yaml.j2", {"value": value})
    assert obj == {"kind": "Test", "value": value, "items": [value]}


def test_jinja_in_values_is_never_evaluated(tmp_path: Path):
    renderer = _renderer(tmp_path, "a: {{ a | json }}\nb: {{ b | json }}\n")
    text = renderer.render_text("t.yaml.j2", {"a": "{{ 7*7 }}", "b": "{% if 1 %}X{% endif %}"})
    assert "49" not in text
    assert renderer.render_object("t.yaml.j2", {"a": "{{ 7*7 }}", "b": "{{ b }}"}) == {
        "a": "{{ 7*7 }}", "b": "{{ b }}"}


def test_an_undefined_value_is_an_error_not_empty(tmp_path: Path):
    with pytest.raises(RenderError, match="'missing' is undefined"):
        _renderer(tmp_path, "a: {{ missing | json }}\n").render_object("t.yaml.j2", {})
