"""The catalogue from the estate's Services and workloads: each service with its namespace,
service account, ports and protocols, versions, probes and workload kinds, and what each
value was read or guessed from.

- A service is a Kubernetes Service that selects pods (ExternalName Services, Services
  without a selector, meshstage's own version Services, the system namespaces and the
  meshes' own namespaces are left out). A workload no Service selects is a client: a
  service with ``ports: []`` (it calls, nothing calls it).
- A Service whose selector narrows another Service's to one version (``reviews-v1``:
  ``app: reviews, version: v1``) is that version's Service (``versions[].service``).
- A Service over exactly the pods of another one, on target ports the other has too (an
  Online Boutique ``frontend-external`` of type LoadBalancer beside ``frontend``), is an
  alias of it, not a second service (two services over the same pods would get two Sidecars
  for one workload): the one that is not exposed (NodePort, LoadBalancer) is the service.
- A StatefulSet's governing headless Service (``spec.serviceName``) over the pods of another
  Service is not a service either: its ports become the service's ``peer_ports``
  (``workload_fields.py``).
- Protocols: ``appProtocol``, then the port name's ``<protocol>[-<suffix>]`` (Istio's
  convention: https://istio.io/latest/docs/ops/configuration/traffic-management/
  protocol-selection/), then the kubelet's probe on the port (``httpGet``, ``grpc``), then
  the port's well-known number; TCP otherwise (opaque: nothing is parsed, nothing breaks).
- Versions: the pods' ``version`` label, else ``app.kubernetes.io/version``.
- ``probe_paths``: the paths of the ``httpGet`` probes on the service's ports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..analyze.analyzers.port_name import port_protocol
from ..estate.callers import exposure
from ..estate.objects import PROBE_KINDS, SYSTEM_NAMESPACES, Resource, as_mapping
from ..estate.protocols import placeholder_port
from ..intent.checker import PROBE_PATH
from ..kube import MANAGED_BY_LABEL, MANAGED_BY_VALUE, selector_text
from .draft import Draft, ServiceDraft, WorkloadGroup
from .workloads import sidecar_blockers

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Istio's protocol names (port_protocol) as the intent says them.
_INTENT_PROTOCOL = {"http": "HTTP", "http_proxy": "HTTP", "grpc-web": "HTTP", "http2": "HTTP2",
                    "grpc": "GRPC", "https": "HTTPS", "tls": "TLS", "tcp": "TCP",
                    "mongo": "MONGO", "redis": "REDIS", "mysql": "MYSQL"}

# Server-first protocols (the proxies must skip protocol detection) that Istio's port names
# have no prefix for: an ``appProtocol`` or a word of the port name says them
# (``tcp-postgresql-5432``, meshstage's default name, or ``postgres``).
SERVER_FIRST_NAMES: Mapping[str, str] = {
    "mysql": "MYSQL", "postgresql": "POSTGRESQL", "postgres": "POSTGRESQL",
    "smtp": "SMTP", "nats": "NATS", "memcached": "MEMCACHED", "memcache": "MEMCACHED"}

# Well-known server ports (IANA, and each project's documented default).
WELL_KNOWN_PORTS: Mapping[int, tuple[str, str]] = {
    80: ("HTTP", "HTTP"), 8080: ("HTTP", "HTTP alternate"), 443: ("HTTPS", "HTTPS"),
    8443: ("HTTPS", "HTTPS alternate"), 3306: ("MYSQL", "MySQL"),
    5432: ("POSTGRESQL", "PostgreSQL"),
    6379: ("REDIS", "Redis"), 27017: ("MONGO", "MongoDB"), 9092: ("TCP", "Kafka"),
    2181: ("TCP", "ZooKeeper"), 11211: ("MEMCACHED", "memcached"), 4222: ("NATS", "NATS"),
    5672: ("TCP", "AMQP"), 9042: ("TCP", "Cassandra"), 25: ("SMTP", "SMTP"),
    9200: ("HTTP", "Elasticsearch"), 9090: ("HTTP", "Prometheus"),
}

VERSION_LABELS = ("version", "app.kubernetes.io/version")

# Port names that are not Istio's ``<protocol>[-<suffix>]`` but name an HTTP endpoint by habit.
HTTP_PORT_NAMES = ("metrics", "prom", "prometheus", "web", "http-metrics")


def label_value_name(value: str) -> str | None:
    """A label value as a DNS label (a version name): lower case, other characters as
    ``-``; None when nothing is left."""
    name = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[:63].strip("-")
    return name or None


def build_catalogue(draft: Draft, groups: list[WorkloadGroup],
                    namespaces: Iterable[str] = (), excluded: Iterable[str] = ()) -> None:
    """Fill ``draft.services`` from the estate's Services and workloads."""
    wanted, left_out = set(namespaces), set(excluded) | _mesh_namespaces(draft)
    index = draft.index

    def in_scope(namespace: str) -> bool:
        return (namespace in wanted) if wanted else (
            namespace not in SYSTEM_NAMESPACES and namespace not in left_out)

    services = [r for r in index.of_kind("Service") if in_scope(r.namespace)
                and r.spec.get("type") != "ExternalName"
                and isinstance(r.spec.get("selector"), Mapping) and r.spec.get("selector")
                and r.labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE]
    versions_of = _version_services(services)
    selected: set[int] = set()
    drafts: list[ServiceDraft] = []
    postings: dict[tuple[str, str, str], list[WorkloadGroup]] = {}
    for group in groups:
        for key, value in {(k, v) for w in group.running for k, v in w.labels.items()}:
            postings.setdefault((group.root.namespace, key, value), []).append(group)
    for resource in sorted(services, key=lambda r: (r.namespace, r.name)):
        if resource in versions_of:
            continue
        selector = {str(k): str(v) for k, v in resource.spec["selector"].items()}
        first = min((postings.get((resource.namespace, k, v), []) for k, v in
                     selector.items()), key=len)
        members = [g for g in first if any(all(w.labels.get(k) == v for k, v in
                                               selector.items()) for w in g.running)]
        selected.update(id(g) for g in members)
        if any(g.root.resource.kind != "Pod" for g in members):
            # a bare Pod beside the controllers' pods (a chart's test Pod): not what runs
            # the service, so neither its account nor its labels say anything of it
            for group in [g for g in members if g.root.resource.kind == "Pod"]:
                draft.keep(group.root.resource, f"a bare Pod that Service "
                           f"{resource.namespace}/{resource.name} selects beside its "
                           "workloads' pods (a one-off, such as a Helm test): left out of "
                           "the service")
            members = [g for g in members if g.root.resource.kind != "Pod"]
        drafts.append(ServiceDraft(resource.name, resource.namespace, resource, members))
    drafts = _without_aliases(draft, drafts)
    drafts += _clients([g for g in groups if id(g) not in selected
                        and in_scope(g.root.namespace)], groups)
    for service in sorted(drafts, key=lambda s: (s.namespace, s.name)):
        _add(draft, service)
    for version, (parent, labels) in versions_of.items():
        found = draft.service_at(parent.namespace, parent.name)
        if found is not None:
            found.fields.setdefault("_version_services", []).append((version, labels))
    for service in list(draft.services.values()):
        _describe(draft, service)
    _one_selector_per_workload(draft)


def _one_selector_per_workload(draft: Draft) -> None:
    """Services whose Services select the same workloads (Jaeger's query, collector and
    its own Service over one Deployment) get one selector, the one most of them have (the
    first by name of those): meshstage knows services over the same pods by their selector,
    and renders one Istio Sidecar and PeerAuthentication, and one Linkerd Server per port,
    for them. With two selectors it would render two Sidecars on one workload (IST0110)."""
    groups: dict[tuple[str, frozenset[int]], list[ServiceDraft]] = {}
    for service in sorted(draft.services.values(), key=lambda s: s.name):
        if service.service is not None and service.workloads:
            key = (service.namespace, frozenset(id(g) for g in service.workloads))
            groups.setdefault(key, []).append(service)
    for members in groups.values():
        chosen = {s.name: dict(s.fields.get("selector") or {"app": s.name}) for s in members}
        texts = [selector_text(selector) for selector in chosen.values()]
        if len(set(texts)) < 2:
            continue
        best = max(texts, key=lambda text: (texts.count(text), -texts.index(text)))
        owner = next(s for s in members if selector_text(chosen[s.name]) == best)
        for service in members:
            if selector_text(chosen[service.name]) == best:
                continue
            fields = {k: v for k, v in service.fields.items() if k != "selector"}
            service.fields.clear()
            for name, value in fields.items():
                service.fields[name] = value
                if name == "namespace":
                    service.fields["selector"] = dict(chosen[owner.name])
            service.notes.pop("selector", None)
            # what _check_selector said of app=<name> no longer holds
            service.notes[""] = [text for text in service.notes.get("", [])
                                 if "meshstage selects the pods by app=" not in text]
            service.note("selector", f"the selector of {owner.name}, whose Service selects "
                         "the same pods: services over the same pods share one, so the "
                         "mesh's objects select them once (one Istio Sidecar and "
                         "PeerAuthentication, one Linkerd Server per port)")


def _clients(clients: list[WorkloadGroup], groups: list[WorkloadGroup]) -> list[ServiceDraft]:
    """A service for each workload no Service selects, named after its ``app`` label, or
    after itself when other workloads of its namespace share that label (``app: teastore``
    on every pod of a shop names none of them)."""
    apps: dict[tuple[str, str], int] = {}
    for group in groups:
        if group.labels.get("app"):
            key = (group.root.namespace, str(group.labels["app"]))
            apps[key] = apps.get(key, 0) + 1
    # workloads whose pods carry the same labels are one client: nothing the mesh selects
    # pods by tells them apart (ingress-nginx's two admission Jobs); unlabelled ones apart
    alike: dict[tuple[str, frozenset[tuple[str, str]]], list[WorkloadGroup]] = {}
    for group in clients:
        labels = frozenset((str(k), str(v)) for k, v in group.labels.items())
        alike.setdefault((group.root.namespace, labels or frozenset({("", str(id(group)))})),
                         []).append(group)
    drafts = []
    for members in alike.values():
        group = members[0]
        app = group.labels.get("app")
        name = app if app and apps[(group.root.namespace, str(app))] == 1 \
            else group.root.resource.name
        drafts.append(ServiceDraft(name, group.root.namespace, None, members))
    return drafts


def _without_aliases(draft: Draft, drafts: list[ServiceDraft]) -> list[ServiceDraft]:
    """The drafts less the aliases: a Service over the same pods as another one whose target
    ports are all the other's too. The Service kept is the one not exposed outside the
    cluster (NodePort, LoadBalancer), then the one with more ports, then by name."""
    by_pods: dict[tuple[str, frozenset[int]], list[ServiceDraft]] = {}
    for service in drafts:
        if service.workloads:
            key = (service.namespace, frozenset(id(g) for g in service.workloads))
            by_pods.setdefault(key, []).append(service)
    aliases: set[int] = set()
    for same in by_pods.values():
        if len(same) < 2:
            continue
        same.sort(key=lambda d: (_governing(d), _exposed(d), -len(_targets(d)), d.name))
        main = same[0]
        for other in same[1:]:
            if _governing(other) and not _governing(main):
                aliases.add(id(other))
                draft.keep(f"Service {other.namespace}/{other.name}",
                           f"the headless Service of StatefulSet {_governing(other)}, over the "
                           f"pods of Service {main.namespace}/{main.name}: its ports are "
                           f"service {main.name}'s peer_ports, not a service of its own")
            elif _targets(other) <= _targets(main):
                aliases.add(id(other))
                draft.keep(f"Service {other.namespace}/{other.name}",
                           f"selects the pods of Service {main.namespace}/{main.name} on its "
                           f"target ports: an alias of service {main.name}, not a service of "
                           "its own")
    return [d for d in drafts if id(d) not in aliases]


def _governing(service: ServiceDraft) -> str:
    """The StatefulSet (``namespace/name``) whose governing Service the draft's headless
    Service is, or ``""``."""
    spec = service.service.spec if service.service is not None else {}
    if spec.get("clusterIP") != "None":
        return ""
    return next((f"{g.root.namespace}/{g.root.resource.name}" for g in service.workloads
                 if g.kind == "StatefulSet"
                 and g.root.resource.spec.get("serviceName") == service.name), "")


def _exposed(service: ServiceDraft) -> bool:
    return service.service is not None and exposure(service.service.spec) is not None


def _targets(service: ServiceDraft) -> set[str]:
    """The target ports of the draft's Service, as written (a number or a port name)."""
    spec = service.service.spec if service.service is not None else {}
    return {str(as_mapping(p).get("targetPort", as_mapping(p).get("port")))
            for p in spec.get("ports") or [] if isinstance(p, Mapping)}


def _mesh_namespaces(draft: Draft) -> set[str]:
    """Namespaces that hold a mesh's own parts: Istio's root namespace (its control plane
    and gateways), Linkerd's control plane and extensions (their namespace labels)."""
    found = {str(draft.shared.get("mesh_root_namespace") or "istio-system")}
    for namespace in draft.index.of_kind("Namespace"):
        if namespace.labels.get("linkerd.io/is-control-plane") == "true" \
                or "linkerd.io/extension" in namespace.labels:
            found.add(namespace.name)
    return found


def _version_services(services: list[Resource]) -> dict[Resource, tuple[Resource, dict[str, str]]]:
    """Services that select one version of another Service's pods: {version Service:
    (the Service, the labels it adds)}."""
    found = {}
    by_namespace: dict[str, list[Resource]] = {}
    for service in services:
        by_namespace.setdefault(service.namespace, []).append(service)
    for narrow in services:
        selector = {str(k): str(v) for k, v in narrow.spec["selector"].items()}
        for wide in by_namespace[narrow.namespace]:
            if wide is narrow:
                continue
            base = {str(k): str(v) for k, v in wide.spec["selector"].items()}
            extra = {k: v for k, v in selector.items() if k not in base}
            if len(selector) > len(base) and all(selector.get(k) == v for k, v in base.items()) \
                    and any(k in VERSION_LABELS for k in extra):
                found[narrow] = (wide, extra)
                break
    return found


def _add(draft: Draft, service: ServiceDraft) -> None:
    """Add a service, unless its name is taken (names are unique across the catalogue)."""
    where = (f"Service {service.namespace}/{service.name}" if service.service is not None
             else ", ".join(g.display for g in service.workloads))
    if not _DNS_LABEL.match(service.name) or len(service.name) > 63:
        draft.keep(where, f"{service.name!r} is not a DNS label, which a service name must be")
        return
    taken = draft.services.get(service.name)
    if taken is not None:
        draft.keep(where, f"the name {service.name!r} is taken by the service of namespace "
                   f"{taken.namespace}: the catalogue's names are unique across namespaces, "
                   "so this one is not in it")
        return
    draft.services[service.name] = service


def _describe(draft: Draft, service: ServiceDraft) -> None:
    """The service's fields, each with what it was read or guessed from."""
    service.put("namespace", service.namespace)
    if service.service is not None:
        service.note("", f"Service {service.namespace}/{service.name}")
        _check_selector(service)
    else:
        service.note("", "a client: no Service selects "
                     + ", ".join(g.display for g in service.workloads)
                     + ", so nothing calls it through the mesh (ports: [])")
        _client_selector(draft, service)
    if service.workloads:
        kinds = "; ".join(g.display for g in service.workloads)
        service.note("", f"runs as {kinds}")
    else:
        service.note("", "no workload of the estate runs it (none is selected)")
    _account(service)
    _ports(service)
    if service.service is not None:  # nothing routes to a client: no versions
        _versions(service)
    _probes(service)
    blockers = list(dict.fromkeys(f"{g.display}: {reason}" for g in service.workloads
                                  for reason in sidecar_blockers(
                                      g, draft.provider, draft.index.namespace(g.root.namespace))))
    if blockers:
        service.put("inject", False, "cannot take the sidecar: " + "; ".join(blockers))
        draft.held.add(service.name)


def _check_selector(service: ServiceDraft) -> None:
    """meshstage selects a service's pods by ``app: <name>`` unless its ``selector`` says
    other labels: the Service's selector, when its pods do not all carry ``app: <name>``
    (the Kubernetes recommended ``app.kubernetes.io/name``, a chart's own labels)."""
    assert service.service is not None
    selector = {str(k): str(v) for k, v in service.service.spec["selector"].items()}
    pods = service.pods()
    if pods and all(w.labels.get("app") == service.name for w in pods):
        if selector != {"app": service.name}:
            service.note("", f"its Service selects {selector_text(selector)}; meshstage "
                         f"selects the pods by app={service.name}, which they carry")
        return
    service.put("selector", selector, f"from Service {service.namespace}/{service.name}'s "
                f"selector: its pods do not all carry app={service.name}, meshstage's "
                "default; its objects select the pods by these labels")


def _client_selector(draft: Draft, service: ServiceDraft) -> None:
    """A client's pods without ``app: <name>``: its workloads' selector (a Deployment's
    ``matchLabels``), else the labels of their pod template; either only when it selects
    no other workload of the namespace (``app: teastore`` on every pod of a shop selects
    them all)."""
    if not service.workloads or all(g.labels.get("app") == service.name
                                    for g in service.workloads):
        return
    group = service.workloads[0]
    own = {id(w) for g in service.workloads for w in (g.root, *g.running)}
    found = as_mapping(as_mapping(group.root.resource.spec.get("selector")).get("matchLabels"))
    for labels, source in ((found, "selector"), (group.labels, "pod labels")):
        labels = {str(k): str(v) for k, v in labels.items()}
        if labels and all(all(g.labels.get(k) == v for k, v in labels.items())
                          for g in service.workloads) and all(
                id(w) in own for w in draft.index.workloads_matching(service.namespace, labels)):
            service.put("selector", labels, f"from {group.display}'s {source}: its pods "
                        f"carry no app={service.name}, meshstage's default")
            return
    service.note("", f"WARNING: meshstage selects a service's pods by app={service.name} and "
                 "these pods do not all carry it: label them, or the mesh objects meshstage "
                 "renders for the service select nothing")


def _account(service: ServiceDraft) -> None:
    counts: dict[str, list[str]] = {}
    for group in service.workloads:
        counts.setdefault(group.root.service_account, []).append(group.display)
    if not counts:
        return
    account = max(counts, key=lambda a: (len(counts[a]), a != "default", a))
    source = ", ".join(counts[account])
    note = f"the pods of {source} run as it"
    if account == "default":
        note += " (the namespace's default account: every workload without its own shares " \
                "its identity)"
    if len(counts) > 1:
        note += "; WARNING: " + "; ".join(f"{', '.join(w)} run as {a}" for a, w in
                                          sorted(counts.items()) if a != account) \
                + ": one identity per service is what the intent can say"
    if account != service.name or len(counts) > 1 or account == "default":
        service.put("service_account", account, note)


def _ports(service: ServiceDraft) -> None:
    if service.service is None:
        service.put("ports", [])
        return
    ports: list[dict[str, Any]] = []
    for raw in service.service.spec.get("ports") or []:
        port = as_mapping(raw)
        path = f"ports[{len(ports)}]"
        if str(port.get("protocol") or "TCP").upper() != "TCP":
            service.note("ports", f"port {port.get('port')} ({port.get('protocol')}) is left "
                         "out: the mesh carries TCP only")
            continue
        if not isinstance(port.get("port"), int):
            continue
        if placeholder_port(service.service.spec, port.get("name"), port["port"]):
            service.note("ports", f"port {port['port']} ({port.get('name')}) is left out: "
                         "the placeholder kompose writes for a service without ports, so "
                         "that its name resolves (kubernetes/kompose#823); nothing serves it")
            continue
        entry: dict[str, Any] = {}
        name = str(port.get("name") or "")
        protocol, why = guess_protocol(port, service, port.get("port"))
        if _DNS_LABEL.match(name) and len(name) <= 63:
            entry["name"] = name
        elif name:
            service.note(path, f"the Service's port name {name!r} is not a DNS label: "
                         "meshstage's default name is used")
        entry["port"] = port["port"]
        entry["protocol"] = protocol
        target = _target_port(service, port)
        if target is not None and target != port["port"]:
            entry["target_port"] = target
        ports.append(entry)
        service.note(path, f"protocol {protocol}: {why}")
    service.put("ports", ports)


def _target_port(service: ServiceDraft, port: Mapping[str, Any]) -> int | None:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    numbers = {number for w in service.pods() for name, number in w.container_ports()
               if name == target}
    if len(numbers) == 1:
        return numbers.pop()
    service.note("ports", f"target port {target!r} of port {port.get('port')} names no "
                 "container port of the pods (or several): left unset")
    return None


def guess_protocol_name(known: str | None) -> str | None:
    """The intent's protocol for a protocol Istio tells from a Service port (``port_protocol``),
    or None when it tells none the intent has."""
    return _INTENT_PROTOCOL.get(known) if known else None


def guess_protocol(port: Mapping[str, Any], service: ServiceDraft,
                   number: Any) -> tuple[str, str]:
    """The intent's protocol of a Service port, and what it was guessed from."""
    known = port_protocol(port)
    source = (f"appProtocol {port['appProtocol']!r}" if port.get("appProtocol")
              else f"the port name {port.get('name')!r}")
    if known in (None, "tcp"):
        words = [str(port.get("appProtocol") or "").lower(),
                 *str(port.get("name") or "").lower().split("-")]
        first = next((SERVER_FIRST_NAMES[w] for w in words if w in SERVER_FIRST_NAMES), None)
        if first is not None:
            return first, f"from {source} (a server-first protocol)"
    if known in _INTENT_PROTOCOL:
        return _INTENT_PROTOCOL[known], f"from {source}"
    if str(port.get("name") or "").lower() in HTTP_PORT_NAMES:
        return "HTTP", (f"guessed from the port name {port.get('name')!r}, which usually "
                        "names an HTTP endpoint (metrics, a web page)")
    named = next((_NAMED_WORDS[w] for w in _WORDS.split(str(port.get("name") or "").lower())
                  if w in _NAMED_WORDS), None)
    if named is not None and known is None:
        return named, (f"guessed from a word of the port name {port.get('name')!r} (Istio "
                       "reads only its prefix, and sniffs the port)")
    target = _target_port(service, port) if service.workloads else None
    for workload in service.pods():
        for container, kind, scheme in _local_http_probes(workload, (target, number),
                                                          service.name):
            return ("HTTPS" if scheme == "https" else "HTTP"), (
                f"guessed from the {kind} of container {container} of {workload.resource.kind} "
                f"{workload.namespace}/{workload.resource.name}, which requests {scheme}:// "
                "on it")
        for probe in workload.probes():
            if probe.port in (target, number) and probe.action in ("httpGet", "grpc"):
                protocol = ("GRPC" if probe.action == "grpc" else
                            "HTTPS" if probe.scheme == "HTTPS" else "HTTP")
                return protocol, (f"guessed from the {probe.kind} {probe.action} of "
                                  f"{workload.resource.kind} {workload.namespace}/"
                                  f"{workload.resource.name} on port {probe.port}")
        for container, kind in _grpc_health_probes(workload, (target, number)):
            return "GRPC", (f"guessed from the {kind} of container {container} of "
                            f"{workload.resource.kind} {workload.namespace}/"
                            f"{workload.resource.name}, which runs grpc_health_probe on it")
    # the Service's port, else the container's (a Service on 27018 in front of MongoDB's
    # 27017 in hotelReservation)
    for known_number, which in ((number, "port"), (target, "target port")):
        if isinstance(known_number, int) and known_number in WELL_KNOWN_PORTS:
            protocol, what = WELL_KNOWN_PORTS[known_number]
            return protocol, (f"guessed from the {which} number {known_number} ({what}); "
                              "name the port to be sure")
    return "TCP", ("guessed: neither appProtocol, the port's name, a probe nor its number "
                   "tells; TCP (opaque) is the safe guess, say HTTP if it is")


# a word of a port name that tells its protocol where its prefix does not (``query-http``)
_WORDS = re.compile(r"[-_.]")
_NAMED_WORDS = {"http": "HTTP", "http2": "HTTP2", "h2c": "HTTP2", "grpc": "GRPC",
                "https": "HTTPS"}
# an exec probe's request to the pod itself (``curl -f http://localhost:8081/health``)
_URL = re.compile(r"\b(https?)://(\[::1\]|[a-z0-9.-]+)(?::(\d+))?")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0", "[::1]")


def _local_http_probes(workload: Any, ports: Iterable[Any],
                       own: str = "") -> Iterable[tuple[str, str, str]]:
    """(container, probe kind, scheme) of each exec probe that requests one of ``ports`` of
    the pod itself, or of its own Service ``own``, over HTTP(S)."""
    wanted = {p for p in ports if isinstance(p, int)}
    hosts = {*_LOCAL_HOSTS, own} if own else set(_LOCAL_HOSTS)
    for container in workload.containers:
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = as_mapping(as_mapping(container.get(kind)).get("exec")).get("command")
            words = " ".join(str(w) for w in command) if isinstance(command, list) else ""
            for scheme, host, number in _URL.findall(words):
                port = int(number) if number else (443 if scheme == "https" else 80)
                if port in wanted and (host in hosts or host.split(".")[0] == own):
                    yield str(container.get("name") or ""), f"{kind} exec", scheme


# grpc_health_probe's server address (``-addr=:5000``, ``-addr localhost:5000``): an exec
# probe that checks a gRPC server's health (https://github.com/grpc-ecosystem/grpc-health-probe)
_HEALTH_PROBE_ADDRESS = re.compile(r"-addr[= ]\S*?:(\d+)\b")


def _grpc_health_probes(workload: Any, ports: Iterable[Any]) -> Iterable[tuple[str, str]]:
    """(container, probe kind) of each exec probe that runs grpc_health_probe on one of
    ``ports``."""
    wanted = {p for p in ports if isinstance(p, int)}
    for container in workload.containers:
        for kind in PROBE_KINDS:
            command = as_mapping(as_mapping(container.get(kind)).get("exec")).get("command")
            words = " ".join(str(word) for word in command) if isinstance(command, list) else ""
            if "grpc_health_probe" in words and any(
                    int(port) in wanted for port in _HEALTH_PROBE_ADDRESS.findall(words)):
                yield str(container.get("name") or ""), kind


def _versions(service: ServiceDraft) -> None:
    """Versions from the pods' version labels; a note when there are none."""
    found: dict[str, tuple[str, str, list[str]]] = {}
    unlabelled = []
    for group in service.workloads:
        label = next((k for k in VERSION_LABELS if group.labels.get(k)), None)
        if label is None:
            unlabelled.append(group.display)
            continue
        value = group.labels[label]
        name = label_value_name(value)
        if name is None:
            unlabelled.append(group.display)
            continue
        found.setdefault(name, (label, value, []))[2].append(group.display)
    version_services = service.fields.pop("_version_services", [])
    if not found:
        if service.workloads:
            service.put("versions", [], "no version label on its pods (version, or "
                        "app.kubernetes.io/version): label each version's pods before "
                        "the traffic stage routes by version")
        return
    versions: list[Any] = []
    notes = []
    for name, (label, value, where) in sorted(found.items()):
        item: dict[str, Any] = {"name": name}
        if label != "version" or value != name:
            item["labels"] = {label: value}
        own = next((v.name for v, labels in version_services if labels == {label: value}),
                   None)
        if own:
            item["service"] = own
        versions.append(item if len(item) > 1 else name)
        notes.append(f"{name} from the label {label}={value} of {', '.join(where)}")
    if unlabelled:
        notes.append("WARNING: no version label on " + ", ".join(unlabelled))
    service.put("versions", versions, "; ".join(notes))


def _probes(service: ServiceDraft) -> None:
    """``probe_paths``: the httpGet probe paths on the service's ports (Linkerd authorizes
    them per route), and a note of every probe."""
    ports = {p.get("target_port", p["port"]) for p in service.fields.get("ports", [])}
    paths: list[str] = []
    seen = []
    for workload in (g.root for g in service.workloads):
        for probe in workload.probes():
            where = f"{probe.kind} {probe.action}" + (f" {probe.path}" if probe.path else "") \
                + (f" on port {probe.port}" if probe.port else "")
            if where not in seen:
                seen.append(where)
            path = (probe.path or "").split("?")[0]
            if probe.action == "httpGet" and probe.port in ports and PROBE_PATH.match(path) \
                    and path not in paths:
                paths.append(path)
    if paths:
        service.put("probe_paths", sorted(paths), "from the kubelet's probes: " +
                    "; ".join(seen))
    elif seen:
        service.note("", "probes: " + "; ".join(seen))
