"""Calls from the edges Prometheus observed (``gates.observe.observe_edges``): each edge's
caller is found by its workload (Istio's ``source_workload``, Linkerd's pod labels), else by
its identity (the service account of a principal), else by the host sidecar's service; its
callee by the destination service (a version backend counts as its service). An edge whose
ends are not both in the catalogue is listed, not guessed; the ingress gateway's requests
(its principal) make their callee ``ingress: true``."""

from __future__ import annotations

from collections.abc import Sequence

from ..gates.gate import Call, count
from .draft import Draft, ServiceDraft


def calls_observed(draft: Draft, calls: Sequence[Call], source: str) -> None:
    gateway = "{}/ns/{}/sa/{}".format(draft.trust_domain, *draft.ingress_gateway())
    for call in calls:
        callee = _callee(draft, call)
        caller = _caller(draft, call)
        seen = f"observed by {call.seen_by}: {count(call.requests)} request(s) ({call.protocol})"
        seen += f" in {source}" if source else ""
        if callee is not None and call.caller == gateway:
            callee.ingress_from.append(f"the ingress gateway's requests, {seen}")
            continue
        if caller is None or callee is None:
            draft.outside.append(f"{call.caller_workload or call.caller_service or call.caller}"
                                 f" -> {call.callee_namespace or '?'}/{call.callee}: {seen}; "
                                 + ("the caller" if caller is None else "the callee")
                                 + " is not in the catalogue")
            continue
        draft.call(caller, callee, seen)


def _callee(draft: Draft, call: Call) -> ServiceDraft | None:
    if call.callee_namespace:
        return draft.service_for_host(call.callee_namespace, call.callee)
    return draft.services.get(call.callee)


def _caller(draft: Draft, call: Call) -> ServiceDraft | None:
    if call.caller_workload:
        namespace, _, name = call.caller_workload.partition("/")
        for service in draft.services.values():
            if service.namespace != namespace:
                continue
            for group in service.workloads:
                names = {w.resource.name for w in group.running}
                if name in names or any(name.startswith(f"{n}-") for n in names
                                        if group.root.resource.kind != "Pod"):
                    return service
    parts = call.caller.split("/")
    if len(parts) == 5 and parts[1] == "ns" and parts[3] == "sa":
        owners = draft.services_running_as(parts[2], parts[4])
        if len(owners) == 1:
            return owners[0]
    if call.caller_service:
        return draft.services.get(call.caller_service)
    return None
