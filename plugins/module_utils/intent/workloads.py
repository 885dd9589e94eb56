"""Parsing what runs a service's pods (``kind``, ``stops_proxy``, ``init_network``) and the
check that every injected pod can run with the proxy: a Job's pods complete, init containers
that reach the network find the proxy up.

A classic sidecar is a regular container: it outlives the job's own containers, so the pod
(and the Job) never completes, and it starts after the init containers, whose requests find
no proxy behind the traffic capture. A native sidecar (an init container with
``restartPolicy: Always``, Kubernetes 1.29 and later) starts before the later init
containers and is stopped when the app containers end.
https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/,
https://istio.io/latest/blog/2023/native-sidecars/,
https://linkerd.io/2-edge/features/native-sidecars/
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .checker import Checker, join_path, optional
from .model import JOB_KINDS, NATIVE_SIDECARS_SINCE, PROTOCOLS, WORKLOAD_KINDS, Intent, Port

KUBERNETES_VERSION = re.compile(r"^v?1\.[0-9]{1,3}(\.[0-9]{1,3})?$")

WORKLOAD_KEYS = ("kind", "stops_proxy", "init_network", "peer_ports", "pod_ports")


def parse_workload(check: Checker, data: Mapping[str, Any], path: str,
                   ports: tuple[Port, ...] = ()) -> dict[str, Any]:
    """The workload fields of one ``mesh_services`` item, as ``Service`` keywords
    (``ports``: its ports, parsed)."""
    kind = optional(check, data, "kind", path,
                    lambda v, p: check.choice(v, p, WORKLOAD_KINDS), "Deployment")
    stops_proxy = optional(check, data, "stops_proxy", path, check.boolean, False)
    if stops_proxy and kind not in JOB_KINDS:
        check.error(join_path(path, "stops_proxy"), stops_proxy,
                    f"is for a Job or CronJob (kind: {kind} keeps running)")
        stops_proxy = False
    init_network = optional(check, data, "init_network", path, check.boolean, False)
    peers = _peer_ports(check, data.get("peer_ports"), join_path(path, "peer_ports"))
    if peers and kind != "StatefulSet":
        check.error(join_path(path, "peer_ports"), data.get("peer_ports"),
                    f"is for a StatefulSet, whose pods talk to each other by pod DNS name "
                    f"(kind: {kind}; set kind: StatefulSet)")
        peers = ()
    pod_ports = _pod_ports(check, data, path, ports, peers)
    return {"kind": kind, "stops_proxy": stops_proxy, "init_network": init_network,
            "peer_ports": peers, "pod_ports": pod_ports}


def _pod_ports(check: Checker, data: Mapping[str, Any], path: str,
               ports: tuple[Port, ...], peers: tuple[Port, ...]) -> tuple[Port, ...]:
    """``pod_ports``: container ports that no port of the service declares (HTTP by
    default: a metrics or admin port), neither a port's ``target_port`` (else ``port``) nor
    a peer port."""
    path = join_path(path, "pod_ports")
    declared = {p.target_port or p.port: n for n, p in enumerate(ports)}
    raw = data.get("pod_ports")
    written = [item.get("port") if isinstance(item, Mapping) else item
               for item in (raw if isinstance(raw, list) else ())]
    kept = []
    for port in _peer_ports(check, raw, path, "HTTP", "pod"):
        at = join_path(path, written.index(port.port))
        if port.port in declared:
            check.error(at, port.port, f"is declared by the service's ports"
                        f"[{declared[port.port]}]: its callers reach it through the Service "
                        "(a caller names it <service>:<port>); list here only the ports no "
                        "Service declares")
        elif any(p.port == port.port for p in peers):
            check.error(at, port.port, "is a peer port of the service (peer_ports) already")
        else:
            kept.append(port)
    return tuple(kept)


def _peer_ports(check: Checker, value: Any, path: str, default: str = "TCP",
                what: str = "peer") -> tuple[Port, ...]:
    """Container ports, each a number or ``{port, protocol}`` (``default`` when left out)."""
    ports: dict[int, Port] = {}
    for index, item in enumerate(check.sequence(value, path)):
        item_path = join_path(path, index)
        written = item
        if isinstance(item, int) and not isinstance(item, bool):
            item = {"port": item}
        elif not isinstance(item, Mapping):
            check.error(item_path, item, "is not a container port number or {port, protocol}")
            continue
        data = check.mapping(item, item_path, required=("port",), optional=("protocol",))
        if data is None:
            continue
        number = check.integer(data["port"], join_path(item_path, "port"), 1, 65535)
        protocol = optional(check, data, "protocol", item_path,
                            lambda v, p: check.choice(v, p, PROTOCOLS), default)
        if number is None:
            continue
        if number in ports:
            check.error(item_path, written, f"is a duplicate {what} port")
            continue
        ports[number] = Port(name=f"{what}-{number}", port=number, protocol=protocol)
    return tuple(ports.values())


def kubernetes_version(check: Checker, value: Any, path: str) -> str | None:
    return check.string(value, path, KUBERNETES_VERSION, "a Kubernetes version like 1.30 "
                        "or 1.30.4")


def check_native_sidecars(check: Checker, intent: Intent) -> None:
    """Refuse an injected job whose pods would never complete; warn on init containers
    that reach the network before the proxy runs."""
    cluster = intent.cluster
    mode = intent.proxy.native_sidecars
    if mode == "disabled":
        why = "mesh_proxy.native_sidecars is 'disabled'"
    elif not cluster.native_sidecars:
        since = ".".join(str(n) for n in NATIVE_SIDECARS_SINCE)
        why = (f"the cluster's Kubernetes (mesh_cluster.kubernetes_version "
               f"{cluster.kubernetes_version}) has no native sidecars (they need {since} or "
               "later)")
    else:
        return
    for service in intent.native_sidecar_services():
        path = intent.service_path(service)
        where = f"{service.namespace}/{service.name}"
        if service.is_job and not service.stops_proxy:
            check.error(join_path(path, "kind"), service.kind,
                        f"is injected ({where}, in an injected wave) and its pods would never "
                        "complete: the proxy outlives the job unless it runs as a native "
                        f"sidecar, and {why}; set stops_proxy: true if the job stops the proxy "
                        "itself (Istio: POST localhost:15020/quitquitquit; Linkerd: "
                        "linkerd-await --shutdown), or inject: false")
        if service.init_network:
            check.warn(join_path(path, "init_network"), True,
                       f"({where}) needs the proxy before its init containers, and {why}: "
                       "their requests leave without it, in plaintext without identity, "
                       "which STRICT and default deny refuse (with the meshes' CNI plugins "
                       "they find no proxy behind the capture, and fail unless they run as "
                       "the proxy's user: Istio runAsUser 1337; Linkerd 2102): keep what "
                       "they reach PERMISSIVE and admitted, or give the cluster native "
                       "sidecars")
