"""Private helper: the kubelet probes of a workload's containers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ...estate.objects import Workload


@dataclass(frozen=True)
class Probe:
    container: str
    kind: str           # livenessProbe, readinessProbe, startupProbe
    handler: str        # httpGet, tcpSocket, grpc
    port: int | str | None
    path: str           # the HTTP path ("" for tcpSocket and grpc)


def probes(workload: Workload) -> Iterator[Probe]:
    for container in workload.containers:
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = container.get(kind)
            if not isinstance(probe, Mapping):
                continue
            for handler in ("httpGet", "tcpSocket", "grpc"):
                action = probe.get(handler)
                if isinstance(action, Mapping):
                    yield Probe(str(container.get("name")), kind, handler, action.get("port"),
                                str(action.get("path") or "/") if handler == "httpGet" else "")


def port_number(workload: Workload, port: int | str | None) -> int | None:
    """A probe port as a number (a named port looked up among the container ports)."""
    return workload.port_number(port)
