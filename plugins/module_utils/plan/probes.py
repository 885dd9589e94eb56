"""The kubelet probes of a service's workloads, per container port, as the planners admit them.

The kubelet is no member of the mesh: its probes arrive in plaintext from the node, with no
identity. What each kind of probe needs differs (``Probe`` in ``estate/objects.py`` reads
them from the workloads):

- ``exec`` runs in the container: nothing crosses the network, nothing to admit;
- ``tcpSocket`` is answered by the proxy, which accepts every connection while it runs
  (Istio: https://istio.io/latest/docs/ops/configuration/mesh/app-health-check/, "all TCP
  ports appear open"; Linkerd: https://github.com/linkerd/linkerd2/issues/7777): it passes
  whatever the policy says;
- ``httpGet`` sends ``GET <path>`` (the query is not matched:
  https://github.com/linkerd/linkerd2/issues/10877), over TLS with ``scheme: HTTPS``;
- ``grpc`` calls ``/grpc.health.v1.Health/Check`` over HTTP/2
  (https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#define-a-grpc-liveness-probe,
  https://github.com/grpc/grpc/blob/master/doc/health-checking.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..estate.estate import Estate
from ..estate.objects import Workload
from ..intent.model import Service

GRPC_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


@dataclass
class PortProbes:
    """The probes the kubelet sends to one container port of a service's pods."""

    port: int
    http_paths: list[str] = field(default_factory=list)   # httpGet over plain HTTP
    grpc: bool = False                                     # gRPC health checks
    tls: bool = False                                      # httpGet with scheme HTTPS
    workloads: list[str] = field(default_factory=list)     # where they were read

    @property
    def needs_admission(self) -> bool:
        """True when a request crosses the network and must be admitted."""
        return bool(self.http_paths or self.grpc or self.tls)

    def describe(self) -> str:
        kinds = [f"GET {', '.join(self.http_paths)}" if self.http_paths else "",
                 "gRPC health checks" if self.grpc else "",
                 "HTTPS GET" if self.tls else ""]
        return f"port {self.port}: " + "; ".join(k for k in kinds if k) + \
            f" ({', '.join(self.workloads)})"


def service_probes(estate: Estate | None, service: Service,
                   only: Callable[[Workload], bool] | None = None) -> dict[int, PortProbes]:
    """The probes of the workloads behind ``service`` (those ``only`` keeps), by port."""
    if estate is None:
        return {}
    selector = estate.selector(service.namespace, service.name, service.selector)
    found: dict[int, PortProbes] = {}
    for workload, probe in estate.probes(service.namespace, selector):
        if probe.port is None or probe.action in ("exec", "tcpSocket") or (
                only is not None and not only(workload)):
            continue
        entry = found.setdefault(probe.port, PortProbes(probe.port))
        shown = workload.resource.display
        if shown not in entry.workloads:
            entry.workloads.append(shown)
        if probe.action == "grpc":
            entry.grpc = True
        elif probe.scheme == "HTTPS":
            entry.tls = True
        else:
            path = (probe.path or "/").split("?", 1)[0] or "/"
            if path not in entry.http_paths:
                entry.http_paths.append(path)
    return {port: found[port] for port in sorted(found)}
