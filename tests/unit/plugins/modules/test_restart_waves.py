"""The restart_waves module's adapter over the Kubernetes API: the requests it builds, up to
the point where kubernetes.core's client would send them (no API server runs here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

MODULE = Path(__file__).resolve().parents[4] / "plugins" / "modules" / "restart_waves.py"


@pytest.fixture(scope="module")
def restart_waves():
    spec = importlib.util.spec_from_file_location("meshstage_restart_waves", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Listed:
    """What the dynamic client's get returns: an object with to_dict()."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def to_dict(self) -> dict[str, Any]:
        return self.value


class RecordingClient:
    """Stands where kubernetes.core's K8SClient stands, recording each call it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []

    def resource(self, kind: str, api_version: str) -> tuple[str, str]:
        return (api_version, kind)

    def get(self, resource, **params):
        self.calls.append(("get", resource, params))
        if "name" in params:  # read one: the API returns no apiVersion/kind in some paths
            return Listed({"metadata": {"name": params["name"],
                                        "namespace": params["namespace"]}})
        return Listed({"items": [{"metadata": {"name": f"{resource[1].lower()}-a",
                                               "namespace": params["namespace"]}}]})

    def patch(self, resource, definition, **params):
        self.calls.append(("patch", resource, {"body": definition, **params}))


def test_lists_each_workload_kind_and_names_items(restart_waves):
    client = RecordingClient()
    workloads = restart_waves.KubernetesWorkloads(client).workloads("bookinfo")
    assert [(c[1], c[2]) for c in client.calls] == [
        (("apps/v1", "Deployment"), {"namespace": "bookinfo"}),
        (("apps/v1", "StatefulSet"), {"namespace": "bookinfo"}),
        (("apps/v1", "DaemonSet"), {"namespace": "bookinfo"}),
    ]
    assert [(w["apiVersion"], w["kind"]) for w in workloads] == [
        ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet")]


def test_restart_is_a_strategic_merge_patch_of_the_pod_template(restart_waves):
    client = RecordingClient()
    api = restart_waves.KubernetesWorkloads(client)
    workload = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "reviews-v1", "namespace": "bookinfo"}}
    patch = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-11-27T10:02:44Z"}}}}}
    api.restart(workload, patch)
    assert client.calls == [("patch", ("apps/v1", "Deployment"), {
        "body": patch, "name": "reviews-v1", "namespace": "bookinfo",
        "content_type": "application/strategic-merge-patch+json"})]
    read = api.read(workload)
    assert (read["apiVersion"], read["kind"]) == ("apps/v1", "Deployment")


def test_now_is_rfc3339_utc(restart_waves):
    import re

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", restart_waves._now())
