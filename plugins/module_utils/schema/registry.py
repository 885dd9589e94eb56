"""Strict schema validation of rendered Kubernetes objects, the way an API server judges them.

``SchemaRegistry.from_crd_dirs(dirs)`` indexes every CustomResourceDefinition found under the
given folders; ``registry.validate(obj)`` returns a list of ``SchemaViolation`` (empty when the
object is valid), each naming the object (``Kind namespace/name``), the field path
(``spec.http[0].route[1].weight``) and what is wrong with the value.

The judge is an API server running with field validation ``Strict`` (``kubectl apply
--validate=strict``): a field the schema does not know is an error, never silently dropped.

An apiVersion/kind that is neither a served CRD version nor a core kind of that Kubernetes
version is one violation; so is a CRD kind at a version its CRD does not serve. A deprecated
version is still served, hence valid.

Each validator is compiled once, when first needed, and cached on the registry, together with
a fast check specialised to the same converted schema (``fast_check.py``). The fast check only
answers "valid": an object it passes is one jsonschema finds nothing wrong with. Any other
object goes through jsonschema, which writes the violations. The conversion and every
message are jsonschema's; valid objects, the usual case, are judged several times faster.

The parts: ``openapi.py`` (a CRD's schema as JSON Schema), ``object_meta.py`` (metadata),
``core.py`` (core kinds), ``crds.py`` (reading CRDs), ``fast_check.py``, ``violations.py``
(jsonschema's errors as violations) and ``names.py`` (Kubernetes name rules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jsonschema.protocols import Validator

from ..kube import DEFAULT_KUBERNETES_VERSION
from .core import CoreSchemas
from .crds import CrdIndex, yaml_documents
from .fast_check import Check, fast_check
from .object_meta import CORE_NAME_RULES, SUBDOMAIN_NAME, type_message, validate_object_meta
from .openapi import (
    compile_crd_schema,
)
from .violations import (
    SchemaViolation,
    describe_resource,
    join_api_version,
    schema_violations,
    split_api_version,
)

# --------------------------------------------------------------------------- names and paths


# --------------------------------------------------------------------------- violations


# --------------------------------------------------------------------------- OpenAPI -> JSON Schema


# --------------------------------------------------------------------------- the fast check


# --------------------------------------------------------------------------- errors -> violations


# --------------------------------------------------------------------------- ObjectMeta


# --------------------------------------------------------------------------- CRD loading


# --------------------------------------------------------------------------- core kinds


# --------------------------------------------------------------------------- the registry


class SchemaRegistry:
    """Validates rendered objects against CRD schemas and Kubernetes core schemas."""

    def __init__(self, crds: CrdIndex, core: CoreSchemas) -> None:
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
        core = CoreSchemas(kubernetes_version)
        crds = CrdIndex()
        reader = read_documents(yaml_documents) if read_documents else yaml_documents
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
        group, version = split_api_version(api_version)
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
        group, version = split_api_version(api_version)
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
                found.append(SchemaViolation(resource, field, type_message(value, (str,))))
        return found

    def _crd_validator(self, key: tuple[str, str, str]) -> Validator:
        if key not in self._crd_validators:
            self._crd_validators[key] = compile_crd_schema(self._crds.served[key].schema)
        return self._crd_validators[key]

    def _crd_check(self, key: tuple[str, str, str]) -> Check | None:
        if key not in self._crd_checks:
            self._crd_checks[key] = fast_check(self._crd_validator(key).schema)
        return self._crd_checks[key]

    def _validate_custom(
        self, obj: Mapping[str, Any], key: tuple[str, str, str], resource: str
    ) -> list[SchemaViolation]:
        found = validate_object_meta(obj.get("metadata"), resource)
        check = self._crd_check(key)
        if check is not None and check(obj):
            return found  # valid: jsonschema would find nothing
        return found + schema_violations(self._crd_validator(key), obj)

    @staticmethod
    def _validate_core(
        obj: Mapping[str, Any], validator: Validator, group: str, resource: str
    ) -> list[SchemaViolation]:
        found = schema_violations(validator, obj)
        name_rule = CORE_NAME_RULES.get((group, obj["kind"]), SUBDOMAIN_NAME)
        return found + validate_object_meta(
            obj.get("metadata"), resource, structural=False, name_rule=name_rule
        )

    def _unserved(self, api_version: str, group: str, kind: str, resource: str) -> SchemaViolation:
        served = self.served_versions(group, kind)
        listed = ", ".join(join_api_version(group, version) for version in served) or "none"
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
