"""The fast check answers "valid" exactly when jsonschema finds nothing wrong.

``schema.fast_check`` is a specialised judge of a converted CRD schema. Strictness must not
move by one field: for every object (rendered, upstream, or mutated at random), the fast
check and the jsonschema validator of the same schema agree on whether it is valid.
"""

from __future__ import annotations

import copy
import datetime
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.control_plane import (
    SCHEMA_OPTIONAL,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.fast_check import fast_check
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.openapi import (
    FORMAT_CHECKER,
    CrdValidator,
    crd_schema_to_json_schema,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "bench"))
from estate import environments  # the benchmark's synthetic estate


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def agrees(validator: Any, check: Any, obj: Any) -> bool:
    """Same verdict; where jsonschema raises, the fast check says no, so jsonschema runs."""
    try:
        valid = next(validator.iter_errors(obj), None) is None
    except Exception:
        return check(obj) is False
    return check(obj) == valid


def judges(registry: SchemaRegistry, obj: dict[str, Any]) -> tuple[Any, Any]:
    group, _, version = obj["apiVersion"].rpartition("/")
    key = (group, version, obj["kind"])
    return registry._crd_validator(key), registry._crd_check(key)


# --------------------------------------------------------------------------- mutations

_ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, 2**40, "", "x" * 300, "UPPER case", "line\n", "10s",
    "not a ip", "1.2.3.4", "::1", [], [1], ["a", "a"], {}, {"unknownField": 1},
    datetime.date(2024, 1, 2), 7.0,
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _parent(obj: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        obj = obj[part]
    return obj


def mutate(obj: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One random change: a field removed, added, retyped, or a list item repeated."""
    mutated = copy.deepcopy(obj)
    path = rng.choice([p for p in _paths(mutated) if p and p[0] not in ("apiVersion", "kind")])
    parent, last = _parent(mutated, path), path[-1]
    target = parent[last]
    move = rng.randrange(5)
    if move == 0 and isinstance(parent, dict):
        del parent[last]
    elif move == 1 and isinstance(target, dict):
        target[rng.choice(["unknownField", "name", "mode", "weight", 7])] = rng.choice(
            _ODD_VALUES)
    elif move == 2 and isinstance(target, list) and target:
        target.append(copy.deepcopy(target[0]))
    else:
        parent[last] = rng.choice(_ODD_VALUES)
    return mutated


def rendered_objects(crd_dir: Path, example_intent: Any) -> list[dict[str, Any]]:
    options = StageOptions(gitops_dir=Path("/nonexistent"), crd_dirs=[crd_dir])
    objects = []
    for variables in [example_intent("dev"), environments(12)["dev"]]:
        objects += [item.obj for item in render_stage(variables, options).objects
                    # Flux's HelmRelease has no reference CRD: nothing judges it here
                    if (item.obj["apiVersion"], item.obj["kind"]) not in SCHEMA_OPTIONAL]
    return objects


def test_rendered_kinds_all_have_a_fast_check(registry, crd_dir, example_intent):
    kinds = set()
    for obj in rendered_objects(crd_dir, example_intent):
        if "/" in obj["apiVersion"] and not obj["apiVersion"].startswith("v1"):
            _validator, check = judges(registry, obj)
            assert check is not None, obj["kind"]
            assert check(obj), f"{obj['kind']} is valid, the fast check must say so"
            kinds.add(obj["kind"])
    assert {"VirtualService", "DestinationRule", "Sidecar", "AuthorizationPolicy",
            "PeerAuthentication", "Telemetry", "Application", "Kustomization"} <= kinds


def test_fast_check_agrees_with_jsonschema_on_mutated_objects(registry, crd_dir,
                                                              example_intent):
    rng = random.Random(20240601)
    objects = [obj for obj in rendered_objects(crd_dir, example_intent)
               if obj["apiVersion"] != "v1"]
    disagreements = []
    valid = invalid = 0
    for obj in objects:
        validator, check = judges(registry, obj)
        for _ in range(30):
            mutated = mutate(obj, rng)
            if not agrees(validator, check, mutated):
                disagreements.append((obj["kind"], mutated))
            if check(mutated):
                valid += 1
            else:
                invalid += 1
    assert disagreements == []
    assert valid > 100 and invalid > 500, (valid, invalid)


def _sample_objects(reference_dir: Path) -> list[dict[str, Any]]:
    objects = []
    for path in sorted((reference_dir / "samples").rglob("*.y*ml")):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        objects += [doc for doc in documents
                    if isinstance(doc, dict) and isinstance(doc.get("apiVersion"), str)
                    and isinstance(doc.get("kind"), str)]
    return objects


def test_fast_check_agrees_with_jsonschema_on_upstream_samples(registry, reference_dir):
    rng = random.Random(7)
    checked = 0
    for obj in _sample_objects(reference_dir):
        group, _, version = obj["apiVersion"].rpartition("/")
        key = (group, version, obj["kind"])
        if key not in registry._crds.served:
            continue
        validator, check = judges(registry, obj)
        if check is None:
            continue
        assert agrees(validator, check, obj), obj
        for _ in range(3):
            assert agrees(validator, check, mutate(obj, rng))
        checked += 1
    assert checked > 100


# --------------------------------------------------------------------------- keyword by keyword

_KEYWORD_CASES: list[tuple[dict[str, Any], list[Any]]] = [
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": "^[a-z]+$"}}},
     [{"a": "abc"}, {"a": "abc\n"}, {"a": "ABC"}, {"a": 1}, {"b": 1}, {}, [], None]),
    ({"type": "object", "patternProperties": {"^x-": {"type": "integer"}},
      "additionalProperties": False},
     [{"x-a": 1}, {"x-a": "1"}, {"y": 1}, {}, {1: 1}]),
    ({"type": "object", "additionalProperties": {"type": "string"}},
     [{"a": "b"}, {"a": 1}, {}, {"a": None}]),
    ({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
     [1, "1", 1.0, 1.5, True, None, []]),
    ({"type": "string", "nullable": True, "enum": ["A", "B"]}, ["A", "C", None, 1]),
    ({"type": "integer", "enum": [1, 2]}, [1, 2, 3, True, 1.0, "1"]),
    ({"type": "integer", "minimum": 1, "maximum": 5}, [0, 1, 5, 6, 2.0, 2.5, False]),
    ({"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5}, [0, 0.5, 0.75, 1, -1]),
    ({"type": "string", "minLength": 2, "maxLength": 3}, ["a", "ab", "abcd", "é€"]),
    ({"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
     [[], ["a"], ["a", "b", "c"], [1], ("a",), "a"]),
    ({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
     [["a", "b"], ["a", "a"], []]),
    ({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
      "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
     [[{"name": "a"}, {"name": "b"}], [{"name": "a"}, {"name": "a"}], [{}, {}]]),
    ({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
      "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
     [{"a": "x"}, {"b": "x"}, {"a": "x", "b": "y"}, {}]),
    ({"type": "object", "properties": {"a": {"type": "string"}},
      "not": {"required": ["a"]}}, [{"a": "x"}, {}]),
    ({"type": "object", "properties": {"a": {"type": "string"}},
      "allOf": [{"properties": {"a": {"minLength": 2}}}]}, [{"a": "x"}, {"a": "xy"}]),
    ({"type": "object", "properties": {"m": {"type": "object", "minProperties": 1,
                                              "maxProperties": 1,
                                              "additionalProperties": {"type": "string"}}}},
     [{"m": {}}, {"m": {"a": "b"}}, {"m": {"a": "b", "c": "d"}}]),
    ({"type": "string", "format": "ipv4"}, ["1.2.3.4", "1.2.3", "::1", 4]),
    ({"type": "string", "format": "date"}, ["2024-01-02", "2024-13-02", "x"]),
    ({"type": "object", "required": ["a"], "properties": {"a": {"type": "boolean"}}},
     [{"a": True}, {"a": 1}, {}, {"a": None}]),
    ({"type": "object", "x-kubernetes-preserve-unknown-fields": True,
      "properties": {"n": {"type": "integer"}}}, [{"n": 1, "z": [1]}, {"n": "1"}]),
]


@pytest.mark.parametrize(("openapi", "instances"), _KEYWORD_CASES)
def test_fast_check_agrees_keyword_by_keyword(openapi, instances):
    converted = crd_schema_to_json_schema({"type": "object", "properties": {"f": openapi}})
    validator = CrdValidator(converted, format_checker=FORMAT_CHECKER)
    check = fast_check(converted)
    assert check is not None
    for instance in instances:
        obj = {"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "x"}, "f": instance}
        assert agrees(validator, check, obj), instance


def test_a_keyword_it_does_not_know_leaves_judging_to_jsonschema():
    assert fast_check({"type": "object", "if": {"required": ["a"]}}) is None
    assert fast_check({"$ref": "#/definitions/x"}) is None
    assert fast_check({"items": [{"type": "string"}]}) is None


def test_an_invalid_object_still_gets_jsonschemas_violations(registry):
    obj = {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
           "metadata": {"name": "a", "namespace": "b"},
           "spec": {"egress": [{"hosts": ["./*"]}], "egres": []}}
    (violation,) = registry.validate(obj)
    assert str(violation) == "Sidecar b/a: spec.egres: unknown field 'egres'"
