"""A CRD's OpenAPI schema as strict JSON Schema, and the validators that judge with it.

Custom resources (a served version of a CRD found in the folders) are checked against that
version's ``openAPIV3Schema``, converted from Kubernetes structural-schema OpenAPI to JSON
Schema (draft 7) as follows:

* An object schema without ``additionalProperties`` and without
  ``x-kubernetes-preserve-unknown-fields: true`` gets ``additionalProperties: false``: the API
  server would prune an unknown field, so strict validation rejects it. This also holds for
  ``type: object`` with no ``properties`` at all (the server prunes every field of it).
  Schemas inside ``allOf``/``anyOf``/``oneOf``/``not`` only add constraints and stay open.
* ``x-kubernetes-preserve-unknown-fields: true`` keeps unknown fields: anything goes below it,
  except that the ``properties`` it lists are still checked (strictly again, one level down).
* ``x-kubernetes-int-or-string: true`` accepts an integer or a string.
* ``nullable: true`` accepts ``null``; elsewhere ``null`` is an error. (The server would prune
  such a null silently; in a rendered manifest it is a template bug, so it is reported.)
* ``x-kubernetes-embedded-resource: true`` implicitly allows ``apiVersion``, ``kind`` and
  ``metadata`` in the embedded object.
* ``x-kubernetes-list-type: set`` requires unique items and ``x-kubernetes-list-type: map``
  requires unique ``x-kubernetes-list-map-keys``, as the server does.
* ``format`` is checked only for ``date``, ``date-time``, ``ipv4``, ``ipv6`` and ``uuid``, and
  only when jsonschema can check it here (``date-time`` needs an optional package). Other
  formats (``int32``, ``int64``, ``double``, ``byte``, ``duration``, ...) are ignored:
  jsonschema does not know them, or means something else by them (``duration`` is ISO 8601
  to jsonschema and a Go duration to Kubernetes).
* ``x-kubernetes-validations`` (CEL rules) cannot be evaluated here and are ignored: an object
  that passes may still be refused by a CEL rule on the server. ``default`` is ignored too.
* The top-level ``apiVersion``, ``kind`` and ``metadata`` are always allowed. ``metadata`` is
  checked by the ObjectMeta rules below, not by the CRD (whose schema for it is usually just
  ``type: object``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

# Formats jsonschema checks the way Kubernetes means them; the rest are dropped.
_CHECKED_FORMATS: tuple[str, ...] = ("date", "date-time", "ipv4", "ipv6", "uuid")


FORMAT_CHECKER = jsonschema.FormatChecker(
    formats=[name for name in _CHECKED_FORMATS if name in jsonschema.FormatChecker.checkers]
)


_KEPT_FORMATS = frozenset(FORMAT_CHECKER.checkers)


# Keywords copied as they are: they mean the same in OpenAPI v3 and JSON Schema draft 7.
_PLAIN_KEYWORDS = frozenset({
    "type", "enum", "required", "pattern", "minLength", "maxLength", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
    "uniqueItems", "minProperties", "maxProperties",
})


_JUNCTORS = ("allOf", "anyOf", "oneOf")


LIST_MAP_KEYWORD = "x-meshstage-list-map-keys"


def crd_schema_to_json_schema(openapi: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a CRD version's ``openAPIV3Schema`` to a strict JSON Schema (draft 7).

    The top-level ``apiVersion``, ``kind`` and ``metadata`` are always allowed; ``metadata``
    is left open because ObjectMeta is checked apart (see ``validate_object_meta``).
    """
    schema = _convert(openapi, junctor=False)
    properties = schema.setdefault("properties", {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties["metadata"] = _open_metadata_schema(properties.get("metadata"))
    return schema


def _open_metadata_schema(converted: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keep a CRD's own checks of ``metadata.name`` and the like, drop the rest."""
    if not converted or "properties" not in converted:
        return {}
    return {"properties": converted["properties"]}


def _convert(node: Mapping[str, Any], *, junctor: bool) -> dict[str, Any]:
    """Convert one schema node; ``junctor`` is true below allOf/anyOf/oneOf/not."""
    out: dict[str, Any] = {key: value for key, value in node.items() if key in _PLAIN_KEYWORDS}
    if node.get("format") in _KEPT_FORMATS:
        out["format"] = node["format"]
    _convert_children(node, out, junctor=junctor)
    if node.get("x-kubernetes-int-or-string"):
        _make_int_or_string(out)
    if node.get("nullable"):
        _make_nullable(out)
    if node.get("x-kubernetes-embedded-resource") and "properties" in out:
        _allow_embedded_resource_fields(out)
    _add_list_type(node, out)
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if not (junctor or preserve or "additionalProperties" in out) and _is_object_schema(out):
        out["additionalProperties"] = False
    return out


def _convert_children(node: Mapping[str, Any], out: dict[str, Any], *, junctor: bool) -> None:
    for key in ("properties", "patternProperties"):
        if isinstance(node.get(key), Mapping):
            out[key] = {name: _convert(child, junctor=junctor) for name, child in node[key].items()}
    if isinstance(node.get("items"), Mapping):
        out["items"] = _convert(node["items"], junctor=junctor)
    additional = node.get("additionalProperties")
    if isinstance(additional, bool):
        out["additionalProperties"] = additional
    elif isinstance(additional, Mapping):
        out["additionalProperties"] = _convert(additional, junctor=junctor)
    for key in _JUNCTORS:
        if isinstance(node.get(key), list):
            out[key] = [_convert(child, junctor=True) for child in node[key]]
    if isinstance(node.get("not"), Mapping):
        out["not"] = _convert(node["not"], junctor=True)


def _is_object_schema(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" or "properties" in schema


def _make_int_or_string(out: dict[str, Any]) -> None:
    out["type"] = ["integer", "string"]
    # The structural form spells it anyOf: [{type: integer}, {type: string}]; the type says it.
    if all(set(branch) <= {"type"} for branch in out.get("anyOf", [])):
        out.pop("anyOf", None)


def _make_nullable(out: dict[str, Any]) -> None:
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        out["type"] = [*kind, "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]


def _allow_embedded_resource_fields(out: dict[str, Any]) -> None:
    properties = out["properties"]
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties.setdefault("metadata", {"type": "object"})


def _add_list_type(node: Mapping[str, Any], out: dict[str, Any]) -> None:
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "set":
        out["uniqueItems"] = True
    elif list_type == "map" and node.get("x-kubernetes-list-map-keys"):
        keys = list(node["x-kubernetes-list-map-keys"])
        item_properties = node.get("items", {}).get("properties", {})
        defaults = {
            key: item_properties[key]["default"]
            for key in keys
            if "default" in item_properties.get(key, {})
        }
        out[LIST_MAP_KEYWORD] = {"keys": keys, "defaults": defaults}


def _list_map_keys(
    validator: Validator, spec: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """``x-kubernetes-list-type: map``: no two entries may have the same key fields."""
    if not isinstance(instance, list):
        return
    seen: set[str] = set()
    for index, item in enumerate(instance):
        if not isinstance(item, Mapping):
            continue
        values = {key: item.get(key, spec["defaults"].get(key)) for key in spec["keys"]}
        fingerprint = json.dumps(values, sort_keys=True, default=str)
        if fingerprint in seen:
            shown = ", ".join(f"{key}={value!r}" for key, value in values.items())
            yield ValidationError(f"duplicate entry with {shown}", path=[index], instance=item)
        seen.add(fingerprint)


def go_anchored(pattern: str) -> str:
    """Go's ``$`` (no multi-line flag) is the end of the text; Python's also matches before a
    final newline. A trailing ``$`` becomes ``\\Z`` so ``"name\\n"`` fails like on the server."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + "\\Z"
    return pattern


def _pattern(
    validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """``pattern`` with Go regexp anchoring (``re`` caches the compiled expressions)."""
    if isinstance(instance, str) and re.search(go_anchored(pattern), instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_mapping(checker: Any, instance: Any) -> bool:
    return isinstance(instance, Mapping)


# Any Mapping is a JSON object (jsonschema's own check accepts dict only).
CrdValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    {LIST_MAP_KEYWORD: _list_map_keys, "pattern": _pattern},
    type_checker=jsonschema.Draft7Validator.TYPE_CHECKER.redefine("object", _is_mapping),
)


CoreValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("object", _is_mapping),
)


def compile_crd_schema(openapi: Mapping[str, Any]) -> Validator:
    return CrdValidator(crd_schema_to_json_schema(openapi), format_checker=FORMAT_CHECKER)
