"""MST0109, MST0110: injected pods that the Istio sidecar keeps from working: a Job that
never completes, init containers that reach the network before the proxy runs."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ...estate.objects import ISTIO_PROXY, Workload
from ...estate.stand_in import STOPS_PROXY
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._startup import mentions, networked_init, subject

NATIVE = "sidecar.istio.io/nativeSidecar"
# Istio's own init containers (traffic capture, its CNI's check)
OWN_CONTAINERS = {"istio-init", "istio-validation", ISTIO_PROXY}
_EXCLUDES = ("traffic.sidecar.istio.io/excludeOutboundIPRanges",
             "traffic.sidecar.istio.io/excludeOutboundPorts")
PROXY_UID = 1337


def native_sidecar(index: MeshIndex, workload: Workload) -> bool | None:
    """Whether the pod's proxy runs as a native sidecar: what its spec or annotation shows,
    else what the mesh does (None: cannot be told)."""
    if any(c.get("name") == ISTIO_PROXY for c in workload.init_containers):
        return True
    if any(c.get("name") == ISTIO_PROXY for c in workload.containers):
        return False
    value = workload.annotations.get(NATIVE, "").lower()
    if value in ("true", "false"):
        return value == "true"
    return index.mesh.native_sidecars


def _pod_level(workload: Workload) -> bool:
    return workload.injection_override == "true" or "istio.io/rev" in workload.labels


class StartupAnalyzer(Analyzer):
    """Injected pods that the sidecar keeps from working, unless the proxy runs as a native
    sidecar (an init container with ``restartPolicy: Always``: pod annotation
    ``sidecar.istio.io/nativeSidecar: "true"`` on Kubernetes 1.29 or later, or istiod's
    ``ENABLE_NATIVE_SIDECARS``; Istio's default from 1.27 where every node runs Kubernetes
    1.33 or later):

    - MST0109: a Job or CronJob (or a bare Pod that runs to completion, ``restartPolicy``
      ``Never`` or ``OnFailure``: a chart's ``helm test`` Pod) with a classic sidecar
      never completes: the proxy keeps
      running after the job's containers exit. Unless the job stops it (``curl -X POST
      localhost:15020/quitquitquit`` in its command, or the pod template annotated
      ``meshstage.io/stops-proxy: "true"``), run it as a native sidecar or keep the job out
      of the mesh.
    - MST0110: an init container that reaches the network (runs ``curl``, ``nc``,
      ``pg_isready``..., or is given a URL or ``host:port``) before the proxy runs: its
      requests leave without the proxy. istio-init sets the traffic capture up after the
      app's init containers (``reorderPod`` in ``pkg/kube/inject/webhook.go``: "Init
      container must be last to allow any traffic to pass before iptables is setup"), so
      they go out in plaintext, without identity, which a STRICT or default-deny
      destination refuses; with Istio's CNI plugin the capture is in place already and
      sends them to a proxy that has not started, so they fail. Use native sidecars (the
      proxy starts first and carries them); with the CNI plugin, running it as the
      proxy's user (``runAsUser: 1337``) or excluding its destination from the capture
      (``traffic.sidecar.istio.io/excludeOutboundIPRanges`` or ``excludeOutboundPorts``)
      lets them out in plaintext.

    The finding is on the object that injects the pod: its Namespace, or the workload when
    its own template asks for the sidecar. Whether istiod injects native sidecars is read
    from its install in the input (a HelmRelease, Argo CD Application or IstioOperator with
    ``pilot.env.ENABLE_NATIVE_SIDECARS`` written inline, istiod's Deployment); when the
    input cannot tell (``meshstage check`` of manifests alone), the pods are taken to have
    classic ones. https://istio.io/latest/blog/2023/native-sidecars/,
    https://istio.io/latest/news/releases/1.27.x/announcing-1.27/upgrade-notes/,
    https://istio.io/latest/docs/setup/additional-setup/cni/
    #compatibility-with-application-init-containers

    Fails with MST0109::

        apiVersion: v1
        kind: Namespace
        metadata: {name: payments, labels: {istio-injection: enabled}}
        ---
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: billing-export, namespace: payments}
        spec:
          schedule: "0 2 * * *"
          jobTemplate:
            spec:
              template:
                spec:
                  restartPolicy: Never
                  containers: [{name: export, image: billing-export}]

    Fails with MST0110::

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
            metadata: {labels: {app: payment-service}}
            spec:
              initContainers:
              - name: wait-for-db
                image: postgres:16
                command: [sh, -c, "until pg_isready -h payments-db -p 5432; do sleep 2; done"]
              containers: [{name: app, image: payment-service}]

    Passes::

        apiVersion: v1
        kind: Namespace
        metadata: {name: payments, labels: {istio-injection: enabled}}
        ---
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: billing-export, namespace: payments}
        spec:
          schedule: "0 2 * * *"
          jobTemplate:
            spec:
              template:
                metadata: {annotations: {sidecar.istio.io/nativeSidecar: "true"}}
                spec:
                  restartPolicy: Never
                  containers: [{name: export, image: billing-export}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: payment-service, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          template:
            metadata: {labels: {app: payment-service}}
            spec:
              initContainers:
              - name: wait-for-db
                image: postgres:16
                command: [sh, -c, "until pg_isready -h payments-db -p 5432; do sleep 2; done"]
                securityContext: {runAsUser: 1337}
              containers: [{name: app, image: payment-service}]
    """

    name = "meshstage.StartupAnalyzer"
    provider = "istio"
    codes = {"MST0109": Level.WARNING, "MST0110": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        for workload in index.workloads:
            if not index.has_sidecar(workload):
                continue
            native = native_sidecar(index, workload)
            where = subject(index, workload, _pod_level(workload))
            unknown = (" (nothing in the input says the mesh injects native sidecars)"
                       if native is None else "")
            if workload.runs_to_completion and not native and not self._stops_proxy(workload):
                yield self.finding(
                    where, "MST0109", f"{workload.resource.display} gets the Istio sidecar as "
                    f"a regular container{unknown}: the proxy keeps running after the job's "
                    "containers exit, so its pods never complete; annotate its pod template "
                    f"{NATIVE}: \"true\" (Kubernetes 1.29 or later), stop the proxy from the "
                    "job (POST localhost:15020/quitquitquit), or keep it out of the mesh.")
            if native and not any(c.get("name") == ISTIO_PROXY
                                  for c in workload.init_containers):
                continue  # the proxy is injected first, before the app's init containers
            if any(workload.annotations.get(key) for key in _EXCLUDES):
                continue
            found = networked_init(workload, ISTIO_PROXY, OWN_CONTAINERS, PROXY_UID)
            if found:
                yield self.finding(
                    where, "MST0110", f"Init container {found[0]} of "
                    f"{workload.resource.display} reaches the network ({found[1]}) before "
                    f"the Istio proxy runs{unknown}: its requests leave without it, in "
                    "plaintext without identity (istio-init sets the capture up after it; "
                    "with Istio's CNI plugin they are captured towards a proxy that has not "
                    "started, and fail), which a STRICT or default-deny destination "
                    f"refuses; annotate the pod {NATIVE}: \"true\" (or, with the CNI "
                    "plugin, run it as user 1337 or exclude its destination from the "
                    "capture: traffic.sidecar.istio.io/excludeOutboundIPRanges).")

    @staticmethod
    def _stops_proxy(workload: Workload) -> bool:
        return workload.annotations.get(STOPS_PROXY, "").lower() == "true" or mentions(
            workload, "quitquitquit")
