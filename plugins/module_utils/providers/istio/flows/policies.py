"""AuthorizationPolicies read once into plain data, and Istio's matching of a request
against them (the rule that decides is ``authorization.py``; the semantics it cites)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ....estate.objects import Resource, as_list, as_mapping
from ....flows.model import Request
from ....flows.requests import candidate_requests, sample_path, string_matches

HTTP_OPERATION = ("hosts", "notHosts", "methods", "notMethods", "paths", "notPaths")
HTTP_SOURCE = ("requestPrincipals", "notRequestPrincipals")
UNKNOWN_SOURCE = ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks")
HTTP_PROTOCOLS = ("http", "http2", "grpc")


@dataclass(frozen=True)
class Caller:
    """A caller as an AuthorizationPolicy sees it, whatever its request (``decide_all``
    tries each request of the caller)."""

    principal: str | None
    namespace: str | None
    port: int
    http: bool
    hosts: tuple[str, ...] = ()


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


@dataclass(frozen=True)
class _Source:
    principals: tuple[str, ...]
    not_principals: tuple[str, ...]
    namespaces: tuple[str, ...]
    not_namespaces: tuple[str, ...]
    request_principals: bool
    unknown: bool            # addresses the proof cannot see


@dataclass(frozen=True)
class _Operation:
    ports: tuple[str, ...]
    not_ports: tuple[str, ...]
    methods: tuple[str, ...]
    not_methods: tuple[str, ...]
    paths: tuple[str, ...]
    not_paths: tuple[str, ...]
    hosts: tuple[str, ...]
    not_hosts: tuple[str, ...]


@dataclass(frozen=True)
class _Rule:
    sources: tuple[_Source, ...]          # empty: any source
    operations: tuple[_Operation, ...]    # empty: any operation
    conditions: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]
    http_only: bool                       # names an HTTP-only field


@dataclass(frozen=True)
class CompiledPolicy:
    """An AuthorizationPolicy read once: its action, its rules, the methods and paths its
    operations name (the requests worth trying)."""

    resource: Resource
    action: str
    rules: tuple[_Rule, ...]
    methods: tuple[str, ...]
    paths: tuple[str, ...]


def compile_policy(policy: Resource) -> CompiledPolicy:
    rules, methods, paths = [], [], []
    for rule in as_list(policy.spec.get("rules")):
        rule = as_mapping(rule)
        sources = []
        http_only = False
        for entry in as_list(rule.get("from")):
            source = as_mapping(as_mapping(entry).get("source"))
            request = bool(source.get("requestPrincipals") or
                           source.get("notRequestPrincipals"))
            http_only = http_only or request
            sources.append(_Source(
                _strings(source.get("principals")), _strings(source.get("notPrincipals")),
                _strings(source.get("namespaces")), _strings(source.get("notNamespaces")),
                bool(_strings(source.get("requestPrincipals"))),
                any(source.get(f) for f in UNKNOWN_SOURCE)))
        operations = []
        for entry in as_list(rule.get("to")):
            operation = as_mapping(as_mapping(entry).get("operation"))
            http_only = http_only or any(operation.get(f) for f in HTTP_OPERATION)
            compiled = _Operation(*(_strings(operation.get(f)) for f in (
                "ports", "notPorts", "methods", "notMethods", "paths", "notPaths", "hosts",
                "notHosts")))
            operations.append(compiled)
            methods += [*compiled.methods, *compiled.not_methods]
            paths += [sample_path(p) for p in (*compiled.paths, *compiled.not_paths)]
        conditions = tuple((str(as_mapping(c).get("key") or ""),
                            _strings(as_mapping(c).get("values")),
                            _strings(as_mapping(c).get("notValues")))
                           for c in as_list(rule.get("when")))
        http_only = http_only or any(key.startswith("request.") for key, _, _ in conditions)
        rules.append(_Rule(tuple(sources), tuple(operations), conditions, http_only))
    return CompiledPolicy(policy, str(policy.spec.get("action") or "ALLOW"), tuple(rules),
                          tuple(dict.fromkeys(methods)), tuple(dict.fromkeys(paths)))


def _field(wanted: tuple[str, ...], unwanted: tuple[str, ...], value: str | None,
           fold: bool = False) -> bool:
    if fold and value is not None:
        value = value.lower()
        wanted = tuple(w.lower() for w in wanted)
        unwanted = tuple(u.lower() for u in unwanted)
    if wanted and not any(string_matches(p, value) for p in wanted):
        return False
    return not (unwanted and any(string_matches(p, value) for p in unwanted))


def _source(source: _Source, caller: Caller, allow: bool) -> bool:
    if source.unknown:
        return allow  # addresses the proof cannot see: assume the policy means it to match
    if caller.http and source.request_principals:
        return False  # no request carries a JWT the proof knows of
    if (source.principals or source.not_principals) and not _field(
            source.principals, source.not_principals, caller.principal):
        return False
    return not (source.namespaces or source.not_namespaces) or _field(
        source.namespaces, source.not_namespaces, caller.namespace)


def _same_for_every_request(operation: _Operation, caller: Caller) -> bool:
    """Whether an operation's fields that no request of the caller changes admit it: its
    ports and its hosts (over TCP, its ports only)."""
    port = str(caller.port)
    if (operation.ports and port not in operation.ports) or port in operation.not_ports:
        return False
    if not caller.http:
        return True  # a DENY on TCP keeps only its port and source fields
    if operation.hosts and not any(_field(operation.hosts, (), h, fold=True)
                                   for h in caller.hosts):
        return False
    return not (operation.not_hosts and any(_field(operation.not_hosts, (), h, fold=True)
                                            for h in caller.hosts))


def _request_matches(operation: _Operation, request: Request | None,
                     seen: dict[tuple[int, int, str | None], bool]) -> bool:
    """Whether an operation's method and path fields admit the request (None: a request
    of no known method or path). ``seen``: each field's answer for each method and path
    so far, in one ``decide_all`` (its requests are every method by every path)."""
    method, path = (request.method, request.path) if request is not None else (None, None)
    if operation.methods or operation.not_methods:
        key = (id(operation), 0, method)
        found = seen.get(key)
        if found is None:
            found = seen[key] = _field(operation.methods, operation.not_methods, method)
        if not found:
            return False
    if not (operation.paths or operation.not_paths):
        return True
    key = (id(operation), 1, path)
    found = seen.get(key)
    if found is None:
        found = seen[key] = _field(operation.paths, operation.not_paths, path)
    return found


def _condition(condition: tuple[str, tuple[str, ...], tuple[str, ...]], caller: Caller,
               allow: bool) -> bool:
    key, values, not_values = condition
    known = {"source.principal": caller.principal, "source.namespace": caller.namespace,
             "destination.port": str(caller.port)}
    if key in known:
        value = known[key]
    elif key.startswith(("request.headers", "request.auth")):
        value = None  # the proof's requests carry no such header or token
    else:
        return allow  # an attribute the proof cannot see (addresses, SNI)
    return _field(values, not_values, value)


def _live(rule: _Rule, caller: Caller, allow: bool) -> bool:
    """The parts of a rule no request changes: a rule with HTTP-only fields never matches
    a TCP request under ALLOW (it is dropped); its sources and conditions."""
    if not caller.http and allow and rule.http_only:
        return False
    if rule.sources and not any(_source(s, caller, allow) for s in rule.sources):
        return False
    return all(_condition(c, caller, allow) for c in rule.conditions)


# A live rule as it is tried on each request: None when it matches every request (no
# operation, or over TCP an operation whose ports admit the caller), else its operations
# whose ports and hosts admit the caller (a rule left with none matches no request)
_EveryRequest = None


def _per_request(rules: list[_Rule], caller: Caller) -> list[tuple[_Operation, ...] | None]:
    """The live rules of a policy with their operations read once for the caller, so that
    each request only tries the methods and paths."""
    tried: list[tuple[_Operation, ...] | None] = []
    for rule in rules:
        if not rule.operations:
            tried.append(_EveryRequest)
            continue
        operations = tuple(o for o in rule.operations if _same_for_every_request(o, caller))
        if operations:
            tried.append(operations if caller.http else _EveryRequest)
    return tried


def _matches(tried: list[tuple[_Operation, ...] | None], request: Request | None,
             seen: dict[tuple[int, int, str | None], bool]) -> bool:
    """Whether one of a policy's live rules matches the request (over TCP, a DENY rule
    keeps only its ports of the operation)."""
    for operations in tried:
        if operations is _EveryRequest:
            return True
        for operation in operations:
            if _request_matches(operation, request, seen):
                return True
    return False


def decide_all(policies: Sequence[CompiledPolicy], caller: Caller,
               requests: Sequence[Request | None],
               ) -> list[tuple[Request | None, bool, CompiledPolicy | None]]:
    """(request, allowed, the policy that decides) for each request of one caller:
    CUSTOM is left to its provider, then any matching DENY denies, then no ALLOW policy
    allows, then a matching ALLOW allows, else the ALLOW policies deny."""
    live = [(policy, _per_request([r for r in policy.rules
                                   if _live(r, caller, policy.action == "ALLOW")], caller))
            for policy in policies]
    denies = [(p, tried) for p, tried in live if p.action == "DENY" and tried]
    allows = [(p, tried) for p, tried in live if p.action == "ALLOW" and tried]
    allow_policies = [p for p, _ in live if p.action == "ALLOW"]
    refusing = allow_policies[0] if len(allow_policies) == 1 else \
        _widest(allow_policies) if allow_policies else None
    seen: dict[tuple[int, int, str | None], bool] = {}
    results: list[tuple[Request | None, bool, CompiledPolicy | None]] = []
    for request in requests:
        decided: CompiledPolicy | None = None
        for policy, tried in denies:
            if _matches(tried, request, seen):
                decided = policy
                break
        if decided is not None:
            results.append((request, False, decided))
            continue
        if not allow_policies:
            results.append((request, True, None))
            continue
        for policy, tried in allows:
            if _matches(tried, request, seen):
                decided = policy
                break
        results.append((request, decided is not None, decided or refusing))
    return results


def _widest(policies: list[CompiledPolicy]) -> CompiledPolicy:
    """The ALLOW that refuses most plainly: one that selects a whole namespace."""
    for policy in policies:
        if not as_mapping(policy.resource.spec.get("selector")).get("matchLabels"):
            return policy
    return policies[0]


def candidates(policies: Sequence[CompiledPolicy], request: Request | None,
                http: bool) -> list[Request | None]:
    if request is not None or not http:
        return [request]
    methods = tuple(dict.fromkeys(m for p in policies for m in p.methods))
    paths = tuple(dict.fromkeys(path for p in policies for path in p.paths))
    if not methods and not paths:
        return [None]  # no policy looks at the request: one stands for all
    return list(_requests(methods, paths))


@functools.lru_cache(maxsize=1024)
def _requests(methods: tuple[str, ...], paths: tuple[str, ...]) -> tuple[Request, ...]:
    return tuple(candidate_requests(methods, paths))
