"""MST0105, MST0108: default deny, or STRICT mTLS, that refuses the kubelet's health probes
(Istio)."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._authz import PolicyIndex, evaluate
from ._mtls import effective_mode
from ._probes import port_number, probes

REWRITE = "sidecar.istio.io/rewriteAppHTTPProbers"


class ProbesAnalyzer(Analyzer):
    """Pods under default deny whose health probes reach the application through the
    sidecar: with ``sidecar.istio.io/rewriteAppHTTPProbers: "false"`` the kubelet's
    plaintext, identity-less probes are subject to AuthorizationPolicy, and unless an ALLOW
    rule without ``from`` (or with IP blocks) admits them they are refused, so the pods
    never become ready (MST0105). STRICT mTLS refuses them before any policy is read: the
    kubelet has no Istio certificate, so an httpGet or gRPC probe on a port whose
    PeerAuthentication mode is STRICT never gets through (MST0108); tcpSocket probes pass,
    as the sidecar accepts every connection, and exec probes cross no network. (By default
    Istio rewrites the probes to the sidecar's agent, which neither mTLS nor authorization
    sees: https://istio.io/latest/docs/ops/configuration/mesh/app-health-check/.)

    Fails with MST0105::

        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-nothing, namespace: payments}
        spec: {}
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: payment-service-1
          namespace: payments
          labels: {app: payment-service, sidecar.istio.io/inject: "true"}
          annotations: {sidecar.istio.io/rewriteAppHTTPProbers: "false"}
        spec:
          containers:
          - name: app
            image: payment-service
            readinessProbe: {httpGet: {path: /healthz, port: 8080}}

    Fails with MST0108::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: payment-service-1
          namespace: payments
          labels: {app: payment-service, sidecar.istio.io/inject: "true"}
          annotations: {sidecar.istio.io/rewriteAppHTTPProbers: "false"}
        spec:
          containers:
          - name: app
            image: payment-service
            livenessProbe: {grpc: {port: 8080}}

    Passes::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: payment-service-probes, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          portLevelMtls: {"8080": {mode: PERMISSIVE}}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-nothing, namespace: payments}
        spec: {}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: payment-service-probes, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          rules: [{to: [{operation: {methods: [GET], paths: [/healthz]}}]}]
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: payment-service-1
          namespace: payments
          labels: {app: payment-service, sidecar.istio.io/inject: "true"}
          annotations: {sidecar.istio.io/rewriteAppHTTPProbers: "false"}
        spec:
          containers:
          - name: app
            image: payment-service
            readinessProbe: {httpGet: {path: /healthz, port: 8080}}
    """

    name = "meshstage.ProbesAnalyzer"
    provider = "istio"
    codes = {"MST0105": Level.ERROR, "MST0108": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        strict = bool(index.istio("PeerAuthentication"))
        if not index.istio("AuthorizationPolicy") and not strict:
            return
        policies = PolicyIndex(index)
        for workload in index.workloads:
            if workload.annotations.get(REWRITE, "").lower() != "false":
                continue
            if not index.has_sidecar(workload):
                continue
            for probe in probes(workload) if strict else ():
                port = port_number(workload, probe.port)
                if probe.handler == "tcpSocket" or port is None:
                    continue
                mode, policy = effective_mode(index, workload.labels, workload.namespace, port)
                if mode == "STRICT" and policy is not None:
                    yield self.finding(
                        policy, "MST0108", f"STRICT mTLS refuses the kubelet's {probe.kind} "
                        f"of {workload.resource.display} (container {probe.container}, "
                        f"{probe.handler} on port {port}): Istio does not rewrite it "
                        f"({REWRITE}: \"false\") and the kubelet has no certificate; make "
                        "the port PERMISSIVE (portLevelMtls), or let Istio rewrite the probes.")
                    break
            found = next((p for p in probes(workload) if p.handler != "tcpSocket"), None)
            if found is None or not index.istio("AuthorizationPolicy"):
                continue
            verdict = evaluate(policies, workload, None)
            if verdict.admitted is False and verdict.blocking is not None:
                yield self.finding(
                    verdict.blocking, "MST0105", f"This policy refuses the kubelet's "
                    f"{found.kind} of {workload.resource.display} (container {found.container},"
                    f" port {found.port}): probes are not rewritten "
                    f"({REWRITE}: \"false\"), so add an ALLOW rule without 'from' for the "
                    "probe path, or let Istio rewrite the probes.")
