"""Whether the client's sidecar knows the destination: Sidecar egress and unknown hosts."""

from __future__ import annotations

from collections.abc import Mapping

from ....estate.objects import Resource, as_list, as_mapping, as_strings
from ....flows.evaluate import FlowRule, Step
from ....flows.model import RESET, Verdict, refused
from .view import IstioView, spec_list


def effective_sidecar(view: IstioView, namespace: str,
                      labels: tuple[tuple[str, str], ...]) -> Resource | None:
    """The Sidecar whose workloadSelector selects the client (``labels``: a peer's), else
    its namespace's selector-less Sidecar, else the root namespace's."""
    key = ("sidecar", namespace, labels)
    found = view.memo.get(key, view)  # the view: not looked up yet (None is an answer)
    if found is view:
        found = view.memo[key] = _effective_sidecar(view, namespace, dict(labels))
    return found


def _effective_sidecar(view: IstioView, namespace: str,
                       labels: Mapping[str, str]) -> Resource | None:
    selected, selector_less = _sidecars(view, namespace)
    for sidecar, selector in selected:
        if all(labels.get(k) == v for k, v in selector.items()):
            return sidecar
    if selector_less is not None:
        return selector_less
    return _sidecars(view, view.root)[1]


def _sidecars(view: IstioView, namespace: str,
              ) -> tuple[list[tuple[Resource, dict[str, str]]], Resource | None]:
    """A namespace's Sidecars with a workloadSelector, in order, each with its labels read
    once as ``workload_selected`` reads them (an empty one is none), and its first Sidecar
    without one."""
    key = ("sidecars", namespace)
    found = view.memo.get(key)
    if found is None:
        selected, selector_less = [], None
        for sidecar in view.sidecars.get(namespace, []):
            selector = as_strings(as_mapping(sidecar.spec.get("workloadSelector")).get(
                "labels"))
            if selector:
                selected.append((sidecar, selector))
            elif selector_less is None:
                selector_less = sidecar
        found = view.memo[key] = (selected, selector_less)
    return found


def imports(sidecar: Resource, client_namespace: str, namespace: str, fqdn: str,
            port: int | None) -> bool:
    for listener in spec_list(sidecar, "egress"):
        number = as_mapping(listener.get("port")).get("number")
        if number is not None and port is not None and number != port:
            continue
        for host in as_list(listener.get("hosts")):
            ns, _, dns = str(host).partition("/")
            if ns == "~" or (ns not in ("*", ".", namespace)) or \
                    (ns == "." and client_namespace != namespace):
                continue
            if dns == "*" or dns == fqdn or fqdn.startswith(dns + ".") or \
                    (dns.startswith("*.") and fqdn.endswith(dns[1:])):
                return True
    return False


class SidecarEgress(FlowRule):
    """A sidecar reaches only the services its Sidecar resource imports (``egress.hosts``,
    ``namespace/dnsName``), and no Kubernetes Service at all for a plain host outside the
    registry. What it does not know goes by ``outboundTrafficPolicy``: ``ALLOW_ANY`` (the
    default) passes the bytes to the original destination as the application sent them,
    plaintext and with no identity; ``REGISTRY_ONLY`` drops them (BlackHoleCluster).
    Gateways are not shaped by Sidecar resources.

    Follows https://istio.io/latest/docs/reference/config/networking/sidecar/
    #OutboundTrafficPolicy-Mode ("REGISTRY_ONLY: Outbound traffic will be restricted to
    services defined in the service registry"; "ALLOW_ANY: Outbound traffic to unknown
    destinations will be allowed") and https://istio.io/latest/docs/ops/configuration/
    traffic-management/traffic-routing/#unmatched-traffic ("when these requests are
    forwarded, mutual TLS will not be used").
    """

    name = "istio.SidecarEgress"

    def apply(self, step: Step) -> Verdict | None:
        view, flow, facts = step.view, step.flow, step.facts
        source = flow.source
        if not facts.source_proxy or source.kind == "gateway" or facts.extra.get(
                "passthrough"):
            return None
        sidecar = effective_sidecar(view, source.namespace, source.labels)
        destination = flow.destination
        # a pod address is reached through the headless Service that declares its port
        fqdn = facts.extra.get("fqdn") or view.destination_fqdn(destination)
        port = facts.extra.get("service_port", destination.service_port)
        key = ("imports", id(sidecar), source.namespace, destination.namespace, fqdn, port)
        if key not in view.memo:
            view.memo[key] = sidecar is None or imports(
                sidecar, source.namespace, destination.namespace, fqdn, port)
        known = destination.kind != "host" and view.memo[key]
        if known:
            return None
        what = (f"{sidecar.display} does not import {fqdn}"
                if sidecar is not None and destination.kind != "host"
                else f"{destination} is outside the service registry")
        return unmatched(step, sidecar, what,
                         "add the callee to the caller's calls (its Sidecar egress)")


def unmatched(step: Step, sidecar: Resource | None, what: str, fix: str) -> Verdict | None:
    """A request the client's sidecar has no listener or cluster for: the effective
    Sidecar's ``REGISTRY_ONLY`` drops it, ``ALLOW_ANY`` (the default) passes it through as
    plaintext without identity."""
    mode = str(as_mapping(sidecar.spec.get("outboundTrafficPolicy")).get("mode")
               or "ALLOW_ANY") if sidecar is not None else "ALLOW_ANY"
    if mode == "REGISTRY_ONLY":
        return refused(RESET, f"{what}, and REGISTRY_ONLY drops it",
                       sidecar.display if sidecar is not None else "", fix)
    step.facts.extra["passthrough"] = True
    step.facts.notes.append(f"{what}: passed through as plaintext")
    return None
