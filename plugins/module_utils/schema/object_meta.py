"""The ObjectMeta rules every object is judged by, beside its schema.

ObjectMeta rules (custom resources): only the ObjectMeta fields are allowed (``name``,
``namespace``, ``labels``, ``annotations``, ``generateName``, ``finalizers``,
``ownerReferences``, ``uid``, ``resourceVersion``, ``generation``, ``creationTimestamp``,
``deletionTimestamp``, ``deletionGracePeriodSeconds``, ``managedFields``, ``selfLink``), each
of its type; ``name`` is required and a DNS-1123 subdomain (at most 253 characters);
``namespace`` is a DNS-1123 label; label keys are an optional DNS-1123-subdomain prefix and
``/`` followed by a name of at most 63 characters ``[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?``;
label values are empty or such a name; annotation keys follow the label-key rule, annotation
values are strings, 256 KiB in all at most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .names import (
    ANNOTATIONS_MAX_BYTES,
    DNS1035_LABEL_RULE,
    DNS1123_LABEL_RULE,
    DNS1123_SUBDOMAIN_RULE,
    LABEL_VALUE_RULE,
    PATH_SEGMENT_RULE,
    QUALIFIED_NAME_RULE,
    format_path,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_value,
    is_path_segment,
    is_qualified_name,
)
from .violations import (
    SchemaViolation,
    show,
)

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


SUBDOMAIN_NAME = _NameRule(is_dns1123_subdomain, DNS1123_SUBDOMAIN_RULE)


# Core kinds whose names follow another rule than a DNS-1123 subdomain.
CORE_NAME_RULES: dict[tuple[str, str], _NameRule] = {
    ("", "Namespace"): _NameRule(is_dns1123_label, DNS1123_LABEL_RULE),
    ("", "Service"): _NameRule(is_dns1035_label, DNS1035_LABEL_RULE),
    **{
        ("rbac.authorization.k8s.io", kind): _NameRule(is_path_segment, PATH_SEGMENT_RULE)
        for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
}


def _at(resource: str, parts: Iterable[str | int], message: str) -> SchemaViolation:
    return SchemaViolation(resource, format_path(parts), message)


def _is_type(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def type_message(value: Any, types: tuple[type, ...]) -> str:
    names = " or ".join(repr(_JSON_TYPE_NAMES[kind]) for kind in types)
    return f"{show(value)} is not of type {names}"


def validate_object_meta(
    metadata: Any, resource: str, *, structural: bool = True, name_rule: _NameRule | None = None
) -> list[SchemaViolation]:
    """Check ``metadata`` by the ObjectMeta rules; ``structural=False`` skips field/type checks.

    Core kinds pass ``structural=False``: their JSON schema already checks the fields and
    types of ObjectMeta, but not the syntax of names, labels and annotations.
    """
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        return [SchemaViolation(resource, "metadata", type_message(metadata, (dict,)))]
    found: list[SchemaViolation] = []
    if structural:
        found += _meta_structure(metadata, resource)
    found += _meta_names(metadata, resource, name_rule or SUBDOMAIN_NAME)
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
            found.append(SchemaViolation(resource, path, type_message(value, _META_TYPES[field])))
    found += _meta_string_list(metadata.get("finalizers"), "finalizers", resource)
    found += _meta_owner_references(metadata.get("ownerReferences"), resource)
    found += _meta_managed_fields(metadata.get("managedFields"), resource)
    return found


def _meta_string_list(values: Any, field: str, resource: str) -> list[SchemaViolation]:
    if not isinstance(values, list):
        return []
    return [
        SchemaViolation(resource, format_path(["metadata", field, index]), type_message(v, (str,)))
        for index, v in enumerate(values)
        if not isinstance(v, str)
    ]


def _meta_owner_references(references: Any, resource: str) -> list[SchemaViolation]:
    found: list[SchemaViolation] = []
    for index, reference in enumerate(references if isinstance(references, list) else []):
        base: list[str | int] = ["metadata", "ownerReferences", index]
        if not isinstance(reference, Mapping):
            found.append(_at(resource, base, type_message(reference, (dict,))))
            continue
        for field, value in reference.items():
            path = format_path([*base, field])
            if field not in _OWNER_REFERENCE_TYPES:
                found.append(SchemaViolation(resource, path, f"unknown field {field!r}"))
            elif not _is_type(value, (_OWNER_REFERENCE_TYPES[field],)):
                message = type_message(value, (_OWNER_REFERENCE_TYPES[field],))
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
        base: list[str | int] = ["metadata", "managedFields", index]
        if not isinstance(entry, Mapping):
            found.append(_at(resource, base, type_message(entry, (dict,))))
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
    if isinstance(namespace, str) and not is_dns1123_label(namespace):
        message = f"{namespace!r} is not {DNS1123_LABEL_RULE}"
        found.append(SchemaViolation(resource, "metadata.namespace", message))
    return found


def _meta_labels(labels: Any, resource: str, *, structural: bool) -> list[SchemaViolation]:
    found: list[SchemaViolation] = []
    for key, value in labels.items() if isinstance(labels, Mapping) else ():
        path = format_path(["metadata", "labels", key])
        if not isinstance(key, str) or not is_qualified_name(key):
            message = f"{show(key)} is not a valid label key: {QUALIFIED_NAME_RULE}"
            found.append(SchemaViolation(resource, path, message))
        if not isinstance(value, str):
            if structural:
                found.append(SchemaViolation(resource, path, type_message(value, (str,))))
        elif not is_label_value(value):
            message = f"{value!r} is not a valid label value: {LABEL_VALUE_RULE}"
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
        if not isinstance(key, str) or not is_qualified_name(key):
            message = f"{show(key)} is not a valid annotation key: {QUALIFIED_NAME_RULE}"
            found.append(SchemaViolation(resource, path, message))
        if isinstance(value, str):
            size += len(str(key).encode()) + len(value.encode())
        elif structural:
            found.append(SchemaViolation(resource, path, type_message(value, (str,))))
    if size > ANNOTATIONS_MAX_BYTES:
        message = f"annotations take {size} bytes, more than the limit of {ANNOTATIONS_MAX_BYTES}"
        found.append(SchemaViolation(resource, "metadata.annotations", message))
    return found
