"""MST0102: PeerAuthentications that conflict, so Istio ignores some of them."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ...estate.objects import Resource, Workload
from ...kube import selector_text
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._selectors import match_labels


class PeerAuthenticationConflictAnalyzer(Analyzer):
    """PeerAuthentications that Istio cannot all apply: more than one without a selector in
    a namespace (mesh-wide in the root namespace), more than one selecting the same
    workload (Istio takes the oldest and ignores the rest, so a STRICT or an exception can
    silently not apply), or ``portLevelMtls`` without a selector (the API server refuses
    it). A PeerAuthentication whose selector selects no pod is reported too (Warning): the
    exception it was written for applies to nothing.

    Fails with MST0102::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: permissive, namespace: istio-system}
        spec: {mtls: {mode: PERMISSIVE}}

    Fails with MST0108::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: legacy-billing-mtls-exception, namespace: payments}
        spec:
          selector: {matchLabels: {app: legacy-biling}}
          mtls: {mode: DISABLE}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: legacy-billing-1, namespace: payments, labels: {app: legacy-billing}}
        spec: {containers: [{name: billing, image: billing}]}

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
        apiVersion: v1
        kind: Pod
        metadata: {name: legacy-billing-1, namespace: payments, labels: {app: legacy-billing}}
        spec: {containers: [{name: billing, image: billing}]}
    """

    name = "meshstage.PeerAuthenticationConflictAnalyzer"
    provider = "istio"
    codes = {"MST0102": Level.ERROR, "MST0108": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        policies = index.istio("PeerAuthentication")
        if not policies:
            return
        unscoped: dict[str, list[Resource]] = {}
        for policy in policies:
            if match_labels(policy):
                continue
            unscoped.setdefault(policy.namespace, []).append(policy)
            if policy.spec.get("portLevelMtls"):
                yield self.finding(policy, "MST0102", "portLevelMtls needs a selector: the API "
                                   "server refuses this PeerAuthentication.",
                                   "spec.portLevelMtls")
        for namespace, group in unscoped.items():
            if len(group) > 1:
                scope = ("mesh-wide" if namespace == index.mesh.root_namespace
                         else f"for namespace {namespace}")
                names = ", ".join(p.name for p in group)
                for policy in group:
                    yield self.finding(policy, "MST0102", f"PeerAuthentications {names} all "
                                       f"apply {scope} (no selector): Istio applies only the "
                                       "oldest; keep one.")
        scoped = [p for p in policies if match_labels(p)]
        if not scoped:
            return
        if not index.knows_workloads():
            yield self.unchecked("PeerAuthentication selectors", "no pod or workload in the "
                                 "input")
            return
        selecting: dict[Workload, list[Resource]] = {}
        for policy in scoped:
            labels = match_labels(policy)
            workloads = index.workloads_matching(policy.namespace, labels)
            if not workloads:
                yield self.finding(policy, "MST0108", f"The selector {selector_text(labels)!r} "
                                   f"selects no pod in namespace {policy.namespace}: this "
                                   "PeerAuthentication applies to nothing.",
                                   "spec.selector.matchLabels")
            for workload in workloads:
                selecting.setdefault(workload, []).append(policy)
        reported: set[Resource] = set()
        for workload, group in selecting.items():
            if len(group) < 2:
                continue
            names = ", ".join(p.name for p in group)
            for policy in group:
                if policy in reported:
                    continue
                reported.add(policy)
                yield self.finding(policy, "MST0102", f"PeerAuthentications {names} select the "
                                   f"same workload ({workload.resource.display}): Istio "
                                   "applies only the oldest; merge them (portLevelMtls for "
                                   "per-port modes).", "spec.selector")
