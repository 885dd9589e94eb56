"""What runs a service's pods, as the intent says it: ``kind`` (when it is not a Deployment),
a StatefulSet's ``peer_ports``, and ``init_network`` for init containers that reach the
network; each with what it was read or guessed from.

- ``kind``: the kind of the object that owns the pod template (an Argo Rollout is
  ``Rollout``). Workloads of several kinds behind one Service: the riskiest one (a Job's
  pods must complete), with a WARNING naming the others.
- ``peer_ports``: a StatefulSet's peers talk to each other by pod DNS name (cluster bus,
  gossip, replication), at their own addresses; Istio passes traffic to a pod address no
  headless Service declares through as plaintext, which STRICT refuses
  (https://istio.io/latest/docs/ops/configuration/traffic-management/traffic-routing/
  #headless-services). The guess: the container ports no port of the service's Service
  sends to, and the ports of a Service ``<name>-peers`` that selects the pods (meshstage
  renders one for ``peer_ports``) or of the StatefulSet's governing headless Service
  (``spec.serviceName``, the one that gives its pods their DNS names:
  https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#stable-network-id)
  that its Service does not declare, less the proxies' own ports and the ports that serve
  metrics (a port name such as ``metrics``, or the ``prometheus.io/port`` annotation).
- ``init_network``: an init container of the pod template reaches the network (it runs a
  network tool, or is given a URL or ``host:port``: the start-up analyzers' own test,
  ``analyze/analyzers/_startup.py``), so the proxy must run before it, as a native sidecar
  (https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/). The meshes' own
  init containers are not the application's.
"""

from __future__ import annotations

from typing import Any

from ..analyze.analyzers._startup import reaches_network
from ..analyze.analyzers.linkerd_startup import OWN_CONTAINERS as LINKERD_OWN
from ..analyze.analyzers.port_name import port_protocol
from ..analyze.analyzers.startup import OWN_CONTAINERS as ISTIO_OWN
from ..estate.objects import as_mapping
from .draft import Draft, ServiceDraft, WorkloadGroup
from .services import HTTP_PORT_NAMES, guess_protocol_name

# The kinds the intent says (WORKLOAD_KINDS), by the kind the importer names a workload
_INTENT_KIND = {"Deployment": "Deployment", "StatefulSet": "StatefulSet",
                "DaemonSet": "DaemonSet", "Job": "Job", "CronJob": "CronJob",
                "Argo Rollout": "Rollout", "Rollout": "Rollout"}
# Which kind one service of workloads of several kinds is said to be: the first one found
_RISK_ORDER = ("CronJob", "Job", "StatefulSet", "DaemonSet", "Rollout", "Deployment")
# The proxies' own ports (Istio's 15000-15099, Linkerd's 4140-4191): never an application's
PROXY_PORTS = (range(15000, 15100), range(4140, 4192))
_MESH_INIT = frozenset({*ISTIO_OWN, *LINKERD_OWN})
SCRAPE_PORT = "prometheus.io/port"


def describe_workloads(draft: Draft) -> None:
    """``kind``, ``peer_ports`` and ``init_network`` of every service of the catalogue."""
    for service in draft.services.values():
        if not service.workloads:
            continue
        kind = _kind(service)
        if kind == "StatefulSet":
            _peer_ports(draft, service)
        _init_network(service)


def _kind(service: ServiceDraft) -> str:
    found: dict[str, list[str]] = {}
    for group in service.workloads:
        kind = _INTENT_KIND.get(group.kind)
        if kind is not None:
            found.setdefault(kind, []).append(group.display)
    if not found:
        return "Deployment"
    kind = next(k for k in _RISK_ORDER if k in found)
    note = f"from {', '.join(found[kind])}"
    if len(found) > 1:
        note += "; WARNING: " + "; ".join(", ".join(w) for k, w in sorted(found.items())
                                          if k != kind) + " too: one kind per service is " \
            "what the intent can say (the riskiest is written)"
    if kind != "Deployment" or len(found) > 1:
        service.put("kind", kind, note)
    return kind


# management ports the pod's own tools reach on localhost (Cassandra's nodetool over JMX)
_LOCAL_PORT_NAMES = frozenset({"jmx"})


def _peer_ports(draft: Draft, service: ServiceDraft) -> None:
    declared = {p.get("target_port", p["port"]) for p in service.fields.get("ports") or []}
    groups = [g for g in service.workloads if g.kind == "StatefulSet"]
    found: dict[int, tuple[str, str]] = {}    # port -> (protocol, what says so)
    left_out: list[str] = []
    for group in groups:
        # the governing headless Service's ports, its own Service's too: the peers reach
        # them at the pods' own addresses (<pod>.<service>), not through the ClusterIP
        for port, (protocol, name) in _peers_services(draft, service, group).items():
            found.setdefault(port, (protocol, f"Service {service.namespace}/{name} "
                                    "declares it"))
        scraped = group.root.annotations.get(SCRAPE_PORT, "")
        for name, number in group.root.container_ports():
            if number in declared or number in found or any(number in r for r in
                                                             PROXY_PORTS):
                continue
            if name.lower() in HTTP_PORT_NAMES or str(number) == scraped:
                left_out.append(f"{number} ({name or 'scraped'}: metrics, not a peer port)")
                continue
            if name.lower() in _LOCAL_PORT_NAMES:
                left_out.append(f"{number} ({name}: management, used from inside the pod)")
                continue
            found[number] = ("TCP", f"container port {name + ' ' if name else ''}{number} "
                             f"of {group.display}, which no port of its Service sends to")
    if not found:
        return
    ports: list[Any] = [number if protocol == "TCP" else {"port": number, "protocol": protocol}
                        for number, (protocol, _) in sorted(found.items())]
    note = "guessed: the peers talk pod to pod on " + "; ".join(
        f"{number}, {why}" for number, (_, why) in sorted(found.items()))
    if left_out:
        note += "; left out: " + ", ".join(left_out)
    service.put("peer_ports", ports, note + " (remove a port the peers do not use)")


def _peers_services(draft: Draft, service: ServiceDraft,
                    group: WorkloadGroup) -> dict[int, tuple[str, str]]:
    """The ports (their protocols, and the Service's name) of a Service ``<name>-peers``
    selecting the pods, and of the StatefulSet's governing headless Service when it is not
    the service's own."""
    found: dict[int, tuple[str, str]] = {}
    names = [f"{service.name}-peers", str(group.root.resource.spec.get("serviceName") or "")]
    for name in dict.fromkeys(n for n in names if n and n != service.name):
        resource = draft.index.get("Service", service.namespace, name)
        if resource is None or (not name.endswith("-peers") and
                                resource.spec.get("clusterIP") != "None"):
            continue
        selector = {str(k): str(v) for k, v in
                    as_mapping(resource.spec.get("selector")).items()}
        if not selector or any(group.root.labels.get(k) != v for k, v in selector.items()):
            continue
        for raw in resource.spec.get("ports") or []:
            port = as_mapping(raw)
            number = group.root.port_number(port.get("targetPort", port.get("port")))
            if number is not None:
                found.setdefault(number, (guess_protocol_name(port_protocol(port)) or "TCP",
                                          name))
        if name.endswith("-peers"):  # meshstage's own, rendered from peer_ports
            draft.became(resource, f"{service.name}: peer_ports (meshstage renders it from "
                         "them)")
    return found


def _init_network(service: ServiceDraft) -> None:
    found = []
    for group in service.workloads:
        for container in group.root.init_containers:
            if container.get("name") in _MESH_INIT:
                continue
            reached = reaches_network(container)
            if reached:
                found.append(f"init container {container.get('name')} of {group.display} "
                             f"({reached})")
                break
    if found:
        service.put("init_network", True, "guessed: " + "; ".join(found) + " reaches the "
                    "network before the application starts: without the proxy before it "
                    "(a native sidecar) its requests leave in plaintext, without identity, "
                    "which STRICT and default deny refuse")

