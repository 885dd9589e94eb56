"""A schema violation, named by object and field path, and jsonschema's errors turned into
violations a person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator

from ..errors import describe_value
from .names import (
    format_path,
)


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


def split_api_version(api_version: str) -> tuple[str, str]:
    """``networking.istio.io/v1`` -> ``("networking.istio.io", "v1")``; ``v1`` -> ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


def join_api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


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
        message = f"{show(error.instance)} is not a valid " + " or ".join(formats)
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
    value = show(error.instance)
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


def show(value: Any) -> str:
    """A value as the user wrote it in YAML: ``null``, ``true``, ``'text'``, ``90``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return describe_value(value)


def _truncate(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def schema_violations(validator: Validator, obj: Mapping[str, Any]) -> list[SchemaViolation]:
    resource = describe_resource(obj)
    return [
        violation
        for error in validator.iter_errors(obj)
        for violation in _error_violations(error, resource)
    ]
