"""MST0104: default deny that leaves a declared caller without an ALLOW."""

from __future__ import annotations

from collections.abc import Iterator

from ...estate.hosts import HostEntry
from ...estate.index import MeshIndex
from ...estate.objects import Resource, Workload, without_one_offs
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._authz import PolicyIndex, caller_of, evaluate
from ._routes import gateways, route_destinations, string_list
from ._selectors import workload_selector


def _egress_hosts(sidecar: Resource) -> Iterator[tuple[str, str, str]]:
    """(namespace, host, path) of each concrete ``namespace/host`` a Sidecar's egress names."""
    egress = sidecar.spec.get("egress")
    for number, listener in enumerate(egress if isinstance(egress, list) else []):
        hosts = listener.get("hosts") if isinstance(listener, dict) else None
        for position, entry in enumerate(hosts if isinstance(hosts, list) else []):
            namespace, _, host = str(entry).partition("/")
            if namespace in ("*", "~") or not host or "*" in host:
                continue
            if namespace == ".":
                namespace = sidecar.namespace
            yield namespace, host, f"spec.egress[{number}].hosts[{position}]"


class DeclaredCallersAnalyzer(Analyzer):
    """Default deny that refuses a caller the manifests declare: a workload whose Sidecar
    lists a service in its egress hosts (meshstage renders them from ``calls``), or the
    gateway a VirtualService routes from, while the service's workloads are under ALLOW
    policies (an ``allow-nothing`` policy, or any ALLOW) none of which admits the caller's
    principal or namespace, or under a DENY that refuses it outright. The caller's requests
    will all be denied (HTTP 403, or reset connections). Rules with ``to`` or ``when``
    count as admitting; sources on IPs or JWTs cannot be judged and are not reported.
    Policies annotated ``istio.io/dry-run: "true"`` enforce nothing and are left out (the
    stage gates read what their dry run would have denied).

    Fails with MST0104::

        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: admin-service, namespace: payments}
        spec:
          workloadSelector: {labels: {app: admin-service}}
          egress: [{hosts: [payments/payment-service.payments.svc.cluster.local]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-nothing, namespace: payments}
        spec: {}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: payment-service-allow, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          rules: [{from: [{source: {principals: [cluster.local/ns/payments/sa/order-service]}}]}]
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: payments, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: payment-service, namespace: payments}
        spec: {selector: {app: payment-service}, ports: [{name: http, port: 8080}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: payment-service-1, namespace: payments, labels: {app: payment-service}}
        spec: {serviceAccountName: payment-service, containers: [{name: app, image: pay}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: admin-service-1, namespace: payments, labels: {app: admin-service}}
        spec: {serviceAccountName: admin-service, containers: [{name: app, image: admin}]}

    Passes::

        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: admin-service, namespace: payments}
        spec:
          workloadSelector: {labels: {app: admin-service}}
          egress: [{hosts: [payments/payment-service.payments.svc.cluster.local]}]
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: allow-nothing, namespace: payments}
        spec: {}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: payment-service-allow, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          rules: [{from: [{source: {principals: [cluster.local/ns/payments/sa/order-service,
                                                 cluster.local/ns/payments/sa/admin-service]}}]}]
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: payments, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: payment-service, namespace: payments}
        spec: {selector: {app: payment-service}, ports: [{name: http, port: 8080}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: payment-service-1, namespace: payments, labels: {app: payment-service}}
        spec: {serviceAccountName: payment-service, containers: [{name: app, image: pay}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: admin-service-1, namespace: payments, labels: {app: admin-service}}
        spec: {serviceAccountName: admin-service, containers: [{name: app, image: admin}]}
    """

    name = "meshstage.DeclaredCallersAnalyzer"
    provider = "istio"
    codes = {"MST0104": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        if not index.istio("AuthorizationPolicy"):
            return
        declarations = list(self._declarations(index))
        if not declarations:
            return
        if not index.knows_hosts() or not index.knows_workloads():
            yield self.unchecked("callers declared by Sidecars and gateways",
                                 "no Service, pod or workload in the input")
            return
        policies = PolicyIndex(index)
        reported: set[tuple[Resource, str, str]] = set()
        for declaring, callers, entry, path in declarations:
            identities = {caller_of(index, caller): caller for caller in callers}
            for server in index.selected_by_service(entry):
                if not index.in_mesh(server):
                    continue
                for identity, caller in identities.items():
                    verdict = evaluate(policies, server, identity)
                    if verdict.admitted is not False or verdict.blocking is None:
                        continue
                    service = f"{entry.resource.namespace}/{entry.resource.name}"
                    key = (verdict.blocking, identity.principal, service)
                    if key in reported:
                        continue
                    reported.add(key)
                    yield self.finding(
                        verdict.blocking, "MST0104", f"This policy denies "
                        f"{caller.namespace}/{caller.service_account} ({identity.principal}), "
                        f"which {declaring.display} declares as a caller of {service} "
                        f"({path}): add it to an ALLOW rule, or remove the call.")

    def _declarations(self, index: MeshIndex,
                      ) -> Iterator[tuple[Resource, list[Workload], HostEntry, str]]:
        """(declaring object, caller workloads, called service, path)."""
        for sidecar in index.istio("Sidecar"):
            labels = workload_selector(sidecar)
            if not labels:
                continue
            callers = [w for w in without_one_offs(index.workloads_matching(
                sidecar.namespace, labels)) if index.has_sidecar(w)]
            for namespace, host, path in _egress_hosts(sidecar):
                entry = index.resolve_host(namespace, host)
                if entry is not None and entry.is_service and callers:
                    yield sidecar, callers, entry, path
        gateway_workloads: dict[str, list[Workload]] = {}
        for gateway in index.of_kind("Gateway"):
            if gateway.group != "networking.istio.io":
                continue
            selector = gateway.spec.get("selector")
            labels = {str(k): str(v) for k, v in selector.items()} if isinstance(
                selector, dict) else {}
            if labels:
                gateway_workloads[f"{gateway.namespace}/{gateway.name}"] = [
                    w for w in index.workloads_matching(None, labels)]
        for virtual_service in index.istio("VirtualService"):
            callers = []
            for name in gateways(virtual_service):
                key = name if "/" in name else f"{virtual_service.namespace}/{name}"
                callers += gateway_workloads.get(key, [])
            if not callers:
                continue
            export_to = string_list(virtual_service.spec.get("exportTo"))
            for destination in route_destinations(virtual_service):
                entry = index.resolve_host(virtual_service.namespace, destination.host,
                                           export_to)
                if entry is not None and entry.is_service:
                    yield virtual_service, callers, entry, destination.path
