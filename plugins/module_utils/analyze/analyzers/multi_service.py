"""deployment.MultiServiceAnalyzer: one workload behind Services that disagree on a port."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ..analyzer import Analyzer, Results
from ..finding import Level


class MultiServiceAnalyzer(Analyzer):
    """A Deployment in the mesh selected by several Services that use one port number with
    different protocols (Istio cannot serve both on one port), or that send one target port
    different service ports.

    Fails with IST0116::

        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: details, namespace: bookinfo}
        spec:
          selector: {matchLabels: {app: details}}
          template:
            metadata: {labels: {app: details, sidecar.istio.io/inject: "true"}}
            spec: {containers: [{name: details, image: details, ports: [{containerPort: 9080}]}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: details, namespace: bookinfo}
        spec: {selector: {app: details}, ports: [{name: http, port: 9080, protocol: TCP}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: details-udp, namespace: bookinfo}
        spec: {selector: {app: details}, ports: [{name: udp, port: 9080, protocol: UDP}]}

    Fails with IST0137::

        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: details, namespace: bookinfo}
        spec:
          selector: {matchLabels: {app: details}}
          template:
            metadata: {labels: {app: details, sidecar.istio.io/inject: "true"}}
            spec: {containers: [{name: details, image: details, ports: [{containerPort: 9080}]}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: details, namespace: bookinfo}
        spec: {selector: {app: details}, ports: [{name: http, port: 9080}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: details-alt, namespace: bookinfo}
        spec: {selector: {app: details}, ports: [{name: http, port: 80, targetPort: 9080}]}

    Passes::

        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: details, namespace: bookinfo}
        spec:
          selector: {matchLabels: {app: details}}
          template:
            metadata: {labels: {app: details, sidecar.istio.io/inject: "true"}}
            spec: {containers: [{name: details, image: details, ports: [{containerPort: 9080}]}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: details, namespace: bookinfo}
        spec: {selector: {app: details}, ports: [{name: http, port: 9080}]}
    """

    name = "deployment.MultiServiceAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0116": Level.WARNING, "IST0137": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        for deployment in index.of_kind("Deployment"):
            workload = index.workload_of(deployment)
            if not index.has_sidecar(workload):
                continue
            services = index.services_selecting(workload)
            protocols: dict[int, dict[str, list[str]]] = {}
            targets: dict[str, dict[int, str]] = {}
            for service in services:
                name = f"{service.resource.namespace}/{service.resource.name}"
                for port in service.ports:
                    number = port.get("number")
                    if not isinstance(number, int):
                        continue
                    protocol = str(port.get("protocol") or "TCP")
                    protocols.setdefault(number, {}).setdefault(protocol, []).append(name)
                    target = port.get("targetPort")
                    target = str(target) if target not in (None, 0, "", "0") else str(number)
                    targets.setdefault(target, {})[number] = name
            for number, by_protocol in protocols.items():
                if len(by_protocol) > 1:
                    names = [n for group in by_protocol.values() for n in group]
                    yield self.finding(deployment, "IST0116", f"This deployment is selected by "
                                       f"several services using port {number} with different "
                                       f"protocols: {', '.join(names)}.")
            for target, ports in targets.items():
                if len(ports) > 1:
                    yield self.finding(deployment, "IST0137", f"This deployment is selected by "
                                       f"services {', '.join(ports.values())} that send target "
                                       f"port {target} different ports: "
                                       f"{', '.join(str(p) for p in ports)}.")
