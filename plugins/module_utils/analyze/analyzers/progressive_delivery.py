"""MST0119, MST0120: the Istio objects Argo Rollouts and Flagger drive: a Rollout's
DestinationRule subsets and VirtualService routes, a Flagger canary's TLS under STRICT."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import Resource, as_list, as_mapping
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._mtls import effective_mode

_ISTIO = "spec.strategy.canary.trafficRouting.istio"
# TLS modes that send a STRICT sidecar something other than Istio mTLS
_NOT_ISTIO_MTLS = ("DISABLE", "SIMPLE", "MUTUAL")


def _istio_routing(rollout: Resource) -> Mapping[str, Any]:
    canary = as_mapping(as_mapping(rollout.spec.get("strategy")).get("canary"))
    return as_mapping(as_mapping(canary.get("trafficRouting")).get("istio"))


def _virtual_services(routing: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], str]]:
    single = as_mapping(routing.get("virtualService"))
    if single:
        yield single, f"{_ISTIO}.virtualService"
    for number, item in enumerate(as_list(routing.get("virtualServices"))):
        yield as_mapping(item), f"{_ISTIO}.virtualServices[{number}]"


class ProgressiveDeliveryAnalyzer(Analyzer):
    """The Istio objects that Argo Rollouts and Flagger drive, as the estate's canary objects
    name them:

    - MST0119: an Argo Rollouts ``Rollout`` with ``trafficRouting.istio`` that names a
      DestinationRule without the ``canarySubsetName`` or ``stableSubsetName`` subset, a
      DestinationRule or VirtualService that does not exist, or a VirtualService route
      (``routes``) that the VirtualService does not name: the controller cannot shift
      traffic and the rollout stalls.
      https://argoproj.github.io/argo-rollouts/features/traffic-management/istio/
    - MST0120: a Flagger ``Canary`` whose ``service.trafficPolicy.tls.mode`` is
      ``DISABLE``, ``SIMPLE`` or ``MUTUAL`` while the workload it releases is STRICT: Flagger
      copies the traffic policy into the DestinationRules it generates
      (``<name>-canary``, ``<name>-primary``), whose clients then send no Istio mTLS, which
      STRICT refuses. Keep ``ISTIO_MUTUAL`` (or no ``tls``).
      https://docs.flagger.app/tutorials/istio-progressive-delivery

    The pods of a Rollout (its template, or the Deployment its ``workloadRef`` names) and of
    a Canary's primary count as workloads for every analyzer.

    Fails with MST0119::

        apiVersion: argoproj.io/v1alpha1
        kind: Rollout
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          selector: {matchLabels: {app: reviews}}
          template:
            metadata: {labels: {app: reviews}}
            spec: {containers: [{name: reviews, image: reviews}]}
          strategy:
            canary:
              steps: [{setWeight: 20}, {pause: {}}]
              trafficRouting:
                istio:
                  virtualService: {name: reviews, routes: [primary]}
                  destinationRule: {name: reviews, canarySubsetName: canary,
                                    stableSubsetName: stable}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          host: reviews
          subsets: [{name: v1, labels: {app: reviews}}, {name: v2, labels: {app: reviews}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          http:
          - name: primary
            route:
            - {destination: {host: reviews, subset: v1}, weight: 100}
            - {destination: {host: reviews, subset: v2}, weight: 0}

    Fails with MST0120::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: test, labels: {istio-injection: enabled}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: podinfo, namespace: test}
        spec:
          selector: {matchLabels: {app: podinfo}}
          template:
            metadata: {labels: {app: podinfo}}
            spec: {containers: [{name: podinfod, image: "ghcr.io/stefanprodan/podinfo:6.7.0"}]}
        ---
        apiVersion: flagger.app/v1beta1
        kind: Canary
        metadata: {name: podinfo, namespace: test}
        spec:
          targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
          service:
            port: 9898
            trafficPolicy: {tls: {mode: DISABLE}}
          analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}

    Passes::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: test, labels: {istio-injection: enabled}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: podinfo, namespace: test}
        spec:
          selector: {matchLabels: {app: podinfo}}
          template:
            metadata: {labels: {app: podinfo}}
            spec: {containers: [{name: podinfod, image: "ghcr.io/stefanprodan/podinfo:6.7.0"}]}
        ---
        apiVersion: flagger.app/v1beta1
        kind: Canary
        metadata: {name: podinfo, namespace: test}
        spec:
          targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
          service:
            port: 9898
            trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
          analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}
    """

    name = "meshstage.ProgressiveDeliveryAnalyzer"
    provider = "istio"
    codes = {"MST0119": Level.ERROR, "MST0120": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        for rollout in index.of_kind("Rollout"):
            if rollout.group == "argoproj.io":
                yield from self._rollout(index, rollout)
        for canary in index.of_kind("Canary"):
            if canary.group == "flagger.app":
                yield from self._canary(index, canary)

    def _rollout(self, index: MeshIndex, rollout: Resource) -> Results:
        routing = _istio_routing(rollout)
        rule = as_mapping(routing.get("destinationRule"))
        path = f"{_ISTIO}.destinationRule"
        if rule.get("name"):
            found = index.get("DestinationRule", rollout.namespace, str(rule["name"]))
            if found is None and index.knows_in(rollout.namespace, "DestinationRule"):
                yield self.finding(rollout, "MST0119", f"The DestinationRule {rule['name']!r} "
                                   "this Rollout shifts traffic with does not exist.", path)
            elif found is not None:
                subsets = {str(as_mapping(s).get("name"))
                           for s in as_list(found.spec.get("subsets"))}
                for field in ("canarySubsetName", "stableSubsetName"):
                    wanted = rule.get(field)
                    if wanted and str(wanted) not in subsets:
                        yield self.finding(
                            rollout, "MST0119", f"{field} {wanted!r} is no subset of "
                            f"{found.display} (subsets: {', '.join(sorted(subsets)) or 'none'}):"
                            " the controller cannot point it at the rollout's pods.",
                            f"{path}.{field}")
        for service, where in _virtual_services(routing):
            if not service.get("name"):
                continue
            name = str(service["name"]).split(".")[0]
            found = index.get("VirtualService", rollout.namespace, name)
            if found is None:
                if index.knows_in(rollout.namespace, "VirtualService"):
                    yield self.finding(rollout, "MST0119", f"The VirtualService {name!r} this "
                                       "Rollout shifts traffic with does not exist.", where)
                continue
            named = {str(as_mapping(r).get("name")) for r in as_list(found.spec.get("http"))}
            for route in as_list(service.get("routes")):
                if str(route) not in named:
                    yield self.finding(rollout, "MST0119", f"Route {route!r} is no named HTTP "
                                       f"route of {found.display}: the controller cannot set "
                                       "its weights.", f"{where}.routes")

    def _canary(self, index: MeshIndex, canary: Resource) -> Results:
        service = as_mapping(canary.spec.get("service"))
        tls = as_mapping(as_mapping(service.get("trafficPolicy")).get("tls"))
        mode = tls.get("mode")
        if mode not in _NOT_ISTIO_MTLS:
            return
        primary = index.workload_for(canary)
        if primary is None or not index.has_sidecar(primary):
            return
        port = service.get("targetPort", service.get("port"))
        port = port if isinstance(port, int) else None
        strict, policy = effective_mode(index, primary.labels, primary.namespace, port)
        if strict == "STRICT" and policy is not None:
            yield self.finding(
                canary, "MST0120", f"Flagger copies this tls.mode {mode} into the "
                f"DestinationRules it generates ({canary.name}-canary, {canary.name}-primary), "
                f"but the workloads it releases are STRICT ({policy.display}): their clients "
                "will send no Istio mTLS and every request is refused; use ISTIO_MUTUAL.",
                "spec.service.trafficPolicy.tls.mode")
