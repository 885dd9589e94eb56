"""MST0109: an AuthorizationPolicy in the root namespace without a selector binds the mesh."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ..analyzer import Analyzer, Results
from ..finding import Level


class RootNamespacePolicyAnalyzer(Analyzer):
    """An AuthorizationPolicy in the mesh's root namespace (``rootNamespace`` of the mesh
    config, ``mesh_root_namespace``) with neither ``selector`` nor ``targetRef(s)``: Istio
    applies it to every workload of the mesh, the ingress gateway included
    (https://istio.io/latest/docs/reference/config/security/authorization-policy/: "If the
    policy is in the root namespace, the policy applies to all namespaces in the mesh"). An
    ``allow-nothing`` meant for one namespace denies every request of the mesh there; an
    ALLOW with rules makes every other workload default-deny.

    Fails with MST0109::

        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-nothing, namespace: istio-system}
        spec: {}

    Passes::

        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-nothing, namespace: payments}
        spec: {}
    """

    name = "meshstage.RootNamespacePolicyAnalyzer"
    provider = "istio"
    codes = {"MST0109": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        root = index.mesh.root_namespace
        for policy in index.istio("AuthorizationPolicy"):
            spec = policy.spec
            if policy.namespace != root or spec.get("selector") or spec.get("targetRef") \
                    or spec.get("targetRefs"):
                continue
            yield self.finding(policy, "MST0109", f"It is in the root namespace {root} and "
                               "selects no workload: Istio applies it to every workload of "
                               "the mesh, the ingress gateway included. Give it a selector, "
                               "or put it in the namespace it is meant for.")
