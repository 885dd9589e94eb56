"""MST0106: STRICT mTLS over a namespace whose workloads get no sidecar."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ...estate.objects import SYSTEM_NAMESPACES
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._mtls import effective_mode


class StrictUninjectedAnalyzer(Analyzer):
    """STRICT mTLS (mesh-wide, or for a namespace) over a namespace that is not enabled for
    injection and has no PERMISSIVE or DISABLE exception: its workloads run without a
    sidecar, so they cannot present a certificate, and every request they make to a STRICT
    workload is refused. Inject the namespace (and restart its workloads) before STRICT,
    or give it an exception.

    Fails with MST0106::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: payments}

    Passes::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: payments, labels: {istio-injection: enabled}}
    """

    name = "meshstage.StrictUninjectedAnalyzer"
    provider = "istio"
    codes = {"MST0106": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        if not index.istio("PeerAuthentication"):
            return
        for namespace in index.of_kind("Namespace"):
            name = namespace.name
            if name == index.mesh.root_namespace or name in SYSTEM_NAMESPACES:
                continue
            if index.namespace_injection(name) in ("sidecar", "ambient"):
                continue
            if namespace.labels.get("istio-injection") == "disabled":
                continue  # kept out of the mesh on purpose: its exception is its own affair
            mode, policy = effective_mode(index, {}, name, None)
            if mode == "STRICT" and policy is not None:
                yield self.finding(policy, "MST0106", f"STRICT mTLS applies to namespace "
                                   f"{name}, which is not enabled for injection: its "
                                   "workloads have no sidecar, and their requests to STRICT "
                                   "workloads will be refused; inject it first, or give it "
                                   "a PERMISSIVE exception.")
