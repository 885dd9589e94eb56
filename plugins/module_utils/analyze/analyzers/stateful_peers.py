"""MST0111: StatefulSet peers that talk pod to pod on ports no Service declares, under
STRICT mTLS."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ...estate.objects import Workload
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._mtls import effective_mode, target_port

# The sidecar's own ports: never an application's peer port.
_PROXY_PORTS = range(15000, 15100)


def undeclared_ports(index: MeshIndex, workload: Workload) -> list[int]:
    """Container ports of the workload that no Service selecting its pods declares."""
    declared = {target_port(port, workload) for entry in index.services_selecting(workload)
                for port in entry.ports}
    return sorted({number for _, number in workload.container_ports()
                   if number not in declared and number not in _PROXY_PORTS})


class StatefulPeersAnalyzer(Analyzer):
    """A StatefulSet with sidecars whose pods listen on a port that no Service selecting
    them declares (its headless Service declares the client port, say, not the cluster's
    gossip or replication port), while STRICT mTLS applies on that port. The peers talk to
    each other by pod DNS name or pod IP: Istio creates listeners for a headless Service's
    endpoints only on the ports it declares, so the rest is passed through as plaintext,
    which STRICT refuses, and the cluster cannot form. Declare the port in a headless
    Service (a ``tcp-`` port; meshstage renders ``<service>-peers`` for the intent's
    ``peer_ports``), or give the port a PERMISSIVE ``portLevelMtls`` exception.
    https://istio.io/latest/docs/ops/configuration/traffic-management/traffic-routing/
    #headless-services (Linkerd gives pod-to-pod traffic mTLS by pod IP: no such problem.)

    Fails with MST0111::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: cart-cache, namespace: shop}
        spec:
          clusterIP: None
          selector: {app: cart-cache}
          ports: [{name: redis, port: 6379}]
        ---
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: cart-cache, namespace: shop}
        spec:
          serviceName: cart-cache
          selector: {matchLabels: {app: cart-cache}}
          template:
            metadata: {labels: {app: cart-cache}}
            spec:
              containers:
              - name: redis
                image: redis:7.2
                args: [--cluster-enabled, "yes"]
                ports: [{name: redis, containerPort: 6379}, {name: cluster, containerPort: 16379}]

    Passes::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: cart-cache, namespace: shop}
        spec:
          clusterIP: None
          selector: {app: cart-cache}
          ports: [{name: redis, port: 6379}, {name: tcp-cluster, port: 16379}]
        ---
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: cart-cache, namespace: shop}
        spec:
          serviceName: cart-cache
          selector: {matchLabels: {app: cart-cache}}
          template:
            metadata: {labels: {app: cart-cache}}
            spec:
              containers:
              - name: redis
                image: redis:7.2
                args: [--cluster-enabled, "yes"]
                ports: [{name: redis, containerPort: 6379}, {name: cluster, containerPort: 16379}]
    """

    name = "meshstage.StatefulPeersAnalyzer"
    provider = "istio"
    codes = {"MST0111": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        if not index.istio("PeerAuthentication"):
            return
        for workload in index.workloads:
            if workload.kind != "StatefulSet" or not index.has_sidecar(workload):
                continue
            if not index.knows_in(workload.namespace, "Service"):
                yield self.unchecked(f"the peer ports of {workload.resource.display}",
                                     f"no Service of namespace {workload.namespace} in the "
                                     "input")
                continue
            strict = []
            policy = None
            for port in undeclared_ports(index, workload):
                mode, governing = effective_mode(index, workload.labels, workload.namespace,
                                                 port)
                if mode == "STRICT" and governing is not None:
                    strict.append(port)
                    policy = policy or governing
            if policy is None:
                continue
            declared = [f"{e.resource.namespace}/{e.resource.name}"
                        for e in index.services_selecting(workload)]
            shown = ", ".join(str(p) for p in strict)
            yield self.finding(
                policy, "MST0111", f"The pods of {workload.resource.display} listen on port(s) "
                f"{shown}, which no Service selecting them declares "
                f"({', '.join(declared) or 'none selects them'}): peers that talk to each "
                "other on them pod to pod are passed through as plaintext, which STRICT "
                "refuses; declare the port(s) in a headless Service (tcp-<name>), or give "
                "them a PERMISSIVE portLevelMtls exception.")
