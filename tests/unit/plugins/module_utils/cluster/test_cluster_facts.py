"""Cluster facts for the gates: pods with and without the sidecar per namespace, on Pods
recorded from `kubectl get pods -o json` (fixtures/cluster/pods.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.cluster.cluster_facts import (
    has_sidecar,
    opted_out,
    sidecar_facts,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError

PODS = json.loads((Path(__file__).parent / "fixtures" / "cluster" / "pods.json").read_text())


def pod(name: str) -> dict:
    (found,) = [p for p in PODS["items"] if p["metadata"]["name"].startswith(name)]
    return found


def test_istio_facts_per_namespace():
    facts = sidecar_facts(PODS["items"], "istio", namespaces=["bookinfo", "payments", "empty"])
    assert facts == {"provider": "istio", "namespaces": {
        "bookinfo": {
            "pods": 5,
            "with_sidecar": ["details-v1-5f4d584748-hx8gs", "log-agent-x7k2d",
                             "ratings-v1-9c9b5d6c4-8qv2z"],
            "without_sidecar": ["reviews-v1-5b5d6c9f8d-2xk7p", "reviews-v1-5b5d6c9f8d-9qwln"],
            "apps_without_sidecar": ["reviews"],
        },
        "empty": {"pods": 0, "with_sidecar": [], "without_sidecar": [],
                  "apps_without_sidecar": []},
        "payments": {"pods": 1, "with_sidecar": [],
                     "without_sidecar": ["order-service-6d4b8f7c9-lm2rt"],
                     "apps_without_sidecar": ["order-service"]},
    }}


def test_linkerd_facts_look_for_linkerd_proxy():
    facts = sidecar_facts(PODS["items"], "linkerd")["namespaces"]
    assert facts["payments"]["with_sidecar"] == ["order-service-6d4b8f7c9-lm2rt"]
    assert facts["bookinfo"]["with_sidecar"] == []


def test_native_sidecar_counts_but_istio_init_does_not():
    assert has_sidecar(pod("ratings-v1"), "istio")  # istio-proxy as init, restartPolicy Always
    init_only = json.loads(json.dumps(pod("ratings-v1")))
    del init_only["spec"]["initContainers"][1]["restartPolicy"]
    assert not has_sidecar(init_only, "istio")


def test_finished_pods_are_not_counted():
    facts = sidecar_facts(PODS["items"], "istio")["namespaces"]["bookinfo"]
    assert not any(name.startswith("db-migrate") for name in facts["without_sidecar"])


def test_an_unknown_provider_is_named():
    with pytest.raises(MeshstageError, match="provider 'consul' has no known sidecar container"):
        has_sidecar(pod("details-v1"), "consul")


def test_opt_out_markers_per_provider():
    template = {"metadata": {"annotations": {"linkerd.io/inject": "disabled"},
                             "labels": {"app": "legacy-billing"}}}
    assert opted_out(template, "linkerd")
    assert not opted_out(template, "istio")
    assert opted_out(template, "istio", [{"app": "legacy-billing"}])
