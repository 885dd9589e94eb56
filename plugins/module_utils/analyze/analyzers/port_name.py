"""service.PortNameAnalyzer: Service ports whose protocol Istio cannot tell."""

from __future__ import annotations

from collections.abc import Mapping

from ...estate.index import MeshIndex
from ...estate.objects import SYSTEM_NAMESPACES
from ...providers.istio.ports import port_protocol
from ..analyzer import Analyzer, Results
from ..finding import Level

# Services of Istio's own gateways, which users do not write.
_MANAGED_GATEWAY = frozenset({"istio.io-gateway-controller", "istio.io-mesh-controller",
                              "istio.io-eastwest-controller"})


class PortNameAnalyzer(Analyzer):
    """Service ports whose protocol Istio cannot tell from ``appProtocol`` or from a name of
    the form ``<protocol>[-<suffix>]`` (``http``, ``http-web``, ``grpc``, ``tcp-db``, ...):
    Istio then treats the traffic as opaque TCP, so routing, retries and HTTP metrics do not
    apply to it. For an ExternalName Service such a port (or one named just ``tcp``) may keep
    its traffic from being forwarded at all.

    Services of Istio's control plane (labelled ``istio`` or ``release: istio``), of managed
    gateways, and of the system namespaces are left out.

    Fails with IST0118::

        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          selector: {app: reviews}
          ports: [{name: web, port: 9080}]

    Fails with IST0150::

        apiVersion: v1
        kind: Service
        metadata: {name: billing, namespace: payments}
        spec:
          type: ExternalName
          externalName: billing.example.com
          ports: [{name: tcp, port: 443}]

    Passes::

        apiVersion: v1
        kind: Service
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          selector: {app: reviews}
          ports: [{name: http-web, port: 9080}, {port: 9443, appProtocol: https}]
    """

    name = "service.PortNameAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0118": Level.INFO, "IST0150": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        for service in index.of_kind("Service"):
            labels = service.labels
            if (service.namespace in SYSTEM_NAMESPACES or "istio" in labels
                    or labels.get("release") == "istio"
                    or labels.get("gateway.istio.io/managed") in _MANAGED_GATEWAY):
                continue
            external = service.spec.get("type") == "ExternalName"
            ports = service.spec.get("ports")
            for number, port in enumerate(ports if isinstance(ports, list) else []):
                if not isinstance(port, Mapping):
                    continue
                unknown = port_protocol(port) is None
                path = f"spec.ports[{number}]"
                if external and (unknown or port.get("name") == "tcp"):
                    yield self.finding(service, "IST0150", "Port name for an ExternalName "
                                       "service is invalid: the proxy may not forward TCP "
                                       "traffic to it; name it after its protocol, e.g. "
                                       "https.", path)
                elif unknown:
                    target = port.get("targetPort", port.get("port"))
                    yield self.finding(service, "IST0118", f"Port name {port.get('name', '')!r} "
                                       f"(port: {port.get('port')}, targetPort: {target}) "
                                       "doesn't follow Istio's <protocol>[-<suffix>] naming "
                                       "convention.", path)
