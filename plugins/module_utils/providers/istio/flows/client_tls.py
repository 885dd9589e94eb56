"""What the client sends: Istio mTLS, plaintext, or TLS of its own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def _visible(rule: Resource, client_namespace: str) -> bool:
    scopes = _scopes(rule) or ["*"]
    return "*" in scopes or client_namespace in scopes or (
        "." in scopes and client_namespace == rule.namespace)


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


def destination_rule(view: IstioView, client_namespace: str, labels: Mapping[str, str],
                     fqdn: str) -> Resource | None:
    """The DestinationRule a client's proxy uses for a host: among the rules ``_found``
    (one host's, in one namespace), one whose ``workloadSelector`` selects the client,
    else the rules without a selector, merged (``SidecarScope.DestinationRule`` in
    istio/istio's ``pilot/pkg/model/sidecar.go``); None when neither applies, even where
    another namespace or a wider host has a rule."""
    key = ("destination rules", client_namespace, fqdn)
    found = view.memo.get(key)
    if found is None:
        found = view.memo[key] = _found(view, client_namespace, fqdn)
    selected, every_client = found
    for rule, selector in selected:
        if all(labels.get(k) == v for k, v in selector.items()):
            return rule
    return every_client


def _found(view: IstioView, client_namespace: str, fqdn: str,
           ) -> tuple[list[tuple[Resource, dict[str, str]]], Resource | None]:
    """The rules of a host a client's proxy gets (``PushContext.destinationRule`` in
    istio/istio's ``pilot/pkg/model/push_context.go``): it looks in the client's
    namespace (the rules seen there), then the service's and the root namespace (the
    rules they export, then those exported to the client), and in each at the most
    specific host that has rules (``MostSpecificHostMatch``), the first namespace with one
    ending the lookup. Of those rules: the ones with a ``workloadSelector``, kept only in
    the client's own namespace (``sidecar.go``: a selector is honoured where the rule and
    the proxy share a namespace), with their labels; and the rule whose ``trafficPolicy``
    the merge of the others keeps (``mergeDestinationRule`` in ``destination_rule.go``:
    the oldest rule's policy, or the next one's when it has none). Not modelled: rules of
    one host with different ``exportTo``, which that merge keeps apart under
    ``EnableEnhancedDestinationRuleMerge``, and the policies it passes between a rule with
    a selector and one without."""
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
        rules = [rule for _position, host, rule in found
                 if host == best and (not exported or _visible(rule, client_namespace))]
        if not rules:
            continue  # the namespace's rules of that host are exported, not to the client
        selected = [(rule, as_strings(selector.get("labels")))
                    for rule in rules if rule.namespace == client_namespace
                    for selector in [as_mapping(rule.spec.get("workloadSelector"))]
                    if rule.spec.get("workloadSelector") is not None]
        plain = [rule for rule in rules if rule.spec.get("workloadSelector") is None]
        policy = next((rule for rule in plain if rule.spec.get("trafficPolicy") is not None),
                      plain[0] if plain else None)
        return selected, policy
    return [], None


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
    before the rules for every client, whose policies merge oldest first), the port-level
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
