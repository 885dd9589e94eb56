"""The schemas of Kubernetes core kinds, for the chosen Kubernetes version.

Kubernetes core kinds (Namespace, ConfigMap, Service, Deployment, ...) are checked with the
``-strict`` JSON schemas that ``kubernetes-validate`` ships for the chosen Kubernetes version
(unknown fields are errors there too), plus the semantic ObjectMeta rules above (name,
namespace, label and annotation syntax), with the name rule of the kind: a DNS-1035 label for
a Service, a DNS-1123 label for a Namespace, a path segment for RBAC kinds, a DNS-1123
subdomain otherwise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # for where its schemas are
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from ..errors import MeshstageError
from ..kube import DEFAULT_KUBERNETES_VERSION
from .names import (
    GROUP,
    KIND,
    VERSION,
)
from .openapi import (
    CoreValidator,
)
from .violations import (
    split_api_version,
)


def _version_tuple(text: str) -> tuple[int, int]:
    match = re.match(r"^v?(\d+)\.(\d+)", text)
    if match is None:
        raise MeshstageError(f"kubernetes_version {text!r} is not a version like "
                             f"'{DEFAULT_KUBERNETES_VERSION}'")
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


class CoreSchemas:
    """The strict JSON schemas of kubernetes-validate for one Kubernetes minor version."""

    def __init__(self, kubernetes_version: str) -> None:
        self.kubernetes_version = kubernetes_version
        self.directory = self._pick_directory(kubernetes_version)
        self._registry: Registry | None = None
        self._validators: dict[tuple[str, str], Validator | None] = {}

    @staticmethod
    def _pick_directory(kubernetes_version: str) -> Path:
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
        group, version = split_api_version(api_version)
        if not (KIND.fullmatch(kind) and VERSION.fullmatch(version) and GROUP.fullmatch(group)):
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
        return CoreValidator(schema, registry=self._definitions())

    def _definitions(self) -> Registry:
        if self._registry is None:
            path = self.directory / "_definitions.json"
            contents = _strip_descriptions(json.loads(path.read_text(encoding="utf-8")))
            self._registry = DRAFT202012.create_resource(contents) @ Registry()
        return self._registry
