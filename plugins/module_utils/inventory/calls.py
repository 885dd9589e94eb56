"""Who calls whom, from what the estate already says (the meshes' own policies are read by
each provider's ``estate_import``):

- the values a workload is told (environment variables, the ConfigMap keys they read,
  ``command`` and ``args``, exec probes and hooks) that name a Service by its DNS name:
  ``http://authors:7001``, ``web-svc.emojivoto:80``, ``reviews.bookinfo.svc.cluster.local``;
  its own Service too, by a URL or a port (a liveness probe that curls it goes out through
  the Service, and so through the pod's proxy);
- NetworkPolicies: an ingress rule's ``from`` pod selector names the callers of the pods the
  policy selects, an egress rule's ``to`` pod selector the callees
  (https://kubernetes.io/docs/concepts/services-networking/network-policies/). A rule that
  admits a whole namespace or address block names no caller, and is said so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..estate.objects import Resource, as_list, as_mapping
from ..kube import selector_matches
from .draft import Draft, ServiceDraft

# Variable names that say their whole value is a host (``WEB_HOST: web``).
_HOST_VARIABLE = re.compile(r"(HOST|ADDR|ADDRESS|SVC|SERVICE|URL|URI|ENDPOINT|SITE|SERVER|"
                            r"UPSTREAM|BACKEND|TARGET)", re.IGNORECASE)


def calls_from_environment(draft: Draft) -> None:
    """Calls from the values each service's workloads are told."""
    index = draft.index
    for caller in draft.services.values():
        for group in caller.workloads:
            for entry, text in index.told(group.root):
                whole = bool(_HOST_VARIABLE.search(entry.name or entry.key or "")) or \
                    entry.name.startswith(("args[", "command[")) or ".command[" in entry.name
                for host, named in index.services_named_in(group.root.namespace, text, whole):
                    callee = draft.service_at(host.resource.namespace, host.resource.name)
                    if callee is None:
                        continue
                    where = (f"{entry.source_kind} {group.root.namespace}/"
                             f"{entry.config_map} key {entry.key}" if entry.config_map else
                             f"{entry.name} of container {entry.container}")
                    # a Secret's value may hold credentials: only the host it names is said
                    told = f"{named.name}" + (f":{named.port}" if named.port else "") \
                        if entry.source_kind == "Secret" else repr(named.text)
                    # its own URL (a probe that curls it): a call through its Service, which
                    # leaves the pod; its bare name alone is rather its name (a tracer's)
                    itself = callee is caller and bool(named.scheme or named.port)
                    draft.call(caller, callee, f"{group.display} is told {told} ({where})",
                               itself)


def calls_from_network_policies(draft: Draft) -> None:
    """Calls from the NetworkPolicies' pod selectors."""
    for policy in draft.index.of_kind("NetworkPolicy"):
        spec = policy.spec
        selected = draft.services_selected(policy.namespace,
                                           as_mapping(spec.get("podSelector")))
        if not selected:
            continue
        types = [str(t) for t in as_list(spec.get("policyTypes"))] or (
            ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
        for kind, peers_key, says in (("Ingress", "from", "admits it"),
                                      ("Egress", "to", "lets it out")):
            if kind not in types:
                continue
            for number, rule in enumerate(as_list(spec.get(kind.lower()))):
                peers = _peers(draft, policy, as_mapping(rule).get(peers_key),
                               f"spec.{kind.lower()}[{number}].{peers_key}")
                for peer in peers:
                    for own in selected:
                        caller, callee = (peer, own) if kind == "Ingress" else (own, peer)
                        draft.call(caller, callee, f"NetworkPolicy {policy.namespace}/"
                                   f"{policy.name} {says} (spec.{kind.lower()}[{number}])")


def _peers(draft: Draft, policy: Resource, value: Any, path: str) -> list[ServiceDraft]:
    """The services a rule's peers select; a note for peers that select no one service."""
    found: list[ServiceDraft] = []
    for number, peer in enumerate(as_list(value)):
        peer = as_mapping(peer)
        pods = peer.get("podSelector")
        namespaces = peer.get("namespaceSelector")
        if not isinstance(pods, Mapping) or not _narrow(pods):
            draft.keep(policy, f"{path}[{number}] admits a whole namespace or an address "
                       "block: no caller can be told from it")
            continue
        for namespace in _namespaces(draft, policy.namespace, namespaces):
            found.extend(draft.services_selected(namespace, pods))
    return found


def _narrow(selector: Mapping[str, Any]) -> bool:
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def _namespaces(draft: Draft, own: str, selector: Any) -> list[str]:
    """The namespaces a peer's namespaceSelector selects (the policy's own without one);
    every namespace has the label ``kubernetes.io/metadata.name``."""
    if not isinstance(selector, Mapping):
        return [own]
    found = []
    for namespace in sorted({s.namespace for s in draft.services.values()}):
        obj = draft.index.namespace(namespace)
        labels = {**(obj.labels if obj is not None else {}),
                  "kubernetes.io/metadata.name": namespace}
        if selector_matches(selector, labels):
            found.append(namespace)
    return found


def calls_from_alerting(draft: Draft) -> None:
    """A Prometheus sends its alerts to the Alertmanagers its ``spec.alerting`` names, at the
    pods' own addresses: it discovers them from the Service's Endpoints
    (https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.AlertmanagerEndpoints),
    so the Alertmanager is ``pod_addressed``, and the Prometheus's pods call it."""
    index = draft.index
    for prometheus in index.of_kind("Prometheus"):
        if prometheus.group != "monitoring.coreos.com":
            continue
        senders = [s for s in draft.services.values()
                   if any(g.root.resource.name == f"prometheus-{prometheus.name}"
                          and g.root.namespace == prometheus.namespace for g in s.workloads)]
        alerting = as_mapping(prometheus.spec.get("alerting"))
        for entry in (as_mapping(e) for e in as_list(alerting.get("alertmanagers"))):
            namespace = str(entry.get("namespace") or prometheus.namespace)
            callee = draft.service_at(namespace, str(entry.get("name") or ""))
            if callee is None:
                continue
            if not callee.fields.get("pod_addressed"):
                callee.put("pod_addressed", True, f"{prometheus.display} sends its alerts to "
                           "its pods' own addresses (spec.alerting: the Endpoints of its "
                           "Service), where Istio's sidecars send plaintext unless a headless "
                           "Service declares them")
            for sender in senders:
                draft.call(sender, callee, f"{prometheus.display} sends its alerts there "
                           "(spec.alerting)")
