"""A cluster export built from sample manifests, as ``kubectl get -A -o yaml`` shows a cluster
that runs them: one ``kind: List`` whose items carry what the API server adds (uid,
resourceVersion, creationTimestamp, managedFields, status, a Service's clusterIP), each
Deployment's ReplicaSet and Pod (owned, by uid), and in the namespaces a mesh injects, the
proxy the injector put into the pods (Istio's ``istio-proxy`` with its ``istio-init``, or
Linkerd's ``linkerd-proxy`` with ``linkerd-init``) and the labels it added.

    export = cluster_export([("bookinfo", docs)], injected={"bookinfo": "istio"})
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

_PROXIES = {
    "istio": ({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.29.2",
               "ports": [{"containerPort": 15090, "name": "http-envoy-prom"}]},
              {"name": "istio-init", "image": "docker.io/istio/proxyv2:1.29.2"},
              {"security.istio.io/tlsMode": "istio", "service.istio.io/canonical-revision": "v1"}),
    "linkerd": ({"name": "linkerd-proxy", "image": "cr.l5d.io/linkerd/proxy:edge-26.8.3",
                 "ports": [{"containerPort": 4143, "name": "linkerd-proxy"},
                           {"containerPort": 4191, "name": "linkerd-admin"}]},
                {"name": "linkerd-init", "image": "cr.l5d.io/linkerd/proxy-init:v2.4.1"},
                {"linkerd.io/control-plane-ns": "linkerd"}),
}


def _uid(*parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _served(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    if obj["kind"] != "Namespace":
        meta.setdefault("namespace", namespace)
    meta["uid"] = _uid(obj["kind"], meta.get("namespace", ""), meta["name"])
    meta["resourceVersion"] = str(int(meta["uid"][:6], 16))
    meta["creationTimestamp"] = "2026-08-01T10:00:00Z"
    meta["managedFields"] = [{"apiVersion": obj["apiVersion"], "fieldsType": "FieldsV1",
                              "manager": "kubectl-client-side-apply", "operation": "Update",
                              "time": "2026-08-01T10:00:00Z", "fieldsV1": {"f:metadata": {}}}]
    if obj["kind"] == "Service":
        obj["spec"]["clusterIP"] = "10.96.0." + str(int(meta["uid"][:2], 16))
        obj["spec"].setdefault("type", "ClusterIP")
        obj["status"] = {"loadBalancer": {}}
    elif obj["kind"] == "Deployment":
        obj["status"] = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                         "observedGeneration": 1}
    return obj


def _owned(owner: Mapping[str, Any], kind: str, name: str) -> dict[str, Any]:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def _pods(deployment: dict[str, Any], mesh: str | None) -> list[dict[str, Any]]:
    meta = deployment["metadata"]
    template = copy.deepcopy(deployment["spec"]["template"])
    hash_ = meta["uid"][:10].replace("-", "")
    labels = {**template["metadata"].get("labels", {}), "pod-template-hash": hash_}
    replicaset = _served({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                          "metadata": {"name": f"{meta['name']}-{hash_}",
                                       "namespace": meta["namespace"], "labels": labels},
                          "spec": {"replicas": 1, "template": {
                              **template, "metadata": {**template["metadata"],
                                                       "labels": labels}}}},
                         meta["namespace"])
    replicaset["metadata"]["ownerReferences"] = [_owned(deployment, "ReplicaSet", "")]
    spec = template["spec"]
    annotations = dict(template["metadata"].get("annotations") or {})
    if mesh is not None:
        proxy, init, added = _PROXIES[mesh]
        spec["containers"] = [*spec.get("containers", []), dict(proxy)]
        spec["initContainers"] = [dict(init), *spec.get("initContainers", [])]
        labels = {**labels, **added}
    spec.setdefault("serviceAccountName", "default")
    pod = _served({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{replicaset['metadata']['name']}-x7k2q",
                                "namespace": meta["namespace"], "labels": labels,
                                "annotations": annotations},
                   "spec": {**spec, "nodeName": "node-1"}}, meta["namespace"])
    pod["metadata"]["ownerReferences"] = [_owned(replicaset, "Pod", "")]
    pod["status"] = {"phase": "Running", "podIP": "10.244.0.12",
                     "containerStatuses": [{"name": c["name"], "ready": True,
                                            "restartCount": 0} for c in spec["containers"]]}
    return [replicaset, pod]


def cluster_export(apps: Iterable[tuple[str, Iterable[Mapping[str, Any]]]],
                   injected: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``apps``: (namespace, the app's manifests); ``injected``: namespace -> mesh."""
    injected = injected or {}
    items: list[dict[str, Any]] = []
    for namespace, documents in apps:
        mesh = injected.get(namespace)
        ns: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": namespace, "labels": {
                                  "kubernetes.io/metadata.name": namespace}}}
        if mesh == "istio":
            ns["metadata"]["labels"]["istio-injection"] = "enabled"
        elif mesh == "linkerd":
            ns["metadata"]["annotations"] = {"linkerd.io/inject": "enabled"}
        if not any(d.get("kind") == "Namespace" for d in documents):
            items.append(_served(ns, namespace))
        for document in documents:
            if document.get("kind") == "Namespace":
                document = {**document, "metadata": {**document["metadata"],
                                                     **ns["metadata"]}}
            served = _served(dict(document), namespace)
            items.append(served)
            if served["kind"] == "Deployment":
                items += _pods(served, mesh)
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": items}
