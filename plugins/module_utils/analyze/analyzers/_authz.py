"""Private helpers: which AuthorizationPolicies apply to a workload, and whom they admit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import Resource, Workload
from ...kube import LabelPostings
from ._selectors import match_labels
from .authorization_policies import pattern_matches


@dataclass(frozen=True)
class Caller:
    """A peer as an AuthorizationPolicy sees it: its SPIFFE principal and namespace."""

    principal: str
    namespace: str


def caller_of(index: MeshIndex, workload: Workload) -> Caller:
    return Caller(f"{index.mesh.trust_domain}/ns/{workload.namespace}/sa/"
                  f"{workload.service_account}", workload.namespace)


def action(policy: Resource) -> str:
    return str(policy.spec.get("action") or "ALLOW")


def applies_to(index: MeshIndex, policy: Resource, workload: Workload) -> bool:
    selector = match_labels(policy)
    if policy.namespace not in (workload.namespace, index.mesh.root_namespace):
        return False
    return all(workload.labels.get(k) == v for k, v in selector.items())


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def source_matches(source: Mapping[str, Any], caller: Caller | None) -> bool | None:
    """True or False when a ``source`` admits the caller (None: a plaintext peer with no
    identity), None when it depends on what the analysis cannot see (IPs, JWTs)."""
    if source.get("requestPrincipals") or source.get("notRequestPrincipals"):
        return None if caller is not None else False
    for field, value in (("principals", caller.principal if caller else None),
                         ("namespaces", caller.namespace if caller else None)):
        wanted = _strings(source.get(field))
        if wanted and (value is None or not any(
                pattern_matches(p, value, ignore_case=field == "namespaces") for p in wanted)):
            return False
    for field, value in (("notPrincipals", caller.principal if caller else None),
                         ("notNamespaces", caller.namespace if caller else None)):
        unwanted = _strings(source.get(field))
        if unwanted and value is not None and any(
                pattern_matches(p, value, ignore_case=field == "notNamespaces")
                for p in unwanted):
            return False
    if source.get("ipBlocks") or source.get("remoteIpBlocks") or source.get(
            "notIpBlocks") or source.get("notRemoteIpBlocks"):
        return None
    return True


def rule_admits(rule: Any, caller: Caller | None) -> bool | None:
    """Whether some request of the caller can match the rule (its ``to`` and ``when`` only
    narrow what is admitted). None when it cannot be told."""
    if not isinstance(rule, Mapping):
        return False
    froms = rule.get("from")
    if not isinstance(froms, list) or not froms:
        return True
    results = [source_matches(f.get("source") or {}, caller) for f in froms
               if isinstance(f, Mapping)]
    if True in results:
        return True
    return None if None in results else False


def rule_denies_all(rule: Any, caller: Caller | None) -> bool:
    """True when a DENY rule refuses every request of the caller (no ``to``/``when``)."""
    if not isinstance(rule, Mapping) or rule.get("to") or rule.get("when"):
        return False
    return rule_admits(rule, caller) is True


@dataclass(frozen=True)
class Admission:
    admitted: bool | None          # None: cannot be told
    blocking: Resource | None      # the policy that makes the default deny, or the DENY


DRY_RUN = "istio.io/dry-run"


class PolicyIndex:
    """The enforced AuthorizationPolicies by namespace, to find those of a workload without a
    scan. A policy annotated ``istio.io/dry-run: "true"`` enforces nothing (its proxies only
    count what it would deny), so it is left out."""

    def __init__(self, index: MeshIndex) -> None:
        self.index = index
        # each enforced policy with its selector's labels, read once, by namespace
        self._postings: dict[str, LabelPostings[tuple[Resource, dict[str, str]]]] = {}
        for policy in index.istio("AuthorizationPolicy"):
            if policy.annotations.get(DRY_RUN, "").lower() != "true":
                selector = match_labels(policy)
                self._postings.setdefault(policy.namespace, LabelPostings()).add(
                    selector, (policy, selector))
        self._applying: dict[Workload, list[Resource]] = {}
        self._sets: dict[tuple[int, ...], list[Resource]] = {}
        self._verdicts: dict[tuple[int, Caller | None], Admission] = {}

    def applying(self, workload: Workload) -> list[Resource]:
        """The enforced policies that apply to the workload: the root namespace's, then its
        namespace's, each in its namespace's order. Workloads under the same policies get
        the same list."""
        found = self._applying.get(workload)
        if found is None:
            root = self.index.mesh.root_namespace
            labels = workload.labels
            found = []
            for namespace in dict.fromkeys((root, workload.namespace)):
                postings = self._postings.get(namespace)
                if postings is not None:
                    found += [policy for policy, selector in postings.candidates(labels)
                              if all(labels.get(k) == v for k, v in selector.items())]
            found = self._sets.setdefault(tuple(id(p) for p in found), found)
            self._applying[workload] = found
        return found

    def default_deny(self, workload: Workload) -> bool:
        """True when an ALLOW policy applies: whatever no ALLOW admits is refused."""
        return any(action(p) == "ALLOW" for p in self.applying(workload))


def evaluate(policies: PolicyIndex, workload: Workload, caller: Caller | None) -> Admission:
    """Whether the caller can reach the workload at all, given the policies (each caller is
    judged once against each set of policies that applies to a workload)."""
    key = (id(policies.applying(workload)), caller)
    found = policies._verdicts.get(key)
    if found is None:
        found = policies._verdicts[key] = _evaluate(policies, workload, caller)
    return found


def _evaluate(policies: PolicyIndex, workload: Workload, caller: Caller | None) -> Admission:
    applying = policies.applying(workload)
    for policy in applying:
        if action(policy) == "DENY" and any(
                rule_denies_all(r, caller) for r in _rules(policy)):
            return Admission(False, policy)
    allows = [p for p in applying if action(p) == "ALLOW"]
    if not allows:
        return Admission(True, None)
    results = [rule_admits(rule, caller) for policy in allows for rule in _rules(policy)]
    return _admission(results, allows)


def _rules(policy: Resource) -> list[Any]:
    rules = policy.spec.get("rules")
    return rules if isinstance(rules, list) else []


# --------------------------------------------------------------------------- one request

# Fields only an HTTP request has: on TCP (and TLS passed through) an ALLOW rule with one of
# them is dropped, a DENY rule loses them (https://istio.io/latest/docs/tasks/security/
# authorization/authz-tcp/; ``rule.checkError`` in pilot/pkg/security/authz/model/model.go)
HTTP_OPERATION = ("methods", "notMethods", "paths", "notPaths", "hosts", "notHosts")
HTTP_SOURCE = ("requestPrincipals", "notRequestPrincipals")


def http_only(rule: Any) -> bool:
    """True when an ALLOW rule uses a field only HTTP requests have."""
    if not isinstance(rule, Mapping):
        return False
    for target in rule.get("to") or []:
        operation = target.get("operation") if isinstance(target, Mapping) else None
        if isinstance(operation, Mapping) and any(operation.get(f) for f in HTTP_OPERATION):
            return True
    for source in rule.get("from") or []:
        found = source.get("source") if isinstance(source, Mapping) else None
        if isinstance(found, Mapping) and any(found.get(f) for f in HTTP_SOURCE):
            return True
    return any(str(c.get("key", "")).startswith(("request.headers", "request.auth"))
               for c in rule.get("when") or [] if isinstance(c, Mapping))


def _operation_matches(operation: Mapping[str, Any], port: int | None, path: str | None,
                       tcp: bool) -> bool | None:
    ports, not_ports = _strings(operation.get("ports")), _strings(operation.get("notPorts"))
    if ports and (port is None or str(port) not in ports):
        return False if port is not None else None
    if port is not None and str(port) in not_ports:
        return False
    if tcp:
        return True  # a DENY keeps only what TCP has; an ALLOW with HTTP fields is dropped
    paths, not_paths = _strings(operation.get("paths")), _strings(operation.get("notPaths"))
    if path is None and (paths or not_paths):
        return None
    if paths and not any(pattern_matches(p, str(path)) for p in paths):
        return False
    if not_paths and any(pattern_matches(p, str(path)) for p in not_paths):
        return False
    methods, hosts = operation.get("methods") or operation.get("notMethods"), \
        operation.get("hosts") or operation.get("notHosts")
    if methods:
        wanted = _strings(operation.get("methods"))
        unwanted = _strings(operation.get("notMethods"))
        if path is None:
            return None  # a request of an unknown method
        if (wanted and "GET" not in wanted) or "GET" in unwanted:
            return False
    return None if hosts else True


def _to_matches(rule: Mapping[str, Any], port: int | None, path: str | None,
                tcp: bool) -> bool | None:
    targets = [t.get("operation") for t in rule.get("to") or [] if isinstance(t, Mapping)]
    if not targets:
        return True
    results = [_operation_matches(o, port, path, tcp) for o in targets
               if isinstance(o, Mapping)]
    return True if True in results else (None if None in results else False)


def admission_at(policies: PolicyIndex, workload: Workload, caller: Caller | None,
                 port: int | None, path: str | None = None, tcp: bool = False) -> Admission:
    """Whether one request of ``caller`` (None: plaintext, no identity) to ``port`` (and
    ``path``, a GET, when known) gets through the workload's policies. ``tcp``: the port is
    not HTTP to Istio (TCP, or TLS it passes through), so HTTP-only rule fields do not
    apply."""
    applying = policies.applying(workload)
    for policy in applying:
        if action(policy) != "DENY":
            continue
        for rule in _rules(policy):
            if not isinstance(rule, Mapping) or rule.get("when"):
                continue
            if rule_admits({"from": rule.get("from")}, caller) is True and \
                    _to_matches(rule, port, path, tcp) is True:
                return Admission(False, policy)
    allows = [p for p in applying if action(p) == "ALLOW"]
    if not allows:
        return Admission(True, None)
    results: list[bool | None] = []
    for policy in allows:
        for rule in _rules(policy):
            if tcp and http_only(rule):
                results.append(False)
                continue
            source = rule_admits(rule, caller)
            to = _to_matches(rule, port, path, tcp) if isinstance(rule, Mapping) else False
            when = isinstance(rule, Mapping) and bool(rule.get("when"))
            found = [source, to, None if when else True]
            results.append(False if False in found else (None if None in found else True))
    return _admission(results, allows)


def _admission(results: list[bool | None], allows: list[Resource]) -> Admission:
    """What the ALLOW policies' rules say together: one admits; one cannot be told; none
    admits (the policy to name: a selector-less one first)."""
    if True in results:
        return Admission(True, None)
    if None in results:
        return Admission(None, None)
    selectorless = [p for p in allows if not match_labels(p)]
    return Admission(False, (selectorless or allows)[0])
