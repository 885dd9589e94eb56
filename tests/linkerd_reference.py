"""Helpers for comparing rendered objects with upstream examples: CRD defaulting, and the
(client, server port) pairs a set of Linkerd policy objects allows.

Both are written from the published semantics (the CRD schemas in ../shared/reference/crds,
and Linkerd's authorization-policy reference), not from Linkerd's code.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CrdDefaults:
    """Apply the ``default`` values of a CRD's structural schema, as the API server does."""

    def __init__(self, crd_dir: Path) -> None:
        self.schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
        for path in sorted(crd_dir.rglob("*.yaml")):
            for doc in yaml.load_all(path.read_text(), Loader=_LOADER):
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    schema = (version.get("schema") or {}).get("openAPIV3Schema")
                    if schema:
                        self.schemas[(spec["group"], version["name"],
                                      spec["names"]["kind"])] = schema

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        group, _, version = obj["apiVersion"].rpartition("/")
        schema = self.schemas[(group, version, obj["kind"])]
        return _default(copy.deepcopy(dict(obj)), schema)


def _default(value: Any, schema: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                value[name] = _default(value[name], prop)
    elif isinstance(value, list) and "items" in schema:
        return [_default(item, schema["items"]) for item in value]
    return value


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=_LOADER) if doc]


# --------------------------------------------------------------------------- allowed pairs


@dataclass(frozen=True)
class Pod:
    """A workload's pods: namespace, labels, and its ports by name."""

    app: str
    namespace: str
    labels: Mapping[str, str]
    ports: Mapping[str, int]


@dataclass(frozen=True)
class Caller:
    """A client: a mesh identity, or None for a plaintext client."""

    name: str
    identity: str | None


@dataclass
class PolicyModel:
    """The policy objects of one namespace world, and the cluster's default policy."""

    objects: list[dict[str, Any]]
    cluster_default: str = "all-unauthenticated"
    namespace_defaults: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for obj in self.objects:
            if obj["kind"] == "Namespace":
                policy = (obj["metadata"].get("annotations") or {}).get(
                    "config.linkerd.io/default-inbound-policy")
                if policy:
                    self.namespace_defaults[obj["metadata"]["name"]] = policy

    def of(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind
                and o["metadata"].get("namespace", namespace) == namespace]


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _port_of(server: Mapping[str, Any], pod: Pod) -> int | None:
    port = server["spec"]["port"]
    if isinstance(port, int):
        return port if port in pod.ports.values() else None
    return pod.ports.get(port)


def _identity_matches(pattern: str, identity: str | None) -> bool:
    if identity is None:
        return False
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return identity.endswith(pattern[1:])
    return pattern == identity


def _all_networks(networks: Iterable[Mapping[str, Any]]) -> bool:
    """True when the networks hold every address (this model has no caller addresses)."""
    cidrs = {str(ipaddress.ip_network(n["cidr"])) for n in networks}
    return {"0.0.0.0/0", "::/0"} <= cidrs or "0.0.0.0/0" in cidrs


def _by_default(policy: str, caller: Caller) -> bool:
    if policy in ("all-unauthenticated", "cluster-unauthenticated", "audit"):
        return True
    if policy in ("all-authenticated", "cluster-authenticated"):
        return caller.identity is not None
    return False


def _server_authorization_allows(auth: Mapping[str, Any], caller: Caller,
                                 namespace: str) -> bool:
    client = auth["spec"]["client"]
    networks = client.get("networks")
    if networks is not None and not _all_networks(networks):
        return False
    if client.get("unauthenticated"):
        return True
    mesh = client.get("meshTLS") or {}
    if mesh.get("unauthenticatedTLS"):
        return caller.identity is not None
    for pattern in mesh.get("identities") or []:
        if _identity_matches(pattern, caller.identity):
            return True
    for account in mesh.get("serviceAccounts") or []:
        identity = (f"{account['name']}.{account.get('namespace', namespace)}"
                    ".serviceaccount.identity.linkerd.cluster.local")
        if caller.identity == identity:
            return True
    return False


def _authentication_allows(model: PolicyModel, ref: Mapping[str, Any], caller: Caller,
                           namespace: str) -> bool:
    kind, name = ref["kind"], ref["name"]
    ns = ref.get("namespace", namespace)
    if kind == "ServiceAccount":
        return caller.identity == (f"{name}.{ns}.serviceaccount.identity.linkerd."
                                   "cluster.local")
    found = [o for o in model.of(kind, ns) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {ns}/{name}: {len(found)} found"
    spec = found[0]["spec"]
    if kind == "NetworkAuthentication":
        return _all_networks(spec["networks"])
    patterns = list(spec.get("identities") or [])
    for account in spec.get("identityRefs") or []:
        patterns.append(f"{account['name']}.{account.get('namespace', ns)}"
                        ".serviceaccount.identity.linkerd.cluster.local")
    return any(_identity_matches(p, caller.identity) for p in patterns)


def _policy_targets(model: PolicyModel, policy: Mapping[str, Any], server: Mapping[str, Any],
                    namespace: str) -> bool:
    target = policy["spec"]["targetRef"]
    if target["kind"] == "Namespace":
        return target["name"] == namespace
    if target["kind"] == "Server":
        return target["name"] == server["metadata"]["name"]
    if target["kind"] == "HTTPRoute":
        routes = [r for r in model.of("HTTPRoute", namespace)
                  if r["metadata"]["name"] == target["name"]
                  and r["apiVersion"].startswith(target.get("group", "policy.linkerd.io"))]
        return any(parent.get("kind") == "Server"
                   and parent["name"] == server["metadata"]["name"]
                   for route in routes for parent in route["spec"]["parentRefs"])
    return False


def allowed_pairs(model: PolicyModel, pods: Iterable[Pod],
                  callers: Iterable[Caller]) -> set[tuple[str, str, int]]:
    """Every (caller, workload, port) the policy lets through on some request."""
    callers = list(callers)
    pairs: set[tuple[str, str, int]] = set()
    for pod in pods:
        namespace = pod.namespace
        servers = model.of("Server", namespace)
        for port in sorted(set(pod.ports.values())):
            chosen = [s for s in servers if _selects(s["spec"].get("podSelector"), pod.labels)
                      and _port_of(s, pod) == port]
            assert len(chosen) <= 1, f"{pod.app}:{port} selected by two Servers"
            for caller in callers:
                if _allows(model, chosen[0] if chosen else None, caller, namespace):
                    pairs.add((caller.name, pod.app, port))
    return pairs


def _allows(model: PolicyModel, server: Mapping[str, Any] | None, caller: Caller,
            namespace: str) -> bool:
    if server is None:
        return _by_default(model.namespace_defaults.get(namespace, model.cluster_default),
                           caller)
    for auth in model.of("ServerAuthorization", namespace):
        ref = auth["spec"]["server"]
        named = ref.get("name") == server["metadata"]["name"]
        selected = "selector" in ref and _selects(ref["selector"],
                                                  server["metadata"].get("labels") or {})
        if (named or selected) and _server_authorization_allows(auth, caller, namespace):
            return True
    for policy in model.of("AuthorizationPolicy", namespace):
        if _policy_targets(model, policy, server, namespace) and all(
                _authentication_allows(model, ref, caller, namespace)
                for ref in policy["spec"]["requiredAuthenticationRefs"]):
            return True
    return _by_default(server["spec"].get("accessPolicy", "deny"), caller)


# --------------------------------------------------------------------------- requests


_KIND_RANK = {"Exact": 0, "PathPrefix": 1, "RegularExpression": 2}


def _path_holds(path: Mapping[str, str], value: str) -> bool:
    import re

    if path["type"] == "Exact":
        return value == path["value"]
    if path["type"] == "PathPrefix":
        prefix = path["value"].rstrip("/")
        return not prefix or value == prefix or value.startswith(prefix + "/")
    return re.fullmatch(path["value"], value) is not None


def _rank(match: Mapping[str, Any]) -> tuple[int, int, int]:
    """Gateway API precedence: exact path, longest prefix, then a method match."""
    path = match["path"]
    length = -len(path["value"]) if path["type"] == "PathPrefix" else 0
    return (_KIND_RANK[path["type"]], length, 0 if match.get("method") else 1)


def decide(model: PolicyModel, defaults: CrdDefaults, pod: Pod, port: int, caller: Caller,
           method: str, path: str) -> bool:
    """Whether one request reaches ``pod`` on ``port`` (Linkerd's inbound policy)."""
    namespace = pod.namespace
    servers = [s for s in model.of("Server", namespace)
               if _selects(s["spec"].get("podSelector"), pod.labels) and _port_of(s, pod) == port]
    if not servers:
        return _by_default(model.namespace_defaults.get(namespace, model.cluster_default),
                           caller)
    (server,) = servers
    routes = [defaults.apply(r) for r in model.of("HTTPRoute", namespace)
              if any(p.get("kind") == "Server" and p["name"] == server["metadata"]["name"]
                     for p in r["spec"]["parentRefs"])]
    if not routes:
        return _allows(model, server, caller, namespace)
    candidates = [(_rank(match), route["metadata"]["name"], route)
                  for route in routes for rule in route["spec"]["rules"]
                  for match in rule["matches"]
                  if _path_holds(match["path"], path)
                  and match.get("method", method) == method]
    if not candidates:
        return False  # no route: Linkerd answers 404
    route = min(candidates, key=lambda c: (c[0], c[1]))[2]
    for policy in model.of("AuthorizationPolicy", namespace):
        target = policy["spec"]["targetRef"]
        applies = (target["kind"] == "HTTPRoute" and target["name"] == route["metadata"]["name"]) \
            or (target["kind"] == "Server" and target["name"] == server["metadata"]["name"])
        if applies and all(_authentication_allows(model, ref, caller, namespace)
                           for ref in policy["spec"]["requiredAuthenticationRefs"]):
            return True
    return _by_default(server["spec"].get("accessPolicy", "deny"), caller)
