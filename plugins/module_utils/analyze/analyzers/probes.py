"""MST0105: default deny that refuses the kubelet's health probes (Istio)."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._authz import PolicyIndex, evaluate
from ._probes import probes

REWRITE = "sidecar.istio.io/rewriteAppHTTPProbers"


class ProbesAnalyzer(Analyzer):
    """Pods under default deny whose health probes reach the application through the
    sidecar: with ``sidecar.istio.io/rewriteAppHTTPProbers: "false"`` the kubelet's
    plaintext, identity-less probes are subject to AuthorizationPolicy, and unless an ALLOW
    rule without ``from`` (or with IP blocks) admits them they are refused, so the pods
    never become ready. (By default Istio rewrites HTTP probes to the sidecar's agent, which
    authorization does not see.)

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
          labels: {app: payment-service}
          annotations: {sidecar.istio.io/inject: "true",
                        sidecar.istio.io/rewriteAppHTTPProbers: "false"}
        spec:
          containers:
          - name: app
            image: payment-service
            readinessProbe: {httpGet: {path: /healthz, port: 8080}}

    Passes::

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
          labels: {app: payment-service}
          annotations: {sidecar.istio.io/inject: "true",
                        sidecar.istio.io/rewriteAppHTTPProbers: "false"}
        spec:
          containers:
          - name: app
            image: payment-service
            readinessProbe: {httpGet: {path: /healthz, port: 8080}}
    """

    name = "meshstage.ProbesAnalyzer"
    provider = "istio"
    codes = {"MST0105": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        if not index.istio("AuthorizationPolicy"):
            return
        policies = PolicyIndex(index)
        for workload in index.workloads:
            if workload.annotations.get(REWRITE, "").lower() != "false":
                continue
            if not index.has_sidecar(workload):
                continue
            found = next(probes(workload), None)
            if found is None:
                continue
            verdict = evaluate(policies, workload, None)
            if verdict.admitted is False and verdict.blocking is not None:
                yield self.finding(
                    verdict.blocking, "MST0105", f"This policy refuses the kubelet's "
                    f"{found.kind} of {workload.resource.display} (container {found.container},"
                    f" port {found.port}): probes are not rewritten "
                    f"({REWRITE}: \"false\"), so add an ALLOW rule without 'from' for the "
                    "probe path, or let Istio rewrite the probes.")
