"""Kubernetes objects as meshstage reads them: ``Resource`` (kind, effective namespace, display
name), the pod template of any workload kind, and ``Workload``: the pods of a Pod or of a
workload controller, with their service account, containers and ports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Kinds without a namespace; every other kind is namespaced (default "default").
CLUSTER_SCOPED: frozenset[str] = frozenset({
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding",
    "CustomResourceDefinition", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "StorageClass", "PriorityClass", "APIService",
    "IngressClass", "GatewayClass", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
})


# Kinds whose objects carry a pod template (spec.template, or spec.jobTemplate for CronJob).
# An Argo Rollout carries one too (spec.template), unless it runs the template of a
# Deployment it names (spec.workloadRef):
# https://argoproj.github.io/argo-rollouts/features/specification/
WORKLOAD_KINDS: frozenset[str] = frozenset({
    "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob",
    "ReplicationController", "Rollout",
})


POD_KINDS: frozenset[str] = frozenset({"Pod"}) | WORKLOAD_KINDS


SYSTEM_NAMESPACES: frozenset[str] = frozenset({
    "kube-system", "kube-public", "kube-node-lease", "local-path-storage",
})


# Namespaces every cluster has, whether or not the input shows them.
BUILTIN_NAMESPACES: frozenset[str] = frozenset({
    "default", "kube-system", "kube-public", "kube-node-lease",
})


DEFAULT_DOMAIN = "svc.cluster.local"


ISTIO_PROXY = "istio-proxy"


INJECT = "sidecar.istio.io/inject"


AMBIENT_REDIRECTION = "ambient.istio.io/redirection"


DATAPLANE_MODE = "istio.io/dataplane-mode"


def as_mapping(value: Any) -> Mapping[str, Any]:
    # a dict first: the ABC check is slow, and YAML gives dicts
    return value if type(value) is dict or isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def as_strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in as_mapping(value).items() if v is not None}


@dataclass(frozen=True, eq=False)
class Resource:
    """One object of the input. ``context`` objects are looked up but never reported on."""

    obj: Mapping[str, Any]
    kind: str
    group: str
    name: str
    namespace: str          # effective namespace; "" for cluster-scoped kinds
    display: str            # "Kind namespace/name" as written
    source: str = ""
    context: bool = False

    @property
    def metadata(self) -> Mapping[str, Any]:
        return as_mapping(self.obj.get("metadata"))

    @property
    def spec(self) -> Mapping[str, Any]:
        return as_mapping(self.obj.get("spec"))

    @property
    def labels(self) -> dict[str, str]:
        return as_strings(self.metadata.get("labels"))

    @property
    def annotations(self) -> dict[str, str]:
        return as_strings(self.metadata.get("annotations"))

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid") or "")

    def owners(self) -> list[tuple[str, str, str]]:
        """(kind, name, uid) of the objects that own this one (``ownerReferences``), the
        controller first: a ReplicaSet's Deployment, a Pod's ReplicaSet or Job."""
        references = [as_mapping(r) for r in as_list(self.metadata.get("ownerReferences"))]
        references.sort(key=lambda r: not r.get("controller"))
        return [(str(r.get("kind") or ""), str(r.get("name") or ""), str(r.get("uid") or ""))
                for r in references if r.get("kind") and r.get("name")]


def make_resource(obj: Mapping[str, Any], source: str = "", context: bool = False,
                  default_namespace: str = "default") -> Resource:
    """A Resource from a Kubernetes object (which must have ``kind`` and ``metadata.name``).
    A namespaced object without a namespace is in ``default_namespace``, as with
    ``kubectl apply -n``; its display name still shows it as written."""
    kind = str(obj.get("kind"))
    api_version = str(obj.get("apiVersion") or "")
    group = api_version.rpartition("/")[0]
    if kind == "Service" and not group:
        obj = _service_defaults(obj)
    metadata = as_mapping(obj.get("metadata"))
    name = str(metadata.get("name"))
    written = metadata.get("namespace")
    written = str(written) if written else ""
    if kind in CLUSTER_SCOPED:
        namespace, display = "", f"{kind} {name}"
    else:
        namespace = written or default_namespace
        display = f"{kind} {written}/{name}" if written else f"{kind} {name}"
    return Resource(obj=obj, kind=kind, group=group, name=name, namespace=namespace,
                    display=display, source=source, context=context)


def _service_defaults(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """A Service as the API server stores it: a port whose ``targetPort`` is ``0`` or empty
    targets its ``port`` (``SetDefaults_Service`` in Kubernetes' ``pkg/apis/core/v1/
    defaults.go``), so it is left out, as when it is not written (charts write ``0``)."""
    spec = as_mapping(obj.get("spec"))
    ports = spec.get("ports")
    if not isinstance(ports, list) or not any(
            isinstance(p, Mapping) and p.get("targetPort") in (0, "") for p in ports):
        return obj
    fixed = [{k: v for k, v in p.items() if k != "targetPort"}
             if isinstance(p, Mapping) and p.get("targetPort") in (0, "") else p
             for p in ports]
    return {**obj, "spec": {**spec, "ports": fixed}}


def pod_template(resource: Resource) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(metadata, spec) of the pods a Pod or workload controller runs."""
    if resource.kind == "Pod":
        return resource.metadata, resource.spec
    spec = resource.spec
    if resource.kind == "CronJob":
        spec = as_mapping(as_mapping(spec.get("jobTemplate")).get("spec"))
    template = as_mapping(spec.get("template"))
    return as_mapping(template.get("metadata")), as_mapping(template.get("spec"))


PROBE_KINDS = ("livenessProbe", "readinessProbe", "startupProbe")
PROBE_ACTIONS = ("httpGet", "grpc", "tcpSocket", "exec")


@dataclass(frozen=True)
class Probe:
    """One kubelet probe of a pod's container, as the kubelet sends it.

    ``port`` is the container port the kubelet connects to (a named port resolved against
    the container's ports); None for ``exec`` (nothing crosses the network) or a name no
    port of the container has. https://kubernetes.io/docs/tasks/configure-pod-container/
    configure-liveness-readiness-startup-probes/
    """

    kind: str                 # livenessProbe | readinessProbe | startupProbe
    action: str               # httpGet | grpc | tcpSocket | exec
    container: str
    port: int | None = None
    path: str | None = None   # httpGet: the path, "/" when left out
    scheme: str = "HTTP"      # httpGet: HTTP or HTTPS
    grpc_service: str | None = None


def container_probes(container: Mapping[str, Any]) -> list[Probe]:
    """The probes of one container, in the order liveness, readiness, startup."""
    ports = {str(as_mapping(p).get("name")): as_mapping(p).get("containerPort")
             for p in as_list(container.get("ports")) if as_mapping(p).get("name")}
    name = str(container.get("name") or "")
    probes = []
    for kind in PROBE_KINDS:
        probe = as_mapping(container.get(kind))
        action = next((a for a in PROBE_ACTIONS if isinstance(probe.get(a), Mapping)), None)
        if action is None:
            continue
        handler = as_mapping(probe.get(action))
        port = handler.get("port")
        if isinstance(port, str):
            port = int(port) if port.isdigit() else ports.get(port)
        probes.append(Probe(
            kind=kind, action=action, container=name,
            port=port if isinstance(port, int) and action != "exec" else None,
            path=str(handler.get("path") or "/") if action == "httpGet" else None,
            scheme=str(handler.get("scheme") or "HTTP").upper(),
            grpc_service=str(handler["service"]) if action == "grpc" and
            handler.get("service") else None))
    return probes


@dataclass(frozen=True, eq=False)
class Workload:
    """The pods of a Pod object or of a workload controller's template."""

    resource: Resource
    namespace: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    pod_spec: Mapping[str, Any]

    @property
    def service_account(self) -> str:
        account = self.pod_spec.get("serviceAccountName") or self.pod_spec.get(
            "serviceAccount")
        return str(account) if account else "default"

    @property
    def kind(self) -> str:
        """The kind of the object that runs the pods: Pod, Deployment, Job, CronJob, ..."""
        return self.resource.kind

    @property
    def containers(self) -> list[Mapping[str, Any]]:
        return [c for c in as_list(self.pod_spec.get("containers")) if isinstance(c, Mapping)]

    @property
    def init_containers(self) -> list[Mapping[str, Any]]:
        return [c for c in as_list(self.pod_spec.get("initContainers"))
                if isinstance(c, Mapping)]

    @property
    def native_sidecars(self) -> list[Mapping[str, Any]]:
        """The init containers that run beside the others for the pod's life
        (``restartPolicy: Always``: https://kubernetes.io/docs/concepts/workloads/pods/
        sidecar-containers/)."""
        return [c for c in self.init_containers if c.get("restartPolicy") == "Always"]

    def probes(self) -> list[Probe]:
        """Every kubelet probe of the pod's containers (not of its init containers, except
        native sidecars, which the kubelet probes too)."""
        return [probe for container in (*self.containers, *self.native_sidecars)
                for probe in container_probes(container)]

    def container_ports(self, native_sidecars: bool = False,
                        tcp_only: bool = False) -> list[tuple[str, int]]:
        """(name, containerPort) of every port the pod's containers declare; with
        ``native_sidecars``, its native sidecars' too; with ``tcp_only``, TCP ports only."""
        ports = []
        for container in (*self.containers, *(self.native_sidecars if native_sidecars
                                               else ())):
            for port in as_list(container.get("ports")):
                port = as_mapping(port)
                number = port.get("containerPort")
                if isinstance(number, int) and not (
                        tcp_only and str(port.get("protocol") or "TCP") != "TCP"):
                    ports.append((str(port.get("name") or ""), number))
        return ports

    def port_number(self, port: object) -> int | None:
        """A port as a number: a number, or the name of a port of the pod's containers (a
        probe's port, a Service's ``targetPort``)."""
        if isinstance(port, int):
            return port
        if isinstance(port, str):
            if port.isdigit():
                return int(port)
            for name, number in self.container_ports():
                if name == port:
                    return number
        return None

    @property
    def has_istio_proxy(self) -> bool:
        return any(c.get("name") == ISTIO_PROXY and c.get("image") for c in self.containers)

    @property
    def injection_override(self) -> str | None:
        """The pod's own ``sidecar.istio.io/inject`` (label first, then annotation)."""
        value = self.labels.get(INJECT, self.annotations.get(INJECT))
        return None if value is None else value.lower()

    @property
    def runs_to_completion(self) -> bool:
        """Pods that must complete: a Job's or CronJob's, and a bare Pod (no owner) with
        ``restartPolicy`` ``Never`` or ``OnFailure`` (a chart's ``helm test`` Pod, a one-off
        migration)."""
        if self.kind in ("Job", "CronJob"):
            return True
        return self.kind == "Pod" and not self.resource.owners() and \
            str(self.pod_spec.get("restartPolicy") or "Always") in ("Never", "OnFailure")

    @property
    def host_network(self) -> bool:
        return bool(self.pod_spec.get("hostNetwork"))

    @property
    def container_names(self) -> frozenset[str]:
        """The names of every container of the pods, init containers included: a mesh's
        proxy is one of them once the pods are injected (an init container when native)."""
        return frozenset(str(c.get("name") or "")
                         for c in (*self.containers, *self.init_containers))

    def environment(self) -> list[EnvValue]:
        """What the containers are told at start: every ``env`` entry (a literal value, or a
        ConfigMap or Secret key it is read from), every ConfigMap and Secret of ``envFrom``
        and every one mounted as a volume (its keys are files the container reads: a Spring
        ``application.properties``, an nginx.conf), and the words of ``command`` and
        ``args`` and of its exec probes and hooks. The ConfigMaps' and Secrets' contents are
        the index's to look up."""
        found: list[EnvValue] = []
        mounted = self._mounted_sources()
        for container in (*self.init_containers, *self.containers):
            name = str(container.get("name") or "")
            for entry in (as_mapping(e) for e in as_list(container.get("env"))):
                key = str(entry.get("name") or "")
                source = as_mapping(entry.get("valueFrom"))
                if isinstance(entry.get("value"), str):
                    found.append(EnvValue(name, key, str(entry["value"])))
                    continue
                for kind, field in (("ConfigMap", "configMapKeyRef"),
                                    ("Secret", "secretKeyRef")):
                    reference = as_mapping(source.get(field))
                    if reference.get("name") and reference.get("key"):
                        found.append(EnvValue(name, key, None, str(reference["name"]),
                                              str(reference["key"]), kind))
            for entry in (as_mapping(e) for e in as_list(container.get("envFrom"))):
                for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    reference = as_mapping(entry.get(field))
                    if reference.get("name"):
                        found.append(EnvValue(name, "", None, str(reference["name"]),
                                              source_kind=kind))
            for field, words in _commands(container):
                for number, word in enumerate(words):
                    if isinstance(word, str):
                        found.append(EnvValue(name, f"{field}[{number}]", word))
            for mount in (as_mapping(m) for m in as_list(container.get("volumeMounts"))):
                for kind, source_name in mounted.get(str(mount.get("name") or ""), ()):
                    found.append(EnvValue(name, f"volume {mount.get('name')}", None,
                                          source_name, source_kind=kind))
        return found

    def _mounted_sources(self) -> dict[str, list[tuple[str, str]]]:
        """Volume name -> the ConfigMaps and Secrets it holds (kind, name): a ``configMap``
        or ``secret`` volume, or the sources of a ``projected`` one."""
        volumes: dict[str, list[tuple[str, str]]] = {}
        for volume in (as_mapping(v) for v in as_list(self.pod_spec.get("volumes"))):
            config_maps: list[tuple[str, str]] = []
            secrets: list[tuple[str, str]] = []
            for source in [volume, *(as_mapping(s) for s in as_list(
                    as_mapping(volume.get("projected")).get("sources")))]:
                config_map, secret = (as_mapping(source.get("configMap")),
                                      as_mapping(source.get("secret")))
                if config_map.get("name"):
                    config_maps.append(("ConfigMap", str(config_map["name"])))
                # a volume names its Secret secretName; a projected source, name
                if secret.get("secretName") or secret.get("name"):
                    secrets.append(("Secret", str(secret.get("secretName") or secret["name"])))
            names = config_maps + secrets
            if names and volume.get("name"):
                volumes[str(volume["name"])] = names
        return volumes


@dataclass(frozen=True)
class EnvValue:
    """One thing a container is told: ``name`` is the variable (or ``args[0]``); ``value``
    the literal text, or None when it is read from ConfigMap ``config_map`` (its ``key``; with
    no key, every key of it, as ``envFrom`` reads them)."""

    container: str
    name: str
    value: str | None
    config_map: str | None = None   # the ConfigMap's, or the Secret's, name
    key: str | None = None
    source_kind: str = "ConfigMap"  # or Secret


GATEWAY_API = "gateway.networking.k8s.io"
GATEWAY_SERVICE_ACCOUNT = "gateway.istio.io/service-account"
ISTIO_GATEWAY_CONTROLLER = "istio.io/gateway-controller"
# The class istiod controls without a GatewayClass in the input (the waypoint class runs
# waypoints, which are no ingress gateways).
ISTIO_GATEWAY_CLASSES = frozenset({"istio"})


def generated_gateway_account(gateway: Resource, classes: frozenset[str]) -> str | None:
    """The ServiceAccount istiod gives the pods of a Gateway API Gateway of one of its
    ``classes``: ``<gateway>-<class>``, or the account its ``gateway.istio.io/service-account``
    annotation names; None for a Gateway of another controller's class.
    https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/#automated-deployment
    """
    if gateway.group != GATEWAY_API or gateway.kind != "Gateway":
        return None
    gateway_class = str(gateway.spec.get("gatewayClassName") or "")
    if gateway_class not in classes:
        return None
    return gateway.annotations.get(GATEWAY_SERVICE_ACCOUNT) or f"{gateway.name}-{gateway_class}"


def without_one_offs(workloads: list[Workload]) -> list[Workload]:
    """The workloads less the bare Pods (no owner) among controllers' ones: a chart's test
    Pod, which ``helm test`` runs once, carries the labels of the pods it tests and makes
    none of their calls."""
    if all(w.resource.kind == "Pod" for w in workloads):
        return workloads
    return [w for w in workloads if w.resource.kind != "Pod" or w.resource.owners()]


def _commands(container: Mapping[str, Any]) -> list[tuple[str, list[Any]]]:
    """A container's ``command`` and ``args``, and the exec commands of its probes and
    lifecycle hooks (they run in the container: what they reach, it calls), by field."""
    found = [(field, as_list(container.get(field))) for field in ("command", "args")]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = as_list(as_mapping(as_mapping(container.get(probe)).get("exec")).get(
            "command"))
        if command:
            found.append((f"{probe}.exec.command", command))
    for hook in ("postStart", "preStop"):
        command = as_list(as_mapping(as_mapping(as_mapping(container.get("lifecycle")).get(
            hook)).get("exec")).get("command"))
        if command:
            found.append((f"lifecycle.{hook}.exec.command", command))
    return found
