"""A fast check specialised to a converted CRD schema: it only answers "valid".

An object it passes is one jsonschema finds nothing wrong with; any other object goes
through jsonschema, which writes the violations (``violations.py``). Valid objects, the usual
case, are judged several times faster.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

from .openapi import (
    FORMAT_CHECKER,
    LIST_MAP_KEYWORD,
    CrdValidator,
    go_anchored,
)

Check = Callable[[Any], bool]


class _NoFastCheck(Exception):
    """The schema uses a keyword the fast check does not specialise: jsonschema judges."""


# Keywords judged alone, by a one-keyword CrdValidator: rare in CRDs, exact by construction.
_ALONE_KEYWORDS = frozenset({
    "enum", "const", "uniqueItems", "multipleOf", "exclusiveMinimum", "exclusiveMaximum",
    "minProperties", "maxProperties", LIST_MAP_KEYWORD,
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


# jsonschema's draft 7 types, with any Mapping an object (as CrdValidator has it).
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
    """A specialised check of a converted CRD schema: True exactly when ``CrdValidator`` with
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
        if key in CrdValidator.VALIDATORS and key not in _SPECIALISED_KEYWORDS \
                and key not in _ALONE_KEYWORDS:
            raise _NoFastCheck(key)
    checks = [check for check in (
        _type_check(schema), _string_check(schema), _number_check(schema),
        _array_check(schema), _object_check(schema), _junctor_check(schema),
        _alone_check(schema),
    ) if check is not None]
    if "format" in schema:
        format_name = schema["format"]
        checks.append(lambda instance: FORMAT_CHECKER.conforms(instance, format_name))
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
    search = _regex(go_anchored(pattern)) if isinstance(pattern, str) else None
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
    validator = CrdValidator(alone, format_checker=FORMAT_CHECKER)
    return validator.is_valid
