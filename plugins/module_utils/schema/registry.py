"""Strict schema validation of rendered Kubernetes objects, the way an API server judges them.

``SchemaRegistry.from_crd_dirs(dirs)`` indexes every CustomResourceDefinition found under the
given folders; ``registry.validate(obj)`` returns a list of ``SchemaViolation`` (empty when the
object is valid), each naming the object (``Kind namespace/name``), the field path
(``spec.http[0].route[1].weight``) and what is wrong with the value.

The judge is an API server running with field validation ``Strict`` (``kubectl apply
--validate=strict``): a field the schema does not know is an error, never silently dropped.

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

ObjectMeta rules (custom resources): only the ObjectMeta fields are allowed (``name``,
``namespace``, ``labels``, ``annotations``, ``generateName``, ``finalizers``,
``ownerReferences``, ``uid``, ``resourceVersion``, ``generation``, ``creationTimestamp``,
``deletionTimestamp``, ``deletionGracePeriodSeconds``, ``managedFields``, ``selfLink``), each
of its type; ``name`` is required and a DNS-1123 subdomain (at most 253 characters);
``namespace`` is a DNS-1123 label; label keys are an optional DNS-1123-subdomain prefix and
``/`` followed by a name of at most 63 characters ``[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?``;
label values are empty or such a name; annotation keys follow the label-key rule, annotation
values are strings, 256 KiB in all at most.

Kubernetes core kinds (Namespace, ConfigMap, Service, Deployment, ...) are checked with the
``-strict`` JSON schemas that ``kubernetes-validate`` ships for the chosen Kubernetes version
(unknown fields are errors there too), plus the semantic ObjectMeta rules above (name,
namespace, label and annotation syntax), with the name rule of the kind: a DNS-1035 label for
a Service, a DNS-1123 label for a Namespace, a path segment for RBAC kinds, a DNS-1123
subdomain otherwise.

An apiVersion/kind that is neither a served CRD version nor a core kind of that Kubernetes
version is one violation; so is a CRD kind at a version its CRD does not serve. A deprecated
version is still served, hence valid.

Each validator is compiled once, when first needed, and cached on the registry, together with
a fast check specialised to the same converted schema (``fast_check``). The fast check only
answers "valid": an object it passes is one jsonschema finds nothing wrong with. Any other
object goes through jsonschema, which writes the violations. The rules above and every
message are jsonschema's; valid objects, the usual case, are judged several times faster.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from ..errors import MeshstageError, describe_value
from ..render.renderer import parse_back_loader

DEFAULT_KUBERNETES_VERSION = "1.33.0"

# --------------------------------------------------------------------------- names and paths

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PLAIN_PATH_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_VERSION = re.compile(r"^v[0-9][a-z0-9]*$")
_GROUP = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$")
_ANNOTATIONS_MAX_BYTES = 256 * 1024

_DNS1123_SUBDOMAIN_RULE = (
    "a DNS-1123 subdomain: at most 253 characters, lowercase alphanumerics, '-' and '.', "
    "starting and ending alphanumeric"
)
_DNS1123_LABEL_RULE = (
    "a DNS-1123 label: at most 63 characters, lowercase alphanumerics and '-', "
    "starting and ending alphanumeric"
)
_DNS1035_LABEL_RULE = (
    "a DNS-1035 label: at most 63 characters, lowercase alphanumerics and '-', "
    "starting with a letter and ending alphanumeric"
)
_PATH_SEGMENT_RULE = "a path segment: not '.' or '..' and without '/' or '%'"
_QUALIFIED_NAME_RULE = (
    "an optional DNS-1123 subdomain prefix and '/', then a name of at most 63 characters: "
    "alphanumerics, '-', '_' and '.', starting and ending alphanumeric"
)
_LABEL_VALUE_RULE = (
    "at most 63 characters, empty or alphanumerics, '-', '_' and '.', "
    "starting and ending alphanumeric"
)


def _is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(value) is not None


def _is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def _is_dns1035_label(value: str) -> bool:
    return len(value) <= 63 and _DNS1035_LABEL.fullmatch(value) is not None


def _is_path_segment(value: str) -> bool:
    return value not in (".", "..") and "/" not in value and "%" not in value


def _is_qualified_name(value: str) -> bool:
    """A label or annotation key: ``[prefix/]name``."""
    prefix, slash, name = value.rpartition("/")
    if slash and not (prefix and _is_dns1123_subdomain(prefix)):
        return False
    return 0 < len(name) <= 63 and _QUALIFIED_NAME.fullmatch(name) is not None


def _is_label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and _QUALIFIED_NAME.fullmatch(value) is not None)


def format_path(parts: Iterable[str | int]) -> str:
    """``["spec", "http", 0, "route"]`` -> ``spec.http[0].route``; odd keys are quoted."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_PATH_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


# --------------------------------------------------------------------------- violations


@dataclass(frozen=True)
class SchemaViolation:
    """One reason why one object would be refused."""

    resource: str  # "Kind namespace/name", or "Kind name" without a namespace
    path: str  # "spec.http[0].route[1].weight"; "" for the object itself
    message: str  # one sentence naming the bad value

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.resource}: {where}{self.message}"


def describe_resource(obj: Any) -> str:
    """``Kind namespace/name`` (``Kind name`` without a namespace) of any object."""
    if not isinstance(obj, Mapping):
        return f"(not an object: {describe_value(obj)})"
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) and obj.get("kind") else "(no kind)"
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = metadata.get("name")
    name = name if isinstance(name, str) and name else "(no name)"
    namespace = metadata.get("namespace")
    if isinstance(namespace, str) and namespace:
        return f"{kind} {namespace}/{name}"
    return f"{kind} {name}"


def _split_api_version(api_version: str) -> tuple[str, str]:
    """``networking.istio.io/v1`` -> ``("networking.istio.io", "v1")``; ``v1`` -> ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


def _join_api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


# --------------------------------------------------------------------------- OpenAPI -> JSON Schema

# Formats jsonschema checks the way Kubernetes means them; the rest are dropped.
_CHECKED_FORMATS: tuple[str, ...] = ("date", "date-time", "ipv4", "ipv6", "uuid")
_FORMAT_CHECKER = jsonschema.FormatChecker(
    formats=[name for name in _CHECKED_FORMATS if name in jsonschema.FormatChecker.checkers]
)
_KEPT_FORMATS = frozenset(_FORMAT_CHECKER.checkers)

# Keywords copied as they are: they mean the same in OpenAPI v3 and JSON Schema draft 7.
_PLAIN_KEYWORDS = frozenset({
    "type", "enum", "required", "pattern", "minLength", "maxLength", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
    "uniqueItems", "minProperties", "maxProperties",
})
_JUNCTORS = ("allOf", "anyOf", "oneOf")
_LIST_MAP_KEYWORD = "x-meshstage-list-map-keys"


def crd_schema_to_json_schema(openapi: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a CRD version's ``openAPIV3Schema`` to a strict JSON Schema (draft 7).

    The top-level ``apiVersion``, ``kind`` and ``metadata`` are always allowed; ``metadata``
    is left open because ObjectMeta is checked apart (see ``_validate_object_meta``).
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
        out[_LIST_MAP_KEYWORD] = {"keys": keys, "defaults": defaults}


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


def _go_anchored(pattern: str) -> str:
    """Go's ``$`` (no multi-line flag) is the end of the text; Python's also matches before a
    final newline. A trailing ``$`` becomes ``\\Z`` so ``"name\\n"`` fails like on the server."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + "\\Z"
    return pattern


def _pattern(
    validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """``pattern`` with Go regexp anchoring (``re`` caches the compiled expressions)."""
    if isinstance(instance, str) and re.search(_go_anchored(pattern), instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _is_mapping(checker: Any, instance: Any) -> bool:
    return isinstance(instance, Mapping)


# Any Mapping is a JSON object (jsonschema's own check accepts dict only).
_CrdValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    {_LIST_MAP_KEYWORD: _list_map_keys, "pattern": _pattern},
    type_checker=jsonschema.Draft7Validator.TYPE_CHECKER.redefine("object", _is_mapping),
)
_CoreValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("object", _is_mapping),
)


def _compile_crd_schema(openapi: Mapping[str, Any]) -> Validator:
    return _CrdValidator(crd_schema_to_json_schema(openapi), format_checker=_FORMAT_CHECKER)


# --------------------------------------------------------------------------- the fast check

Check = Callable[[Any], bool]


class _NoFastCheck(Exception):
    """The schema uses a keyword the fast check does not specialise: jsonschema judges."""


# Keywords judged alone, by a one-keyword _CrdValidator: rare in CRDs, exact by construction.
_ALONE_KEYWORDS = frozenset({
    "enum", "const", "uniqueItems", "multipleOf", "exclusiveMinimum", "exclusiveMaximum",
    "minProperties", "maxProperties", _LIST_MAP_KEYWORD,
})
# Keywords the compiled check evaluates itself.
_SPECIALISED_KEYWORDS = frozenset({
    "type", "required", "pattern", "minLength", "maxLength", "minimum", "maximum",
    "minItems", "maxItems", "format", "properties", "patternProperties",
    "additionalProperties", "items", "allOf", "anyOf", "oneOf", "not",
})


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


# jsonschema's draft 7 types, with any Mapping an object (as _CrdValidator has it).
_TYPE_CHECKS: dict[str, Check] = {
    "string": lambda value: isinstance(value, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "array": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, Mapping),
}


def fast_check(schema: Any) -> Check | None:
    """A specialised check of a converted CRD schema: True exactly when ``_CrdValidator`` with
    the same schema finds no error, or None when the schema uses a keyword it does not know.

    It answers valid or not valid, nothing more: an object it refuses (or anything it is not
    sure of, such as a non-string key) goes through jsonschema, which writes the violations.
    So the rules and every message stay jsonschema's; only valid objects are judged faster.
    """
    try:
        check = _compile_check(schema)
    except _NoFastCheck:
        return None

    def judge(instance: Any) -> bool:
        try:
            return check(instance)
        except Exception:  # jsonschema then judges, and raises where it would
            return False

    return judge


def _compile_check(schema: Any) -> Check:
    if schema is True or schema == {}:
        return lambda instance: True
    if schema is False:
        return lambda instance: False
    if not isinstance(schema, Mapping):
        raise _NoFastCheck(f"schema {schema!r}")
    for key in schema:
        if key in _CrdValidator.VALIDATORS and key not in _SPECIALISED_KEYWORDS \
                and key not in _ALONE_KEYWORDS:
            raise _NoFastCheck(key)
    checks = [check for check in (
        _type_check(schema), _string_check(schema), _number_check(schema),
        _array_check(schema), _object_check(schema), _junctor_check(schema),
        _alone_check(schema),
    ) if check is not None]
    if "format" in schema:
        format_name = schema["format"]
        checks.append(lambda instance: _FORMAT_CHECKER.conforms(instance, format_name))
    if not checks:
        return lambda instance: True
    if len(checks) == 1:
        return checks[0]
    return lambda instance: all(check(instance) for check in checks)


def _type_check(schema: Mapping[str, Any]) -> Check | None:
    if "type" not in schema:
        return None
    names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if any(name not in _TYPE_CHECKS for name in names):
        raise _NoFastCheck(f"type {names!r}")
    if names == ["string"]:
        return lambda instance: isinstance(instance, str)
    if names == ["object"]:
        return lambda instance: isinstance(instance, Mapping)
    checks = [_TYPE_CHECKS[name] for name in names]
    return lambda instance: any(check(instance) for check in checks)


def _string_check(schema: Mapping[str, Any]) -> Check | None:
    pattern = schema.get("pattern")
    search = _regex(_go_anchored(pattern)) if isinstance(pattern, str) else None
    if pattern is not None and search is None:
        raise _NoFastCheck(f"pattern {pattern!r}")
    low, high = schema.get("minLength"), schema.get("maxLength")
    if search is None and low is None and high is None:
        return None

    def check(instance: Any) -> bool:
        if not isinstance(instance, str):
            return True
        if search is not None and search(instance) is None:
            return False
        if low is not None and len(instance) < low:
            return False
        return high is None or len(instance) <= high

    return check


def _number_check(schema: Mapping[str, Any]) -> Check | None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is None and high is None:
        return None

    def check(instance: Any) -> bool:
        if not _is_number(instance):
            return True
        if low is not None and instance < low:
            return False
        return not (high is not None and instance > high)

    return check


def _array_check(schema: Mapping[str, Any]) -> Check | None:
    items = _compile_check(schema["items"]) if "items" in schema else None
    low, high = schema.get("minItems"), schema.get("maxItems")
    if items is None and low is None and high is None:
        return None

    def check(instance: Any) -> bool:
        if not isinstance(instance, list):
            return True
        if low is not None and len(instance) < low:
            return False
        if high is not None and len(instance) > high:
            return False
        return items is None or all(items(item) for item in instance)

    return check


def _regex(pattern: str) -> Callable[[str], Any]:
    try:
        return re.compile(pattern).search
    except (re.error, TypeError) as error:
        raise _NoFastCheck(f"pattern {pattern!r}") from error


def _object_check(schema: Mapping[str, Any]) -> Check | None:
    properties = {name: _compile_check(sub) for name, sub in schema.get("properties", {}).items()}
    patterns = [(_regex(pattern), _compile_check(sub))
                for pattern, sub in schema.get("patternProperties", {}).items()]
    additional = schema.get("additionalProperties", True)
    extra = additional if isinstance(additional, bool) else _compile_check(additional)
    # jsonschema finds the additional properties with the patterns joined into one regex
    joined = "|".join(schema.get("patternProperties", {}))
    matches_any = _regex(joined) if joined and extra is not True else None
    required = tuple(schema.get("required", ()))
    if not properties and not patterns and extra is True and not required:
        return None

    def check(instance: Any) -> bool:
        if not isinstance(instance, Mapping):
            return True
        for name in required:
            if name not in instance:
                return False
        for key, value in instance.items():
            if not isinstance(key, str) and (patterns or matches_any is not None):
                return False  # jsonschema's regexes choke on it: let it judge (and raise)
            for search, pattern_check in patterns:
                if search(key) is not None and not pattern_check(value):
                    return False
            sub = properties.get(key)
            if sub is not None:
                if not sub(value):
                    return False
            elif extra is not True and (matches_any is None or matches_any(key) is None) \
                    and (extra is False or not extra(value)):
                return False
        return True

    return check


def _junctor_check(schema: Mapping[str, Any]) -> Check | None:
    checks: list[Check] = []
    if "allOf" in schema:
        all_of = [_compile_check(sub) for sub in schema["allOf"]]
        checks.append(lambda instance: all(check(instance) for check in all_of))
    if "anyOf" in schema:
        any_of = [_compile_check(sub) for sub in schema["anyOf"]]
        checks.append(lambda instance: any(check(instance) for check in any_of))
    if "oneOf" in schema:
        one_of = [_compile_check(sub) for sub in schema["oneOf"]]
        checks.append(lambda instance: sum(1 for check in one_of if check(instance)) == 1)
    if "not" in schema:
        negated = _compile_check(schema["not"])
        checks.append(lambda instance: not negated(instance))
    if not checks:
        return None
    return lambda instance: all(check(instance) for check in checks)


def _alone_check(schema: Mapping[str, Any]) -> Check | None:
    alone = {key: value for key, value in schema.items() if key in _ALONE_KEYWORDS}
    if not alone:
        return None
    enum = alone.get("enum")
    if set(alone) == {"enum"} and isinstance(enum, list) \
            and all(type(value) is str for value in enum):
        # jsonschema compares a string with == only: membership says the same
        allowed = frozenset(enum)
        return lambda instance: isinstance(instance, str) and instance in allowed
    validator = _CrdValidator(alone, format_checker=_FORMAT_CHECKER)
    return validator.is_valid


# --------------------------------------------------------------------------- errors -> violations


def _error_violations(error: ValidationError, resource: str) -> Iterator[SchemaViolation]:
    """One jsonschema error as violations (an unknown-fields error names each field)."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        for name in _unknown_fields(error.instance, error.schema):
            yield SchemaViolation(resource, format_path([*path, name]), f"unknown field {name!r}")
    elif error.validator == "required" and isinstance(error.instance, Mapping):
        for name in error.validator_value:
            if name not in error.instance:
                yield SchemaViolation(
                    resource, format_path([*path, name]), f"required field {name!r} is missing"
                )
    elif error.validator in ("oneOf", "anyOf"):
        yield _junctor_violation(error, resource)
    else:
        yield SchemaViolation(resource, format_path(path), _error_message(error))


def _unknown_fields(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [
        name
        for name in instance
        if name not in known and not any(re.search(pattern, name) for pattern in patterns)
    ]


def _junctor_violation(error: ValidationError, resource: str) -> SchemaViolation:
    """oneOf/anyOf: say which fields clash, or show the closest branch's complaint."""
    path = list(error.absolute_path)
    exclusive = _mutually_exclusive_fields(error.validator_value)
    if exclusive and isinstance(error.instance, Mapping):
        present = [name for name in exclusive if name in error.instance]
        names = ", ".join(repr(name) for name in exclusive)
        if error.validator == "oneOf" and len(present) > 1:
            found = ", ".join(repr(name) for name in present)
            return SchemaViolation(
                resource, format_path(path), f"only one of {names} may be set, found {found}"
            )
        if not present:
            return SchemaViolation(resource, format_path(path), f"one of {names} must be set")
    formats = _alternative_formats(error.validator_value)
    if formats:
        message = f"{_show(error.instance)} is not a valid " + " or ".join(formats)
        return SchemaViolation(resource, format_path(path), message)
    fallback = SchemaViolation(resource, format_path(path), _error_message(error))
    closest = best_match(error.context) if error.context else None
    if closest is None:
        return fallback
    return next(_error_violations(closest, resource), fallback)


def _alternative_formats(branches: Any) -> list[str]:
    """``anyOf: [{format: ipv4}, {format: ipv6}]`` -> ``["ipv4", "ipv6"]``."""
    if not isinstance(branches, list) or not branches:
        return []
    if not all(isinstance(branch, Mapping) and set(branch) == {"format"} for branch in branches):
        return []
    return [branch["format"] for branch in branches]


def _mutually_exclusive_fields(branches: Any) -> list[str]:
    """The field names of a protobuf-style oneof: branches that only require fields."""
    names: list[str] = []
    for branch in branches if isinstance(branches, list) else []:
        if set(branch) == {"required"}:
            names.extend(name for name in branch["required"] if name not in names)
        elif set(branch) == {"not"} and set(branch["not"]) == {"anyOf"}:
            continue
        else:
            return []
    return names


def _error_message(error: ValidationError) -> str:
    """One sentence naming the bad value, without dumping huge values."""
    value = _show(error.instance)
    limit = error.validator_value
    match error.validator:
        case "type":
            types = [limit] if isinstance(limit, str) else list(limit)
            return f"{value} is not of type " + " or ".join(repr(kind) for kind in types)
        case "enum":
            allowed = describe_value(list(limit)).removeprefix("list ")
            return f"{value} is not one of {allowed}"
        case "pattern":
            return f"{value} does not match the pattern {limit!r}"
        case "maxLength":
            return f"{value} is longer than {limit} characters"
        case "minLength":
            return f"{value} is shorter than {limit} characters"
        case "maxItems":
            return f"{len(error.instance)} items are more than the maximum of {limit}"
        case "minItems":
            return f"{len(error.instance)} items are fewer than the minimum of {limit}"
        case "uniqueItems":
            return f"{value} has duplicate entries"
        case "format":
            return f"{value} is not a valid {limit}"
        case "minProperties":
            return f"{value} has fewer than {limit} fields"
        case "maxProperties":
            return f"{value} has more than {limit} fields"
        case "not":
            return f"{value} is not allowed here"
    return _truncate(error.message)


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML: ``null``, ``true``, ``'text'``, ``90``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return describe_value(value)


def _truncate(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _schema_violations(validator: Validator, obj: Mapping[str, Any]) -> list[SchemaViolation]:
    resource = describe_resource(obj)
    return [
        violation
        for error in validator.iter_errors(obj)
        for violation in _error_violations(error, resource)
    ]


# --------------------------------------------------------------------------- ObjectMeta

_META_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "namespace": (str,),
    "generateName": (str,),
    "labels": (dict,),
    "annotations": (dict,),
    "finalizers": (list,),
    "ownerReferences": (list,),
    "uid": (str,),
    "resourceVersion": (str,),
    "generation": (int,),
    "creationTimestamp": (str,),
    "deletionTimestamp": (str,),
    "deletionGracePeriodSeconds": (int,),
    "managedFields": (list,),
    "selfLink": (str,),
}
_OWNER_REFERENCE_TYPES: dict[str, type] = {
    "apiVersion": str, "kind": str, "name": str, "uid": str,
    "controller": bool, "blockOwnerDeletion": bool,
}
_OWNER_REFERENCE_REQUIRED: tuple[str, ...] = ("apiVersion", "kind", "name", "uid")
_MANAGED_FIELDS_ENTRY = frozenset({
    "apiVersion", "fieldsType", "fieldsV1", "manager", "operation", "subresource", "time",
})
_JSON_TYPE_NAMES: dict[type, str] = {
    str: "string", int: "integer", bool: "boolean", dict: "object", list: "array",
}


@dataclass(frozen=True)
class _NameRule:
    check: Callable[[str], bool]
    rule: str


_SUBDOMAIN_NAME = _NameRule(_is_dns1123_subdomain, _DNS1123_SUBDOMAIN_RULE)
# Core kinds whose names follow another rule than a DNS-1123 subdomain.
_CORE_NAME_RULES: dict[tuple[str, str], _NameRule] = {
    ("", "Namespace"): _NameRule(_is_dns1123_label, _DNS1123_LABEL_RULE),
    ("", "Service"): _NameRule(_is_dns1035_label, _DNS1035_LABEL_RULE),
    **{
        ("rbac.authorization.k8s.io", kind): _NameRule(_is_path_segment, _PATH_SEGMENT_RULE)
        for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
}


def _at(resource: str, parts: Iterable[str | int], message: str) -> SchemaViolation:
    return SchemaViolation(resource, format_path(parts), message)


def _is_type(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _type_message(value: Any, types: tuple[type, ...]) -> str:
    names = " or ".join(repr(_JSON_TYPE_NAMES[kind]) for kind in types)
    return f"{_show(value)} is not of type {names}"


def _validate_object_meta(
    metadata: Any, resource: str, *, structural: bool = True, name_rule: _NameRule | None = None
) -> list[SchemaViolation]:
    """Check ``metadata`` by the ObjectMeta rules; ``structural=False`` skips field/type checks.

    Core kinds pass ``structural=False``: their JSON schema already checks the fields and
    types of ObjectMeta, but not the syntax of names, labels and annotations.
    """
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        return [SchemaViolation(resource, "metadata", _type_message(metadata, (dict,)))]
    found: list[SchemaViolation] = []
    if structural:
        found += _meta_structure(metadata, resource)
    found += _meta_names(metadata, resource, name_rule or _SUBDOMAIN_NAME)
    found += _meta_labels(metadata.get("labels"), resource, structural=structural)
    found += _meta_annotations(metadata.get("annotations"), resource, structural=structural)
    return found


def _meta_structure(metadata: Mapping[str, Any], resource: str) -> list[SchemaViolation]:
    found: list[SchemaViolation] = []
    for field, value in metadata.items():
        path = format_path(["metadata", field])
        if field not in _META_TYPES:
            found.append(SchemaViolation(resource, path, f"unknown field {field!r}"))
        elif value is not None and not _is_type(value, _META_TYPES[field]):
            found.append(SchemaViolation(resource, path, _type_message(value, _META_TYPES[field])))
    found += _meta_string_list(metadata.get("finalizers"), "finalizers", resource)
    found += _meta_owner_references(metadata.get("ownerReferences"), resource)
    found += _meta_managed_fields(metadata.get("managedFields"), resource)
    return found


def _meta_string_list(values: Any, field: str, resource: str) -> list[SchemaViolation]:
    if not isinstance(values, list):
        return []
    return [
        SchemaViolation(resource, format_path(["metadata", field, index]), _type_message(v, (str,)))
        for index, v in enumerate(values)
        if not isinstance(v, str)
    ]


def _meta_owner_references(references: Any, resource: str) -> list[SchemaViolation]:
    found: list[SchemaViolation] = []
    for index, reference in enumerate(references if isinstance(references, list) else []):
        base = ["metadata", "ownerReferences", index]
        if not isinstance(reference, Mapping):
            found.append(_at(resource, base, _type_message(reference, (dict,))))
            continue
        for field, value in reference.items():
            path = format_path([*base, field])
            if field not in _OWNER_REFERENCE_TYPES:
                found.append(SchemaViolation(resource, path, f"unknown field {field!r}"))
            elif not _is_type(value, (_OWNER_REFERENCE_TYPES[field],)):
                message = _type_message(value, (_OWNER_REFERENCE_TYPES[field],))
                found.append(SchemaViolation(resource, path, message))
        found += [
            _at(resource, [*base, field], f"required field {field!r} is missing")
            for field in _OWNER_REFERENCE_REQUIRED
            if field not in reference
        ]
    return found


def _meta_managed_fields(entries: Any, resource: str) -> list[SchemaViolation]:
    found: list[SchemaViolation] = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        base = ["metadata", "managedFields", index]
        if not isinstance(entry, Mapping):
            found.append(_at(resource, base, _type_message(entry, (dict,))))
            continue
        found += [
            SchemaViolation(resource, format_path([*base, field]), f"unknown field {field!r}")
            for field in entry
            if field not in _MANAGED_FIELDS_ENTRY
        ]
    return found


def _meta_names(
    metadata: Mapping[str, Any], resource: str, name_rule: _NameRule
) -> list[SchemaViolation]:
    name = metadata.get("name")
    if name is None or name == "":
        return [SchemaViolation(resource, "metadata.name", "required field 'name' is missing")]
    found: list[SchemaViolation] = []
    if isinstance(name, str) and not name_rule.check(name):
        found.append(
            SchemaViolation(resource, "metadata.name", f"{name!r} is not {name_rule.rule}")
        )
    namespace = metadata.get("namespace")
    if isinstance(namespace, str) and not _is_dns1123_label(namespace):
        message = f"{namespace!r} is not {_DNS1123_LABEL_RULE}"
        found.append(SchemaViolation(resource, "metadata.namespace", message))
    return found


def _meta_labels(labels: Any, resource: str, *, structural: bool) -> list[SchemaViolation]:
    found: list[SchemaViolation] = []
    for key, value in labels.items() if isinstance(labels, Mapping) else ():
        path = format_path(["metadata", "labels", key])
        if not isinstance(key, str) or not _is_qualified_name(key):
            message = f"{_show(key)} is not a valid label key: {_QUALIFIED_NAME_RULE}"
            found.append(SchemaViolation(resource, path, message))
        if not isinstance(value, str):
            if structural:
                found.append(SchemaViolation(resource, path, _type_message(value, (str,))))
        elif not _is_label_value(value):
            message = f"{value!r} is not a valid label value: {_LABEL_VALUE_RULE}"
            found.append(SchemaViolation(resource, path, message))
    return found


def _meta_annotations(
    annotations: Any, resource: str, *, structural: bool
) -> list[SchemaViolation]:
    if not isinstance(annotations, Mapping):
        return []
    found: list[SchemaViolation] = []
    size = 0
    for key, value in annotations.items():
        path = format_path(["metadata", "annotations", key])
        if not isinstance(key, str) or not _is_qualified_name(key):
            message = f"{_show(key)} is not a valid annotation key: {_QUALIFIED_NAME_RULE}"
            found.append(SchemaViolation(resource, path, message))
        if isinstance(value, str):
            size += len(str(key).encode()) + len(value.encode())
        elif structural:
            found.append(SchemaViolation(resource, path, _type_message(value, (str,))))
    if size > _ANNOTATIONS_MAX_BYTES:
        message = f"annotations take {size} bytes, more than the limit of {_ANNOTATIONS_MAX_BYTES}"
        found.append(SchemaViolation(resource, "metadata.annotations", message))
    return found


# --------------------------------------------------------------------------- CRD loading


@dataclass(frozen=True)
class _ServedVersion:
    """One served version of one CRD: its schema and where it came from."""

    group: str
    version: str
    kind: str
    schema: Mapping[str, Any]
    source: Path


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(
        path for path in directory.rglob("*") if path.suffix in (".yaml", ".yml") and path.is_file()
    )


def _yaml_documents(path: Path) -> list[Any]:
    loader = parse_back_loader()  # the safe loader, building plain documents faster
    try:
        return list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise MeshstageError(f"{path}: cannot read CRDs: {error}") from error


def _is_crd(document: Any) -> bool:
    return (
        isinstance(document, Mapping)
        and document.get("kind") == "CustomResourceDefinition"
        and str(document.get("apiVersion", "")).startswith("apiextensions.k8s.io/")
    )


def _crd_versions(
    document: Mapping[str, Any], source: Path
) -> Iterator[tuple[_ServedVersion, bool]]:
    """Every version of one CRD, with whether it is served."""
    try:
        spec = document["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        for entry in spec["versions"]:
            schema = (entry.get("schema") or {}).get("openAPIV3Schema") or {}
            served = _ServedVersion(group, entry["name"], kind, schema, source)
            yield served, bool(entry.get("served"))
    except (KeyError, TypeError, AttributeError) as error:
        raise MeshstageError(
            f"{source}: a CustomResourceDefinition lacks spec.group, spec.names.kind or "
            f"spec.versions[].name ({type(error).__name__}: {error})"
        ) from error


class _CrdIndex:
    """Served CRD versions by (group, version, kind), and every version of each CRD kind."""

    def __init__(self) -> None:
        self.served: dict[tuple[str, str, str], _ServedVersion] = {}
        self.kinds: dict[tuple[str, str], set[str]] = {}

    def add_directory(self, directory: Path,
                      read_documents: Callable[[Path], list[Any]] | None = None) -> None:
        if not directory.is_dir():
            problem = "is not a directory" if directory.exists() else "does not exist"
            raise MeshstageError(f"CRD directory {directory} {problem}")
        count = 0
        for path in _yaml_files(directory):
            for document in (read_documents or _yaml_documents)(path):
                if _is_crd(document):
                    self._add_crd(document, path)
                    count += 1
        if count == 0:
            raise MeshstageError(f"CRD directory {directory} holds no CustomResourceDefinition")

    def _add_crd(self, document: Mapping[str, Any], source: Path) -> None:
        for entry, served in _crd_versions(document, source):
            self.kinds.setdefault((entry.group, entry.kind), set())
            if not served:
                continue
            key = (entry.group, entry.version, entry.kind)
            other = self.served.get(key)
            if other is not None and other.schema != entry.schema:
                raise MeshstageError(
                    f"{_join_api_version(entry.group, entry.version)} {entry.kind} is served by "
                    f"two CRDs with different schemas: {other.source} and {source}"
                )
            self.served[key] = entry
            self.kinds[(entry.group, entry.kind)].add(entry.version)


# --------------------------------------------------------------------------- core kinds


def _version_tuple(text: str) -> tuple[int, int]:
    match = re.match(r"^v?(\d+)\.(\d+)", text)
    if match is None:
        raise MeshstageError(f"kubernetes_version {text!r} is not a version like '1.33.0'")
    return int(match.group(1)), int(match.group(2))


def _strip_descriptions(node: Any) -> Any:
    """Drop ``description`` texts: they weigh and slow down every schema walk."""
    if isinstance(node, dict):
        return {
            key: value if key in ("enum", "required") else _strip_descriptions(value)
            for key, value in node.items()
            if key != "description" or not isinstance(value, str)
        }
    if isinstance(node, list):
        return [_strip_descriptions(item) for item in node]
    return node


class _CoreSchemas:
    """The strict JSON schemas of kubernetes-validate for one Kubernetes minor version."""

    def __init__(self, kubernetes_version: str) -> None:
        self.kubernetes_version = kubernetes_version
        self.directory = self._pick_directory(kubernetes_version)
        self._registry: Registry | None = None
        self._validators: dict[tuple[str, str], Validator | None] = {}

    @staticmethod
    def _pick_directory(kubernetes_version: str) -> Path:
        import kubernetes_validate  # only for where its schemas are

        root = Path(kubernetes_validate.__file__).resolve().parent / "kubernetes-json-schema"
        wanted = _version_tuple(kubernetes_version)
        shipped = {
            _version_tuple(path.name): path
            for path in root.glob("v*-local-strict")
            if path.is_dir()
        }
        if not shipped or not min(shipped) <= wanted <= max(shipped):
            known = ", ".join(f"{major}.{minor}" for major, minor in sorted(shipped))
            raise MeshstageError(
                f"kubernetes_version {kubernetes_version!r}: kubernetes-validate ships strict "
                f"schemas for {known or 'no version'} only"
            )
        return shipped[max(version for version in shipped if version <= wanted)]

    def validator(self, api_version: str, kind: str) -> Validator | None:
        key = (api_version, kind)
        if key not in self._validators:
            self._validators[key] = self._compile(api_version, kind)
        return self._validators[key]

    def _compile(self, api_version: str, kind: str) -> Validator | None:
        group, version = _split_api_version(api_version)
        if not (_KIND.fullmatch(kind) and _VERSION.fullmatch(version) and _GROUP.fullmatch(group)):
            return None  # not a name kubernetes-validate can have a file for
        # kubernetes-validate's file naming: kind-<first label of the group>-version.json
        short_group = group.split(".", 1)[0]
        stem = f"{kind.lower()}-{short_group}-{version}" if group else f"{kind.lower()}-{version}"
        path = self.directory / f"{stem}.json"
        if not path.is_file():
            return None
        schema = _strip_descriptions(json.loads(path.read_text(encoding="utf-8")))
        wanted = {"group": group, "version": version, "kind": kind}
        if wanted not in schema.get("x-kubernetes-group-version-kind", []):
            return None  # same file name, other group (e.g. networking.istio.io)
        return _CoreValidator(schema, registry=self._definitions())

    def _definitions(self) -> Registry:
        if self._registry is None:
            path = self.directory / "_definitions.json"
            contents = _strip_descriptions(json.loads(path.read_text(encoding="utf-8")))
            self._registry = DRAFT202012.create_resource(contents) @ Registry()
        return self._registry


# --------------------------------------------------------------------------- the registry


class SchemaRegistry:
    """Validates rendered objects against CRD schemas and Kubernetes core schemas."""

    def __init__(self, crds: _CrdIndex, core: _CoreSchemas) -> None:
        self._crds = crds
        self._core = core
        self._crd_validators: dict[tuple[str, str, str], Validator] = {}
        self._crd_checks: dict[tuple[str, str, str], Check | None] = {}

    @classmethod
    def from_crd_dirs(
        cls,
        dirs: Sequence[str | Path],
        kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
        read_documents: Callable[[Callable[[Path], list[Any]]],
                                 Callable[[Path], list[Any]]] | None = None,
    ) -> SchemaRegistry:
        """Index every CRD under ``dirs`` (recursively, *.yaml and *.yml).

        Raises ``MeshstageError`` naming a folder that does not exist or holds no CRD, a file
        that does not parse, two CRDs serving one version with different schemas, or a
        ``kubernetes_version`` kubernetes-validate has no schemas for. An empty ``dirs``
        gives a registry of core kinds only. ``read_documents``, given the YAML reader of a
        file, returns the reader to use instead (the stage cache answers from JSON).
        """
        if isinstance(dirs, (str, Path)):
            dirs = [dirs]
        core = _CoreSchemas(kubernetes_version)
        crds = _CrdIndex()
        reader = read_documents(_yaml_documents) if read_documents else _yaml_documents
        for directory in dirs:
            crds.add_directory(Path(directory), reader)
        return cls(crds, core)

    @property
    def kubernetes_version(self) -> str:
        return self._core.kubernetes_version

    @property
    def has_crds(self) -> bool:
        """True when at least one CRD was loaded (False for a core-kinds-only registry)."""
        return bool(self._crds.served)

    def knows(self, api_version: str, kind: str) -> bool:
        """Whether objects of this apiVersion and kind can be validated."""
        group, version = _split_api_version(api_version)
        if (group, version, kind) in self._crds.served:
            return True
        return self._core.validator(api_version, kind) is not None

    def served_versions(self, group: str, kind: str) -> list[str]:
        """The versions the CRDs serve for ``group``/``kind`` (empty: not a CRD kind)."""
        return sorted(self._crds.kinds.get((group, kind), ()))

    def validate(self, obj: Mapping[str, Any]) -> list[SchemaViolation]:
        """Every reason the API server (field validation Strict) would refuse ``obj``."""
        resource = describe_resource(obj)
        if not isinstance(obj, Mapping):
            return [SchemaViolation(resource, "", "a Kubernetes object must be a mapping")]
        header = self._header_violations(obj, resource)
        if header:
            return header
        api_version, kind = obj["apiVersion"], obj["kind"]
        group, version = _split_api_version(api_version)
        if (group, version, kind) in self._crds.served:
            found = self._validate_custom(obj, (group, version, kind), resource)
        elif (core := self._core.validator(api_version, kind)) is not None:
            found = self._validate_core(obj, core, group, resource)
        elif (group, kind) in self._crds.kinds:
            found = [self._unserved(api_version, group, kind, resource)]
        else:
            found = [self._unknown(api_version, kind, resource)]
        return list(dict.fromkeys(found))

    def validate_all(self, objs: Iterable[Mapping[str, Any]]) -> list[SchemaViolation]:
        """The violations of every object, in order."""
        return [violation for obj in objs for violation in self.validate(obj)]

    # -- helpers

    @staticmethod
    def _header_violations(obj: Mapping[str, Any], resource: str) -> list[SchemaViolation]:
        found: list[SchemaViolation] = []
        for field in ("apiVersion", "kind"):
            value = obj.get(field)
            if value is None or value == "":
                message = f"required field {field!r} is missing"
                found.append(SchemaViolation(resource, field, message))
            elif not isinstance(value, str):
                found.append(SchemaViolation(resource, field, _type_message(value, (str,))))
        return found

    def _crd_validator(self, key: tuple[str, str, str]) -> Validator:
        if key not in self._crd_validators:
            self._crd_validators[key] = _compile_crd_schema(self._crds.served[key].schema)
        return self._crd_validators[key]

    def _crd_check(self, key: tuple[str, str, str]) -> Check | None:
        if key not in self._crd_checks:
            self._crd_checks[key] = fast_check(self._crd_validator(key).schema)
        return self._crd_checks[key]

    def _validate_custom(
        self, obj: Mapping[str, Any], key: tuple[str, str, str], resource: str
    ) -> list[SchemaViolation]:
        found = _validate_object_meta(obj.get("metadata"), resource)
        check = self._crd_check(key)
        if check is not None and check(obj):
            return found  # valid: jsonschema would find nothing
        return found + _schema_violations(self._crd_validator(key), obj)

    @staticmethod
    def _validate_core(
        obj: Mapping[str, Any], validator: Validator, group: str, resource: str
    ) -> list[SchemaViolation]:
        found = _schema_violations(validator, obj)
        name_rule = _CORE_NAME_RULES.get((group, obj["kind"]), _SUBDOMAIN_NAME)
        return found + _validate_object_meta(
            obj.get("metadata"), resource, structural=False, name_rule=name_rule
        )

    def _unserved(self, api_version: str, group: str, kind: str, resource: str) -> SchemaViolation:
        served = self.served_versions(group, kind)
        listed = ", ".join(_join_api_version(group, version) for version in served) or "none"
        return SchemaViolation(
            resource,
            "apiVersion",
            f"{api_version} {kind} is not a served version of its CRD; served versions: {listed}",
        )

    def _unknown(self, api_version: str, kind: str, resource: str) -> SchemaViolation:
        return SchemaViolation(
            resource,
            "",
            f"no schema for apiVersion {api_version} kind {kind}: not in the CRD directories "
            f"and not a Kubernetes {self.kubernetes_version} core kind",
        )
