"""Which mTLS mode the destination's sidecar applies at the port, and what it accepts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ....estate.objects import Resource, as_mapping
from ....flows.evaluate import FlowRule, Step
from ....flows.model import RESET, Destination, Verdict, allowed, refused
from ....flows.outside import exposed_fix
from .view import IstioView, workload_selected


def _mode(resource: Resource | None) -> str | None:
    if resource is None:
        return None
    mode = as_mapping(resource.spec.get("mtls")).get("mode")
    return None if mode in (None, "", "UNSET") else str(mode)


def _scope(view: IstioView, namespace: str) -> Resource | None:
    """The oldest selector-less PeerAuthentication of a namespace."""
    for item in view.peer_authentications.get(namespace, []):
        if workload_selected(item, {}) is None:
            return item
    return None


def namespace_mode(view: IstioView, namespace: str) -> str:
    """The mode of the mesh and namespace PeerAuthentications alone (PERMISSIVE when
    neither says)."""
    key = ("namespace mode", namespace)
    if key in view.memo:
        return view.memo[key]
    mode = "PERMISSIVE"
    for scope in (_scope(view, view.root), _scope(view, namespace) if namespace != view.root
                  else None):
        mode = _mode(scope) or mode
    view.memo[key] = mode
    return mode


def mode_at(view: IstioView, destination: Destination) -> tuple[str, str]:
    """(mode, the PeerAuthentication that sets it) at the destination's workload port."""
    key = ("mode", id(destination.workload), destination.namespace, destination.port)
    if key not in view.memo:
        view.memo[key] = _mode_at(view, destination)
    return view.memo[key]


def _mode_at(view: IstioView, destination: Destination) -> tuple[str, str]:
    labels = view.destination_labels(destination)
    namespace = destination.namespace
    mode, by = "PERMISSIVE", "no PeerAuthentication (PERMISSIVE)"
    mesh = _scope(view, view.root)
    scoped = _scope(view, namespace) if namespace != view.root else None
    workload = None
    if namespace != view.root:
        workload = next((p for p in view.peer_authentications.get(namespace, [])
                         if workload_selected(p, labels)), None)
    for item in (mesh, scoped, workload):
        found = _mode(item)
        if found is not None and item is not None:
            mode, by = found, item.display
    if workload is not None:
        levels: Mapping[Any, Any] = as_mapping(workload.spec.get("portLevelMtls"))
        entry = levels.get(destination.port, levels.get(str(destination.port)))
        if entry is not None:
            found = _mode_of(entry)
            if found is not None:
                mode, by = found, f"{workload.display} (port {destination.port})"
    return mode, by


def _mode_of(entry: object) -> str | None:
    mode = as_mapping(entry).get("mode")
    return None if mode in (None, "", "UNSET") else str(mode)


class PeerAuthentication(FlowRule):
    """The destination sidecar's mTLS mode at the workload port, and whether it takes what
    the client sends. The mode: PERMISSIVE, replaced in turn by the mesh-wide
    PeerAuthentication (root namespace, no selector), the namespace's (no selector) and the
    workload's (a selector that matches; a selector in the root namespace is ignored), the
    oldest of each scope winning; ``portLevelMtls`` of the workload policy, keyed by the
    workload (container) port, last. Then: STRICT takes only Istio mTLS; PERMISSIVE takes
    both; DISABLE takes plaintext, and Istio mTLS sent to it fails. A destination without a
    sidecar enforces nothing, but an application that receives Istio mTLS (a client
    forcing ``ISTIO_MUTUAL``) cannot read it. A gateway's listener takes its TLS from its
    Gateway, not from PeerAuthentication.

    Follows https://istio.io/latest/docs/concepts/security/#authentication-policies
    ("Istio ignores the newer policies"; "When the mode is unset, the mode of the parent
    scope is inherited"), https://istio.io/latest/docs/reference/config/security/
    peer_authentication/ ("PeerAuthentication policies with workload selectors are ignored
    when deployed in the root namespace"; "the port value in the portLevelMtls field refers
    to the port of the workload"), ``pilot/pkg/security/authn/policy_applier.go``
    (``ComposePeerAuthentication``) and https://istio.io/latest/docs/concepts/security/
    #peer-authentication.
    """

    name = "istio.PeerAuthentication"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        destination = flow.destination
        rule = facts.extra.get("destination_rule", "")
        if not facts.destination_proxy:
            if facts.sends == "mtls":
                return refused(RESET, f"{destination} has no sidecar, and the client sends "
                               "it Istio mTLS its application cannot read", rule,
                               "drop tls mode ISTIO_MUTUAL for this host, or inject the "
                               "destination")
            return allowed(f"{destination} has no sidecar: nothing is enforced there")
        if destination.kind == "gateway":
            return None
        mode, by = mode_at(view, destination)
        facts.mode = mode
        if facts.sends == "mtls" and mode == "DISABLE":
            return refused(RESET, f"port {destination.port} is DISABLE, and the client "
                           "sends it Istio mTLS", rule or by,
                           "let the client use auto mTLS (no tls mode in its "
                           "DestinationRule), or make the exception PERMISSIVE")
        if facts.sends != "mtls" and mode == "STRICT":
            why = _why_plaintext(step)
            return refused(RESET, f"{why}, and port {destination.port} of {destination.name} "
                           "is STRICT", by, exposed_fix(step.flow)
                           if step.flow.origin == "exposed" else
                           f"a PERMISSIVE exception for {destination.service or destination.name}"
                           f" (or its port {destination.port}) in mesh_mtls_exceptions, "
                           "or a sidecar for the caller; an exception on the caller "
                           "changes nothing for its requests")
        return None


def _why_plaintext(step: Step) -> str:
    flow, facts = step.flow, step.facts
    source = flow.source
    if facts.sends == "tls":
        return f"{source} sends TLS that is not Istio's ({facts.extra.get('destination_rule')})"
    if facts.extra.get("passthrough"):
        return f"{source}'s sidecar passes the request through in plaintext"
    if facts.source_proxy:
        return f"{source} sends plaintext ({facts.extra.get('destination_rule') or 'auto mTLS'})"
    return f"{source} has no sidecar and sends plaintext"
