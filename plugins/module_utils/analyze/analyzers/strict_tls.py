"""MST0101: a DestinationRule that sends a STRICT mTLS workload something other than Istio
mTLS: plaintext (DISABLE), or TLS of its own (SIMPLE, MUTUAL)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ...estate.hosts import HostEntry
from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._mtls import effective_mode, target_port
from ._routes import string_list

# What a client sidecar sends under each TLS mode that is not Istio's mTLS
_SENDS = {"DISABLE": "plaintext",
          "SIMPLE": "TLS of its own (SIMPLE), without Istio's client certificate",
          "MUTUAL": "TLS with its own certificates (MUTUAL), not Istio's"}


def _non_mesh_ports(rule: Resource, entry: HostEntry,
                    ) -> Iterator[tuple[Mapping[str, Any], str, str]]:
    """(service port, field path, mode) of each port the DestinationRule sends something
    other than Istio mTLS to."""
    policy = rule.spec.get("trafficPolicy")
    policy = policy if isinstance(policy, Mapping) else {}
    top = (policy.get("tls") or {}).get("mode") if isinstance(policy.get("tls"), Mapping) else None
    levels = policy.get("portLevelSettings")
    per_port: dict[Any, tuple[str | None, str]] = {}
    for number, setting in enumerate(levels if isinstance(levels, list) else []):
        if isinstance(setting, Mapping):
            port = (setting.get("port") or {}).get("number")
            tls = setting.get("tls")
            mode = tls.get("mode") if isinstance(tls, Mapping) else None
            per_port[port] = (mode, f"spec.trafficPolicy.portLevelSettings[{number}].tls.mode")
    for port in entry.ports:
        mode, path = per_port.get(port.get("number"), (None, ""))
        if mode is None:
            mode, path = top, "spec.trafficPolicy.tls.mode"
        if mode in _SENDS:
            yield port, path, str(mode)


class StrictTlsAnalyzer(Analyzer):
    """A DestinationRule that sends a workload whose PeerAuthentication is STRICT on a port
    something other than Istio's mTLS there (for the host or for the port): ``tls.mode:
    DISABLE`` sends plaintext; ``SIMPLE`` and ``MUTUAL`` originate TLS with the rule's own
    certificates (or none), without Istio's client certificate and ALPN. The server's
    sidecar refuses both, so every request fails. Keep ``ISTIO_MUTUAL`` (or no ``tls``:
    auto mTLS), or give the workload a PERMISSIVE or DISABLE exception (a
    PeerAuthentication with a selector, or ``portLevelMtls`` for the port).
    https://istio.io/latest/docs/ops/configuration/traffic-management/tls-configuration/
    #auto-mtls, https://istio.io/latest/docs/ops/common-problems/network-issues/
    #503-errors-after-setting-destination-rule

    The workload ports are the Service's target ports; without pods in the input (and
    unless it is declared complete), the Service's selector stands for its pods' labels.

    Fails with MST0101::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: legacy-billing, namespace: payments}
        spec: {host: legacy-billing, trafficPolicy: {tls: {mode: DISABLE}}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: legacy-billing, namespace: payments}
        spec: {selector: {app: legacy-billing}, ports: [{name: tcp-billing, port: 7000}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: legacy-billing-1
          namespace: payments
          labels: {app: legacy-billing, sidecar.istio.io/inject: "true"}
        spec: {containers: [{name: billing, image: billing, ports: [{containerPort: 7000}]}]}

    Passes::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: legacy-billing-mtls-exception, namespace: payments}
        spec:
          selector: {matchLabels: {app: legacy-billing}}
          mtls: {mode: DISABLE}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: legacy-billing, namespace: payments}
        spec: {host: legacy-billing, trafficPolicy: {tls: {mode: DISABLE}}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: legacy-billing, namespace: payments}
        spec: {selector: {app: legacy-billing}, ports: [{name: tcp-billing, port: 7000}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: legacy-billing-1
          namespace: payments
          labels: {app: legacy-billing, sidecar.istio.io/inject: "true"}
        spec: {containers: [{name: billing, image: billing, ports: [{containerPort: 7000}]}]}
    """

    name = "meshstage.StrictTlsAnalyzer"
    provider = "istio"
    codes = {"MST0101": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        rules = [r for r in index.istio("DestinationRule") if any(
            mode in str(r.spec.get("trafficPolicy")) for mode in _SENDS)]
        if not rules or not index.istio("PeerAuthentication"):
            return
        if not index.knows_hosts():
            yield self.unchecked("DestinationRules that disable TLS",
                                 "no Service or ServiceEntry in the input")
            return
        for rule in rules:
            entry = index.resolve_host(rule.namespace, str(rule.spec.get("host") or ""),
                                       string_list(rule.spec.get("exportTo")))
            if entry is None or not entry.is_service:
                continue
            workloads = index.selected_by_service(entry)
            servers = ([(w.labels, w) for w in workloads if index.has_sidecar(w)]
                       if index.knows_workloads() else [(entry.selector, None)])
            reported = False
            for port, path, sent in _non_mesh_ports(rule, entry):
                for labels, workload in servers:
                    pod_port = target_port(port, workload)
                    mode, policy = effective_mode(index, labels, entry.resource.namespace,
                                                  pod_port)
                    if mode != "STRICT" or reported:
                        continue
                    reported = True
                    where = f"{policy.display}" if policy is not None else "the mesh"
                    yield self.finding(
                        rule, "MST0101", f"This DestinationRule sends {_SENDS[sent]} to port "
                        f"{port.get('number')} of {entry.resource.namespace}/"
                        f"{entry.resource.name}, whose workloads require Istio mTLS ({where} "
                        "is STRICT): every request will be refused; keep ISTIO_MUTUAL or give "
                        "the workload a PERMISSIVE or DISABLE exception.", path)
