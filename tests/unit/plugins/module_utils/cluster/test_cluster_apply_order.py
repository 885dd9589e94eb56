"""Apply order, delete order, prune selection and the cluster plan, on rendered objects and on
live objects recorded from `kubectl get -o json` (fixtures/cluster/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.cluster.apply import (
    APPLY_ORDER,
    OTHER,
    apply_class,
    apply_order,
    apply_rank,
    cluster_plan,
    delete_order,
    identity,
    prune_kinds,
    prune_selection,
    resource_name,
    rollback_steps,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.tree import stage_objects

FIXTURES = Path(__file__).parent / "fixtures" / "cluster"


def live_objects() -> list[dict]:
    return json.loads((FIXTURES / "live-objects.json").read_text())["items"]


@pytest.fixture(scope="module")
def dev_objects(tmp_path_factory, crd_dir):
    """Every stage object dev renders at authorization (the example estate)."""
    from conftest import load_example_intent  # tests/conftest.py, on pytest's path

    rendered = render_stage(load_example_intent("dev"),
                            StageOptions(gitops_dir=tmp_path_factory.mktemp("g"),
                                         crd_dirs=[crd_dir]))
    return stage_objects(rendered.objects)


def names(objects) -> list[str]:
    return [resource_name(o) for o in objects]


def position(ordered, predicate) -> list[int]:
    return [i for i, o in enumerate(ordered) if predicate(o)]


def test_namespaces_first_authorization_last(dev_objects):
    ordered = apply_order(dev_objects)
    kinds = [o["kind"] for o in ordered]
    assert kinds[:2] == ["Namespace", "Namespace"]
    assert set(kinds[-9:]) == {"AuthorizationPolicy"}
    assert kinds.index("ConfigMap") < kinds.index("Telemetry") < kinds.index("DestinationRule")
    assert max(position(ordered, lambda o: o["kind"] in ("DestinationRule", "VirtualService"))) \
        < min(position(ordered, lambda o: o["kind"] == "PeerAuthentication"))


def test_mtls_exception_before_mesh_wide_strict(dev_objects):
    ordered = names(apply_order(dev_objects))
    assert ordered.index("PeerAuthentication payments/legacy-billing-mtls-exception") < \
        ordered.index("PeerAuthentication istio-system/default")


def test_allow_rules_then_deny_then_default_deny(dev_objects):
    ordered = apply_order(dev_objects)
    policies = [(o["metadata"]["name"], apply_class(o)) for o in ordered
                if o["kind"] == "AuthorizationPolicy"]
    classes = [cls for _, cls in policies]
    assert classes == sorted(classes, key=["AuthorizationPolicy", "AuthorizationPolicy:deny",
                                           "AuthorizationPolicy:deny-all"].index)
    assert policies[-2:] == [("allow-nothing", "AuthorizationPolicy:deny-all")] * 2
    assert ("payment-service-deny", "AuthorizationPolicy:deny") in policies
    assert classes.count("AuthorizationPolicy:deny-all") == 2


def test_delete_order_is_the_exact_reverse(dev_objects):
    assert names(delete_order(dev_objects)) == list(reversed(names(apply_order(dev_objects))))


def test_order_is_stable_within_a_rank(dev_objects):
    rules = [o for o in dev_objects if o["kind"] == "DestinationRule"]
    assert names(apply_order(rules)) == names(rules)


@pytest.mark.parametrize(("obj", "expected"), [
    ({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"}, 0),
    ({"apiVersion": "example.invalid/v1", "kind": "Widget"}, [OTHER]),
    ({"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server"}, -1),
    ({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
      "spec": {"mtls": {"mode": "STRICT"}}}, ["PeerAuthentication:strict"]),
    # a Linkerd AuthorizationPolicy names its target and its authentications: it allows
    ({"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "AuthorizationPolicy",
      "spec": {}}, ["AuthorizationPolicy", "ServerAuthorization",
                    "HTTPLocalRateLimitPolicy"]),
])
def test_rank_table(obj, expected):
    rank = apply_rank(obj)
    if isinstance(expected, int):
        assert rank == (expected % len(APPLY_ORDER))
    else:
        assert APPLY_ORDER[rank] == tuple(expected)


def test_prune_selects_only_owned_objects_no_longer_rendered():
    live = live_objects()
    rendered = [identity(o) for o in live
                if o["metadata"]["name"] in ("default", "legacy-billing-mtls-exception")]
    selected = names(prune_selection(live, rendered, "prod"))
    assert selected == [
        "AuthorizationPolicy payments/allow-nothing",
        "AuthorizationPolicy payments/payment-service-deny",
        "AuthorizationPolicy payments/payment-service-allow",
        "ProxyConfig istio-system/mesh-default",
    ]


@pytest.mark.parametrize(("name", "why"), [
    ("reviews", "another environment's (meshstage.io/environment: staging)"),
    ("details", "no ownership label"),
    ("ratings", "managed-by meshstage but no environment label"),
    ("legacy", "a Namespace, even with both labels"),
    ("generated", "has an owner of its own (ownerReferences)"),
])
def test_prune_never_selects(name, why):
    selected = {o["metadata"]["name"] for o in prune_selection(live_objects(), [], "prod")}
    assert name not in selected, why


def test_prune_ignores_the_selector_it_was_given_and_reads_the_labels():
    """Even when the API answered a label query, an object without the labels stays."""
    unlabelled = [o for o in live_objects() if o["metadata"]["name"] == "details"]
    assert prune_selection(unlabelled, [], "prod") == []


def test_prune_keeps_an_object_rendered_under_another_api_version():
    (proxy_config,) = [o for o in live_objects() if o["kind"] == "ProxyConfig"]
    rendered = {**proxy_config, "apiVersion": "networking.istio.io/v1"}
    assert prune_selection([proxy_config], [identity(rendered)], "prod") == []


def test_prune_kinds_cover_every_kind_the_istio_renderer_makes(dev_objects):
    looked_at = {(k["api_version"], k["kind"]) for k in prune_kinds()}
    rendered = {(o["apiVersion"], o["kind"]) for o in dev_objects if o["kind"] != "Namespace"}
    assert rendered <= looked_at


@pytest.mark.parametrize(("provider", "traffic_api"), [
    ("istio", "gateway-api"), ("linkerd", "gateway-api"), ("linkerd", "smi")])
def test_prune_kinds_cover_every_kind_the_other_renderers_make(tmp_path, crd_dir, provider,
                                                                 traffic_api):
    from conftest import load_example_intent  # tests/conftest.py, on pytest's path

    variables = {**load_example_intent("dev"), "mesh_provider": provider,
                 "mesh_traffic_api": traffic_api}
    rendered = render_stage(variables, StageOptions(gitops_dir=tmp_path, crd_dirs=[crd_dir]))
    looked_at = {(k["api_version"], k["kind"]) for k in prune_kinds()}
    kinds = {(o["apiVersion"], o["kind"]) for o in stage_objects(rendered.objects)
             if o["kind"] != "Namespace"}
    assert kinds <= looked_at


def test_cluster_plan(dev_objects, example_intent):
    intent, _ = parse_intent(example_intent("dev"))
    forward = cluster_plan(intent, dev_objects)
    assert [item["resource"] for item in forward["apply"]] == names(apply_order(dev_objects))
    assert forward["label_selectors"] == ["app.kubernetes.io/managed-by=meshstage",
                                          "meshstage.io/environment=dev"]
    assert forward["waves"] == [{"name": "bookinfo", "namespaces": ["bookinfo"]},
                                {"name": "payments", "namespaces": ["payments"]}]
    assert forward["opt_outs"] == [{"namespace": "payments",
                                    "selector": {"app": "legacy-billing"}}]
    assert set(forward["rendered"]) == {identity(o) for o in dev_objects}


def test_cluster_plan_restarts_only_injected_waves(example_intent):
    prod, _ = parse_intent(example_intent("prod"))
    assert cluster_plan(prod, [])["waves"] == [{"name": "bookinfo", "namespaces": ["bookinfo"]}]
    before, _ = parse_intent(example_intent("prod", mesh_stage="permissive_mtls"))
    assert cluster_plan(before, [])["waves"] == []


def test_cluster_plan_refuses_an_object_it_could_never_prune(example_intent):
    intent, _ = parse_intent(example_intent("prod"))
    stray = {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
             "metadata": {"name": "x", "namespace": "bookinfo", "labels": {"app": "x"}}}
    with pytest.raises(MeshstageError, match=r"environment prod, stage injection: Sidecar "
                       r"bookinfo/x: metadata.labels lack the ownership labels"):
        cluster_plan(intent, [stray])


def rendered_at(stage: str, crd_dir, tmp_path) -> list[dict]:
    from conftest import load_example_intent

    rendered = render_stage({**load_example_intent("dev"), "mesh_stage": stage},
                            StageOptions(gitops_dir=tmp_path, crd_dirs=[crd_dir]))
    return stage_objects(rendered.objects)


def test_rollback_from_authorization_removes_default_deny_first(dev_objects, crd_dir, tmp_path):
    """Back before strict_mtls, the policies leave, default deny first, before anything else
    changes."""
    steps = rollback_steps(rendered_at("traffic", crd_dir, tmp_path), dev_objects, "dev")
    policies = [s for s in steps if s["resource"].startswith("AuthorizationPolicy ")]
    assert len(policies) == 11
    assert all(s["action"] == "delete" for s in policies)
    assert steps[:len(policies)] == policies  # nothing else changes before they are gone
    order = [apply_class(d["definition"] | {"spec": dev_spec(dev_objects, d)})
             for d in policies]
    assert order == sorted(order, key=["AuthorizationPolicy:deny-all",
                                       "AuthorizationPolicy:deny",
                                       "AuthorizationPolicy"].index)
    assert policies[0]["definition"] == {
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "allow-nothing", "namespace": "payments"}}


def test_rollback_to_strict_mtls_turns_the_policies_into_a_dry_run_default_deny_first(
        dev_objects, crd_dir, tmp_path):
    """At strict_mtls the authorization rules are a dry run (istio.io/dry-run): going back,
    each policy is re-applied with the annotation, default deny first."""
    steps = rollback_steps(rendered_at("strict_mtls", crd_dir, tmp_path), dev_objects, "dev")
    policies = [s for s in steps if s["resource"].startswith("AuthorizationPolicy ")]
    assert len(policies) == 11 and steps[:11] == policies
    assert all(s["action"] == "apply" for s in policies)
    assert all(s["definition"]["metadata"]["annotations"] == {"istio.io/dry-run": "true"}
               for s in policies)
    assert sorted(s["resource"] for s in policies[:2]) == [
        "AuthorizationPolicy bookinfo/allow-nothing", "AuthorizationPolicy payments/allow-nothing"]


def dev_spec(objects, step) -> dict:
    (found,) = [o for o in objects if resource_name(o) == step["resource"]]
    return found.get("spec", {})


def test_rollback_from_strict_relaxes_mtls_before_clients_stop_sending_it(crd_dir, tmp_path):
    live = rendered_at("strict_mtls", crd_dir, tmp_path / "a")
    steps = rollback_steps(rendered_at("traffic", crd_dir, tmp_path / "b"), live, "dev")
    sequence = [(s["action"], s["resource"]) for s in steps]
    relax = sequence.index(("apply", "PeerAuthentication istio-system/default"))
    exception = sequence.index(
        ("delete", "PeerAuthentication payments/legacy-billing-mtls-exception"))
    # the webhook port's exception (mode UNSET, a PERMISSIVE port) stays until the mesh is
    # no longer STRICT; ratings-db's peers Service comes with the first sidecar, so the
    # traffic stage keeps it
    webhook = sequence.index(
        ("delete", "PeerAuthentication payments/payment-policy-mtls-exception"))
    assert ("delete", "Service bookinfo/ratings-db-peers") not in sequence
    first_rule = min(i for i, (_, name) in enumerate(sequence)
                     if name.startswith("DestinationRule "))
    namespaces = [i for i, (_, name) in enumerate(sequence) if name.startswith("Namespace ")]
    assert relax < exception < first_rule < min(namespaces)
    assert relax < webhook
    # only the dry-run policies of strict_mtls (they enforce nothing) leave before it
    assert all(name.startswith("AuthorizationPolicy ") and action == "delete"
               for action, name in sequence[:relax])


def test_rollback_never_deletes_what_prune_would_not(dev_objects):
    steps = rollback_steps([], live_objects() + dev_objects, "prod")
    assert {s["resource"] for s in steps if s["action"] == "delete"} == {
        "AuthorizationPolicy payments/allow-nothing",
        "AuthorizationPolicy payments/payment-service-deny",
        "AuthorizationPolicy payments/payment-service-allow",
        "ProxyConfig istio-system/mesh-default",
        "PeerAuthentication istio-system/default",
        "PeerAuthentication payments/legacy-billing-mtls-exception",
    }
