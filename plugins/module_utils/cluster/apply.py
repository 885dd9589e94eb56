"""Applying an environment to its cluster: apply order, prune selection, the cluster plan.

Pure functions over plain data (the objects as ``kubectl get -o json`` shows them); the
playbook's ``cluster_apply`` role sends them with kubernetes.core.

Apply order is data (``APPLY_ORDER``), in the manner of lightkube's ``RANK_ORDER``: what
others depend on first (CRDs, Namespaces), what can lock traffic out last (STRICT mTLS,
DENY rules, default deny, Linkerd Servers). Delete order is its exact reverse. Within a rank
objects keep the order they came in (the render's: stage, then file name).

Prune selection trusts nothing but the labels on the live object: only objects that carry
``app.kubernetes.io/managed-by: meshstage`` and ``meshstage.io/environment: <env>``, are no
Namespace (meshstage never owns one, see docs/decisions.md), have no owner of their own, and
are no longer rendered, are deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import MeshstageError
from ..intent.model import Intent
from ..kube import FIELD_MANAGER, ownership_labels
from ..stages import Stage

# Kinds not named below: after routing, before anything that can lock traffic out.
OTHER = "*"

APPLY_ORDER: tuple[tuple[str, ...], ...] = (
    ("CustomResourceDefinition",),
    ("Namespace",),
    ("ServiceAccount", "Secret", "ConfigMap", "Service"),
    # the proxies' own configuration
    ("ProxyConfig", "Telemetry", "Sidecar", "EnvoyFilter", "WasmPlugin"),
    # where traffic goes
    ("ServiceEntry", "WorkloadEntry", "ExternalWorkload", "EgressNetwork", "DestinationRule",
     "Gateway", "VirtualService", "HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute",
     "ServiceProfile", "TrafficSplit"),
    (OTHER,),
    # mTLS: exceptions and PERMISSIVE first, then STRICT refuses plaintext
    ("PeerAuthentication",),
    ("PeerAuthentication:strict",),
    # authorization: who is who, ALLOW rules, then DENY rules, then default deny
    ("MeshTLSAuthentication", "NetworkAuthentication", "RequestAuthentication"),
    ("AuthorizationPolicy", "ServerAuthorization", "HTTPLocalRateLimitPolicy"),
    ("AuthorizationPolicy:deny",),
    # a Linkerd Server denies whatever no authorization allows on its port
    ("AuthorizationPolicy:deny-all", "Server"),
)

_RANK: dict[str, int] = {name: rank for rank, names in enumerate(APPLY_ORDER) for name in names}

# Waits beyond "the object exists", by kind (kubernetes.core.k8s wait_condition).
WAIT_CONDITIONS: dict[str, dict[str, str]] = {
    "CustomResourceDefinition": {"type": "Established", "status": "True"},
}


def apply_class(obj: Mapping[str, Any]) -> str:
    """The name ``APPLY_ORDER`` ranks an object by: its kind, or kind and variant."""
    kind = str(obj.get("kind", ""))
    spec = obj.get("spec") or {}
    if kind == "PeerAuthentication" and (spec.get("mtls") or {}).get("mode") == "STRICT":
        return "PeerAuthentication:strict"
    if kind == "AuthorizationPolicy" and "security.istio.io" in str(obj.get("apiVersion")):
        action = spec.get("action", "ALLOW")
        if action == "DENY":
            return "AuthorizationPolicy:deny"
        if action == "ALLOW" and not spec.get("rules"):
            return "AuthorizationPolicy:deny-all"  # allow-nothing: ALLOW without rules
    return kind


def apply_rank(obj: Mapping[str, Any]) -> int:
    """Position of the object's class in ``APPLY_ORDER`` (unknown kinds rank as ``OTHER``)."""
    return class_rank(apply_class(obj))


def class_rank(name: str) -> int:
    """Position of an ``apply_class`` name in ``APPLY_ORDER`` (unknown ones rank as ``OTHER``)."""
    return _RANK.get(name, _RANK[OTHER])


def apply_order(objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Objects in the order to apply them; stable within a rank."""
    return sorted(objects, key=apply_rank)


def delete_order(objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Objects in the order to delete them: the exact reverse of ``apply_order``."""
    return list(reversed(apply_order(objects)))


def identity(obj: Mapping[str, Any]) -> str:
    """``group Kind namespace/name`` (version left out: one object, whatever version)."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    return f"{group} {obj.get('kind')} {namespace}/{meta.get('name')}"


def resource_name(obj: Mapping[str, Any]) -> str:
    """``Kind namespace/name`` (or ``Kind name``), the way errors name an object."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    name = f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))
    return f"{obj.get('kind')} {name}"


def owned_by(obj: Mapping[str, Any], environment: str) -> bool:
    """True when the live object carries meshstage's ownership labels for ``environment``."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in ownership_labels(environment).items())


def ownership_selector(environment: str) -> list[str]:
    """Label selectors (kubernetes.core ``label_selectors``) of the objects meshstage owns."""
    return [f"{key}={value}" for key, value in ownership_labels(environment).items()]


def prune_selection(live: Iterable[Mapping[str, Any]], rendered: Iterable[str],
                    environment: str) -> list[Mapping[str, Any]]:
    """Live objects to delete, in delete order.

    ``live`` is what the cluster holds (any selector already applied is not trusted);
    ``rendered`` the identities (``identity``) the current render has. An object is pruned
    only when it carries both ownership labels for ``environment``, is not a Namespace, has
    no ``ownerReferences`` (its owner deletes it) and is no longer rendered.
    """
    keep = set(rendered)
    selected: dict[str, Mapping[str, Any]] = {}
    for obj in live:
        meta = obj.get("metadata") or {}
        if obj.get("kind") == "Namespace" or meta.get("ownerReferences"):
            continue
        if not owned_by(obj, environment) or identity(obj) in keep:
            continue
        selected.setdefault(identity(obj), obj)
    return delete_order(sorted(selected.values(), key=identity))


def prune_kinds() -> list[dict[str, str]]:
    """Every kind meshstage may have applied, for any provider: where prune looks."""
    return [{"api_version": api_version, "kind": kind} for api_version, kind in _OWNED_KINDS]


# (apiVersion, kind) of everything meshstage renders into an environment's stage folders,
# any provider. A kind missing here would never be pruned; test_apply checks the renderers.
_OWNED_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ConfigMap"),
    ("v1", "Service"),  # the per-version Services of Gateway API routes
    ("networking.istio.io/v1beta1", "ProxyConfig"),
    ("telemetry.istio.io/v1", "Telemetry"),
    ("networking.istio.io/v1", "Sidecar"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "VirtualService"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("policy.linkerd.io/v1beta3", "Server"),
    ("policy.linkerd.io/v1alpha1", "AuthorizationPolicy"),
    ("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication"),
    ("policy.linkerd.io/v1alpha1", "NetworkAuthentication"),
    ("policy.linkerd.io/v1beta3", "HTTPRoute"),
    ("split.smi-spec.io/v1alpha1", "TrafficSplit"),
)


def rollback_steps(rendered: Sequence[Mapping[str, Any]], live: Iterable[Mapping[str, Any]],
                   environment: str) -> list[dict[str, Any]]:
    """Moving back to an earlier stage: applies and deletes in one reverse apply order.

    Each step ranks by the higher of what is live and what is rendered: a PeerAuthentication
    going from STRICT back to PERMISSIVE ranks as STRICT, so it is relaxed before the
    exceptions that only STRICT needed are deleted, and before DestinationRules stop asking
    for mTLS. Default deny goes first, then DENY rules, then ALLOW rules. Within a rank,
    deletes come before applies, each in reverse apply order. Deletes are exactly
    ``prune_selection``'s.
    """
    live = list(live)
    live_by_id = {identity(obj): obj for obj in live if owned_by(obj, environment)}
    steps: list[tuple[int, int, int, dict[str, Any]]] = []
    for index, obj in enumerate(apply_order(rendered)):
        before = live_by_id.get(identity(obj))
        rank = max(apply_rank(obj), apply_rank(before) if before is not None else 0)
        steps.append((rank, 0, index, {"action": "apply", "resource": resource_name(obj),
                                       "definition": dict(obj)}))
    deletes = list(reversed(prune_selection(live, [identity(o) for o in rendered],
                                            environment)))
    for index, obj in enumerate(deletes):
        steps.append((apply_rank(obj), 1, index, {"action": "delete",
                                                  "resource": resource_name(obj),
                                                  "definition": _reference(obj)}))
    return [step for *_, step in sorted(steps, key=lambda s: (s[0], s[1], s[2]), reverse=True)]


def _reference(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Just enough of an object to delete it."""
    meta = obj.get("metadata") or {}
    reference: dict[str, Any] = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                                 "metadata": {"name": meta.get("name")}}
    if meta.get("namespace"):
        reference["metadata"]["namespace"] = meta["namespace"]
    return reference


def cluster_plan(intent: Intent, objects: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the cluster_apply role does for ``intent``'s environment, as plain data.

    ``objects`` are the environment's rendered stage objects (not the sync or install
    objects), returned in apply order. ``waves`` are the injected waves to restart (none
    before the injection stage).
    """
    for obj in objects:
        meta = obj.get("metadata") or {}
        if obj.get("kind") != "Namespace" and not owned_by(obj, intent.environment):
            raise MeshstageError(
                f"environment {intent.environment}, stage {intent.stage.value}: "
                f"{resource_name(obj)}: metadata.labels lack the ownership labels "
                f"{' and '.join(ownership_selector(intent.environment))}; a later run could "
                "not prune it")
        if not meta.get("name"):
            raise MeshstageError(f"environment {intent.environment}: {resource_name(obj)}: "
                                 "metadata.name is empty")
    injecting = intent.stage.reached(Stage.INJECTION)
    waves = intent.injection_waves[: intent.injected_waves] if injecting else ()
    return {
        "environment": intent.environment,
        "provider": intent.provider,
        "stage": intent.stage.value,
        "field_manager": FIELD_MANAGER,
        "apply": [
            {"resource": resource_name(obj), "definition": dict(obj),
             "wait_condition": WAIT_CONDITIONS.get(str(obj.get("kind")))}
            for obj in apply_order(objects)
        ],
        "rendered": sorted(identity(obj) for obj in objects),
        "prune_kinds": prune_kinds(),
        "label_selectors": ownership_selector(intent.environment),
        "waves": [{"name": wave.name, "namespaces": list(wave.namespaces)} for wave in waves],
        "namespaces": list(intent.namespaces),
        "opt_outs": [{"namespace": s.namespace, "selector": s.selector}
                     for s in intent.kept_from_injection()],
    }
