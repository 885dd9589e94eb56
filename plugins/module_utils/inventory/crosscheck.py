"""meshstage.InventoryEstateAnalyzer: the inventory checked against the estate's manifests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..analyze.analyzer import IntentAnalyzer, Results
from ..analyze.analyzers.port_name import port_protocol
from ..analyze.finding import Level
from ..estate.index import MeshIndex
from ..estate.objects import POD_KINDS, Workload
from ..estate.protocols import placeholder_port
from ..intent.model import SERVER_FIRST_PROTOCOLS, Intent, Port, Service
from ..kube import selector_text
from ..stages import Stage
from .draft import WorkloadGroup
from .services import guess_protocol_name
from .workloads import workload_groups


def service_field(intent: Intent, service: Service) -> str:
    """``mesh_services[2] (reviews)``: where the service is written, and its name."""
    return f"{intent.service_path(service)} ({service.name})"


# protocols the mesh carries as TCP: a Service port that says TCP does not contradict them
_OVER_TCP = frozenset({"MONGO", "REDIS", *SERVER_FIRST_PROTOCOLS})

class InventoryEstateAnalyzer(IntentAnalyzer):
    """The inventory against the estate's own manifests (``mesh_check_paths``), in every run
    given them: what the inventory says of a service that its Service and pods contradict,
    and the workloads it would inject without knowing them. Each finding names the inventory
    field and the manifest. A namespace the manifests show nothing of is not judged (the
    manifests may be one team's slice of the cluster).

    - MST0301: the service has no Service in the estate (a client, ``ports: []``, no
      workload labelled ``app: <name>`` either).
    - MST0302: a port of the inventory is not a port of the Service, or a port of the
      Service is not in the inventory.
    - MST0303: a port's name differs from the Service's.
    - MST0304: a port's protocol contradicts the Service's (its ``appProtocol``, or a port
      name of Istio's ``<protocol>[-<suffix>]`` form); a protocol carried over TCP
      (MySQL, Redis...) where the Service says TCP is no contradiction.
    - MST0305: a port's ``target_port`` differs from the Service's ``targetPort``.
    - MST0306: a version's labels select no pod of the service (the short form of
      ``versions`` assumes a ``version`` label).
    - MST0307: the service's account is not the one its pods run as, or does not exist.
    - MST0308: a workload of a namespace the inventory injects that no service of the
      inventory selects: it gets the sidecar, and nothing admits or routes its calls.
    - MST0309: the Service's pods do not carry ``app: <name>``, by which meshstage selects
      them: its objects would select nothing.

    Fails with MST0302, MST0303, MST0304, MST0305::

        mesh_environment: dev
        mesh_stage: traffic
        mesh_services:
          - name: reviews
            namespace: bookinfo
            ports: [{name: http-web, port: 9080, protocol: TCP}, {port: 9090, target_port: 19090}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          selector: {app: reviews}
          ports:
          - {name: http, port: 9080}
          - {name: grpc, port: 9090, targetPort: 9090}
          - {name: tcp-admin, port: 9901}

    Fails with MST0301, MST0306, MST0307::

        mesh_environment: dev
        mesh_stage: traffic
        mesh_services:
          - {name: reviews, namespace: bookinfo, ports: [], versions: [v1, v2]}
          - {name: ratings, namespace: bookinfo, ports: []}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec: {selector: {app: reviews}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: reviews-v1, namespace: bookinfo}
        spec:
          template:
            metadata: {labels: {app: reviews}}
            spec: {serviceAccountName: bookinfo-reviews, containers: [{name: reviews}]}

    Fails with MST0308, MST0309::

        mesh_environment: dev
        mesh_stage: injection
        mesh_services:
          - {name: reviews, namespace: bookinfo, ports: []}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec: {selector: {app.kubernetes.io/name: reviews}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          template:
            metadata: {labels: {app.kubernetes.io/name: reviews}}
            spec: {serviceAccountName: reviews, containers: [{name: reviews}]}
        ---
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: cleanup, namespace: bookinfo}
        spec:
          jobTemplate:
            spec:
              template:
                metadata: {labels: {app: cleanup}}
                spec: {containers: [{name: cleanup}]}

    Passes::

        mesh_environment: dev
        mesh_stage: injection
        mesh_services:
          - name: reviews
            namespace: bookinfo
            service_account: bookinfo-reviews
            ports: [{name: http, port: 9080, protocol: HTTP}]
            versions: [v1]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          selector: {app: reviews}
          ports: [{name: http, port: 9080}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: reviews-v1, namespace: bookinfo}
        spec:
          template:
            metadata: {labels: {app: reviews, version: v1}}
            spec: {serviceAccountName: bookinfo-reviews, containers: [{name: reviews}]}
    """

    name = "meshstage.InventoryEstateAnalyzer"
    provider = "inventory"
    codes = {"MST0301": Level.WARNING, "MST0302": Level.WARNING, "MST0303": Level.WARNING,
             "MST0304": Level.WARNING, "MST0305": Level.WARNING, "MST0306": Level.WARNING,
             "MST0307": Level.WARNING, "MST0308": Level.WARNING, "MST0309": Level.WARNING}

    def analyze_intent(self, intent: Intent, index: MeshIndex) -> Results:
        on_hosts = intent.host_services
        for service in intent.services:
            if service.name not in on_hosts:
                yield from self._service(intent, index, service)
        if intent.stage.reached(Stage.INJECTION):
            yield from self._unknown_workloads(intent, index)

    def _service(self, intent: Intent, index: MeshIndex, service: Service) -> Results:
        field = service_field(intent, service)
        entry = index.service(service.namespace, service.name)
        if entry is None and not service.ports:  # a client: its pods, by meshstage's label
            pods = index.workloads_matching(service.namespace, service.selector)
            if pods:
                yield from self._account(index, field, service, pods[0].resource, pods)
                return
        if entry is None:
            if index.knows_in(service.namespace, "Service"):
                yield self.field_finding(
                    f"Service {service.namespace}/{service.name}", "MST0301", field,
                    "no Service of that name is in the estate's manifests (mesh_check_paths)"
                    + ("" if service.ports else f", and no workload labelled "
                       f"app={service.name}"))
            return
        resource = entry.resource
        pods = index.selected_by_service(entry)
        wanted = service.selector.items()
        if pods and not all(wanted <= w.labels.items() for w in pods):
            yield self.field_finding(
                resource, "MST0309", field, f"the Service's pods (it selects "
                f"{selector_text(entry.selector)}) do not all carry "
                f"{selector_text(service.selector)}, by which meshstage's objects select "
                "them: label the pods' template, or give the service the labels they carry "
                "(selector)", "spec.selector")
        yield from self._ports(field, service, resource, entry.ports, pods)
        pods = pods or index.workloads_matching(service.namespace, service.selector)
        yield from self._versions(index, field, service, resource, pods)
        yield from self._account(index, field, service, resource, pods)

    def _ports(self, field: str, service: Service, resource: Any,
               ports: tuple[Mapping[str, Any], ...], pods: list[Workload]) -> Results:
        by_number = {p.get("number"): (n, p) for n, p in enumerate(ports)}
        written = {p.port for p in service.ports}
        for number, port in enumerate(service.ports):
            path = f"{field}.ports[{number}]"
            if port.port not in by_number:
                yield self.field_finding(resource, "MST0302", path, f"port {port.port} is not "
                                         "a port of the Service (its ports: " + ", ".join(
                                             str(p.get("number")) for p in ports) + ")",
                                         "spec.ports")
                continue
            at, theirs = by_number[port.port]
            yield from self._port(path, port, resource, theirs, f"spec.ports[{at}]", pods)
        for at, theirs in enumerate(ports):
            if theirs.get("number") not in written and (theirs.get("protocol") or "TCP") \
                    == "TCP" and not placeholder_port(resource.spec, theirs.get("name"),
                                                      theirs.get("number")):
                yield self.field_finding(resource, "MST0302", f"{field}.ports",
                                         f"port {theirs.get('number')} of the Service is not "
                                         "in the inventory", f"spec.ports[{at}]")

    def _port(self, path: str, port: Port, resource: Any, theirs: Mapping[str, Any],
              where: str, pods: list[Workload]) -> Results:
        name = theirs.get("name")
        if name and name != port.name:
            yield self.field_finding(resource, "MST0303", f"{path}.name", f"{port.name!r} is "
                                     f"not the Service's name of port {port.port} "
                                     f"({name!r})", where)
        protocol = guess_protocol_name(port_protocol(theirs))
        # a protocol carried over raw TCP (MySQL, Redis...) only says more than TCP does
        refines = protocol == "TCP" and port.protocol in _OVER_TCP
        if protocol is not None and protocol != port.protocol and not refines:
            yield self.field_finding(resource, "MST0304", f"{path}.protocol",
                                     f"{port.protocol} contradicts the Service, whose port "
                                     f"{port.port} says {protocol} (its "
                                     + ("appProtocol" if theirs.get("appProtocol")
                                        else "name") + ")", where)
        target = theirs.get("targetPort", port.port)
        if isinstance(target, str) and not target.isdigit():
            numbers = {n for w in pods for found, n in w.container_ports() if found == target}
            target = numbers.pop() if len(numbers) == 1 else None
        if target is not None and int(target) != (port.target_port or port.port):
            yield self.field_finding(resource, "MST0305", f"{path}.target_port",
                                     f"{port.target_port or port.port} is not the Service's "
                                     f"targetPort of port {port.port} ({target})", where)

    def _versions(self, index: MeshIndex, field: str, service: Service, resource: Any,
                  pods: list[Workload]) -> Results:
        if not index.knows_in(service.namespace, *POD_KINDS):
            return
        for number, version in enumerate(service.versions):
            if not any(all(w.labels.get(k) == v for k, v in version.labels.items())
                       for w in pods):
                yield self.field_finding(
                    resource, "MST0306", f"{field}.versions[{number}] ({version.name})",
                    f"no pod of the service carries {selector_text(version.labels)}: the "
                    "version's routes and subsets would select nothing; label the pods, or "
                    "give the version the labels they carry")

    def _account(self, index: MeshIndex, field: str, service: Service, resource: Any,
                 pods: list[Workload]) -> Results:
        accounts = sorted({w.service_account for w in pods})
        if pods and service.service_account not in accounts:
            yield self.field_finding(resource, "MST0307", f"{field}.service_account",
                                     f"{service.service_account!r} is not the account its "
                                     f"pods run as ({', '.join(accounts)}): its principal "
                                     "would admit no caller and name no callee")
        elif not pods:
            problem = index.account_problem(service.namespace, service.service_account)
            if problem:
                yield self.field_finding(resource, "MST0307", f"{field}.service_account",
                                         problem)

    def _unknown_workloads(self, intent: Intent, index: MeshIndex) -> Results:
        injected = set(intent.injected_namespaces())
        known = {(s.namespace, s.name) for s in intent.services}
        for group in workload_groups(index):
            root = group.root
            if root.namespace not in injected or intent.services_selecting(
                    root.namespace, root.labels) or _selected(index, known, group):
                continue
            yield self.field_finding(
                root.resource, "MST0308", "mesh_services", f"{group.display} runs in "
                f"namespace {root.namespace}, which the inventory injects "
                "(mesh_injection_waves), and no service of the inventory selects it: it "
                "gets the sidecar, and no Sidecar, route or ALLOW rule knows its calls; "
                "add it to mesh_services (or opt it out)")


def _selected(index: MeshIndex, known: set[tuple[str, str]], group: WorkloadGroup) -> bool:
    """True when a Service named like an inventory service selects the workload."""
    return any((entry.resource.namespace, entry.resource.name) in known
               for w in group.running for entry in index.services_selecting(w))
