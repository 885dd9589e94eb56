"""What the RBAC filters of the host's filter chain decide."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ....estate.objects import as_list, as_mapping
from ....flows.evaluate import FlowRule, Step
from ....flows.model import FORBIDDEN, Request, Verdict, allowed, refused
from ....flows.requests import candidate_requests, describe, sample_path
from .view import HostView

RBAC_FILTER = "envoy.filters.http.rbac"


def string_match(matcher: Mapping[str, Any], value: str | None) -> bool:
    """Envoy's StringMatcher: exact, prefix, suffix, contains, safe_regex (whole value)."""
    if value is None:
        return False
    if "exact" in matcher:
        return value == matcher["exact"]
    if "prefix" in matcher:
        return value.startswith(str(matcher["prefix"]))
    if "suffix" in matcher:
        return value.endswith(str(matcher["suffix"]))
    if "contains" in matcher:
        return str(matcher["contains"]) in value
    if "safe_regex" in matcher:
        return re.fullmatch(str(as_mapping(matcher["safe_regex"]).get("regex")), value) \
            is not None
    return False


def principal_matches(principal: Mapping[str, Any], identity: str | None) -> bool:
    if principal.get("any"):
        return True
    if "authenticated" in principal:
        name = as_mapping(as_mapping(principal["authenticated"]).get("principal_name"))
        return identity is not None and (not name or string_match(name, identity))
    if "not_id" in principal:
        return not principal_matches(as_mapping(principal["not_id"]), identity)
    if "or_ids" in principal:
        return any(principal_matches(as_mapping(p), identity)
                   for p in as_list(as_mapping(principal["or_ids"]).get("ids")))
    if "and_ids" in principal:
        return all(principal_matches(as_mapping(p), identity)
                   for p in as_list(as_mapping(principal["and_ids"]).get("ids")))
    return True  # a matcher the proof cannot see (addresses): assume it is meant to match


def permission_matches(permission: Mapping[str, Any], request: Request) -> bool:
    if permission.get("any"):
        return True
    if "header" in permission:
        header = as_mapping(permission["header"])
        value = request.method if header.get("name") == ":method" else \
            request.path if header.get("name") == ":path" else None
        matcher = as_mapping(header.get("string_match")) or (
            {"exact": header["exact_match"]} if "exact_match" in header else {})
        return string_match(matcher, value) if matcher else value is not None
    if "url_path" in permission:
        return string_match(as_mapping(as_mapping(permission["url_path"]).get("path")),
                            request.path)
    if "or_rules" in permission:
        return any(permission_matches(as_mapping(r), request)
                   for r in as_list(as_mapping(permission["or_rules"]).get("rules")))
    if "and_rules" in permission:
        return all(permission_matches(as_mapping(r), request)
                   for r in as_list(as_mapping(permission["and_rules"]).get("rules")))
    if "not_rule" in permission:
        return not permission_matches(as_mapping(permission["not_rule"]), request)
    return True


def policy_matches(policy: Mapping[str, Any], identity: str | None, request: Request) -> bool:
    return any(principal_matches(as_mapping(p), identity)
               for p in as_list(policy.get("principals"))) and \
        any(permission_matches(as_mapping(p), request)
            for p in as_list(policy.get("permissions")))


def rbac_filters(chain: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The enforced RBAC rules of a chain's HTTP filters, in order (shadow rules left out)."""
    found = []
    for item in as_list(chain.get("filters")):
        config = as_mapping(as_mapping(item).get("typed_config"))
        for http_filter in as_list(config.get("http_filters")):
            http_filter = as_mapping(http_filter)
            rules = as_mapping(as_mapping(http_filter.get("typed_config")).get("rules"))
            if http_filter.get("name") == RBAC_FILTER and rules:
                found.append(rules)
    return found


def _samples(filters: list[Mapping[str, Any]]) -> tuple[set[str], set[str]]:
    methods: set[str] = set()
    paths: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            header = as_mapping(node.get("header"))
            if header.get("name") == ":method":
                matcher = as_mapping(header.get("string_match"))
                if "exact" in matcher:
                    methods.add(str(matcher["exact"]))
            url = as_mapping(as_mapping(node.get("url_path")).get("path"))
            for kind, text in url.items():
                if kind == "exact":
                    paths.add(str(text))
                elif kind == "prefix":
                    paths.add(sample_path(str(text) + "*"))
                elif kind == "suffix":
                    paths.add(sample_path("*" + str(text)))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(filters)
    return methods, paths


def decide(filters: list[Mapping[str, Any]], identity: str | None,
           request: Request) -> tuple[bool, str]:
    """(allowed, the policy that refuses) through the RBAC filters in order."""
    for rules in filters:
        action = str(rules.get("action") or "ALLOW")
        policies = as_mapping(rules.get("policies"))
        matched = [name for name, policy in policies.items()
                   if policy_matches(as_mapping(policy), identity, request)]
        if action == "DENY" and matched:
            return False, f"DENY policy {matched[0]}"
        if action == "ALLOW" and not matched:
            return False, ("ALLOW policies " + ", ".join(sorted(policies))) if policies \
                else "an ALLOW filter with no policy (deny all)"
    return True, ""


class HostRbac(FlowRule):
    """The RBAC filters of the filter chain that took the connection, in order: a DENY
    filter refuses a request any of its policies matches, an ALLOW filter one none of its
    policies matches (with no policy at all, every request); shadow rules only count. A
    policy matches when one of its principals and one of its permissions do; an
    ``authenticated`` principal needs the peer certificate of an mTLS connection, so a
    plaintext request matches no ``authenticated`` principal and every ``not_id`` of one.
    A refused request gets 403.

    Follows https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/rbac/v3/rbac.proto
    ("ALLOW: The policies grant access to principals. The rest are denied."; "DENY: The
    policies deny access to principals. The rest are allowed."; ``shadow_rules``: "Shadow
    rules are not enforced") and ``Principal.authenticated`` ("The name of the principal.
    If set, The URI SAN or DNS SAN in that order is used from the certificate").
    """

    name = "hosts.Rbac"

    def apply(self, step: Step) -> Verdict | None:
        view: HostView = step.view
        flow, facts = step.flow, step.facts
        filters = rbac_filters(as_mapping(facts.extra.get("chain")))
        if not filters:
            return allowed("no RBAC filter is enforced on the chain")
        methods, paths = _samples(filters)
        requests = [flow.request] if flow.request is not None else \
            candidate_requests(methods, paths)
        results = [(request, *decide(filters, facts.identity, request)) for request in requests]
        passed = [r for r, ok, _ in results if ok]
        where = view.where(flow.destination.name, "lds.yaml")
        if len(passed) == len(results):
            return allowed("the RBAC filters admit it", where)
        refusing = next(why for _, ok, why in results if not ok)
        if passed:
            return allowed(f"{refusing} refuses some of its requests", where,
                           partial=describe(passed))
        fix = ("the request arrives without mTLS, so it has no principal for the RBAC "
               "policies to match: admit it without an identity (an allow rule limited to "
               "ports), or give the caller a host sidecar") if facts.identity is None else \
            (f"admit {facts.identity.removeprefix('spiffe://')} in the rules of "
             f"{flow.destination.service}")
        return refused(FORBIDDEN, f"{refusing} of host {flow.destination.name} refuses it",
                       where, fix)
