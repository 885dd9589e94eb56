"""MST0116: an ALLOW rule with HTTP-only fields and no ports, over a workload with a TCP
port that no other ALLOW rule admits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import Workload
from ...providers.istio.ports import WELL_KNOWN_TCP, port_protocol
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._authz import DRY_RUN, PolicyIndex, action, http_only
from ._mtls import target_port

# Protocols Istio proxies as TCP (mysql and redis filters are off by default; HTTPS at a
# sidecar is TLS it passes through)
TCP_PROTOCOLS = frozenset({"tcp", "tls", "https", "mongo", "mysql", "redis"})


def tcp_ports(index: MeshIndex, workload: Workload) -> list[int]:
    """The workload's pod ports that Services declare as TCP to Istio."""
    ports = set()
    for entry in index.services_selecting(workload):
        for port in entry.ports:
            protocol = port_protocol(port)
            if protocol in TCP_PROTOCOLS or (protocol is None and port.get("number") in
                                              WELL_KNOWN_TCP):
                number = target_port(port, workload)
                if number is not None:
                    ports.add(number)
    return sorted(ports)


def _operations(rule: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t["operation"] for t in rule.get("to") or []
            if isinstance(t, Mapping) and isinstance(t.get("operation"), Mapping)]


def _without_ports(rule: Any) -> bool:
    """An HTTP-only rule written for every port: no ``ports`` in any of its operations."""
    return isinstance(rule, Mapping) and http_only(rule) and not any(
        op.get("ports") for op in _operations(rule))


def _admits_tcp(rule: Any, port: int) -> bool:
    """A rule that can match a TCP connection to ``port``."""
    if not isinstance(rule, Mapping) or http_only(rule):
        return False
    operations = _operations(rule)
    if not operations:
        return True
    return any((not op.get("ports") or str(port) in [str(p) for p in op["ports"]])
               and str(port) not in [str(p) for p in op.get("notPorts") or []]
               for op in operations)


class TcpAllowAnalyzer(Analyzer):
    """An ALLOW AuthorizationPolicy with a rule that uses HTTP-only fields (``methods``,
    ``paths``, ``hosts``, ``requestPrincipals``, request header conditions) and no
    ``ports``, selecting a workload that also serves a TCP port (a Service port named
    ``tcp-``, ``tls-``, ``mysql-``... or one Istio takes as TCP), while no other ALLOW rule
    of the workload can match a TCP connection to that port. For TCP traffic Istio drops an
    ALLOW rule that has HTTP-only fields, and since an ALLOW policy applies, every
    connection to the TCP port is denied. Scope the rule to the HTTP ports (``ports``) and
    add an ALLOW rule for the TCP port's callers.
    https://istio.io/latest/docs/tasks/security/authorization/authz-tcp/ ("Istio ignores
    the invalid ALLOW rule"), ``rule.checkError`` in istio/istio
    pilot/pkg/security/authz/model/model.go

    Fails with MST0116::

        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: orders, namespace: shop}
        spec:
          selector: {matchLabels: {app: orders}}
          rules:
          - from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]
            to: [{operation: {methods: [GET, POST], paths: [/api/*]}}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: orders, namespace: shop}
        spec:
          selector: {app: orders}
          ports: [{name: http, port: 8080}, {name: tcp-events, port: 9000}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: orders, namespace: shop}
        spec:
          selector: {matchLabels: {app: orders}}
          template:
            metadata: {labels: {app: orders}}
            spec: {containers: [{name: orders, image: orders}]}

    Passes::

        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: orders, namespace: shop}
        spec:
          selector: {matchLabels: {app: orders}}
          rules:
          - from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]
            to: [{operation: {methods: [GET, POST], paths: [/api/*], ports: ["8080"]}}]
          - from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]
            to: [{operation: {ports: ["9000"]}}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: orders, namespace: shop}
        spec:
          selector: {app: orders}
          ports: [{name: http, port: 8080}, {name: tcp-events, port: 9000}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: orders, namespace: shop}
        spec:
          selector: {matchLabels: {app: orders}}
          template:
            metadata: {labels: {app: orders}}
            spec: {containers: [{name: orders, image: orders}]}
    """

    name = "meshstage.TcpAllowAnalyzer"
    provider = "istio"
    codes = {"MST0116": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        policies: PolicyIndex | None = None
        applied_to: dict[int, list[Workload]] = {}  # each policy's workloads, in their order
        for policy in index.istio("AuthorizationPolicy"):
            if action(policy) != "ALLOW" or policy.annotations.get(DRY_RUN, "") == "true":
                continue
            rules = policy.spec.get("rules")
            offending = [n for n, rule in enumerate(rules if isinstance(rules, list) else [])
                         if _without_ports(rule)]
            if not offending:
                continue
            if policies is None:
                policies = PolicyIndex(index)
                for workload in index.workloads:
                    for applying in policies.applying(workload):
                        applied_to.setdefault(id(applying), []).append(workload)
            for workload in applied_to.get(id(policy), []):
                rules_of = [r for p in policies.applying(workload) if action(p) == "ALLOW"
                            for r in p.spec.get("rules") or []]
                denied = [p for p in tcp_ports(index, workload)
                          if not any(_admits_tcp(r, p) for r in rules_of)]
                if not denied:
                    continue
                shown = ", ".join(str(p) for p in denied)
                yield self.finding(
                    policy, "MST0116", f"Rule {offending[0]} of this ALLOW policy has HTTP-only "
                    f"fields and no ports: Istio drops it for TCP traffic, and no ALLOW rule "
                    f"admits TCP port(s) {shown} of {workload.resource.display}, so every "
                    "connection to them is denied; add ports (the HTTP ones) to the rule, and "
                    "an ALLOW rule for the TCP port's callers.",
                    f"spec.rules[{offending[0]}]")
                break
