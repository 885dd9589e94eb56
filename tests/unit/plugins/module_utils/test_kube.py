"""The Kubernetes facts meshstage writes once: label selectors as the API server reads them."""

from __future__ import annotations

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.kube import (
    LabelPostings,
    ownership_labels,
    selector_matches,
    selector_text,
)


def test_selectors_match_labels_and_expressions():
    labels = {"app": "voting-svc", "environment": "prod"}
    assert selector_matches({"matchLabels": {"app": "voting-svc"}}, labels)
    assert selector_matches({"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["voting-svc", "emoji-svc"]},
        {"key": "environment", "operator": "NotIn", "values": ["dev"]},
        {"key": "tier", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches({"matchExpressions": [
        {"key": "tier", "operator": "Exists"}]}, labels)


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ({"matchLabels": {"app": "reviews"}}, {"app": "reviews", "version": "v1"}, True),
    ({"matchLabels": {"app": "reviews", "version": "v2"}}, {"app": "reviews"}, False),
    ({"matchExpressions": [{"key": "version", "operator": "In", "values": ["v1", "v2"]}]},
     {"version": "v2"}, True),
    ({"matchExpressions": [{"key": "version", "operator": "NotIn", "values": ["v1"]}]},
     {"version": "v1"}, False),
    ({"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}, {"app": "x"}, True),
    ({"matchExpressions": [{"key": "canary", "operator": "Exists"}]}, {"app": "x"}, False),
    ({}, {"app": "x"}, True),
    (None, {"app": "x"}, False),
])
def test_label_selectors(selector, labels, matches):
    assert selector_matches(selector, labels) is matches


def test_an_operator_the_api_does_not_know_selects_nothing():
    assert not selector_matches(
        {"matchExpressions": [{"key": "app", "operator": "Like", "values": ["x"]}]},
        {"app": "x"})


def test_ownership_labels_and_selector_text():
    labels = ownership_labels("prod")
    assert labels == {"app.kubernetes.io/managed-by": "meshstage",
                      "meshstage.io/environment": "prod"}
    assert selector_text(labels) == \
        "app.kubernetes.io/managed-by=meshstage,meshstage.io/environment=prod"


def test_label_postings_give_every_item_that_may_select_the_labels_once_in_order():
    postings = LabelPostings()
    postings.add({}, "everyone")
    postings.add({"app": "a", "version": "v1"}, "a-v1")  # posted under app=a only
    postings.add({"tier": "web"}, "web")
    postings.add({"app": "b"}, "b")
    postings.add({}, "everyone-later")
    # a candidate may still not select them (a-v1 asks version v1): the caller matches
    assert postings.candidates({"app": "a", "version": "v2", "tier": "web"}) == \
        ["everyone", "a-v1", "web", "everyone-later"]
    assert postings.candidates({"version": "v1"}) == ["everyone", "everyone-later"]
    assert LabelPostings().candidates({"app": "a"}) == []
