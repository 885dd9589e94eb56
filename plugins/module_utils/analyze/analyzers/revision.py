"""MST0118: a pod's own injection request that its namespace's ``istio-injection`` label
overrides."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ..analyzer import Analyzer, Results
from ..finding import Level

REVISION = "istio.io/rev"


class RevisionAnalyzer(Analyzer):
    """A pod template that asks for a sidecar of its own kind while its namespace's
    ``istio-injection`` label decides otherwise: a pod labelled ``istio.io/rev: <rev>`` in a
    namespace labelled ``istio-injection: enabled`` is injected by the **default**
    revision, not ``<rev>`` (the revisioned injection webhooks only select namespaces
    without ``istio-injection``), so a canary control plane never gets it; and a pod that
    asks for injection (``istio.io/rev``, ``sidecar.istio.io/inject: "true"``) in a
    namespace labelled ``istio-injection: disabled`` gets no sidecar at all. Label the
    namespace ``istio.io/rev: <rev>`` instead of ``istio-injection`` (or remove the pod's
    label). https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/
    #controlling-the-injection-policy (the webhooks' ``namespaceSelector`` in istio/istio
    manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml)

    Fails with MST0118::

        apiVersion: v1
        kind: Namespace
        metadata: {name: payments, labels: {istio-injection: enabled}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: payment-service, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          template:
            metadata: {labels: {app: payment-service, istio.io/rev: canary}}
            spec: {containers: [{name: app, image: payment-service}]}

    Passes::

        apiVersion: v1
        kind: Namespace
        metadata: {name: payments, labels: {istio.io/rev: canary}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: payment-service, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          template:
            metadata: {labels: {app: payment-service, istio.io/rev: canary}}
            spec: {containers: [{name: app, image: payment-service}]}
    """

    name = "meshstage.RevisionAnalyzer"
    provider = "istio"
    codes = {"MST0118": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        for workload in index.workloads:
            namespace = index.namespace(workload.namespace)
            label = namespace.labels.get("istio-injection") if namespace else None
            if namespace is None or label not in ("enabled", "disabled"):
                continue
            revision = workload.labels.get(REVISION)
            display = workload.resource.display
            if label == "enabled" and revision and revision != "default":
                yield self.finding(
                    namespace, "MST0118", f"{display} asks for revision {revision!r} "
                    f"({REVISION}), but this namespace's istio-injection: enabled wins: the "
                    "default revision injects it; label the namespace "
                    f"{REVISION}: {revision} instead of istio-injection.")
            elif label == "disabled" and (revision or workload.injection_override == "true"):
                asked = f"{REVISION}: {revision}" if revision else \
                    'sidecar.istio.io/inject: "true"'
                yield self.finding(
                    namespace, "MST0118", f"{display} asks for a sidecar ({asked}), but this "
                    "namespace's istio-injection: disabled wins: its pods get none; remove "
                    "the namespace's label (or the pod's).")
