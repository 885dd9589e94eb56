"""schema.ValidationAnalyzer.VirtualService: rules and matches that can never be used."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import Resource, as_mapping
from ..analyzer import Analyzer, Results
from ..finding import Finding, Level


def _key(match: Any) -> str:
    """A canonical text of a match, without its name, to find duplicates."""
    match = {k: v for k, v in as_mapping(match).items() if k != "name"}
    return json.dumps(match, sort_keys=True, default=str)


def _rule_name(rule: Mapping[str, Any], number: int) -> str:
    return json.dumps(rule["name"]) if rule.get("name") else f"#{number}"


def _match_name(match: Mapping[str, Any], number: int) -> str:
    return json.dumps(match["name"]) if match.get("name") else f"#{number}"


def _exact_or_prefix(value: Any) -> str:
    value = as_mapping(value)
    if value.get("exact"):
        return f"exact:{value['exact']}"
    if value.get("prefix"):
        return f"prefix:{value['prefix']}"
    return ""


@dataclass(frozen=True)
class _PrefixMatch:
    """An HTTP match on a URI prefix, with the other conditions that narrow it."""

    rule: str
    match: str
    path: str
    prefix: str
    port: Any
    method: str
    authority: str
    headers: dict[str, str]
    query: dict[str, str]
    without: dict[str, str]

    @classmethod
    def of(cls, rule: str, match_name: str, path: str,
           match: Mapping[str, Any]) -> _PrefixMatch | None:
        prefix = as_mapping(match.get("uri")).get("prefix")
        if not prefix:
            return None
        return cls(rule, match_name, path, str(prefix), match.get("port"),
                   _exact_or_prefix(match.get("method")) or "exact:GET",
                   _exact_or_prefix(match.get("authority")),
                   {str(k): _exact_or_prefix(v)
                    for k, v in as_mapping(match.get("headers")).items()},
                   {str(k): _exact_or_prefix(v)
                    for k, v in as_mapping(match.get("queryParams")).items()},
                   {str(k): _exact_or_prefix(v)
                    for k, v in as_mapping(match.get("withoutHeaders")).items()})

    def covers(self, later: _PrefixMatch) -> bool:
        """True when every request ``later`` matches is matched by this earlier match."""
        if not later.prefix.startswith(self.prefix) or later.port != self.port:
            return False
        for mine, theirs in ((self.method, later.method), (self.authority, later.authority)):
            if mine != theirs and not mine.startswith(theirs):
                return False
        for mine_map, their_map in ((self.headers, later.headers), (self.query, later.query),
                                    (self.without, later.without)):
            if len(mine_map) != len(their_map):
                return False
            for key, mine in mine_map.items():
                if key not in their_map:
                    return False
                if mine != their_map[key] and not mine.startswith(their_map[key]):
                    return False
        return True


class VirtualServiceMatchesAnalyzer(Analyzer):
    """Rules of a VirtualService that are never used (an earlier rule without matches
    catches everything, or every match of the rule repeats an earlier one), and matches that
    are never used (a duplicate of an earlier match, or a URI prefix an earlier prefix match
    with the same conditions already covers). Istio walks rules in order and takes the
    first that matches, so these rules and matches are dead.

    This is the part of upstream's ``schema.ValidationAnalyzer.VirtualService`` that goes
    beyond the schema; the schema itself is checked strictly before analysis.

    Fails with IST0130, IST0131::

        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http:
          - match: [{headers: {end-user: {exact: test-user}}}]
            route: [{destination: {host: reviews, subset: v2}}]
          - match: [{headers: {end-user: {exact: test-user}}}]
            route: [{destination: {host: reviews, subset: v3}}]
          - route: [{destination: {host: reviews, subset: v1}}]

    Fails with IST0131::

        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: payment-service, namespace: payments}
        spec:
          hosts: [payment-service]
          http:
          - match: [{uri: {prefix: /api}}]
            route: [{destination: {host: payment-service, subset: v1}}]
          - match: [{uri: {prefix: /api/v2}}]
            route: [{destination: {host: payment-service, subset: v2}}]

    Passes::

        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: payment-service, namespace: payments}
        spec:
          hosts: [payment-service]
          http:
          - match: [{uri: {prefix: /api/v2}}]
            route: [{destination: {host: payment-service, subset: v2}}]
          - match: [{uri: {prefix: /api}}]
            route: [{destination: {host: payment-service, subset: v1}}]
          - route: [{destination: {host: payment-service, subset: v1}}]
    """

    name = "schema.ValidationAnalyzer.VirtualService"
    provider = "istio"
    upstream = True
    codes = {"IST0130": Level.WARNING, "IST0131": Level.INFO}

    def analyze(self, index: MeshIndex) -> Results:
        for virtual_service in index.istio("VirtualService"):
            def unused(rule: str, reason: str, path: str,
                       resource: Resource = virtual_service) -> Finding:
                return self.finding(resource, "IST0130",
                                    f"VirtualService rule {rule} not used ({reason}).", path)

            def ineffective(rule: str, match: str, earlier: str, path: str,
                            resource: Resource = virtual_service) -> Finding:
                return self.finding(resource, "IST0131", f"VirtualService rule {rule} match "
                                    f"{match} is not used (duplicate/overlapping match in rule "
                                    f"{earlier}).", path)

            for kind in ("http", "tcp", "tls"):
                rules = virtual_service.spec.get(kind)
                if isinstance(rules, list):
                    yield from _unreachable(kind, rules, unused, ineffective)


def _unreachable(kind: str, rules: list[Any], unused: Callable[..., Finding],
                 ineffective: Callable[..., Finding]) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    catch_all = -1
    prefixes: list[_PrefixMatch] = []
    for number, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            continue
        name = _rule_name(rule, number) if kind == "http" else f"#{number}"
        path = f"spec.{kind}[{number}]"
        matches = rule.get("match") if isinstance(rule.get("match"), list) else []
        if not matches:
            if catch_all >= 0:
                yield unused(name, "only the last rule can have no matches", path)
            catch_all = number
            continue
        duplicates = 0
        for position, match in enumerate(matches):
            match_path = f"{path}.match[{position}]"
            if catch_all >= 0:
                yield unused(name, "a rule without matches comes before it", match_path)
                continue
            key = _key(match)
            match_name = (_match_name(as_mapping(match), position) if kind == "http"
                          else f"#{position}")
            if key in seen:
                earlier = seen[key]
                earlier_name = (_rule_name(rules[earlier], earlier) if kind == "http"
                                else f"#{earlier}")
                yield ineffective(name, match_name, earlier_name, match_path)
                duplicates += 1
                continue
            seen[key] = number
            if kind == "http":
                prefix = _PrefixMatch.of(name, match_name, match_path, as_mapping(match))
                if prefix is not None:
                    prefixes.append(prefix)
        if duplicates == len(matches):
            yield unused(name, "all matches used by prior rules", path)
    for position, first in enumerate(prefixes):
        for later in prefixes[position + 1:]:
            if later.prefix != first.prefix and first.covers(later):
                yield ineffective(later.rule, f"{later.match} of prefix {later.prefix}",
                                  f"{first.match} of prefix {first.prefix} on "
                                  f"{first.rule}", later.path)
