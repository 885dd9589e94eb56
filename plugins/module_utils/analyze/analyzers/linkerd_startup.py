"""MST0208, MST0209: injected pods that Linkerd's proxy keeps from working: a Job that never
completes, init containers that reach the network before the proxy runs."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ...estate.objects import Workload
from ...estate.stand_in import STOPS_PROXY
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._linkerd import PROXY, linkerd_injected, linkerd_native
from ._startup import mentions, networked_init, subject

# Linkerd's own init containers (traffic capture, its CNI's check)
OWN_CONTAINERS = {"linkerd-init", "linkerd-network-validator", PROXY}
SKIP_OUTBOUND = "config.linkerd.io/skip-outbound-ports"
PROXY_UID = 2102


class LinkerdStartupAnalyzer(Analyzer):
    """Meshed pods that Linkerd's proxy keeps from working, unless it runs as a native
    sidecar (``config.beta.linkerd.io/proxy-enable-native-sidecar: "true"`` on the pod
    template or its namespace, or ``proxy.nativeSidecar`` at install; Kubernetes 1.29 or
    later):

    - MST0208: a Job or CronJob (or a bare Pod that runs to completion, ``restartPolicy``
      ``Never`` or ``OnFailure``: a chart's ``helm test`` Pod) with the proxy as a regular
      container never completes:
      the proxy keeps running after the job's containers exit. Unless the job stops it
      (``linkerd-await --shutdown``, or ``POST localhost:4191/shutdown``, with
      ``proxy.enableShutdownEndpoint`` on; or the pod template annotated
      ``meshstage.io/stops-proxy: "true"``), run it as a native sidecar or annotate the job
      ``linkerd.io/inject: disabled``.
    - MST0209: an init container that reaches the network (runs ``curl``, ``nc``,
      ``pg_isready``..., or is given a URL or ``host:port``) before the proxy runs: its
      requests leave without the proxy. linkerd-init is appended after the app's init
      containers (``charts/patch/templates/patch.json``, unless the proxy is a native
      sidecar), so they go out in plaintext, without identity, which an
      ``all-authenticated`` or ``deny`` destination refuses; with the linkerd-cni plugin
      they are redirected to a proxy that has not started, and fail. Use native sidecars
      (the proxy starts first and carries them); with the CNI plugin, running it as the
      proxy's user (``runAsUser: 2102``) or skipping its ports
      (``config.linkerd.io/skip-outbound-ports``) lets them out in plaintext.

    The finding is on the object that injects the pod: its Namespace, or the workload when
    its own template asks for the proxy. ``proxy.nativeSidecar`` is read from the install in
    the input (a HelmRelease or Argo CD Application of linkerd-control-plane with its values
    inline, ``linkerd-config``); when the input cannot tell whether the proxy runs as a
    native sidecar, it is taken to be a regular container.
    https://linkerd.io/2-edge/features/native-sidecars/,
    https://linkerd.io/2-edge/tasks/graceful-shutdown/

    Fails with MST0208::

        apiVersion: v1
        kind: Namespace
        metadata: {name: payments, annotations: {linkerd.io/inject: enabled}}
        ---
        apiVersion: batch/v1
        kind: Job
        metadata: {name: schema-migrate, namespace: payments}
        spec:
          template:
            spec:
              restartPolicy: Never
              containers: [{name: migrate, image: payments-migrate}]

    Fails with MST0209::

        apiVersion: v1
        kind: Namespace
        metadata: {name: payments, annotations: {linkerd.io/inject: enabled}}
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
              - name: fetch-config
                image: curlimages/curl
                args: [-fsS, -o, /config/app.yaml, "http://config-server.platform:8888/app"]
              containers: [{name: app, image: payment-service}]

    Passes::

        apiVersion: v1
        kind: Namespace
        metadata:
          name: payments
          annotations:
            linkerd.io/inject: enabled
            config.beta.linkerd.io/proxy-enable-native-sidecar: "true"
        ---
        apiVersion: batch/v1
        kind: Job
        metadata: {name: schema-migrate, namespace: payments}
        spec:
          template:
            spec:
              restartPolicy: Never
              containers: [{name: migrate, image: payments-migrate}]
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
              - name: fetch-config
                image: curlimages/curl
                args: [-fsS, -o, /config/app.yaml, "http://config-server.platform:8888/app"]
              containers: [{name: app, image: payment-service}]
    """

    name = "linkerd.StartupAnalyzer"
    provider = "linkerd"
    codes = {"MST0208": Level.WARNING, "MST0209": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        for workload in index.workloads:
            meshed, pod_level = linkerd_injected(index, workload)
            if not meshed:
                continue
            native = linkerd_native(index, workload)
            where = subject(index, workload, pod_level)
            unknown = (" (nothing in the input says the proxy is a native sidecar)"
                       if native is None else "")
            if workload.runs_to_completion and not native and not self._stops_proxy(workload):
                yield self.finding(
                    where, "MST0208", f"{workload.resource.display} gets Linkerd's proxy as a "
                    f"regular container{unknown}: the proxy keeps running after the job's "
                    "containers exit, so its pods never complete; annotate it "
                    "config.beta.linkerd.io/proxy-enable-native-sidecar: \"true\" (Kubernetes "
                    "1.29 or later), run it under linkerd-await --shutdown, or annotate it "
                    "linkerd.io/inject: disabled.")
            if native and not any(c.get("name") == PROXY for c in workload.init_containers):
                continue
            if workload.annotations.get(SKIP_OUTBOUND):
                continue
            found = networked_init(workload, PROXY, OWN_CONTAINERS, PROXY_UID)
            if found:
                yield self.finding(
                    where, "MST0209", f"Init container {found[0]} of "
                    f"{workload.resource.display} reaches the network ({found[1]}) before "
                    f"Linkerd's proxy runs{unknown}: its requests leave without it, in "
                    "plaintext without identity (linkerd-init comes after it; with the "
                    "linkerd-cni plugin they are redirected to a proxy that has not "
                    "started, and fail), which an all-authenticated or deny destination "
                    "refuses; use native sidecars (or, with the CNI plugin, run it as user "
                    "2102 or skip its ports: config.linkerd.io/skip-outbound-ports).")

    @staticmethod
    def _stops_proxy(workload: Workload) -> bool:
        if workload.annotations.get(STOPS_PROXY, "").lower() == "true":
            return True
        return mentions(workload, "4191/shutdown") or (
            mentions(workload, "linkerd-await") and mentions(workload, "--shutdown", "-S"))
