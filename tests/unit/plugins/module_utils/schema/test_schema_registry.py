"""Tests of the strict schema validator: upstream samples pass, each kind of mistake is named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.schema import registry as schema
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.openapi import (
    crd_schema_to_json_schema,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.violations import (
    SchemaViolation,
)


@pytest.fixture(scope="session")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def sample_documents(reference_dir: Path, pattern: str) -> list[tuple[str, dict[str, Any]]]:
    """(``file#index``, document) for every document of the files matching ``pattern``."""
    files = sorted((reference_dir / "samples").glob(pattern))
    assert files, f"no sample matches {pattern}"
    return [
        (f"{path.name}#{index}", doc)
        for path in files
        for index, doc in enumerate(load_documents(path))
    ]


# --------------------------------------------------------------------------- upstream samples pass

# Upstream documents that are refused, with the reason (each is checked to fail for that reason).
EXCLUDED: dict[tuple[str, str, str], str] = {
    # The Linkerd egress docs were written for Gateway API releases that still served
    # TLSRoute v1alpha2; the v1.6.1 standard channel lists v1alpha2 with served: false.
    ("tasks_managing-egress-traffic.yaml", "TLSRoute", "tls-egress"): (
        "gateway.networking.k8s.io/v1alpha2 TLSRoute is not a served version of its CRD; "
        "served versions: gateway.networking.k8s.io/v1"
    ),
}

SAMPLE_SETS = [
    # Istio Bookinfo: networking.istio.io/v1 objects, none with a namespace.
    "istio-bookinfo/networking/*.yaml",
    "istio-bookinfo/gateway-api/*.yaml",
    # Core Services, ServiceAccounts and Deployments.
    "istio-bookinfo/platform/kube/bookinfo.yaml",
    "istio-bookinfo/platform/kube/bookinfo-versions.yaml",
    # Linkerd policy objects (Server, ServerAuthorization, AuthorizationPolicy, ...).
    "linkerd/website/run.linkerd.io/public/emojivoto-policy.yml",
    "linkerd/website/run.linkerd.io/public/emojivoto.yml",
    "linkerd/website/run.linkerd.io/public/booksapp.yml",
    "linkerd/linkerd2/test/integration/deep/dualstack/testdata/ipfamilies-policy.yml",
    "linkerd/linkerd2/test/integration/install/testdata/smoke_test.yaml",
    "linkerd/linkerd2/test/integration/viz/policy/testdata/emoji-policy.yaml",
    "linkerd/linkerd2/grafana/authzpolicy-grafana.yaml",
    "linkerd/website-docs/*.yaml",
    "linkerd/linkerd-smi/test/testdata/*.yaml",
]


def excluded_reason(file_and_index: str, doc: dict[str, Any]) -> str | None:
    file_name = file_and_index.split("#")[0]
    return EXCLUDED.get((file_name, doc["kind"], doc["metadata"]["name"]))


@pytest.mark.parametrize("pattern", SAMPLE_SETS)
def test_upstream_samples_validate(registry, reference_dir, pattern):
    checked = 0
    failures: list[str] = []
    for where, doc in sample_documents(reference_dir, pattern):
        if excluded_reason(where, doc) is not None:
            continue
        failures += [f"{where}: {violation}" for violation in registry.validate(doc)]
        checked += 1
    assert checked > 0
    assert failures == []


@pytest.mark.parametrize("pattern", SAMPLE_SETS[:2])
@pytest.mark.parametrize("namespace", [None, "bookinfo"])
def test_bookinfo_samples_with_or_without_namespace(registry, reference_dir, pattern, namespace):
    """A namespace is optional: kubectl puts a namespaced object without one in the current one.

    All but one sample (certmanager-gateway.yaml, in istio-system) carry no namespace.
    """
    for where, doc in sample_documents(reference_dir, pattern):
        obj = copy.deepcopy(doc)
        if namespace is None:
            obj["metadata"].pop("namespace", None)
        else:
            obj["metadata"]["namespace"] = namespace
        assert registry.validate(obj) == [], where


def test_excluded_samples_fail_for_the_stated_reason(registry, reference_dir):
    seen = 0
    for where, doc in sample_documents(reference_dir, "linkerd/website-docs/*.yaml"):
        reason = excluded_reason(where, doc)
        if reason is None:
            continue
        seen += 1
        assert [(v.path, v.message) for v in registry.validate(doc)] == [("apiVersion", reason)]
    assert seen == 2


# --------------------------------------------------------------------------- mistakes are named


def virtual_service() -> dict[str, Any]:
    """A valid canary VirtualService (90/10); ``vs_with`` derives broken ones from it."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "bookinfo", "labels": {"app": "reviews"}},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10},
                    ]
                }
            ],
        },
    }


def vs_with(edit: Any) -> dict[str, Any]:
    obj = virtual_service()
    edit(obj)
    return obj


def core(api_version: str, kind: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **fields}


def _rename_route(obj: dict[str, Any]) -> None:
    obj["spec"]["http"][0]["rout"] = obj["spec"]["http"][0].pop("route")


def _set(path: str, value: Any) -> Any:
    """An edit that sets the value at a dotted path (integers index lists)."""

    def edit(obj: dict[str, Any]) -> None:
        *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
        node = obj
        for part in parents:
            node = node[part]
        node[last] = value

    return edit


def _drop(path: str) -> Any:
    def edit(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = obj
        for part in parents:
            node = node[part]
        del node[last]

    return edit


GATEWAY = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "edge", "namespace": "gw"},
    "spec": {
        "gatewayClassName": "istio",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
    },
}

FAILURES = [
    # id, object, resource, path, message
    (
        "unknown-field",
        vs_with(_rename_route),
        "VirtualService bookinfo/reviews",
        "spec.http[0].rout",
        "unknown field 'rout'",
    ),
    (
        "wrong-type",
        vs_with(_set("spec.http.0.route.1.weight", "ninety")),
        "VirtualService bookinfo/reviews",
        "spec.http[0].route[1].weight",
        "'ninety' is not of type 'integer'",
    ),
    (
        "null-where-not-nullable",
        vs_with(_set("spec.http.0.timeout", None)),
        "VirtualService bookinfo/reviews",
        "spec.http[0].timeout",
        "null is not of type 'string'",
    ),
    (
        "nullable-boolean-still-typed",
        vs_with(_set("spec.http.0.retries", {"attempts": 3, "retryRemoteLocalities": "yes"})),
        "VirtualService bookinfo/reviews",
        "spec.http[0].retries.retryRemoteLocalities",
        "'yes' is not of type 'boolean' or 'null'",
    ),
    (
        "oneof-fields-exclusive",
        vs_with(_set("spec.http.0.match", [{"uri": {"exact": "/a", "prefix": "/b"}}])),
        "VirtualService bookinfo/reviews",
        "spec.http[0].match[0].uri",
        "only one of 'exact', 'prefix', 'regex' may be set, found 'exact', 'prefix'",
    ),
    (
        "unknown-metadata-field",
        vs_with(_set("metadata.labelz", {"app": "reviews"})),
        "VirtualService bookinfo/reviews",
        "metadata.labelz",
        "unknown field 'labelz'",
    ),
    (
        "bad-label-value",
        vs_with(_set("metadata.labels.version", "v1 beta")),
        "VirtualService bookinfo/reviews",
        "metadata.labels.version",
        "'v1 beta' is not a valid label value",
    ),
    (
        "label-value-too-long",
        vs_with(_set("metadata.labels.version", "v" * 64)),
        "VirtualService bookinfo/reviews",
        "metadata.labels.version",
        "is not a valid label value: at most 63 characters",
    ),
    (
        "bad-label-key",
        vs_with(_set("metadata.labels", {"Example.com/app": "reviews"})),
        "VirtualService bookinfo/reviews",
        "metadata.labels['Example.com/app']",
        "'Example.com/app' is not a valid label key",
    ),
    (
        "label-value-not-string",
        vs_with(_set("metadata.labels.replicas", 3)),
        "VirtualService bookinfo/reviews",
        "metadata.labels.replicas",
        "3 is not of type 'string'",
    ),
    (
        "annotation-value-not-string",
        vs_with(_set("metadata.annotations", {"example.com/canary": True})),
        "VirtualService bookinfo/reviews",
        "metadata.annotations['example.com/canary']",
        "true is not of type 'string'",
    ),
    (
        "missing-name",
        vs_with(_drop("metadata.name")),
        "VirtualService bookinfo/(no name)",
        "metadata.name",
        "required field 'name' is missing",
    ),
    (
        "name-not-dns-subdomain",
        vs_with(_set("metadata.name", "Reviews_v1")),
        "VirtualService bookinfo/Reviews_v1",
        "metadata.name",
        "'Reviews_v1' is not a DNS-1123 subdomain",
    ),
    (
        "namespace-not-dns-label",
        vs_with(_set("metadata.namespace", "book.info")),
        "VirtualService book.info/reviews",
        "metadata.namespace",
        "'book.info' is not a DNS-1123 label",
    ),
    (
        "enum",
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "reviews"},
            "spec": {"host": "reviews", "trafficPolicy": {"tls": {"mode": "MUTUAL_TLS"}}},
        },
        "DestinationRule reviews",
        "spec.trafficPolicy.tls.mode",
        "'MUTUAL_TLS' is not one of ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']",
    ),
    (
        "required-spec-field",
        {**GATEWAY, "spec": {"listeners": GATEWAY["spec"]["listeners"]}},
        "Gateway gw/edge",
        "spec.gatewayClassName",
        "required field 'gatewayClassName' is missing",
    ),
    (
        "format-in-anyof",
        {
            **GATEWAY,
            "spec": {**GATEWAY["spec"], "addresses": [{"type": "IPAddress", "value": "x"}]},
        },
        "Gateway gw/edge",
        "spec.addresses[0].value",
        "'x' is not a valid ipv4 or ipv6",
    ),
    (
        "pattern-anchored-like-go",
        {
            **GATEWAY,
            "spec": {
                **GATEWAY["spec"],
                "listeners": [{"name": "http\n", "port": 80, "protocol": "HTTP"}],
            },
        },
        "Gateway gw/edge",
        "spec.listeners[0].name",
        "'http\\n' does not match",
    ),
    (
        "name-with-trailing-newline",
        vs_with(_set("metadata.name", "reviews\n")),
        "VirtualService bookinfo/reviews\n",
        "metadata.name",
        "'reviews\\n' is not a DNS-1123 subdomain",
    ),
    (
        "list-map-duplicate-key",
        {
            **GATEWAY,
            "spec": {
                **GATEWAY["spec"],
                "listeners": [
                    {"name": "http", "port": 80, "protocol": "HTTP"},
                    {"name": "http", "port": 8080, "protocol": "HTTP"},
                ],
            },
        },
        "Gateway gw/edge",
        "spec.listeners[1]",
        "duplicate entry with name='http'",
    ),
    (
        "int-or-string-wrong-type",
        {
            "apiVersion": "policy.linkerd.io/v1beta3",
            "kind": "Server",
            "metadata": {"name": "web-http", "namespace": "emojivoto"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": True},
        },
        "Server emojivoto/web-http",
        "spec.port",
        "true is not of type 'integer' or 'string'",
    ),
    (
        "strict-beside-preserved-subtree",
        {
            "apiVersion": "networking.istio.io/v1alpha3",
            "kind": "EnvoyFilter",
            "metadata": {"name": "lua"},
            "spec": {"configPatches": [{"applyTo": "HTTP_FILTER", "patch": {"valu": {}}}]},
        },
        "EnvoyFilter lua",
        "spec.configPatches[0].patch.valu",
        "unknown field 'valu'",
    ),
    (
        "unknown-kind",
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualServise",
         "metadata": {"name": "x"}},
        "VirtualServise x",
        "",
        "no schema for apiVersion networking.istio.io/v1 kind VirtualServise: not in the CRD "
        "directories and not a Kubernetes 1.33.0 core kind",
    ),
    (
        "unknown-group",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}},
        "Widget x",
        "",
        "no schema for apiVersion example.com/v1 kind Widget",
    ),
    (
        "unserved-version",
        {
            "apiVersion": "split.smi-spec.io/v1alpha3",
            "kind": "TrafficSplit",
            "metadata": {"name": "reviews", "namespace": "bookinfo"},
            "spec": {"service": "reviews", "backends": [{"service": "reviews-v1", "weight": 100}]},
        },
        "TrafficSplit bookinfo/reviews",
        "apiVersion",
        "split.smi-spec.io/v1alpha3 TrafficSplit is not a served version of its CRD; served "
        "versions: split.smi-spec.io/v1alpha1, split.smi-spec.io/v1alpha2, "
        "split.smi-spec.io/v1alpha4",
    ),
    (
        "missing-api-version",
        {"kind": "ConfigMap", "metadata": {"name": "x"}},
        "ConfigMap x",
        "apiVersion",
        "required field 'apiVersion' is missing",
    ),
    (
        "core-configmap-non-string-data",
        core("v1", "ConfigMap", "settings", data={"replicas": 3, "mode": "canary"}),
        "ConfigMap settings",
        "data.replicas",
        "3 is not of type 'string' or 'null'",
    ),
    (
        "core-namespace-unknown-spec-field",
        core("v1", "Namespace", "bookinfo", spec={"finalizers": ["kubernetes"], "bogus": 1}),
        "Namespace bookinfo",
        "spec.bogus",
        "unknown field 'bogus'",
    ),
    (
        "core-unknown-metadata-field",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a", "lables": {}}},
        "ServiceAccount a",
        "metadata.lables",
        "unknown field 'lables'",
    ),
    (
        "core-bad-label-value",
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "a", "labels": {"a": "-"}}},
        "ServiceAccount a",
        "metadata.labels.a",
        "'-' is not a valid label value",
    ),
    (
        "core-missing-name",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "bookinfo"}},
        "ConfigMap bookinfo/(no name)",
        "metadata.name",
        "required field 'name' is missing",
    ),
    (
        "core-service-name-dns1035",
        core("v1", "Service", "1reviews", spec={"ports": [{"port": 9080}]}),
        "Service 1reviews",
        "metadata.name",
        "'1reviews' is not a DNS-1035 label",
    ),
    (
        "core-wrong-type",
        core("apps/v1", "Deployment", "reviews",
             spec={"replicas": "two", "selector": {}, "template": {}}),
        "Deployment reviews",
        "spec.replicas",
        "'two' is not of type 'integer' or 'null'",
    ),
]


@pytest.mark.parametrize(
    ("obj", "resource", "path", "message"),
    [case[1:] for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
def test_violation_is_named(registry, obj, resource, path, message):
    violations = registry.validate(obj)
    assert [(v.resource, v.path) for v in violations] == [(resource, path)], violations
    assert message in violations[0].message


def test_violation_reads_as_one_line(registry):
    obj = vs_with(_set("spec.http.0.route.1.weight", "ninety"))
    (violation,) = registry.validate(obj)
    assert str(violation) == (
        "VirtualService bookinfo/reviews: spec.http[0].route[1].weight: "
        "'ninety' is not of type 'integer'"
    )
    assert violation == SchemaViolation(
        "VirtualService bookinfo/reviews",
        "spec.http[0].route[1].weight",
        "'ninety' is not of type 'integer'",
    )


def test_every_mistake_is_reported_at_once(registry):
    obj = vs_with(_rename_route)
    obj["metadata"]["labels"]["version"] = "v1 beta"
    obj["spec"]["hots"] = ["x"]
    paths = [v.path for v in registry.validate(obj)]
    assert sorted(paths) == ["metadata.labels.version", "spec.hots", "spec.http[0].rout"]


def test_validate_all_keeps_order(registry):
    good = virtual_service()
    bad = vs_with(_set("metadata.name", "Bad"))
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    violations = registry.validate_all([good, bad, good, unknown])
    assert [v.resource for v in violations] == ["VirtualService bookinfo/Bad", "Widget w"]


def test_the_object_is_not_changed(registry):
    obj = vs_with(_rename_route)
    before = copy.deepcopy(obj)
    registry.validate(obj)
    assert obj == before


# --------------------------------------------------------------------------- what is accepted

ACCEPTED = [
    (
        "int-or-string-integer",
        {
            "apiVersion": "policy.linkerd.io/v1beta3",
            "kind": "Server",
            "metadata": {"name": "web-http", "namespace": "emojivoto"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": 8080},
        },
    ),
    (
        "int-or-string-string",
        {
            "apiVersion": "policy.linkerd.io/v1beta3",
            "kind": "Server",
            "metadata": {"name": "web-http", "namespace": "emojivoto"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": "http"},
        },
    ),
    (
        "int-or-string-quantity",
        {
            "apiVersion": "split.smi-spec.io/v1alpha1",
            "kind": "TrafficSplit",
            "metadata": {"name": "reviews"},
            "spec": {
                "service": "reviews",
                "backends": [
                    {"service": "reviews-v1", "weight": "900m"},
                    {"service": "reviews-v2", "weight": 100},
                ],
            },
        },
    ),
    (
        "preserve-unknown-fields-envoyfilter-patch-value",
        {
            "apiVersion": "networking.istio.io/v1alpha3",
            "kind": "EnvoyFilter",
            "metadata": {"name": "lua", "namespace": "istio-system"},
            "spec": {
                "configPatches": [
                    {
                        "applyTo": "HTTP_FILTER",
                        "patch": {
                            "operation": "INSERT_BEFORE",
                            "value": {
                                "name": "envoy.lua",
                                "typed_config": {"@type": "type.googleapis.com/x", "any": [1, {}]},
                                "anything": {"goes": {"here": None}},
                            },
                        },
                    }
                ]
            },
        },
    ),
    (
        "preserve-unknown-fields-argocd-helm-values",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "reviews", "namespace": "argocd"},
            "spec": {
                "project": "default",
                "destination": {
                    "server": "https://kubernetes.default.svc",
                    "namespace": "bookinfo",
                },
                "source": {
                    "repoURL": "https://example.com/gitops.git",
                    "path": "charts/reviews",
                    "helm": {"valuesObject": {"replicas": 3, "canary": {"weight": 10, "x": [1]}}},
                },
            },
        },
    ),
    (
        "preserve-unknown-fields-match-labels",
        {
            "apiVersion": "policy.linkerd.io/v1beta3",
            "kind": "Server",
            "metadata": {"name": "web-http", "namespace": "emojivoto"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web", "any.key/you-like": "x"}},
                "port": "http",
            },
        },
    ),
    (
        "nullable-null",
        vs_with(_set("spec.http.0.retries", {"attempts": 3, "retryRemoteLocalities": None})),
    ),
    (
        "deprecated-version-still-served",
        {
            "apiVersion": "policy.linkerd.io/v1alpha1",
            "kind": "Server",
            "metadata": {"name": "web-http", "namespace": "emojivoto"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": "http"},
        },
    ),
    (
        "cluster-scoped-crd",
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "istio"},
            "spec": {"controllerName": "istio.io/gateway-controller"},
        },
    ),
    (
        "full-object-meta",
        vs_with(
            _set(
                "metadata",
                {
                    "name": "reviews",
                    "namespace": "bookinfo",
                    "labels": {"app.kubernetes.io/name": "reviews", "empty": ""},
                    "annotations": {"meshstage.io/stage": "canary", "note": "any text at all"},
                    "finalizers": ["example.com/cleanup"],
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "1",
                         "controller": True}
                    ],
                    "generation": 2,
                    "creationTimestamp": None,
                },
            )
        ),
    ),
    (
        "core-rbac-name-with-colon",
        core("rbac.authorization.k8s.io/v1", "ClusterRole", "system:mesh"),
    ),
    ("core-namespace", core("v1", "Namespace", "bookinfo", spec={"finalizers": ["kubernetes"]})),
]


@pytest.mark.parametrize("obj", [case[1] for case in ACCEPTED], ids=[case[0] for case in ACCEPTED])
def test_accepted(registry, obj):
    assert registry.validate(obj) == []


# --------------------------------------------------------------------------- knows


@pytest.mark.parametrize(
    ("api_version", "kind", "known"),
    [
        ("networking.istio.io/v1", "VirtualService", True),
        ("networking.istio.io/v1alpha3", "VirtualService", True),
        ("gateway.networking.k8s.io/v1", "HTTPRoute", True),
        ("policy.linkerd.io/v1beta3", "HTTPRoute", True),
        ("v1", "ConfigMap", True),
        ("apps/v1", "Deployment", True),
        ("networking.k8s.io/v1", "Ingress", True),
        ("split.smi-spec.io/v1alpha3", "TrafficSplit", False),  # served: false
        ("gateway.networking.k8s.io/v1alpha2", "TLSRoute", False),  # served: false
        ("networking.k8s.io/v1", "VirtualService", False),  # same short group, other API
        ("apps/v1beta1", "Deployment", False),  # removed from Kubernetes
        ("example.com/v1", "Widget", False),
        ("v1", "../../_definitions", False),
    ],
)
def test_knows(registry, api_version, kind, known):
    assert registry.knows(api_version, kind) is known


# --------------------------------------------------------------------------- loading CRDs


def test_missing_crd_dir_is_named(tmp_path):
    missing = tmp_path / "no-such-crds"
    with pytest.raises(MeshstageError, match=str(missing)):
        SchemaRegistry.from_crd_dirs([missing])


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({}, "holds no CustomResourceDefinition"),
        (
            {"vap.yaml": "apiVersion: admissionregistration.k8s.io/v1\n"
                         "kind: ValidatingAdmissionPolicy\n"},
            "holds no CustomResourceDefinition",
        ),
        ({"notes.txt": "kind: CustomResourceDefinition\n"}, "holds no CustomResourceDefinition"),
    ],
)
def test_crd_dir_without_crd_is_named(tmp_path, files, problem):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(MeshstageError, match=problem) as caught:
        SchemaRegistry.from_crd_dirs([tmp_path])
    assert str(tmp_path) in str(caught.value)


def test_bad_yaml_names_the_file(tmp_path):
    bad = tmp_path / "nested" / "bad.yml"
    bad.parent.mkdir()
    bad.write_text("kind: [unclosed\n", encoding="utf-8")
    with pytest.raises(MeshstageError, match=r"bad\.yml"):
        SchemaRegistry.from_crd_dirs([tmp_path])


def crd_text(version: str, served: bool, field: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [{
                "name": version,
                "served": served,
                "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "properties": {field: {"type": "string"}}},
                    },
                }},
            }],
        },
    })


def test_crd_files_found_recursively_with_both_suffixes(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "widget.yml").write_text(crd_text("v1", True, "size"), encoding="utf-8")
    (tmp_path / "gadget.yaml").write_text(
        "---\n# a comment-only document\n---\n"
        + crd_text("v2", True, "size").replace("Widget", "Gadget").replace("widgets", "gadgets"),
        encoding="utf-8",
    )
    registry = SchemaRegistry.from_crd_dirs([str(tmp_path)])
    assert registry.knows("example.com/v1", "Widget")
    assert registry.knows("example.com/v2", "Gadget")
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": "L", "colour": "red"}}
    assert [v.path for v in registry.validate(widget)] == ["spec.colour"]


def test_crd_files_read_as_the_safe_loader_reads_them_aliases_bounded(tmp_path):
    """CRD files are read from the parser's events; one with anchors and aliases reads as
    the safe loader reads it, and one whose aliases expand without bound is refused, naming
    the file."""
    crd = yaml.safe_load(crd_text("v1", True, "size"))
    fields = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    fields["properties"]["colour"] = fields["properties"]["size"]  # one node, twice
    text = yaml.safe_dump(crd)
    assert "&id001" in text and "*id001" in text
    (tmp_path / "widget.yaml").write_text(text, encoding="utf-8")
    registry = SchemaRegistry.from_crd_dirs([tmp_path])
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": "L", "colour": "red", "shape": "round"}}
    assert [v.path for v in registry.validate(widget)] == ["spec.shape"]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join(['*' + chr(97 + n)] * 10)}]\n"
        for n in range(7))
    (tmp_path / "bomb.yaml").write_text(bomb, encoding="utf-8")
    with pytest.raises(MeshstageError, match=r"bomb\.yaml: cannot read CRDs"):
        SchemaRegistry.from_crd_dirs([tmp_path])


def test_crds_read_beforehand_in_a_child_index_as_the_files_do(tmp_path, crd_dir):
    """``CrdPrefetch`` reads the files in a forked child: the registry built from its
    documents serves what the files serve, and judges as the files' registry judges; a file
    the child cannot read is read again by the caller's reader, which names it."""
    import os

    from ansible_collections.meshstage.mesh.plugins.module_utils.schema.crds import (
        CrdPrefetch,
        crd_files,
        yaml_documents,
    )

    files = crd_files([crd_dir, tmp_path / "absent"])
    assert files and all(path.suffix in (".yaml", ".yml") for path in files)
    prefetch = CrdPrefetch(files)
    parsed: list[Path] = []

    def parse(path: Path) -> list[Any]:
        parsed.append(path)
        return yaml_documents(path)

    fetched = SchemaRegistry.from_crd_dirs([crd_dir], read_documents=prefetch.reader)
    assert prefetch._child is None or not hasattr(os, "fork")  # collected
    plain = SchemaRegistry.from_crd_dirs([crd_dir])
    assert fetched._crds.served.keys() == plain._crds.served.keys()
    assert all(fetched._crds.served[key].schema == plain._crds.served[key].schema
               for key in plain._crds.served)
    (tmp_path / "good.yaml").write_text(crd_text("v1", True, "size"), encoding="utf-8")
    (tmp_path / "bad.yaml").write_text("spec: [unclosed\n", encoding="utf-8")
    prefetch = CrdPrefetch(crd_files([tmp_path]))
    with pytest.raises(MeshstageError, match=r"bad\.yaml: cannot read CRDs"):
        SchemaRegistry.from_crd_dirs([tmp_path],
                                     read_documents=lambda _: prefetch.reader(parse))
    assert parsed == [tmp_path / "bad.yaml"]  # good.yaml came from the child


def test_two_crds_serving_one_version_differently_are_refused(tmp_path):
    (tmp_path / "one.yaml").write_text(crd_text("v1", True, "size"), encoding="utf-8")
    (tmp_path / "two.yaml").write_text(crd_text("v1", True, "colour"), encoding="utf-8")
    with pytest.raises(MeshstageError, match="two CRDs with different schemas"):
        SchemaRegistry.from_crd_dirs([tmp_path])


def test_versions_are_merged_across_crd_files(tmp_path):
    (tmp_path / "one.yaml").write_text(crd_text("v1", True, "size"), encoding="utf-8")
    (tmp_path / "two.yaml").write_text(crd_text("v2", False, "size"), encoding="utf-8")
    registry = SchemaRegistry.from_crd_dirs([tmp_path])
    widget = {"apiVersion": "example.com/v2", "kind": "Widget", "metadata": {"name": "w"}}
    (violation,) = registry.validate(widget)
    assert violation.message.endswith("served versions: example.com/v1")


@pytest.mark.parametrize("version", ["1.99.0", "1.2.0", "latest"])
def test_unsupported_kubernetes_version(crd_dir, version):
    with pytest.raises(MeshstageError, match="kubernetes_version"):
        SchemaRegistry.from_crd_dirs([crd_dir / "smi"], kubernetes_version=version)


def test_kubernetes_version_picks_the_schemas(crd_dir):
    registry = SchemaRegistry.from_crd_dirs([crd_dir / "smi"], kubernetes_version="v1.30.4")
    assert registry.kubernetes_version == "v1.30.4"
    assert registry.knows("v1", "ConfigMap")
    unknown = {"apiVersion": "x.io/v1", "kind": "Y", "metadata": {"name": "y"}}
    (violation,) = registry.validate(unknown)
    assert violation.message.endswith("not a Kubernetes v1.30.4 core kind")


def test_validators_are_compiled_once(crd_dir, monkeypatch):
    compiled: list[str] = []
    real_crd = schema.compile_crd_schema
    real_core = schema.CoreSchemas._compile

    def count_crd(openapi):
        compiled.append("crd")
        return real_crd(openapi)

    def count_core(self, api_version, kind):
        compiled.append(kind)
        return real_core(self, api_version, kind)

    monkeypatch.setattr(schema, "compile_crd_schema", count_crd)
    monkeypatch.setattr(schema.CoreSchemas, "_compile", count_core)
    registry = SchemaRegistry.from_crd_dirs([crd_dir / "istio"])
    for _ in range(3):
        objs = [virtual_service(), core("v1", "ConfigMap", "c"), core("x/v1", "Y", "y")]
        registry.validate_all(objs)
    assert compiled == ["crd", "ConfigMap", "Y"]


# --------------------------------------------------------------------------- the converter


def test_converter_makes_objects_strict():
    converted = crd_schema_to_json_schema({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "half": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                        "properties": {"n": {"type": "integer"}},
                    },
                    "map": {"type": "object", "additionalProperties": {"type": "string"}},
                    "empty": {"type": "object"},
                    "choice": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                        "oneOf": [{"properties": {"a": {"minLength": 2}}}, {"required": ["b"]}],
                    },
                },
            }
        },
    })
    spec = converted["properties"]["spec"]
    assert converted["additionalProperties"] is False
    assert set(converted["properties"]) == {"apiVersion", "kind", "metadata", "spec"}
    assert spec["additionalProperties"] is False
    assert "additionalProperties" not in spec["properties"]["open"]
    assert "additionalProperties" not in spec["properties"]["half"]
    assert spec["properties"]["map"]["additionalProperties"] == {"type": "string"}
    assert spec["properties"]["empty"]["additionalProperties"] is False
    assert "additionalProperties" not in spec["properties"]["choice"]["oneOf"][0]


@pytest.mark.parametrize(
    ("openapi", "expected"),
    [
        ({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
         {"type": ["integer", "string"]}),
        ({"type": "string", "nullable": True, "enum": ["A", "B"]},
         {"type": ["string", "null"], "enum": ["A", "B", None]}),
        ({"type": "string", "format": "int32", "description": "dropped", "default": "x"},
         {"type": "string"}),
        ({"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv4"}),
        ({"type": "string", "x-kubernetes-validations": [{"rule": "self.size() > 1"}]},
         {"type": "string"}),
        ({"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
         {"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        ({"type": "object", "x-kubernetes-embedded-resource": True,
          "x-kubernetes-preserve-unknown-fields": True},
         {"type": "object"}),
        ({"type": "object", "x-kubernetes-embedded-resource": True,
          "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}},
         {"type": "object", "additionalProperties": False, "properties": {
             "spec": {"type": "object"}, "apiVersion": {"type": "string"},
             "kind": {"type": "string"}, "metadata": {"type": "object"}}}),
    ],
)
def test_converter_keywords(openapi, expected):
    wrapped = crd_schema_to_json_schema({"type": "object", "properties": {"field": openapi}})
    assert wrapped["properties"]["field"] == expected


def test_every_served_crd_version_converts_to_a_valid_json_schema(registry):
    checked = 0
    for key in registry._crds.served:
        validator = registry._crd_validator(key)
        type(validator).check_schema(validator.schema)
        checked += 1
    assert checked > 70
