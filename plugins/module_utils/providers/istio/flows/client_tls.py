"""What the client sends: Istio mTLS, plaintext, or TLS of its own."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ....estate.objects import Resource, as_list, as_mapping, as_strings
from ....flows.evaluate import FlowRule, Step
from ....flows.model import Destination, Verdict
from .peer_authentication import mode_at, namespace_mode
from .view import DOMAIN, IstioView


def _host_fqdn(host: str, namespace: str) -> str:
    if host.endswith(DOMAIN) or host.startswith("*"):
        return host
    parts = host.split(".")
    return f"{parts[0]}.{parts[1] if len(parts) > 1 else namespace}.{DOMAIN}"


def _scopes(rule: Resource) -> list[str]:
    return [str(e) for e in as_list(rule.spec.get("exportTo"))]


def _local(rule: Resource) -> bool:
    """Seen from its own namespace: a proxy there looks among these first."""
    scopes = _scopes(rule)
    return not scopes or bool({"*", ".", rule.namespace} & set(scopes))


def _private(rule: Resource) -> bool:
    """Kept to its own namespace (``exportTo`` of ``.`` or that namespace alone): not
    among the rules other namespaces look up."""
    scopes = _scopes(rule)
    return len(scopes) == 1 and scopes[0] in (".", rule.namespace)


def _exported(rule: Resource) -> bool:
    return not _private(rule)


class _Merged:
    """One entry of the rules Istio keeps for a host in one namespace
    (``ConsolidatedDestRule``): the rule that made it, its ``exportTo`` (``.`` as the
    namespace), its ``workloadSelector``'s labels (None: no selector), and the rule whose
    ``trafficPolicy`` it holds after the merge (None: none)."""

    __slots__ = ("policy", "rule", "scopes", "selector")

    def __init__(self, rule: Resource) -> None:
        self.rule = rule
        self.scopes = frozenset(rule.namespace if scope == "." else scope
                                for scope in _scopes(rule))
        selector = rule.spec.get("workloadSelector")
        self.selector = None if selector is None else as_strings(
            as_mapping(selector).get("matchLabels"))
        self.policy = rule if rule.spec.get("trafficPolicy") is not None else None

    @property
    def applied(self) -> Resource:
        """The rule a client that gets this entry takes its traffic policy from."""
        return self.policy or self.rule

    def seen_from(self, namespace: str) -> bool:
        return not self.scopes or "*" in self.scopes or namespace in self.scopes


def _merged(rules: Sequence[Resource]) -> list[_Merged]:
    """A namespace's rules of one host, oldest first, merged as istiod merges them
    (``mergeDestinationRule`` in istio/istio's ``pilot/pkg/model/destination_rule.go``,
    ``ENABLE_ENHANCED_DESTINATIONRULE_MERGE`` on, the default since Istio 1.24). A rule
    merges into each earlier entry whose ``exportTo`` is the same as its own or a
    non-empty part of it, unless both have selectors that differ: an entry without a
    traffic policy takes the rule's. It also stands as an entry of its own unless the last
    of the earlier entries is one it merged into, with no selector on either or the same
    one on both."""
    entries: list[_Merged] = []
    for rule in rules:
        incoming = _Merged(rule)
        separately = True  # what the last earlier entry decides
        for entry in entries:
            neither = incoming.selector is None and entry.selector is None
            both = incoming.selector is not None and entry.selector is not None
            same = (incoming.selector or {}) == (entry.selector or {})
            scoped = incoming.scopes == entry.scopes or (
                bool(entry.scopes) and incoming.scopes >= entry.scopes)
            merges = scoped and not (both and not same)
            separately = not (merges and (neither or both))
            if merges and entry.policy is None and incoming.policy is not None:
                entry.policy = incoming.policy
        if separately:
            entries.append(incoming)
    return entries


def destination_rule(view: IstioView, client_namespace: str, labels: Mapping[str, str],
                     fqdn: str) -> Resource | None:
    """The DestinationRule a client's proxy takes its traffic policy from for a host: of
    the entries ``_found`` (one host's, in one namespace), the first whose
    ``workloadSelector`` selects the client, honoured only in the client's own namespace,
    else the last entry without a selector (``SidecarScope.DestinationRule`` in istio/istio's
    ``pilot/pkg/model/sidecar.go``); None when neither is there, even where another
    namespace or a wider host has a rule."""
    key = ("destination rules", client_namespace, fqdn)
    found = view.memo.get(key)
    if found is None:
        found = view.memo[key] = _found(view, client_namespace, fqdn)
    every_client: _Merged | None = None
    for entry in found:
        selector = entry.selector
        if selector is None:
            every_client = entry
        elif entry.rule.namespace == client_namespace and all(
                labels.get(k) == v for k, v in selector.items()):
            return entry.applied
    return every_client.applied if every_client is not None else None


def _found(view: IstioView, client_namespace: str, fqdn: str) -> list[_Merged]:
    """The entries of a host a client's proxy gets (``PushContext.destinationRule`` in
    istio/istio's ``pilot/pkg/model/push_context.go``): it looks in the client's namespace
    (the rules seen there), then the service's and the root namespace (the rules they
    export), and in each at the most specific host that has rules (``MostSpecificHostMatch``),
    merged (``_merged``); of another namespace's, those exported to the client. The first
    namespace with entries ends the lookup."""
    service_namespace = fqdn.split(".")[1] if fqdn.count(".") >= 2 else client_namespace
    hosts = view.memo.get(("destination rule hosts",))
    if hosts is None:  # every rule's host, once: (namespace, fqdn or wildcard) -> rules
        hosts = view.memo[("destination rule hosts",)] = {}
        for namespace, rules in view.destination_rules.items():
            for position, rule in enumerate(rules):
                host = _host_fqdn(str(rule.spec.get("host") or ""), rule.namespace)
                hosts.setdefault((namespace, host if not host.startswith("*") else "*"),
                                 []).append((position, host, rule))
    # (namespace, the rules looked among there, whether they are another namespace's
    # exported ones); the root namespace's own proxies look among its private rules first
    stages: list[tuple[str, Callable[[Resource], bool], bool]] = [
        (client_namespace, _local if client_namespace != view.root else _private, False)]
    stages += [(namespace, _exported, True)
               for namespace in dict.fromkeys((service_namespace, view.root))
               if namespace != client_namespace or namespace == view.root]
    for namespace, counted, exported in stages:
        found = [(position, host, rule) for position, host, rule in
                 hosts.get((namespace, fqdn), []) + hosts.get((namespace, "*"), [])
                 if (host == fqdn or (host.startswith("*") and fqdn.endswith(host[1:])))
                 and counted(rule)]
        if not found:
            continue
        found.sort(key=_most_specific(fqdn))
        best = found[0][1]
        entries = _merged([rule for _position, host, rule in found if host == best])
        if exported:
            entries = [entry for entry in entries if entry.seen_from(client_namespace)]
        if entries:
            return entries
        # that host's rules here are exported, but not to the client: the next namespace
    return []


def _most_specific(fqdn: str) -> Callable[[tuple[int, str, Resource]], tuple[int, int, int]]:
    """The order of a namespace's rules for a host: the rule of the host itself first, then
    the wildcards, the longest first (``MostSpecificHostMatch`` in istio/istio's
    ``pilot/pkg/model/config.go``); among rules of the same host, the oldest first (the
    namespace's order, as ``_by_namespace`` sorts it)."""
    def key(item: tuple[int, str, Resource]) -> tuple[int, int, int]:
        position, host, _rule = item
        return (0 if host == fqdn else 1, -len(host), position)
    return key


def tls_mode(rule: Resource, port: int | None) -> str | None:
    """The rule's tls mode for a Service port: a port-level setting replaces the top level
    whole (no tls there is no tls), else the top-level ``trafficPolicy.tls``."""
    policy = as_mapping(rule.spec.get("trafficPolicy"))
    for setting in as_list(policy.get("portLevelSettings")):
        setting = as_mapping(setting)
        if port is not None and as_mapping(setting.get("port")).get("number") == port:
            return _mode(setting.get("tls"))
    return _mode(policy.get("tls"))


def _mode(tls: Any) -> str | None:
    mode = as_mapping(tls).get("mode")
    return str(mode) if mode else None


def auto_mtls(view: IstioView, destination: Destination, has_sidecar: bool) -> bool:
    """Auto mTLS sends Istio mTLS to an endpoint with a sidecar, unless the endpoint's own
    PeerAuthentication (workload or port level) says DISABLE, or the service's namespace
    mode (mesh and namespace PeerAuthentications only) is DISABLE."""
    if not has_sidecar:
        return False
    if namespace_mode(view, destination.namespace) == "DISABLE":
        return False
    mode, _ = mode_at(view, destination)
    return mode != "DISABLE"



class ClientTls(FlowRule):
    """The TLS a client's proxy originates: the DestinationRule of the host (looked up in
    the client's namespace, the service's, then the root namespace, at the most specific
    host, the first namespace with rules of it ending the lookup; visible through
    ``exportTo``; a ``workloadSelector`` of the client's namespace that selects the client
    before the last entry for every client, the rules merged as istiod merges them), the port-level
    setting for the Service port when there is one, else its top-level ``tls``:
    ``ISTIO_MUTUAL`` sends Istio mTLS to every endpoint, ``DISABLE`` plaintext,
    ``SIMPLE``/``MUTUAL`` TLS that is not Istio's; without ``tls``, auto mTLS sends Istio
    mTLS exactly to endpoints with a sidecar whose own PeerAuthentication is not DISABLE
    (since 1.12). A client without a proxy sends what its application sends: plaintext.

    Follows https://istio.io/latest/docs/ops/configuration/traffic-management/
    tls-configuration/#auto-mtls ("If TLS settings are not explicitly configured in a
    DestinationRule, the sidecar will automatically determine if Istio mutual TLS should be
    sent"), https://istio.io/latest/docs/ops/best-practices/traffic-management/
    #cross-namespace-configuration (the lookup path), the portLevelSettings note of
    https://istio.io/latest/docs/reference/config/networking/destination-rule/, and
    ``pilot/pkg/networking/core/cluster_tls.go`` (``buildAutoMtlsSettings``), and
    ``MostSpecificHostMatch`` in ``pilot/pkg/model/config.go`` (the rule of the host
    itself, else the longest wildcard that matches it), ``PushContext.destinationRule`` in
    ``pilot/pkg/model/push_context.go`` (the namespaces in turn), ``SidecarScope.
    DestinationRule`` in ``pilot/pkg/model/sidecar.go`` (the selectors) and
    ``mergeDestinationRule`` in ``pilot/pkg/model/destination_rule.go`` (the merge).
    """

    name = "istio.ClientTls"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        if not facts.source_proxy or facts.extra.get("passthrough"):
            facts.sends = "plaintext"
            return None
        source, destination = flow.source, flow.destination
        rule = destination_rule(view, source.namespace, dict(source.labels),
                                facts.extra.get("fqdn") or view.destination_fqdn(destination))
        port = facts.extra.get("service_port", destination.service_port)
        mode = tls_mode(rule, port) if rule is not None else None
        if mode is None:
            facts.sends = "mtls" if auto_mtls(view, destination, facts.destination_proxy) \
                else "plaintext"
            return None
        facts.extra["destination_rule"] = rule.display if rule is not None else ""
        facts.sends = {"ISTIO_MUTUAL": "mtls", "DISABLE": "plaintext"}.get(mode, "tls")
        return None
