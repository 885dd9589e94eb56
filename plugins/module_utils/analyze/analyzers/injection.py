"""injection.Analyzer: namespaces without injection, conflicting labels, pods without a proxy."""

from __future__ import annotations

import json

from ...estate.index import MeshIndex
from ...estate.objects import DATAPLANE_MODE, SYSTEM_NAMESPACES, Resource
from ..analyzer import Analyzer, Results
from ..finding import Finding, Level

_INJECTOR_CONFIGMAP = "istio-sidecar-injector"


def _enabled_by_default(index: MeshIndex, revision: str | None) -> bool:
    """``sidecarInjectorWebhook.enableNamespacesByDefault`` of the injector's ConfigMap."""
    name = _INJECTOR_CONFIGMAP
    if revision and revision != "default":
        name = f"{name}-{revision}"
    for configmap in index.of_kind("ConfigMap"):
        if configmap.name != name:
            continue
        data = configmap.obj.get("data")
        try:
            values = json.loads(data.get("values", "")) if isinstance(data, dict) else {}
        except (TypeError, ValueError):
            return False
        webhook = values.get("sidecarInjectorWebhook") if isinstance(values, dict) else None
        return isinstance(webhook, dict) and webhook.get("enableNamespacesByDefault") is True
    return False


class InjectionAnalyzer(Analyzer):
    """Namespaces that are not enabled for injection (Info), namespaces with more than one
    kind of injection label (``istio-injection``, ``istio.io/rev``, ambient), and pods of an
    injected namespace that run without the ``istio-proxy`` sidecar (restart them).

    A namespace labelled ``istio-injection: disabled`` is left out on purpose and not
    reported; nor are kube-system and the other system namespaces, or ``istio-system``.

    Fails with IST0102::

        apiVersion: v1
        kind: Namespace
        metadata: {name: payments}

    Fails with IST0123::

        apiVersion: v1
        kind: Namespace
        metadata:
          name: payments
          labels: {istio-injection: enabled, istio.io/rev: canary}

    Fails with IST0103::

        apiVersion: v1
        kind: Namespace
        metadata:
          name: payments
          labels: {istio-injection: enabled}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: payment-service-1, namespace: payments}
        spec: {containers: [{name: app, image: payment-service}]}

    Fails with IST0148::

        apiVersion: v1
        kind: Namespace
        metadata: {name: payments}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: istio-sidecar-injector, namespace: istio-system}
        data:
          values: '{"sidecarInjectorWebhook": {"enableNamespacesByDefault": true}}'

    Passes::

        apiVersion: v1
        kind: Namespace
        metadata:
          name: payments
          labels: {istio-injection: enabled}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: payment-service-1, namespace: payments}
        spec:
          containers:
          - {name: app, image: payment-service}
          - {name: istio-proxy, image: istio/proxyv2}
    """

    name = "injection.Analyzer"
    provider = "istio"
    upstream = True
    codes = {"IST0102": Level.INFO, "IST0103": Level.WARNING, "IST0123": Level.WARNING,
             "IST0148": Level.INFO}

    def analyze(self, index: MeshIndex) -> Results:
        injected: set[str] = set()
        for namespace in index.of_kind("Namespace"):
            if namespace.name == index.mesh.root_namespace or namespace.name in SYSTEM_NAMESPACES:
                continue
            finding = self._namespace(index, namespace)
            if finding is not None:
                yield finding
            elif index.namespace_injection(namespace.name) == "sidecar":
                injected.add(namespace.name)
        for pod in index.of_kind("Pod"):
            if pod.namespace not in injected:
                continue
            workload = index.workload_of(pod)
            if workload.injection_override == "false" or workload.host_network:
                continue
            if not workload.has_istio_proxy:
                yield self.finding(pod, "IST0103", f"The pod {pod.namespace}/{pod.name} is "
                                   "missing the Istio proxy; restart or redeploy its workload.",
                                   "spec.containers")

    def _namespace(self, index: MeshIndex, namespace: Resource) -> Finding | None:
        labels = namespace.labels
        legacy = labels.get("istio-injection")
        revision = labels.get("istio.io/rev")
        ambient = labels.get(DATAPLANE_MODE) == "ambient"
        if legacy == "disabled":
            return None
        kinds = [label for label, present in (("istio-injection", legacy is not None),
                                              ("istio.io/rev", revision is not None),
                                              (DATAPLANE_MODE, ambient)) if present]
        if len(kinds) > 1:
            return self.finding(namespace, "IST0123", "The namespace has more than one kind of "
                                f"injection label ({', '.join(kinds)}); keep only one.",
                                "metadata.labels")
        if kinds:
            return None
        if _enabled_by_default(index, revision):
            return self.finding(namespace, "IST0148", "The namespace is enabled for Istio "
                                "injection: Istio is installed with enableNamespacesByDefault.")
        return self.finding(namespace, "IST0102", "The namespace is not enabled for Istio "
                            "injection; label it istio-injection=enabled (or "
                            "istio-injection=disabled to keep it out on purpose).",
                            "metadata.labels")
