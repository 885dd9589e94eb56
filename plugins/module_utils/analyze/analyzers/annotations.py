"""annotations.K8sAnalyzer: unknown, misplaced, invalid and deprecated Istio annotations."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ..analyzer import Analyzer, Results
from ..finding import Level

ANY = "Any"

# The Istio annotations and the kinds they belong on (istio/api annotation/annotations.yaml),
# and whether they are deprecated. An annotation of Istio's domains (``*istio.io/``) that is
# not listed here is unknown.
_POD = ("Pod",)
CATALOGUE: dict[str, tuple[tuple[str, ...], bool]] = {
    "ambient.istio.io/bypass-inbound-capture": (_POD, False),
    "ambient.istio.io/dns-capture": (_POD, False),
    "ambient.istio.io/redirection": (_POD, False),
    "galley.istio.io/analyze-suppress": ((ANY,), False),
    "gateway.istio.io/controller-version": ((ANY,), False),
    "inject.istio.io/templates": (_POD, False),
    "install.operator.istio.io/chart-owner": ((ANY,), False),
    "install.operator.istio.io/owner-generation": ((ANY,), False),
    "install.operator.istio.io/version": ((ANY,), False),
    "istio.io/dry-run": (("AuthorizationPolicy",), False),
    "istio.io/rev": ((ANY,), False),
    "istio.io/use-waypoint": ((ANY,), False),
    "istio.io/autoRegistrationGroup": (("WorkloadEntry",), False),
    "istio.io/connectedAt": (("WorkloadEntry",), False),
    "istio.io/disconnectedAt": (("WorkloadEntry",), False),
    "istio.io/workloadController": (("WorkloadEntry",), False),
    "networking.istio.io/exportTo": (("Service",), False),
    "networking.istio.io/traffic-distribution": (("Service",), False),
    "networking.istio.io/service-type": (("Gateway",), False),
    "prometheus.istio.io/merge-metrics": (_POD, False),
    "proxy.istio.io/config": (_POD, False),
    "proxy.istio.io/overrides": (_POD, False),
    "readiness.status.sidecar.istio.io/applicationPorts": (_POD, False),
    "readiness.status.sidecar.istio.io/failureThreshold": (_POD, False),
    "readiness.status.sidecar.istio.io/initialDelaySeconds": (_POD, False),
    "readiness.status.sidecar.istio.io/periodSeconds": (_POD, False),
    "security.istio.io/autoMTLS": (_POD, False),
    "sidecar.istio.io/agentLogLevel": (_POD, False),
    "sidecar.istio.io/bootstrapOverride": (_POD, False),
    "sidecar.istio.io/componentLogLevel": (_POD, False),
    "sidecar.istio.io/controlPlaneAuthPolicy": (_POD, True),
    "sidecar.istio.io/discoveryAddress": (_POD, True),
    "sidecar.istio.io/enableCoreDump": (_POD, False),
    "sidecar.istio.io/extraStatTags": (_POD, False),
    "sidecar.istio.io/inject": (_POD, True),
    "sidecar.istio.io/interceptionMode": (_POD, False),
    "sidecar.istio.io/logLevel": (_POD, False),
    "sidecar.istio.io/nativeSidecar": (_POD, False),
    "sidecar.istio.io/proxyCPU": (_POD, False),
    "sidecar.istio.io/proxyCPULimit": (_POD, False),
    "sidecar.istio.io/proxyImage": (_POD, False),
    "sidecar.istio.io/proxyImageType": (_POD, False),
    "sidecar.istio.io/proxyMemory": (_POD, False),
    "sidecar.istio.io/proxyMemoryLimit": (_POD, False),
    "sidecar.istio.io/rewriteAppHTTPProbers": (_POD, False),
    "sidecar.istio.io/statsCompression": (_POD, False),
    "sidecar.istio.io/statsFlushInterval": (_POD, False),
    "sidecar.istio.io/statsHistogramBuckets": (_POD, False),
    "sidecar.istio.io/statsInclusionPrefixes": (_POD, True),
    "sidecar.istio.io/statsInclusionRegexps": (_POD, True),
    "sidecar.istio.io/statsInclusionSuffixes": (_POD, True),
    "sidecar.istio.io/status": (_POD, False),
    "sidecar.istio.io/userVolume": (_POD, False),
    "sidecar.istio.io/userVolumeMount": (_POD, False),
    "status.sidecar.istio.io/port": (_POD, False),
    "topology.istio.io/controlPlaneClusters": (("Secret",), False),
    "traffic.sidecar.istio.io/excludeInboundPorts": (_POD, False),
    "traffic.sidecar.istio.io/excludeInterfaces": (_POD, False),
    "traffic.sidecar.istio.io/excludeOutboundIPRanges": (_POD, False),
    "traffic.sidecar.istio.io/excludeOutboundPorts": (_POD, False),
    "traffic.sidecar.istio.io/includeInboundPorts": (_POD, False),
    "traffic.sidecar.istio.io/includeOutboundIPRanges": (_POD, False),
    "traffic.sidecar.istio.io/includeOutboundPorts": (_POD, False),
    "traffic.sidecar.istio.io/kubevirtInterfaces": (_POD, True),
    "kubernetes.io/ingress.class": (("Ingress",), False),
}
_EXTRA = {"sidecar.istio.io/inject": ' in favor of the "sidecar.istio.io/inject" label'}


def _uint(value: str) -> str | None:
    return None if value.isdigit() and int(value) < 2**32 else f"{value!r} is not an integer"


def _port(value: str) -> str | None:
    ok = value.isdigit() and 0 < int(value) < 65536
    return None if ok else f"{value!r} is not a port number (1-65535)"


def _ports(value: str, wildcard: bool = True) -> str | None:
    if value.strip() in ("", "*") and wildcard:
        return None
    for part in value.split(","):
        problem = _port(part.strip())
        if problem:
            return problem
    return None


def _cidrs(value: str) -> str | None:
    if value.strip() in ("", "*"):
        return None
    for part in value.split(","):
        try:
            ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            return f"{part.strip()!r} is not an IP range in CIDR form"
    return None


def _choice(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"{value!r} is not one of {', '.join(choices)}"
    return check


_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _quantity(value: str) -> str | None:
    return None if _QUANTITY.match(value) else f"{value!r} is not a Kubernetes quantity"


_VALIDATORS: dict[str, Callable[[str], str | None]] = {
    "readiness.status.sidecar.istio.io/initialDelaySeconds": _uint,
    "readiness.status.sidecar.istio.io/periodSeconds": _uint,
    "readiness.status.sidecar.istio.io/failureThreshold": _uint,
    "readiness.status.sidecar.istio.io/applicationPorts": _ports,
    "status.sidecar.istio.io/port": lambda v: None if v == "0" else _port(v),
    "sidecar.istio.io/interceptionMode": _choice("REDIRECT", "TPROXY", "NONE"),
    "sidecar.istio.io/proxyCPU": _quantity,
    "sidecar.istio.io/proxyCPULimit": _quantity,
    "sidecar.istio.io/proxyMemory": _quantity,
    "sidecar.istio.io/proxyMemoryLimit": _quantity,
    "traffic.sidecar.istio.io/includeInboundPorts": _ports,
    "traffic.sidecar.istio.io/excludeInboundPorts": _ports,
    "traffic.sidecar.istio.io/includeOutboundPorts": _ports,
    "traffic.sidecar.istio.io/excludeOutboundPorts": _ports,
    "traffic.sidecar.istio.io/includeOutboundIPRanges": _cidrs,
    "traffic.sidecar.istio.io/excludeOutboundIPRanges": _cidrs,
}


def is_istio_annotation(key: str) -> bool:
    """Annotations of Istio's domains, and the one Kubernetes annotation Istio documents."""
    return key == "kubernetes.io/ingress.class" or key.partition("/")[0].endswith("istio.io")


class K8sAnnotationsAnalyzer(Analyzer):
    """Istio annotations on Namespaces, Services, Pods and Deployments that Istio does not
    know, that belong on another kind, whose value Istio refuses, or that are deprecated.

    A Deployment's own annotations are not its pods' annotations: proxy settings belong in
    ``spec.template.metadata.annotations``.

    Fails with IST0107, IST0135::

        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: reviews
          namespace: bookinfo
          annotations:
            sidecar.istio.io/statsInclusionPrefixes: cluster.outbound
        spec:
          selector: {matchLabels: {app: reviews}}
          template:
            metadata: {labels: {app: reviews}}
            spec: {containers: [{name: reviews, image: reviews}]}

    Fails with IST0108::

        apiVersion: v1
        kind: Service
        metadata:
          name: reviews
          namespace: bookinfo
          annotations: {networking.istio.io/exportToo: "."}
        spec:
          selector: {app: reviews}
          ports: [{name: http, port: 9080}]

    Fails with IST0125::

        apiVersion: v1
        kind: Pod
        metadata:
          name: reviews
          namespace: bookinfo
          annotations: {readiness.status.sidecar.istio.io/periodSeconds: often}
        spec: {containers: [{name: reviews, image: reviews}]}

    Passes::

        apiVersion: v1
        kind: Pod
        metadata:
          name: reviews
          namespace: bookinfo
          annotations:
            readiness.status.sidecar.istio.io/periodSeconds: "10"
            proxy.istio.io/config: "{}"
        spec: {containers: [{name: reviews, image: reviews}]}
    """

    name = "annotations.K8sAnalyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0107": Level.WARNING, "IST0108": Level.WARNING, "IST0125": Level.WARNING,
             "IST0135": Level.INFO}

    def analyze(self, index: MeshIndex) -> Results:
        for resource in index.of_kind("Namespace", "Service", "Pod", "Deployment"):
            yield from self._check(resource)

    def _check(self, resource: Resource) -> Results:
        for key, value in sorted(resource.annotations.items()):
            if not is_istio_annotation(key):
                continue
            path = f"metadata.annotations.{key}"
            known = CATALOGUE.get(key)
            if known is None:
                yield self.finding(resource, "IST0108", f"Unknown annotation: {key}.", path)
                continue
            kinds, deprecated = known
            if deprecated and not (key == "sidecar.istio.io/inject"
                                   and key in resource.labels):
                yield self.finding(resource, "IST0135", f"Annotation {key!r} has been "
                                   f"deprecated{_EXTRA.get(key, '')} and may not work in "
                                   "future Istio versions.", path)
            if ANY in kinds:
                continue
            if resource.kind not in kinds:
                yield self.finding(resource, "IST0107", f"Misplaced annotation: {key} can "
                                   f"only be applied to {', '.join(kinds)}.", path)
                continue
            validate = _VALIDATORS.get(key)
            problem = validate(value) if validate else None
            if problem:
                yield self.finding(resource, "IST0125", f"Invalid annotation {key}: {problem}.",
                                   path)
