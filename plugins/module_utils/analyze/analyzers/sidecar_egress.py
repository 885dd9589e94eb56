"""MST0117: a Sidecar whose egress leaves out a host its workloads call."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ...estate.hosts import HostEntry, to_fqdn
from ...estate.index import MeshIndex
from ...estate.objects import DEFAULT_DOMAIN, Resource, Workload, as_list, as_mapping
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._mtls import effective_mode, target_port
from ._selectors import workload_selector

# Where a container names a host it calls: a URL, host:port, or a *_HOST-like variable
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://(?:[^@/\s]*@)?([a-z0-9.-]+)", re.IGNORECASE)
_HOST_PORT = re.compile(r"^([a-z0-9][-a-z0-9.]*[a-z0-9]):\d{1,5}$", re.IGNORECASE)
_BARE_HOST = re.compile(r"^[a-z0-9][-a-z0-9.]*[a-z0-9]$", re.IGNORECASE)
_HOST_VARIABLE = re.compile(r"(HOST|ADDR|ADDRESS|URL|URI|ENDPOINT|SERVER|SERVICE)$")


def called_hosts(workload: Workload) -> Iterator[tuple[str, str]]:
    """(host, the env variable naming it) for each host the workload's containers name."""
    for container in workload.containers:
        for variable in as_list(container.get("env")):
            name = str(as_mapping(variable).get("name") or "")
            value = str(as_mapping(variable).get("value") or "").strip()
            found = _URL.match(value) or _HOST_PORT.match(value)
            if found:
                yield found.group(1).lower(), name
            elif _HOST_VARIABLE.search(name.upper()) and _BARE_HOST.match(value):
                yield value.lower(), name


def _imports(sidecar: Resource, namespace: str, fqdn: str) -> bool:
    """True when one of the Sidecar's egress hosts (``namespace/dnsName``) imports the
    host of ``namespace``."""
    for listener in as_list(sidecar.spec.get("egress")):
        for entry in as_list(as_mapping(listener).get("hosts")):
            scope, _, pattern = str(entry).partition("/")
            if scope == "." and sidecar.namespace == namespace:
                scope = namespace
            if scope not in ("*", namespace):
                continue
            if pattern == "*" or pattern == fqdn or (
                    pattern.startswith("*.") and fqdn.endswith(pattern[1:])):
                return True
    return False


class SidecarEgressAnalyzer(Analyzer):
    """A Sidecar whose ``egress`` does not import a host its workloads call (a host named
    by a container's environment: a URL, ``host:port``, or a ``*_HOST``, ``*_URL``...
    variable), where that breaks the call: to an in-mesh Service whose workloads are STRICT,
    the unimported request leaves through the passthrough cluster as plaintext and is
    refused; under ``outboundTrafficPolicy: REGISTRY_ONLY`` it is dropped, as is a call to
    a host outside the cluster without an imported ServiceEntry. Add the host to the
    Sidecar's egress (meshstage renders it from ``calls``, which can name hosts outside the
    cluster: ``api.example.com:443`` gets a ServiceEntry).
    https://istio.io/latest/docs/reference/config/networking/sidecar/
    #OutboundTrafficPolicy-Mode, https://istio.io/latest/docs/ops/configuration/
    traffic-management/traffic-routing/#unmatched-traffic

    Fails with MST0117::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: checkout, namespace: shop}
        spec:
          workloadSelector: {labels: {app: checkout}}
          egress: [{hosts: [istio-system/*]}]
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: payments, namespace: shop}
        spec: {selector: {app: payments}, ports: [{name: http, port: 8080}]}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: payments, namespace: shop}
        spec:
          selector: {matchLabels: {app: payments}}
          template:
            metadata: {labels: {app: payments}}
            spec: {containers: [{name: app, image: payments}]}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: checkout, namespace: shop}
        spec:
          selector: {matchLabels: {app: checkout}}
          template:
            metadata: {labels: {app: checkout}}
            spec:
              containers:
              - name: app
                image: checkout
                env: [{name: PAYMENTS_URL, value: "http://payments.shop:8080/api"}]

    Passes::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: checkout, namespace: shop}
        spec:
          workloadSelector: {labels: {app: checkout}}
          egress: [{hosts: [istio-system/*, shop/payments.shop.svc.cluster.local]}]
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: payments, namespace: shop}
        spec: {selector: {app: payments}, ports: [{name: http, port: 8080}]}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: payments, namespace: shop}
        spec:
          selector: {matchLabels: {app: payments}}
          template:
            metadata: {labels: {app: payments}}
            spec: {containers: [{name: app, image: payments}]}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: checkout, namespace: shop}
        spec:
          selector: {matchLabels: {app: checkout}}
          template:
            metadata: {labels: {app: checkout}}
            spec:
              containers:
              - name: app
                image: checkout
                env: [{name: PAYMENTS_URL, value: "http://payments.shop:8080/api"}]
    """

    name = "meshstage.SidecarEgressAnalyzer"
    provider = "istio"
    codes = {"MST0117": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        for sidecar in index.istio("Sidecar"):
            if not isinstance(sidecar.spec.get("egress"), list):
                continue
            registry_only = as_mapping(sidecar.spec.get("outboundTrafficPolicy")).get(
                "mode") == "REGISTRY_ONLY"
            for workload in self._workloads(index, sidecar):
                for host, variable in called_hosts(workload):
                    problem = self._problem(index, sidecar, workload, host, registry_only)
                    if problem:
                        yield self.finding(
                            sidecar, "MST0117", f"{workload.resource.display} calls {host} "
                            f"({variable}), which this Sidecar's egress does not import: "
                            f"{problem}; add it to the egress hosts.", "spec.egress")
                        break

    @staticmethod
    def _workloads(index: MeshIndex, sidecar: Resource) -> list[Workload]:
        selector = workload_selector(sidecar)
        if selector:
            return index.workloads_matching(sidecar.namespace, selector)
        selected = {w for other in index.istio("Sidecar") if other.namespace == sidecar.namespace
                    and workload_selector(other)
                    for w in index.workloads_matching(other.namespace, workload_selector(other))}
        return [w for w in index.workloads_in(sidecar.namespace) if w not in selected]

    @staticmethod
    def _problem(index: MeshIndex, sidecar: Resource, workload: Workload, host: str,
                 registry_only: bool) -> str | None:
        parts = host.split(".")
        if (len(parts) == 3 and parts[2] == "svc") or (
                len(parts) == 2 and index.service(parts[1], parts[0]) is not None):
            host = f"{parts[0]}.{parts[1]}.{DEFAULT_DOMAIN}"  # name.namespace[.svc]
        entry: HostEntry | None = index.resolve_host(workload.namespace, host)
        if entry is None:
            if "." not in host or host.endswith((".svc", ".cluster.local")) or \
                    not registry_only:
                return None  # an unknown cluster host, or ALLOW_ANY lets it through
            return "under REGISTRY_ONLY a host with no ServiceEntry is dropped"
        fqdn = entry.fqdn if entry.is_service else to_fqdn(entry.resource.namespace, host)
        if _imports(sidecar, entry.resource.namespace, fqdn):
            return None
        if registry_only:
            return "under REGISTRY_ONLY an unimported host is dropped"
        if not entry.is_service:
            return None
        for callee in index.selected_by_service(entry):
            if not index.has_sidecar(callee):
                continue
            port = target_port(entry.ports[0], callee) if entry.ports else None
            mode, policy = effective_mode(index, callee.labels, callee.namespace, port)
            if mode == "STRICT" and policy is not None:
                return (f"its requests leave through the passthrough cluster as plaintext, "
                        f"which {policy.display} (STRICT) refuses")
        return None
