"""MST0106: STRICT mTLS while a namespace's workloads get no sidecar."""

from __future__ import annotations

from collections.abc import Iterator

from ...estate.index import MeshIndex
from ...estate.objects import SYSTEM_NAMESPACES, Resource, Workload
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._mtls import mode_of
from ._selectors import match_labels


def _strict_policies(index: MeshIndex) -> Iterator[Resource]:
    """STRICT PeerAuthentications: the mesh-wide one first, then the others."""
    root = index.mesh.root_namespace
    policies = index.istio("PeerAuthentication")
    mesh = [p for p in policies if p.namespace == root and not match_labels(p)]
    for policy in [*mesh, *(p for p in policies if p not in mesh)]:
        if mode_of(policy, None) == "STRICT":
            yield policy


class StrictUninjectedAnalyzer(Analyzer):
    """STRICT mTLS (mesh-wide, or on some namespace or workload) while a namespace's
    workloads run without a sidecar: its Namespace is not enabled for injection (or is
    labelled ``istio-injection: disabled``, kept out of the mesh on purpose), or, when the
    input holds no Namespace object for it, its workloads show no sidecar. They cannot
    present a certificate, so every request they make to a STRICT workload is refused. A
    PERMISSIVE exception in their own namespace changes nothing for their requests: inject
    the namespace (and restart its workloads) before STRICT, or give the workloads it calls
    a PERMISSIVE exception in theirs.
    https://istio.io/latest/docs/concepts/security/#peer-authentication

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
        strict = list(_strict_policies(index))
        if not strict:
            return
        names = {n.name for n in index.of_kind("Namespace")} | {
            w.namespace for w in index.workloads}
        for name in sorted(names):
            if name == index.mesh.root_namespace or name in SYSTEM_NAMESPACES:
                continue
            why = self._uninjected(index, name)
            if why is None:
                continue
            policy = next((p for p in strict if p.namespace != name), None)
            if policy is None:
                continue  # only its own workloads are STRICT: nothing calls them from outside
            yield self.finding(
                policy, "MST0106", f"STRICT mTLS applies to {self._scope(index, policy)}, and "
                f"namespace {name} {why}: its workloads have no sidecar, so their requests to "
                "STRICT workloads will be refused; inject it first, or give the workloads it "
                "calls a PERMISSIVE exception in their namespaces (one in its own changes "
                "nothing for its requests).")

    @staticmethod
    def _uninjected(index: MeshIndex, name: str) -> str | None:
        """Why the namespace's workloads have no sidecar, or None when they have one."""
        namespace = index.namespace(name)
        workloads: list[Workload] = index.workloads_in(name)
        without = [w for w in workloads if not index.in_mesh(w) and not w.host_network]
        if namespace is None:
            if not without:
                return None
            return (f"(no Namespace object in the input) runs {without[0].resource.display} "
                    "without a sidecar")
        if namespace.labels.get("istio-injection") == "disabled":
            return "is labelled istio-injection: disabled" if without or not workloads else None
        if index.namespace_injection(name) in ("sidecar", "ambient"):
            return None
        return "is not enabled for injection" if without or not workloads else None

    @staticmethod
    def _scope(index: MeshIndex, policy: Resource) -> str:
        if policy.namespace == index.mesh.root_namespace and not match_labels(policy):
            return "the mesh"
        if not match_labels(policy):
            return f"namespace {policy.namespace}"
        return f"workloads of namespace {policy.namespace}"
