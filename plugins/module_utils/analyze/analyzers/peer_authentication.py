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
        unscoped = [p for p in policies if not match_labels(p)]
        yield from self._port_level_without_selector(unscoped)
        yield from self._namespace_wide_conflicts(index, unscoped)
        scoped = [p for p in policies if match_labels(p)]
        if not scoped:
            return
        if not index.knows_workloads():
            yield self.unchecked("PeerAuthentication selectors", "no pod or workload in the "
                                 "input")
            return
        selected = [(policy, index.workloads_matching(policy.namespace, match_labels(policy)))
                    for policy in scoped]
        yield from self._selecting_nothing(selected)
        yield from self._same_workload_conflicts(selected)

    def _port_level_without_selector(self, unscoped: list[Resource]) -> Results:
        for policy in unscoped:
            if policy.spec.get("portLevelMtls"):
                yield self.finding(policy, "MST0102", "portLevelMtls needs a selector: the API "
                                   "server refuses this PeerAuthentication.",
                                   "spec.portLevelMtls")

    def _namespace_wide_conflicts(self, index: MeshIndex, unscoped: list[Resource]) -> Results:
        """Every PeerAuthentication without a selector in a namespace that has more than one."""
        by_namespace: dict[str, list[Resource]] = {}
        for policy in unscoped:
            by_namespace.setdefault(policy.namespace, []).append(policy)
        for namespace, group in by_namespace.items():
            if len(group) > 1:
                scope = ("mesh-wide" if namespace == index.mesh.root_namespace
                         else f"for namespace {namespace}")
                names = ", ".join(p.name for p in group)
                for policy in group:
                    yield self.finding(policy, "MST0102", f"PeerAuthentications {names} all "
                                       f"apply {scope} (no selector): Istio applies only the "
                                       "oldest; keep one.")

    def _selecting_nothing(self, selected: list[tuple[Resource, list[Workload]]]) -> Results:
        for policy, workloads in selected:
            if not workloads:
                labels = match_labels(policy)
                yield self.finding(policy, "MST0108", f"The selector {selector_text(labels)!r} "
                                   f"selects no pod in namespace {policy.namespace}: this "
                                   "PeerAuthentication applies to nothing.",
                                   "spec.selector.matchLabels")

    def _same_workload_conflicts(self, selected: list[tuple[Resource, list[Workload]]]
                                 ) -> Results:
        """Each PeerAuthentication that selects a workload another one selects too, once."""
        selecting: dict[Workload, list[Resource]] = {}
        for policy, workloads in selected:
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
