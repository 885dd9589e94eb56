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


def _visible(rule: Resource, client_namespace: str) -> bool:
    scopes = [str(e) for e in as_list(rule.spec.get("exportTo"))] or ["*"]
    return "*" in scopes or client_namespace in scopes or (
        "." in scopes and client_namespace == rule.namespace)


def destination_rule(view: IstioView, client_namespace: str, labels: Mapping[str, str],
                     fqdn: str) -> Resource | None:
    """The DestinationRule a client uses for a host: the first found in the client's
    namespace, then the service's, then the root namespace; in each, the rule of the host
    itself before the wildcards, the most specific wildcard first."""
    key = ("destination rules", client_namespace, fqdn)
    candidates = view.memo.get(key)
    if candidates is None:
        candidates = view.memo[key] = _candidates(view, client_namespace, fqdn)
    for rule, selector in candidates:
        if not selector or all(labels.get(k) == v for k, v in selector.items()):
            return rule
    return None


def _candidates(view: IstioView, client_namespace: str, fqdn: str,
                ) -> list[tuple[Resource, dict[str, str]]]:
    """The DestinationRules of a host the client's namespace sees, in the order they are
    looked up, each with its ``workloadSelector`` (empty: every client); what the client's
    own labels decide is left to ``destination_rule``."""
    service_namespace = fqdn.split(".")[1] if fqdn.count(".") >= 2 else client_namespace
    hosts = view.memo.get(("destination rule hosts",))
    if hosts is None:  # every rule's host, once: (namespace, fqdn or wildcard) -> rules
        hosts = view.memo[("destination rule hosts",)] = {}
        for namespace, rules in view.destination_rules.items():
            for position, rule in enumerate(rules):
                host = _host_fqdn(str(rule.spec.get("host") or ""), rule.namespace)
                hosts.setdefault((namespace, host if not host.startswith("*") else "*"),
                                 []).append((position, host, rule))
    candidates = []
    for namespace in dict.fromkeys((client_namespace, service_namespace, view.root)):
        found = hosts.get((namespace, fqdn), []) + hosts.get((namespace, "*"), [])
        for _position, host, rule in sorted(found, key=_most_specific(fqdn)):
            matches = host == fqdn or (host.startswith("*") and fqdn.endswith(host[1:]))
            if matches and _visible(rule, client_namespace):
                candidates.append((rule, as_strings(as_mapping(
                    rule.spec.get("workloadSelector")).get("labels"))))
    return candidates


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
    the client's namespace, the service's, then the root namespace, the most specific host
    first; visible through ``exportTo``; ``workloadSelector`` choosing clients), the
    port-level setting for the
    Service port when there is one, else its top-level ``tls``: ``ISTIO_MUTUAL`` sends Istio
    mTLS to every endpoint, ``DISABLE`` plaintext, ``SIMPLE``/``MUTUAL`` TLS that is not
    Istio's; without ``tls``, auto mTLS sends Istio mTLS exactly to endpoints with a
    sidecar whose own PeerAuthentication is not DISABLE (since 1.12). A client without a
    proxy sends what its application sends: plaintext.

    Follows https://istio.io/latest/docs/ops/configuration/traffic-management/
    tls-configuration/#auto-mtls ("If TLS settings are not explicitly configured in a
    DestinationRule, the sidecar will automatically determine if Istio mutual TLS should be
    sent"), https://istio.io/latest/docs/ops/best-practices/traffic-management/
    #cross-namespace-configuration (the lookup path), the portLevelSettings note of
    https://istio.io/latest/docs/reference/config/networking/destination-rule/, and
    ``pilot/pkg/networking/core/cluster_tls.go`` (``buildAutoMtlsSettings``), and
    ``MostSpecificHostMatch`` in ``pilot/pkg/model/config.go`` (the rule of the host
    itself, else the longest wildcard that matches it).
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
