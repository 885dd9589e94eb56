"""The Linkerd analyzers on Linkerd's own samples (../shared/reference/samples/linkerd).

Coherent sample sets (an app and its policy, applied to the namespace the docs apply them
to) pass without an Error; the fragments of the authorization-policy reference page name
Servers defined on other pages, and analyzed alone that is what they report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import analyze
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    read_manifests,
)

SAMPLES = Path(__file__).resolve().parents[5].parent / "shared" / "reference" / "samples" / \
    "linkerd"
EMOJIVOTO = ["website/run.linkerd.io/public/emojivoto.yml",
             "website/run.linkerd.io/public/emojivoto-policy.yml"]
BOOKSAPP = ["website/run.linkerd.io/public/booksapp.yml",
            "website-docs/tasks_configuring-per-route-policy.yaml"]


def check(paths: list[str], namespace: str = "default", **options: object):
    manifests = read_manifests([SAMPLES / p for p in paths], default_namespace=namespace)
    return analyze(manifests.resources, **options)


@pytest.mark.parametrize(("paths", "namespace"), [
    (EMOJIVOTO, "emojivoto"),
    (BOOKSAPP, "booksapp"),
    (["linkerd2/test/integration/install/testdata/smoke_test.yaml"], "default"),
    (["linkerd2/test/integration/viz/policy/testdata/emoji-policy.yaml"], "default"),
    (["linkerd2/test/integration/deep/dualstack/testdata/ipfamilies-policy.yml"], "default"),
    (["linkerd2/grafana/authzpolicy-grafana.yaml"], "default"),
    (["linkerd-smi/test/testdata"], "default"),
    *[([f"website-docs/{page}"], "default") for page in (
        "reference_httproute.yaml", "tasks_configuring-dynamic-request-routing.yaml",
        "tasks_configuring-per-route-policy.yaml", "tasks_managing-egress-traffic.yaml",
        "tasks_restricting-access.yaml", "tasks_traffic-shifting.yaml")],
], ids=lambda value: value if isinstance(value, str) else value[0].rpartition("/")[2])
def test_correct_samples_pass(paths, namespace):
    report = check(paths, namespace)
    assert report.errors == [] and report.warnings == [], [f.line() for f in report.findings]


def test_the_emojivoto_and_booksapp_apps_are_fully_checked():
    """With the apps in the input nothing is left unchecked by the Linkerd analyzers."""
    for paths, namespace in ((EMOJIVOTO, "emojivoto"), (BOOKSAPP, "booksapp")):
        report = check(paths, namespace, providers=["linkerd"])
        assert report.unchecked == [], [u.line() for u in report.unchecked]


def test_reference_page_fragments_name_servers_of_other_pages():
    page = ["website-docs/reference_authorization-policy.yaml"]
    assert sorted((f.code, f.resource) for f in check(page).findings) == [
        ("MST0203", "ServerAuthorization emojivoto/emoji-grpc"),
        ("MST0203", "ServerAuthorization emojivoto/prom-prometheus"),
        ("MST0203", "ServerAuthorization emojivoto/web-public"),
    ]
    # with the emojivoto policy those Servers exist (and carry the labels selected)
    assert check(page + EMOJIVOTO, "emojivoto").errors == []
    # taken as the whole cluster, the page's linkerd-viz/prometheus account is missing
    assert ("MST0206", "ServerAuthorization emojivoto/prom-prometheus") in {
        (f.code, f.resource) for f in check(page + EMOJIVOTO, "emojivoto", complete=True).errors}


def test_booksapp_without_the_probe_route_refuses_the_probes():
    """The per-route task before its probe step: HTTPRoutes on authors-server, and the
    readiness probe's GET /ping no longer authorized."""
    manifests = read_manifests([SAMPLES / p for p in BOOKSAPP], default_namespace="booksapp")
    resources = [r for r in manifests.resources if "probe" not in r.name]
    report = analyze(resources, providers=["linkerd"])
    assert [(f.code, f.resource) for f in report.findings] == [
        ("MST0205", "Server booksapp/authors-server")]
    assert "GET /ping on port 7001" in report.findings[0].message


def test_emojivoto_with_a_broken_policy_is_caught():
    manifests = read_manifests([SAMPLES / p for p in EMOJIVOTO], default_namespace="emojivoto")
    broken = []
    for resource in manifests.resources:
        obj = resource.obj
        if resource.kind == "Server" and resource.name == "web-http":
            obj = {**obj, "spec": {**obj["spec"], "port": "web"}}
        if resource.kind == "ServerAuthorization" and resource.name == "internal-grpc":
            obj = {**obj, "spec": {**obj["spec"], "client": {"meshTLS": {
                "serviceAccounts": [{"name": "webapp"}]}}}}
        broken.append(obj)
    from ansible_collections.meshstage.mesh.plugins.module_utils.estate.objects import (
        make_resource,
    )
    report = analyze([make_resource(o, default_namespace="emojivoto") for o in broken],
                     providers=["linkerd"])
    assert sorted((f.code, f.resource) for f in report.findings) == [
        ("MST0201", "Server emojivoto/web-http"),
        ("MST0206", "ServerAuthorization emojivoto/internal-grpc"),
    ]
