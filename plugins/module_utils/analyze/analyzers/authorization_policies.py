"""auth.AuthorizationPoliciesAnalyzer: policies that apply to nothing or name no namespace."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ...kube import selector_text
from ..analyzer import Analyzer, Results
from ..finding import Finding, Level
from ._selectors import match_labels


def pattern_matches(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """Istio's string patterns (principals, namespaces): ``*``, ``prefix*``, ``*suffix`` or
    an exact value (namespaces compare without case)."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value.lower() == pattern.lower() if ignore_case else value == pattern


def sources(policy: Resource) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(path, source) of every ``rules[].from[].source`` of an AuthorizationPolicy."""
    rules = policy.spec.get("rules")
    for number, rule in enumerate(rules if isinstance(rules, list) else []):
        froms = rule.get("from") if isinstance(rule, Mapping) else None
        for position, entry in enumerate(froms if isinstance(froms, list) else []):
            source = entry.get("source") if isinstance(entry, Mapping) else None
            if isinstance(source, Mapping):
                yield f"spec.rules[{number}].from[{position}].source", source


class AuthorizationPoliciesAnalyzer(Analyzer):
    """AuthorizationPolicies that apply to no workload in the mesh (their selector, or their
    namespace when they have none, holds no pod with a sidecar or in ambient mode: a policy
    in the root namespace applies mesh-wide), and sources that name a namespace (or a
    ``prefix*``/``*suffix`` pattern) no namespace matches.

    Fails with IST0127::

        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: reviews-allow, namespace: bookinfo}
        spec:
          selector: {matchLabels: {app: reviewz}}
          rules: [{from: [{source: {principals: [cluster.local/ns/bookinfo/sa/productpage]}}]}]
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: bookinfo, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews}}
        spec: {containers: [{name: reviews, image: reviews}]}

    Fails with IST0101::

        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: reviews-allow, namespace: bookinfo}
        spec:
          rules: [{from: [{source: {namespaces: [bookinfo, frontend-*]}}]}]
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: bookinfo, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews}}
        spec: {containers: [{name: reviews, image: reviews}]}

    Passes::

        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: reviews-allow, namespace: bookinfo}
        spec:
          selector: {matchLabels: {app: reviews}}
          rules: [{from: [{source: {namespaces: [bookinfo]}}]}]
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: bookinfo, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews}}
        spec: {containers: [{name: reviews, image: reviews}]}
    """

    name = "auth.AuthorizationPoliciesAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0101": Level.ERROR, "IST0127": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        policies = index.istio("AuthorizationPolicy")
        if not policies:
            return
        if index.knows_workloads():
            for policy in policies:
                yield from self._workloads(index, policy)
        else:
            yield self.unchecked("AuthorizationPolicy selectors", "no pod or workload in the "
                                 "input")
        if index.knows_namespaces():
            for policy in policies:
                yield from self._namespaces(index, policy)
        elif any(s.get("namespaces") or s.get("notNamespaces")
                 for p in policies for _, s in sources(p)):
            yield self.unchecked("AuthorizationPolicy source namespaces", "no Namespace in "
                                 "the input")

    def _workloads(self, index: MeshIndex, policy: Resource) -> Results:
        labels = match_labels(policy)
        if policy.namespace == index.mesh.root_namespace:
            if labels and not any(index.in_mesh(w)
                                  for w in index.workloads_matching(None, labels)):
                yield self._none(policy, selector_text(labels))
            return
        if not any(index.in_mesh(w) for w in index.workloads_matching(policy.namespace, labels)):
            yield self._none(policy, selector_text(labels))

    def _none(self, policy: Resource, labels: str) -> Finding:
        where = f"labels {labels!r}" if labels else f"namespace {policy.namespace}"
        return self.finding(policy, "IST0127", f"No matching workloads for this resource: "
                            f"no pod in the mesh matches {where}.", "spec.selector")

    def _namespaces(self, index: MeshIndex, policy: Resource) -> Results:
        names = index.namespace_names
        for path, source in sources(policy):
            for field in ("namespaces", "notNamespaces"):
                patterns = source.get(field)
                for number, pattern in enumerate(patterns if isinstance(patterns, list) else []):
                    pattern = str(pattern)
                    if pattern in names or any(pattern_matches(pattern, n, ignore_case=True)
                                               for n in names):
                        continue
                    yield self.finding(policy, "IST0101", "Referenced namespace not found: "
                                       f"{pattern!r}.", f"{path}.{field}[{number}]")
