"""Which filter chain of a host's inbound listener takes the connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ....estate.objects import as_list, as_mapping
from ....flows.evaluate import FlowRule, Step
from ....flows.model import RESET, Verdict, allowed, refused
from .view import HostView


def chain_for(listener: Mapping[str, Any], tls: bool) -> Mapping[str, Any] | None:
    """The filter chain Envoy picks for a connection, told apart by the TLS inspector's
    transport protocol (``tls`` or ``raw_buffer``); a chain without that match takes both."""
    wanted = "tls" if tls else "raw_buffer"
    chains = [as_mapping(c) for c in as_list(listener.get("filter_chains"))]
    for chain in chains:
        if as_mapping(chain.get("filter_chain_match")).get("transport_protocol") == wanted:
            return chain
    for chain in chains:
        if not as_mapping(chain.get("filter_chain_match")).get("transport_protocol"):
            return chain
    return None


def _tls(chain: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(as_mapping(chain.get("transport_socket")).get("typed_config"))


class HostListener(FlowRule):
    """A host sidecar's inbound listener picks a filter chain by what the TLS inspector
    sees: the mTLS chain for a TLS client, the plaintext chain for plaintext. With no chain
    for it, Envoy closes the connection (``filter_chain_not_found``); the mTLS chain that
    requires a client certificate refuses a handshake without one, and checks its SAN. A
    host without a sidecar enforces nothing: its application takes the request.

    Follows https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/listener/v3/
    listener_components.proto (``FilterChainMatch.transport_protocol``: "raw_buffer"
    "tls"), https://www.envoyproxy.io/docs/envoy/latest/configuration/listeners/
    listener_filters/tls_inspector and the listener meshstage renders
    (``providers/envoy_hosts/listeners.py``: one chain per mode; the plaintext chain gone
    from strict_mtls on, unless an mTLS exception keeps it).
    """

    name = "hosts.Listener"

    def apply(self, step: Step) -> Verdict | None:
        view: HostView = step.view
        flow, facts = step.flow, step.facts
        destination = flow.destination
        if not facts.destination_proxy:
            return allowed(f"host {destination.name} has no sidecar: nothing is enforced there")
        listener = view.listener(destination.name, "inbound")
        where = view.where(destination.name, "lds.yaml")
        if listener is None:
            return refused(RESET, f"host {destination.name}'s sidecar has no inbound listener",
                           where)
        mtls = facts.sends == "mtls"
        chain = chain_for(listener, mtls)
        if chain is None:
            if mtls:
                return refused(RESET, f"host {destination.name}'s sidecar has no mTLS filter "
                               "chain, and the caller sends mTLS", where,
                               f"drop the DISABLE exception of {destination.service}")
            return refused(RESET, f"{flow.source} sends plaintext, and host "
                           f"{destination.name}'s sidecar has no plaintext filter chain "
                           "(it requires client certificates)", where,
                           f"a PERMISSIVE exception for {destination.service} in "
                           "mesh_mtls_exceptions, or a caller with a host sidecar")
        context = _tls(chain)
        if mtls and not context:
            return refused(RESET, f"the {chain.get('name')} chain of host {destination.name} "
                           "takes plaintext and receives TLS", where)
        if mtls:
            validation = as_mapping(as_mapping(as_mapping(context.get("common_tls_context"))
                                               .get("combined_validation_context"))
                                    .get("default_validation_context"))
            sans = [as_mapping(as_mapping(s).get("matcher")) for s in
                    as_list(validation.get("match_typed_subject_alt_names"))]
            prefixes = [str(s["prefix"]) for s in sans if "prefix" in s]
            if prefixes and not any(str(facts.identity).startswith(p) for p in prefixes):
                return refused(RESET, f"{facts.identity} is outside the SANs host "
                               f"{destination.name} accepts", where)
        facts.extra["chain"] = chain
        return None
