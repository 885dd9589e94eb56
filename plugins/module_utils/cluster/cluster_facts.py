"""Which pods carry the mesh's proxy: the cluster facts the safety gates consume.

Pure functions over Pods as ``kubectl get pods -o json`` shows them. A pod has the sidecar
when the provider's proxy container is among its ``containers``, or among its
``initContainers`` with ``restartPolicy: Always`` (a native sidecar, as Istio and Linkerd
inject it on Kubernetes 1.29 and later).

The facts' shape (documented in docs/architecture.md, "Cluster facts")::

    {"provider": "istio",
     "namespaces": {"bookinfo": {"pods": 3,
                                 "with_sidecar": ["details-v1-5f4d584748-hx8gs", ...],
                                 "without_sidecar": ["ratings-v1-9c9b5d6c4-8qv2z"],
                                 "apps_without_sidecar": ["ratings"]}}}

Pods that finished (``Succeeded``, ``Failed``) or are being deleted are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import MeshstageError
from ..providers.provider import Sidecar
from ..providers.registry import MESHES


def sidecar(provider: str) -> Sidecar:
    """The provider's sidecar: its proxy container and opt-out markers."""
    found = MESHES[provider].sidecar if provider in MESHES else None
    if found is None:
        raise MeshstageError(f"provider {provider!r} has no known sidecar container (known: "
                             + ", ".join(sorted(MESHES)) + ")")
    return found


def has_sidecar(pod: Mapping[str, Any], provider: str) -> bool:
    """True when the pod runs the provider's proxy, as a container or a native sidecar."""
    name = sidecar(provider).container
    spec = pod.get("spec") or {}
    if any(c.get("name") == name for c in spec.get("containers") or ()):
        return True
    return any(c.get("name") == name and c.get("restartPolicy") == "Always"
               for c in spec.get("initContainers") or ())


def counted(pod: Mapping[str, Any]) -> bool:
    """Pods that run or will run: not finished, not being deleted."""
    meta = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not meta.get("deletionTimestamp")


def sidecar_facts(pods: Iterable[Mapping[str, Any]], provider: str,
                  namespaces: Sequence[str] = ()) -> dict[str, Any]:
    """Pods with and without the sidecar, per namespace (every one of ``namespaces`` too)."""
    facts: dict[str, dict[str, Any]] = {
        ns: {"pods": 0, "with_sidecar": [], "without_sidecar": [], "apps_without_sidecar": []}
        for ns in namespaces
    }
    for pod in pods:
        if not counted(pod):
            continue
        meta = pod.get("metadata") or {}
        entry = facts.setdefault(str(meta.get("namespace")), {
            "pods": 0, "with_sidecar": [], "without_sidecar": [], "apps_without_sidecar": []})
        entry["pods"] += 1
        if has_sidecar(pod, provider):
            entry["with_sidecar"].append(str(meta.get("name")))
        else:
            entry["without_sidecar"].append(str(meta.get("name")))
            app = (meta.get("labels") or {}).get("app")
            if app:
                entry["apps_without_sidecar"].append(str(app))
    for entry in facts.values():
        for key in ("with_sidecar", "without_sidecar", "apps_without_sidecar"):
            entry[key] = sorted(set(entry[key]))
    return {"provider": provider, "namespaces": dict(sorted(facts.items()))}


def opted_out(template: Mapping[str, Any], provider: str,
              opt_out_selectors: Iterable[Mapping[str, str]] = ()) -> bool:
    """True when a pod template keeps its pods out of injection.

    By the provider's label or annotation on the template, or because its labels carry
    one of ``opt_out_selectors`` (the ``inject: false`` services of the intent).
    """
    meta = template.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    markers = sidecar(provider)
    if any(labels.get(k) == v for k, v in markers.opt_out_labels.items()):
        return True
    if any(annotations.get(k) == v for k, v in markers.opt_out_annotations.items()):
        return True
    return any(all(labels.get(k) == v for k, v in selector.items())
               for selector in opt_out_selectors if selector)
