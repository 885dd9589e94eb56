"""What the AuthorizationPolicies that select the destination decide."""

from __future__ import annotations

from ....estate.objects import Resource, as_mapping
from ....flows.evaluate import FlowRule, Step
from ....flows.model import FORBIDDEN, RESET, Request, Verdict, allowed, refused
from ....flows.outside import exposed_fix
from ....flows.requests import describe
from .policies import HTTP_PROTOCOLS, Caller, CompiledPolicy, candidates, decide_all


class AuthorizationPolicies(FlowRule):
    """The AuthorizationPolicies of the destination's proxy, and their decision.

    They are the policies of the root namespace and of the workload's namespace whose
    selector matches its labels (no selector: every workload of the namespace, and of the
    mesh in the root namespace, gateways included); a policy with ``targetRefs`` attaches
    only to the Gateway API gateway it names; ``istio.io/dry-run`` policies are not
    enforced. In order: a matching DENY denies; with no ALLOW policy the request is allowed;
    a matching ALLOW allows; otherwise it is denied (``spec: {}`` allows nothing). Over TCP
    an ALLOW rule with HTTP-only fields (methods, paths, hosts, request principals) is
    dropped, and a DENY rule loses them; a request is TCP there when the flow is, or when
    the Services that send to the destination's port name it a protocol that is not
    HTTP's (the sidecar's inbound side serves the port as the Service declares it:
    https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/).
    A denied HTTP request gets 403; TCP, a closed connection. CUSTOM policies are left to
    their provider.

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
        policies = view.compiled_policies(labels, destination.namespace,
                                          id(destination.workload))
        if not policies:
            return allowed("no AuthorizationPolicy selects the destination")
        if any(p.action == "CUSTOM" for p in policies):
            facts.notes.append("a CUSTOM policy's provider decides too")
        http = flow.protocol in HTTP_PROTOCOLS and facts.sends != "tls"
        tcp_by = view.inbound_tcp(destination) if http else None
        if tcp_by is not None:
            http = False
            facts.notes.append(f"port {destination.port} is TCP on the destination's "
                               f"sidecar ({tcp_by}): no HTTP field of a rule applies")
        fqdn = view.destination_fqdn(destination)
        # one policy list per set of policies (``compiled_policies``): its identity stands
        # for the set while the view lives
        key = ("authorization", id(policies), facts.identity, facts.source_namespace,
               destination.port, http, fqdn, destination.service_port, flow.request)
        decided = view.memo.get(key)
        if decided is None:
            short = fqdn.split(".")[0]
            hosts = (fqdn, short, f"{short}.{destination.namespace}",
                     *(f"{h}:{destination.service_port}" for h in (fqdn, short)
                       if destination.service_port))
            caller = Caller(facts.identity, facts.source_namespace, destination.port, http,
                            hosts)
            decided = view.memo[key] = _decision(decide_all(
                policies, caller, candidates(policies, flow.request, http)))
        verdict, deciding = decided
        if verdict is not None:
            return verdict
        assert deciding is not None
        fix = _fix(step, deciding)
        if tcp_by is not None:
            fix = (f"port {destination.port} is TCP on the destination's sidecar ({tcp_by}), "
                   "where Istio drops an ALLOW rule's HTTP fields (methods, paths): declare "
                   f"the port HTTP (a name http-...), or admit it by port; else {fix}")
        return refused(FORBIDDEN if http else RESET,
                       f"{deciding.display} ({deciding.spec.get('action') or 'ALLOW'}) "
                       "refuses it", deciding.display, fix)


def _decision(results: list[tuple[Request | None, bool, CompiledPolicy | None]],
              ) -> tuple[Verdict | None, Resource | None]:
    """What the policies' decisions on a caller's requests come to: the verdict when some
    get through (it reads nothing else of the flow), else the policy that refuses them
    all (the refusal's fix reads the flow)."""
    passed = [r for r, ok, _ in results if ok]
    deciding = next((p.resource for _, ok, p in results if not ok and p is not None), None)
    admitting = next((p.resource.display for _, ok, p in results if ok and p is not None),
                     "")
    if len(passed) == len(results):
        return allowed(f"admitted by {admitting}" if admitting
                       else "no ALLOW policy applies", admitting), None
    if passed:
        return allowed(f"{deciding.display if deciding else 'a policy'} refuses the others",
                       admitting, partial=describe(r for r in passed if r is not None)), None
    return None, deciding


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
    if facts.identity is None and flow.origin == "exposed":
        return exposed_fix(flow)
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
