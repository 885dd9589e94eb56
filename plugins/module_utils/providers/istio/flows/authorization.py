"""What the AuthorizationPolicies that select the destination decide."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ....estate.objects import Resource, as_list, as_mapping
from ....flows.evaluate import FlowRule, Step
from ....flows.model import FORBIDDEN, RESET, Request, Verdict, allowed, refused
from ....flows.requests import candidate_requests, describe, sample_path, string_matches

HTTP_OPERATION = ("hosts", "notHosts", "methods", "notMethods", "paths", "notPaths")
HTTP_SOURCE = ("requestPrincipals", "notRequestPrincipals")
UNKNOWN_SOURCE = ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks")
HTTP_PROTOCOLS = ("http", "http2", "grpc")


@dataclass(frozen=True)
class Caller:
    """A request as an AuthorizationPolicy sees it."""

    principal: str | None
    namespace: str | None
    port: int
    http: bool
    hosts: tuple[str, ...] = ()
    request: Request | None = None


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _http_fields(rule: Mapping[str, Any]) -> bool:
    for entry in as_list(rule.get("to")):
        if any(as_mapping(as_mapping(entry).get("operation")).get(f) for f in HTTP_OPERATION):
            return True
    for entry in as_list(rule.get("from")):
        if any(as_mapping(as_mapping(entry).get("source")).get(f) for f in HTTP_SOURCE):
            return True
    return any(str(as_mapping(c).get("key", "")).startswith("request.")
               for c in as_list(rule.get("when")))


def _field(wanted: list[str], unwanted: list[str], value: str | None,
           fold: bool = False) -> bool:
    if fold and value is not None:
        value, wanted, unwanted = value.lower(), [w.lower() for w in wanted], \
            [u.lower() for u in unwanted]
    if wanted and not any(string_matches(p, value) for p in wanted):
        return False
    return not (unwanted and any(string_matches(p, value) for p in unwanted))


def _source(source: Mapping[str, Any], caller: Caller, allow: bool) -> bool:
    if any(source.get(f) for f in UNKNOWN_SOURCE):
        return allow  # addresses the proof cannot see: assume the policy means it to match
    if caller.http and _strings(source.get("requestPrincipals")):
        return False  # no request carries a JWT the proof knows of
    return _field(_strings(source.get("principals")), _strings(source.get("notPrincipals")),
                  caller.principal) and _field(_strings(source.get("namespaces")),
                                               _strings(source.get("notNamespaces")),
                                               caller.namespace)


def _operation(operation: Mapping[str, Any], caller: Caller) -> bool:
    port = str(caller.port)
    if _strings(operation.get("ports")) and port not in _strings(operation.get("ports")):
        return False
    if port in _strings(operation.get("notPorts")):
        return False
    if not caller.http:
        return True  # a DENY on TCP keeps only its port and source fields
    request = caller.request
    method, path = (request.method, request.path) if request is not None else (None, None)
    hosts_ok = not _strings(operation.get("hosts")) or any(
        _field(_strings(operation.get("hosts")), [], h, fold=True) for h in caller.hosts)
    not_hosts = any(_field(_strings(operation.get("notHosts")), [], h, fold=True)
                    for h in caller.hosts) if _strings(operation.get("notHosts")) else False
    return hosts_ok and not not_hosts and \
        _field(_strings(operation.get("methods")), _strings(operation.get("notMethods")),
               method) and \
        _field(_strings(operation.get("paths")), _strings(operation.get("notPaths")), path)


def _condition(condition: Mapping[str, Any], caller: Caller, allow: bool) -> bool:
    key = str(condition.get("key") or "")
    values = {"source.principal": caller.principal, "source.namespace": caller.namespace,
              "destination.port": str(caller.port)}
    if key in values:
        value = values[key]
    elif key.startswith(("request.headers", "request.auth")):
        value = None  # the proof's requests carry no such header or token
    else:
        return allow  # an attribute the proof cannot see (addresses, SNI)
    return _field(_strings(condition.get("values")), _strings(condition.get("notValues")),
                  value)


def rule_matches(rule: Mapping[str, Any], caller: Caller, action: str) -> bool:
    """Whether one ``rules[]`` entry matches; a rule with HTTP-only fields never matches a
    TCP request under ALLOW (it is dropped) and loses those fields under DENY."""
    allow = action == "ALLOW"
    if not caller.http and allow and _http_fields(rule):
        return False
    froms = [as_mapping(as_mapping(f).get("source")) for f in as_list(rule.get("from"))]
    if froms and not any(_source(s, caller, allow) for s in froms):
        return False
    tos = [as_mapping(as_mapping(t).get("operation")) for t in as_list(rule.get("to"))]
    if tos and not any(_operation(o, caller) for o in tos):
        return False
    return all(_condition(as_mapping(c), caller, allow) for c in as_list(rule.get("when")))


def policy_matches(policy: Resource, caller: Caller) -> bool:
    action = str(policy.spec.get("action") or "ALLOW")
    return any(rule_matches(as_mapping(r), caller, action) for r in
               as_list(policy.spec.get("rules")))


def decide(policies: Sequence[Resource], caller: Caller) -> tuple[bool, Resource | None]:
    """(allowed, the policy that decides) for one request: CUSTOM is left to its provider,
    then any matching DENY denies, then no ALLOW policy allows, then a matching ALLOW
    allows, else the ALLOW policies deny."""
    for policy in policies:
        if str(policy.spec.get("action")) == "DENY" and policy_matches(policy, caller):
            return False, policy
    allows = [p for p in policies if str(p.spec.get("action") or "ALLOW") == "ALLOW"]
    if not allows:
        return True, None
    for policy in allows:
        if policy_matches(policy, caller):
            return True, policy
    return False, allows[0] if len(allows) == 1 else _widest(allows)


def _widest(policies: list[Resource]) -> Resource:
    """The ALLOW that refuses most plainly: one that selects a whole namespace."""
    for policy in policies:
        if not as_mapping(policy.spec.get("selector")).get("matchLabels"):
            return policy
    return policies[0]


def _candidates(policies: Sequence[Resource], request: Request | None,
                http: bool) -> list[Request | None]:
    if request is not None or not http:
        return [request]
    methods, paths = set(), set()
    for policy in policies:
        for rule in as_list(policy.spec.get("rules")):
            for entry in as_list(as_mapping(rule).get("to")):
                operation = as_mapping(as_mapping(entry).get("operation"))
                methods.update(_strings(operation.get("methods")))
                methods.update(_strings(operation.get("notMethods")))
                paths.update(sample_path(p) for p in _strings(operation.get("paths"))
                             + _strings(operation.get("notPaths")))
    return list(candidate_requests(methods, paths))


class AuthorizationPolicies(FlowRule):
    """The AuthorizationPolicies of the destination's proxy, and their decision.

    They are the policies of the root namespace and of the workload's namespace whose
    selector matches its labels (no selector: every workload of the namespace, and of the
    mesh in the root namespace, gateways included); a policy with ``targetRefs`` attaches
    only to the Gateway API gateway it names; ``istio.io/dry-run`` policies are not
    enforced. In order: a matching DENY denies; with no ALLOW policy the request is allowed;
    a matching ALLOW allows; otherwise it is denied (``spec: {}`` allows nothing). Over TCP
    an ALLOW rule with HTTP-only fields (methods, paths, hosts, request principals) is
    dropped, and a DENY rule loses them. A denied HTTP request gets 403; TCP, a closed
    connection. CUSTOM policies are left to their provider.

    Follows https://istio.io/latest/docs/reference/config/security/authorization-policy/
    ("If there are any DENY policies that match the request, deny the request. If there are
    no ALLOW policies for the workload, allow the request. If any of the ALLOW policies
    match the request, allow the request. Deny the request."), https://istio.io/latest/
    docs/tasks/security/authorization/authz-tcp/ ("Istio ignores the invalid ALLOW rule"),
    https://istio.io/latest/docs/tasks/security/authorization/authz-dry-run/,
    ``pilot/pkg/model/policyattachment.go`` and ``pilot/pkg/security/authz/model/model.go``.
    """

    name = "istio.AuthorizationPolicies"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        destination = flow.destination
        labels = view.destination_labels(destination)
        policies = view.authorization_policies(labels, destination.namespace,
                                               id(destination.workload))
        if not policies:
            return allowed("no AuthorizationPolicy selects the destination")
        if any(str(p.spec.get("action")) == "CUSTOM" for p in policies):
            facts.notes.append("a CUSTOM policy's provider decides too")
        http = flow.protocol in HTTP_PROTOCOLS and facts.sends != "tls"
        fqdn = view.destination_fqdn(destination)
        short = fqdn.split(".")[0]
        hosts = (fqdn, short, f"{short}.{destination.namespace}",
                 *(f"{h}:{destination.service_port}" for h in (fqdn, short)
                   if destination.service_port))
        results = []
        for request in _candidates(policies, flow.request, http):
            caller = Caller(facts.identity, facts.source_namespace, destination.port, http,
                            hosts, request)
            results.append((request, *decide(policies, caller)))
        passed = [r for r, ok, _ in results if ok]
        deciding = next((p for _, ok, p in results if not ok), None)
        admitting = next((p.display for _, ok, p in results if ok and p is not None), "")
        if len(passed) == len(results):
            return allowed(f"admitted by {admitting}" if admitting
                           else "no ALLOW policy applies", admitting)
        if passed:
            return allowed(f"{deciding.display if deciding else 'a policy'} refuses the "
                           "others", admitting,
                           partial=describe(r for r in passed if r is not None))
        assert deciding is not None
        return refused(FORBIDDEN if http else RESET,
                       f"{deciding.display} ({deciding.spec.get('action') or 'ALLOW'}) "
                       "refuses it", deciding.display, _fix(step, deciding))


def _fix(step: Step, policy: Resource) -> str:
    flow, facts = step.flow, step.facts
    destination = flow.destination
    if str(policy.spec.get("action")) == "DENY":
        return f"narrow the DENY rule of {policy.display}, or stop the call"
    selector = as_mapping(policy.spec.get("selector")).get("matchLabels")
    if destination.kind == "gateway" and not selector:
        return (f"the namespace-wide {policy.display} selects the gateway's own proxy: "
                f"give the gateway an ALLOW of its own in {destination.namespace}, or run "
                "it outside the default-deny namespace")
    if facts.identity is None:
        if facts.destination_proxy and facts.mode == "DISABLE":
            why = f"port {destination.port} is DISABLE (an mTLS exception)"
        elif not facts.source_proxy:
            why = f"{flow.source} has no sidecar"
        else:
            why = "the caller's sidecar sends plaintext"
        return (f"the request arrives without mTLS ({why}), so it has no principal or "
                "namespace for an ALLOW to match: admit it without an identity (an allow "
                "rule limited to ports), or have it reach the destination over mTLS")
    service = destination.service or destination.name
    return (f"admit {facts.identity} in an ALLOW of {service} (mesh_authorization allow "
            "from, or the caller's calls)")
