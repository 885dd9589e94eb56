"""The estate as the intent describes it, for a run given no manifests: stand-in Namespaces,
Services, ServiceAccounts and Deployments with the labels, ports and injection the intent gives.
Stand-ins are never written; findings about them are dropped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..intent.model import ExternalCaller, Intent, Service
from ..providers.registry import mesh
from ..stages import Stage
from .index import MeshIndex
from .objects import (
    Resource,
    as_list,
    as_mapping,
    as_strings,
    generated_gateway_account,
    make_resource,
)

STAND_IN = "meshstage.io/stand-in"
# the team's statement that a job stops its proxy itself (the start-up analyzers read it)
STOPS_PROXY = "meshstage.io/stops-proxy"


def _stand_in_meta(name: str, namespace: str | None, labels: Mapping[str, str] | None = None,
          ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "annotations": {STAND_IN: "from the intent"}}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _service_objects(service: Service, injected: Mapping[str, Any] | None = None,
                     ) -> list[dict[str, Any]]:
    """``injected``: what the injector adds to the service's pods (labels, the proxy
    container), when the stand-ins show injected pods."""
    ports = [{"name": p.name, "port": p.port, "targetPort": p.target_port or p.port}
             for p in service.ports]
    container_ports = [{"name": p.name, "containerPort": p.target_port or p.port}
                       for p in service.ports]
    container_ports += [{"name": p.name, "containerPort": p.port}
                        for p in service.pod_only_ports()]
    spec: dict[str, Any] = {"selector": service.selector, "ports": ports}
    if service.kind == "StatefulSet":
        spec["clusterIP"] = "None"  # a StatefulSet's governing Service is headless
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": _stand_in_meta(service.name, service.namespace, service.selector),
         "spec": spec},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _stand_in_meta(service.service_account, service.namespace)},
    ]
    versions = service.versions or ()
    for version in versions:
        if version.service:  # the team's own Service of this version, named in the intent
            selector = {**service.selector, **version.labels}
            objects.append({
                "apiVersion": "v1", "kind": "Service",
                "metadata": _stand_in_meta(version.service, service.namespace, selector),
                "spec": {"selector": selector, "ports": ports}})
    for each in versions or (None,):
        labels = {**service.selector, **(each.labels if each else {})}
        template: dict[str, Any] = {"labels": dict(labels)}
        if not service.inject:
            template["labels"]["sidecar.istio.io/inject"] = "false"
            template["annotations"] = {"linkerd.io/inject": "disabled"}
        if service.is_job and service.stops_proxy:
            template["annotations"] = {**template.get("annotations", {}), STOPS_PROXY: "true"}
        containers = [{"name": service.name, "image": "stand-in", "ports": container_ports}]
        if injected and service.inject:
            template["labels"].update(injected["labels"])
            containers.append(dict(injected["container"]))
        name = f"{service.name}-{each.name}" if each else service.name
        pod = {"metadata": template, "spec": {"serviceAccountName": service.service_account,
                                              "containers": containers}}
        objects.append(_workload(service, name, labels, pod))
    return objects


def _workload(service: Service, name: str, labels: Mapping[str, str],
              pod: dict[str, Any]) -> dict[str, Any]:
    """The object of the service's ``kind`` that runs ``pod``."""
    meta = _stand_in_meta(name, service.namespace, labels)
    if service.is_job:
        job = {"template": {**pod, "spec": {**pod["spec"], "restartPolicy": "Never"}}}
        if service.kind == "Job":
            return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job}
        return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
                "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": job}}}
    spec: dict[str, Any] = {"selector": {"matchLabels": dict(labels)}, "template": pod}
    if service.kind == "StatefulSet":
        spec["serviceName"] = service.name
    api = "argoproj.io/v1alpha1" if service.kind == "Rollout" else "apps/v1"
    return {"apiVersion": api, "kind": service.kind, "metadata": meta, "spec": spec}


def _caller_objects(caller: ExternalCaller) -> list[dict[str, Any]]:
    """A caller outside the catalogue (an ingress controller, Prometheus): its account and
    its pods, injected as the intent says (the rendered Namespace injects them)."""
    labels = {"app.kubernetes.io/name": caller.name}
    template: dict[str, Any] = {"labels": dict(labels)}
    if not caller.inject:
        template["labels"]["sidecar.istio.io/inject"] = "false"
        template["annotations"] = {"linkerd.io/inject": "disabled"}
    container: dict[str, Any] = {"name": caller.name, "image": "stand-in"}
    if caller.kind == "ingress-controller":
        container["args"] = [f"--ingress-class={caller.name}"]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _stand_in_meta(str(caller.service_account), caller.namespace)},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": _stand_in_meta(caller.name, caller.namespace, labels),
         "spec": {"selector": {"matchLabels": labels}, "template": {
             "metadata": template,
             "spec": {"serviceAccountName": caller.service_account,
                      "containers": [container]}}}},
    ]


def _injected_pods(intent: Intent) -> dict[str, Any] | None:
    """What the mesh's injector adds to a pod, where its policies select pods by it (a label
    of its own, as Linkerd's Servers do): the labels and the proxy container with its ports.
    None where the stand-ins need not show it."""
    sidecar = mesh(intent.provider).sidecar
    labels = sidecar.injected_labels(intent) if sidecar is not None else {}
    if sidecar is None or not labels:
        return None
    return {"labels": dict(labels), "container": {
        "name": sidecar.container, "image": "stand-in",
        "ports": [{"name": name, "containerPort": port} for name, port in sidecar.ports]}}


def estate_objects(intent: Intent) -> list[dict[str, Any]]:
    """Stand-ins for the estate the intent describes (see the module docstring)."""
    gateway = intent.ingress_gateway
    callers = [c for c in intent.external_callers if c.namespace and c.service_account]
    namespaces = sorted({*intent.namespaces, intent.root_namespace, gateway.namespace,
                         *(str(c.namespace) for c in callers)})
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _stand_in_meta(name, None)}
        for name in namespaces]
    proxy = _injected_pods(intent)
    injected = set(intent.injected_namespaces()) \
        if proxy and intent.stage.reached(Stage.INJECTION) else set()
    held = {service.name for service in intent.held_back()}
    for service in intent.services:
        objects += _service_objects(service, proxy if service.namespace in injected
                                    and service.name not in held else None)
    accounts = {(s.namespace, s.service_account) for s in intent.services}
    for caller in callers:
        # a caller that runs as a service of the catalogue (a Prometheus beside Grafana) is
        # that service's pods
        if (caller.namespace, caller.service_account) not in accounts:
            objects += _caller_objects(caller)
    # the intent's gateway: istiod's Deployment <gateway>-<class> for a Gateway API Gateway,
    # else the istioctl ingress gateway
    ref = gateway.gateway_ref()
    deployment = f"{ref[1]}-{gateway.gateway_class}" if ref and gateway.gateway_class \
        else "istio-ingressgateway"
    labels = dict(gateway.labels) if gateway.gateway_class else \
        {**gateway.labels, "app": "istio-ingressgateway"}
    objects += [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _stand_in_meta(gateway.service_account, gateway.namespace)},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": _stand_in_meta(deployment, gateway.namespace, labels),
         "spec": {"selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {"serviceAccountName": gateway.service_account,
                      "containers": [{"name": "istio-proxy", "image": "stand-in"}]}}}},
    ]
    return objects


def generated_gateways(resources: Sequence[Resource]) -> list[dict[str, Any]]:
    """Stand-ins for what istiod deploys for the Gateway API Gateways of the estate: the
    Deployment and ServiceAccount ``<gateway>-<class>``, its pods labelled
    ``gateway.networking.k8s.io/gateway-name`` and running the gateway's Envoy, which listens
    on the ports of the Gateway's listeners
    (https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/#automated-deployment)."""
    index = MeshIndex(resources)
    classes = index.istio_gateway_classes()
    objects: list[dict[str, Any]] = []
    for gateway in index.of_kind("Gateway"):
        account = generated_gateway_account(gateway, classes)
        if account is None:
            continue
        labels = {"gateway.networking.k8s.io/gateway-name": gateway.name}
        ports = sorted({listener["port"] for listener in as_list(gateway.spec.get("listeners"))
                        if isinstance(listener, Mapping)
                        and isinstance(listener.get("port"), int)})
        objects += [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": _stand_in_meta(account, gateway.namespace)},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": _stand_in_meta(account, gateway.namespace, labels),
             "spec": {"selector": {"matchLabels": labels}, "template": {
                 "metadata": {"labels": labels},
                 "spec": {"serviceAccountName": account,
                          "containers": [{"name": "istio-proxy", "image": "stand-in",
                                          "ports": [{"containerPort": port}
                                                    for port in ports]}]}}}},
        ]
    return objects


# What prometheus-operator runs for its custom resources: a StatefulSet ``<prefix>-<name>``
# whose pods carry the operator's labels and ``spec.podMetadata.labels``, run as
# ``spec.serviceAccountName``, and a governing headless Service ``<prefix>-operated``
# (prometheus-operator pkg/prometheus/statefulset.go and pkg/alertmanager/statefulset.go;
# https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.EmbeddedObjectMetadata)
_OPERATED: Mapping[str, tuple[str, str, tuple[tuple[str, int], ...]]] = {
    "Prometheus": ("prometheus", "prometheus", (("web", 9090),)),
    "PrometheusAgent": ("prometheus-agent", "prometheus", (("web", 9090),)),
    "Alertmanager": ("alertmanager", "alertmanager", (("web", 9093), ("tcp-mesh", 9094))),
    "ThanosRuler": ("thanos-ruler", "thanos-ruler", (("web", 10902), ("grpc", 10901))),
}
MONITORING_GROUP = "monitoring.coreos.com"


def generated_operated(resources: Sequence[Resource]) -> list[dict[str, Any]]:
    """Stand-ins for the StatefulSets and governing Services prometheus-operator creates for
    the estate's Prometheus, PrometheusAgent, Alertmanager and ThanosRuler resources: a
    manifest holds the resource, the cluster the pods."""
    objects: list[dict[str, Any]] = []
    governing: set[tuple[str, str]] = set()
    for resource in resources:
        found = _OPERATED.get(resource.kind)
        if found is None or resource.group != MONITORING_GROUP:
            continue
        prefix, kind_label, ports = found
        spec = resource.spec
        labels = {**as_strings(as_mapping(spec.get("podMetadata")).get("labels")),
                  "app.kubernetes.io/name": kind_label,
                  "app.kubernetes.io/instance": resource.name,
                  "app.kubernetes.io/managed-by": "prometheus-operator",
                  kind_label: resource.name}
        if resource.kind in ("Prometheus", "PrometheusAgent"):
            labels |= {"operator.prometheus.io/name": resource.name,
                       "operator.prometheus.io/shard": "0"}
        account = str(spec.get("serviceAccountName") or "default")
        service = f"{prefix}-operated"
        objects.append({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": _stand_in_meta(f"{prefix}-{resource.name}", resource.namespace, labels),
            "spec": {"serviceName": service, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "serviceAccountName": account,
                         "containers": [
                             {"name": prefix, "image": "stand-in", "ports": [
                                 {"name": name, "containerPort": port}
                                 for name, port in ports]},
                             # the operator's config-reloader beside it
                             {"name": "config-reloader", "image": "stand-in", "ports": [
                                 {"name": "reloader-web", "containerPort": 8080}]}]}}}})
        if (resource.namespace, service) not in governing:
            governing.add((resource.namespace, service))
            objects.append({
                "apiVersion": "v1", "kind": "Service",
                "metadata": _stand_in_meta(service, resource.namespace),
                "spec": {"clusterIP": "None",
                         "selector": {"app.kubernetes.io/name": kind_label},
                         "ports": [{"name": name, "port": port, "targetPort": name}
                                   for name, port in ports]}})
    return objects


def generated(resources: Sequence[Resource]) -> list[Resource]:
    """What controllers create from the estate's objects, unless the estate shows it: the
    Deployments istiod runs for its Gateway API Gateways, and the StatefulSets
    prometheus-operator runs for its monitoring resources (``context``: never reported)."""
    present = {(r.group, r.kind, r.namespace, r.name) for r in resources}
    found = [make_resource(obj, "generated", context=True)
             for obj in (*generated_gateways(resources), *generated_operated(resources))]
    return [r for r in found if (r.group, r.kind, r.namespace, r.name) not in present]
