"""sidecar.SelectorAnalyzer: Sidecars that select nothing, overlap, or have no effect."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ..analyzer import Analyzer, Results
from ..finding import Finding, Level
from ._selectors import selected_workloads, without_selector, workload_selector


class SidecarSelectorAnalyzer(Analyzer):
    """Sidecar resources whose ``workloadSelector`` selects no pod of their namespace, that
    select the same pod as another Sidecar, that share their namespace with another Sidecar
    without a selector (Istio then picks one at random), or that sit in an ambient namespace
    where no pod has a sidecar to apply them to.

    Fails with IST0101::

        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          workloadSelector: {labels: {app: reviewz}}
          egress: [{hosts: ["./*"]}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews}}
        spec: {containers: [{name: reviews, image: reviews}]}

    Fails with IST0110::

        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          workloadSelector: {labels: {app: reviews}}
          egress: [{hosts: ["./*"]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: reviews-v1, namespace: bookinfo}
        spec:
          workloadSelector: {labels: {version: v1}}
          egress: [{hosts: ["./*"]}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews, version: v1}}
        spec: {containers: [{name: reviews, image: reviews}]}

    Fails with IST0111::

        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default, namespace: bookinfo}
        spec: {egress: [{hosts: ["./*"]}]}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: egress, namespace: bookinfo}
        spec: {egress: [{hosts: ["istio-system/*"]}]}

    Fails with IST0167::

        apiVersion: v1
        kind: Namespace
        metadata: {name: bookinfo, labels: {istio.io/dataplane-mode: ambient}}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default, namespace: bookinfo}
        spec: {egress: [{hosts: ["./*"]}]}

    Passes::

        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          workloadSelector: {labels: {app: reviews}}
          egress: [{hosts: ["./*"]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default, namespace: bookinfo}
        spec: {egress: [{hosts: ["./*", "istio-system/*"]}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: reviews-v1, namespace: bookinfo, labels: {app: reviews}}
        spec: {containers: [{name: reviews, image: reviews}]}
    """

    name = "sidecar.SelectorAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0101": Level.ERROR, "IST0110": Level.ERROR, "IST0111": Level.ERROR,
             "IST0167": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        sidecars = index.istio("Sidecar")
        if not sidecars:
            return
        yield from without_selector(self, sidecars, workload_selector, "IST0111", "Sidecars")
        for sidecar in sidecars:
            if not workload_selector(sidecar) and index.namespace_injection(
                    sidecar.namespace) == "ambient":
                yield self._ineffective(sidecar, f"namespace {sidecar.namespace} runs in "
                                        "ambient mode, without sidecars")
        if not index.knows_workloads():
            if any(workload_selector(s) for s in sidecars):
                yield self.unchecked("Sidecar workload selectors", "no pod or workload in "
                                     "the input")
            return
        for item in selected_workloads(self, index, sidecars, workload_selector,
                                       "spec.workloadSelector.labels", "IST0110", "Sidecars"):
            if not isinstance(item, tuple):
                yield item
                continue
            sidecar, workloads = item
            if workloads and all(index.in_mesh(w) and not index.has_sidecar(w)
                                 for w in workloads):
                yield self._ineffective(sidecar, "the pods it selects run in ambient mode, "
                                        "without sidecars")

    def _ineffective(self, sidecar: Resource, reason: str) -> Finding:
        return self.finding(sidecar, "IST0167", f"The policy has no impact: {reason}.")
