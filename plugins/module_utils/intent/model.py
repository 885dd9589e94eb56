"""The intent's model: one description of the estate, typed, frozen, defaults applied.

``intent.parse.parse_intent`` builds it from the inventory variables; everything after the
parse step reads it. The tuples name the values the intent accepts; docs/intent.md documents
every field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..kube import DEFAULT_KUBERNETES_VERSION, LabelPostings
from ..stages import Stage

_T = TypeVar("_T")

LINKERD_ACCESS_LOG_FORMATS: tuple[str, ...] = ("apache", "json")
# Protocols whose first bytes the proxies must not wait for (protocol detection): the server
# speaks first (MySQL, SMTP, NATS), or clients open connections and send nothing for a while
# (memcached, PostgreSQL poolers). Istio must be told they are TCP, Linkerd that the port is
# opaque. https://istio.io/latest/docs/ops/deployment/application-requirements/
# #server-first-protocols, https://linkerd.io/2-edge/features/protocol-detection/
SERVER_FIRST_PROTOCOLS: tuple[str, ...] = ("MYSQL", "POSTGRESQL", "SMTP", "NATS", "MEMCACHED")
PROTOCOLS: tuple[str, ...] = ("HTTP", "HTTP2", "GRPC", "TCP", "TLS", "HTTPS", "MONGO",
                              "REDIS", *SERVER_FIRST_PROTOCOLS)
# What runs a service's pods; a Job or CronJob must let its pods complete.
WORKLOAD_KINDS: tuple[str, ...] = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob",
                                   "Rollout")
JOB_KINDS: tuple[str, ...] = ("Job", "CronJob")
NATIVE_SIDECAR_MODES: tuple[str, ...] = ("auto", "enabled", "disabled")
# Callers of the catalogue's services that are not services of it (mesh_external_callers)
EXTERNAL_CALLER_KINDS: tuple[str, ...] = ("ingress-controller", "kube-apiserver", "prometheus",
                                           "external-clients")
# Those that are never pods of the cluster: no namespace, no account, never the mesh's proxy
OUTSIDE_CALLER_KINDS: tuple[str, ...] = ("kube-apiserver", "external-clients")
# Kubernetes turns sidecar containers (init containers with restartPolicy Always) on by
# default from 1.29 (beta; GA in 1.33). https://kubernetes.io/docs/concepts/workloads/pods/
# sidecar-containers/
NATIVE_SIDECARS_SINCE: tuple[int, int] = (1, 29)
MTLS_EXCEPTION_MODES: tuple[str, ...] = ("DISABLE", "PERMISSIVE")
LOAD_BALANCERS: tuple[str, ...] = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH")
HEADER_MATCH_KINDS: tuple[str, ...] = ("exact", "prefix", "regex")
PROXY_IMAGE_TYPES: tuple[str, ...] = ("default", "debug", "distroless")
HTTP_METHODS: tuple[str, ...] = (
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
)


@dataclass(frozen=True)
class Port:
    name: str
    port: int
    protocol: str
    target_port: int | None = None


@dataclass(frozen=True)
class ExternalHost:
    """A host outside the cluster a service calls (``calls: [api.example.com:443]``)."""

    host: str
    port: int
    protocol: str  # TLS for 443, HTTP for 80, TCP otherwise


@dataclass(frozen=True)
class Version:
    name: str
    labels: Mapping[str, str]
    # The Service that selects exactly this version's pods, when the team has one; otherwise
    # meshstage renders ``<service>-<version>`` for the Gateway API and SMI backends.
    service: str | None = None
    # written in the short form (``versions: [v1]``): the labels are assumed, ``version: v1``
    assumed: bool = False


@dataclass(frozen=True)
class HeaderMatch:
    header: str
    kind: str  # exact | prefix | regex
    value: str


@dataclass(frozen=True)
class HeaderRoute:
    headers: tuple[HeaderMatch, ...]
    subset: str


@dataclass(frozen=True)
class WeightedSubset:
    subset: str
    weight: int


@dataclass(frozen=True)
class CanaryAnalysis:
    """How a canary run judges each step (``playbooks/canary.yml``): after each step it waits
    ``interval``, then needs at least ``min_requests`` requests to the canary (waiting up to
    ``max_waits`` more intervals for them), a success rate of at least ``success_rate``
    percent and a p99 latency of at most ``latency_p99``."""

    interval: str = "1m"
    success_rate: float = 99.0
    latency_p99: str = "500ms"
    min_requests: int = 50
    max_waits: int = 5


CANARY_STEPS: tuple[int, ...] = (10, 25, 50, 100)
MAX_CANARY_STEPS = 20


@dataclass(frozen=True)
class Canary:
    """A weighted canary: ``weight`` percent to ``subset``, the rest to ``stable``; a canary
    run (``playbooks/canary.yml``) moves it along ``steps`` and promotes or rolls it back."""

    stable: str
    subset: str
    weight: int
    steps: tuple[int, ...] = CANARY_STEPS
    analysis: CanaryAnalysis = CanaryAnalysis()

    def split(self, weight: int | None = None) -> tuple[WeightedSubset, ...]:
        """The weighted default route: the stable version first."""
        weight = self.weight if weight is None else weight
        return (WeightedSubset(self.stable, 100 - weight), WeightedSubset(self.subset, weight))


@dataclass(frozen=True)
class Retries:
    attempts: int
    per_try_timeout: str | None
    retry_on: str | None


@dataclass(frozen=True)
class ConnectionPool:
    max_connections: int | None = None
    connect_timeout: str | None = None
    http1_max_pending_requests: int | None = None
    http2_max_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None


@dataclass(frozen=True)
class OutlierDetection:
    consecutive_5xx_errors: int | None = None
    consecutive_gateway_errors: int | None = None
    interval: str | None = None
    base_ejection_time: str | None = None
    max_ejection_percent: int | None = None


@dataclass(frozen=True)
class TrafficPolicy:
    """Routing and resilience for one service (the traffic stage)."""

    split: tuple[WeightedSubset, ...] = ()
    header_routes: tuple[HeaderRoute, ...] = ()
    timeout: str | None = None
    retries: Retries | None = None
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None
    load_balancer: str | None = None

    @property
    def routes(self) -> bool:
        """True when the service needs a VirtualService (or an HTTPRoute)."""
        return bool(self.split or self.header_routes or self.timeout or self.retries)


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    service_account: str
    ports: tuple[Port, ...]
    versions: tuple[Version, ...]
    calls: tuple[str, ...]
    inject: bool
    ingress: bool
    traffic: TrafficPolicy
    probe_paths: tuple[str, ...] = ()
    canary: Canary | None = None
    # the hosts (Host header) the ingress gateway receives this service's requests on
    ingress_hosts: tuple[str, ...] = ()
    kind: str = "Deployment"  # what runs its pods (WORKLOAD_KINDS)
    # a Job or CronJob that stops the proxy itself when it is done (Istio's
    # /quitquitquit, Linkerd's linkerd-await --shutdown): no native sidecar needed
    stops_proxy: bool = False
    # its init containers reach the network: the proxy must run before them
    init_network: bool = False
    # StatefulSet: the container ports its pods talk to each other on, pod to pod
    peer_ports: tuple[Port, ...] = ()
    # container ports no Service declares, reached at the pods' own addresses by callers
    # outside the catalogue (a metrics port Prometheus scrapes, an admin port), and by the
    # catalogue's callers of a service without ports (``called_at_pods``)
    pod_ports: tuple[Port, ...] = ()
    # hosts outside the cluster it calls (the items of ``calls`` with a dot)
    external_calls: tuple[ExternalHost, ...] = ()
    # the labels (key, value) its pods carry, when not ``app: <name>`` (``selector``)
    pod_labels: tuple[tuple[str, str], ...] = ()
    # its callers reach its pods' own addresses, which a registry hands out (Consul, Eureka)
    pod_addressed: bool = False

    @property
    def selector(self) -> dict[str, str]:
        """The labels every pod of the service carries, by which meshstage's objects select
        them: ``app: <name>`` unless the intent says others."""
        return dict(self.pod_labels) if self.pod_labels else {"app": self.name}

    @property
    def is_job(self) -> bool:
        """A Job or CronJob: its pods must complete, and a classic sidecar never does."""
        return self.kind in JOB_KINDS

    @property
    def needs_native_sidecar(self) -> bool:
        """Its pods work only when the proxy runs as a native sidecar (an init container
        with restartPolicy Always): a job that does not stop the proxy, or init containers
        that reach the network."""
        return (self.is_job and not self.stops_proxy) or self.init_network

    def workload_ports(self) -> tuple[int, ...]:
        """The container ports of the service: each port's ``target_port``, else ``port``."""
        return tuple(dict.fromkeys(p.target_port or p.port for p in self.ports))

    def undeclared_peer_ports(self) -> tuple[Port, ...]:
        """Peer ports that no port of the service declares (a Service must declare them)."""
        declared = set(self.workload_ports())
        return tuple(p for p in self.peer_ports if p.port not in declared)

    @property
    def called_at_pods(self) -> bool:
        """Its callers reach its pods' own addresses (a registry such as Eureka or Consul
        hands them out): ``pod_addressed``, or no Service port but ``pod_ports``."""
        return self.pod_addressed or (not self.ports and bool(self.pod_ports))

    def pod_addressed_ports(self) -> tuple[Port, ...]:
        """The container ports its callers reach at its pods' addresses: each port's
        ``target_port`` (else ``port``), and its ``pod_ports``."""
        found: dict[int, Port] = {}
        for port in self.ports:
            number = port.target_port or port.port
            found.setdefault(number, Port(name=port.name, port=number, protocol=port.protocol))
        for port in self.pod_ports:
            found.setdefault(port.port, port)
        return tuple(found.values())

    def pod_only_ports(self) -> tuple[Port, ...]:
        """The container ports that no port of the service declares: its undeclared peer
        ports and its ``pod_ports``, reached only at the pods' own addresses. The callers of
        the catalogue reach a service with ports through its Service, so not on these."""
        return (*self.undeclared_peer_ports(), *self.pod_ports)


@dataclass(frozen=True)
class InboundCaller:
    """A caller of a service that no ``calls`` names: the service's own peers (StatefulSet
    peer ports), or a caller outside the catalogue (an ingress controller, the Kubernetes
    API server calling a webhook, Prometheus). ``account`` None: it has no mesh identity
    (its requests are plaintext)."""

    name: str                      # what the runbook calls it
    namespace: str | None
    account: str | None
    ports: tuple[int, ...]         # workload ports it calls
    paths: tuple[str, ...] = ()    # HTTP GETs of these paths only (a scrape); none: anything

    @property
    def identity(self) -> bool:
        return self.account is not None


@dataclass(frozen=True)
class ExternalCaller:
    """A caller outside the catalogue: an ingress controller, the Kubernetes API server
    calling admission webhooks, Prometheus scraping application ports, clients outside the
    cluster through a NodePort or LoadBalancer Service. ``calls``: (service, its workload
    ports it calls; all of them when the intent names none)."""

    name: str
    kind: str                      # EXTERNAL_CALLER_KINDS
    namespace: str | None          # None: the API server, clients outside the cluster
    service_account: str | None
    inject: bool                   # it runs with the mesh's proxy
    calls: tuple[tuple[str, tuple[int, ...]], ...]
    # it runs in a namespace of the catalogue, whose wave decides its proxy (``inject``:
    # whether the environment's stage has injected it)
    in_catalogue: bool = False
    metrics_path: str = "/metrics"  # what Prometheus GETs
    # (service, workload port, path): the calls that GET another path than metrics_path
    scrape_paths: tuple[tuple[str, int, str], ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        """The paths it requests (a scrape GETs one); none: anything."""
        return (self.metrics_path,) if self.kind == "prometheus" else ()

    def paths_at(self, service: str, port: int) -> tuple[str, ...]:
        """The paths it requests from ``service`` on ``port`` (none: anything)."""
        if self.kind != "prometheus":
            return ()
        for name, number, path in self.scrape_paths:
            if name == service and number == port:
                return (path,)
        return (self.metrics_path,)

    @property
    def title(self) -> str:
        """How the runbook names it: ``ingress controller nginx``, ``the Kubernetes API
        server``, ``Prometheus prometheus``, ``a client outside the cluster (through
        frontend-external)``."""
        if self.kind == "kube-apiserver":
            return "the Kubernetes API server"
        if self.kind == "external-clients":
            return f"a client outside the cluster (through {self.name})"
        return f"{'Prometheus' if self.kind == 'prometheus' else 'ingress controller'} " \
            f"{self.name}"

    @property
    def subject(self) -> str:
        """``title`` at the start of a sentence."""
        return self.title[0].upper() + self.title[1:]


@dataclass(frozen=True)
class MtlsExemption:
    service: str
    mode: str  # DISABLE | PERMISSIVE; UNSET (the mesh's mode): per-port exceptions only
    ports: Mapping[int, str]
    reason: str
    # the callers that can never be meshed, when meshstage derived it (``plan/callers.py``)
    derived_from: tuple[str, ...] = ()

    def note(self, namespace: str, otherwise: str) -> str:
        """The RUNBOOK's line for the exception; ``otherwise`` says what a whole-workload
        mode means for the provider."""
        if self.mode == "UNSET":
            ports = ", ".join(str(p) for p, mode in self.ports.items() if mode != "STRICT")
            return (f"Exception: `{namespace}/{self.service}` accepts plaintext on port(s) "
                    f"{ports} ({self.reason}).")
        return f"Exception: `{namespace}/{self.service}` {otherwise}"


@dataclass(frozen=True)
class Source:
    """Who a rule is about: catalogue services, raw principals, namespaces."""

    services: tuple[str, ...] = ()
    principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthorizationRule:
    source: Source
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()  # workload (container) ports; none: every port


@dataclass(frozen=True)
class ServiceAuthorization:
    service: str
    allow: tuple[AuthorizationRule, ...]
    deny: tuple[AuthorizationRule, ...]
    deny_other_callers: bool


@dataclass(frozen=True)
class Telemetry:
    metrics_provider: str = "prometheus"
    tracing_provider: str | None = None
    sampling_percentage: float = 1.0
    access_log_provider: str | None = "envoy"
    access_log_filter: str | None = None
    prometheus_namespace: str = "istio-system"
    scrape_interval: str = "15s"
    # the keys the inventory wrote, sorted (a tuple: the intent's pickle keys the stage cache, and
    # a set's order changes with each process's string hashing)
    written: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProxySettings:
    """The sidecars' own settings: worker threads, image flavour, resources."""

    concurrency: int | None = None
    image_type: str | None = None
    cpu: str | None = None
    memory: str | None = None
    cpu_limit: str | None = None
    memory_limit: str | None = None
    # auto: native sidecars where a service needs them (``needs_native_sidecar``)
    native_sidecars: str = "auto"
    # hold the application containers until the proxy is ready (None: the mesh's default)
    hold_application: bool | None = None


@dataclass(frozen=True)
class LinkerdSettings:
    """What only Linkerd needs: where its parts run and whom probes come from."""

    control_plane_namespace: str = "linkerd"
    viz_namespace: str = "linkerd-viz"
    probe_networks: tuple[str, ...] = ("0.0.0.0/0", "::/0")
    trace_collector: str | None = None
    trace_collector_service_account: str | None = None
    access_log_format: str = "apache"


@dataclass(frozen=True)
class InjectionWave:
    """One wave of injection. ``namespaces``: those labelled for injection at this wave (the
    ones it names, and the namespaces of the services it names, unless an earlier wave
    labelled them); ``services``: the services it names. A service injects with the wave
    that names it, else with the wave that names its namespace, else with the wave that
    labels its namespace; until then the injector leaves it out."""

    name: str
    namespaces: tuple[str, ...]
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cluster:
    name: str = "in-cluster"
    server: str = "https://kubernetes.default.svc"
    domain: str = "cluster.local"
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION

    @property
    def minor(self) -> tuple[int, int]:
        """(major, minor) of the cluster's Kubernetes version."""
        major, minor = self.kubernetes_version.lstrip("v").split(".")[:2]
        return int(major), int(minor)

    @property
    def native_sidecars(self) -> bool:
        """True when the cluster runs native sidecars (Kubernetes 1.29 or later)."""
        return self.minor >= NATIVE_SIDECARS_SINCE


@dataclass(frozen=True)
class GitOpsSource:
    repo_url: str = "https://git.example.invalid/platform/mesh-gitops.git"
    branch: str = "main"
    argocd_namespace: str = "argocd"
    argocd_project: str = "default"
    flux_namespace: str = "flux-system"
    sync_interval: str = "5m"


@dataclass(frozen=True)
class InstallSettings:
    """The control plane's Helm charts: which version, from where (None: the provider's)."""

    version: str | None = None
    repository: str | None = None


CLASSIC_GATEWAY_LABELS: Mapping[str, str] = {"istio": "ingressgateway"}


@dataclass(frozen=True)
class IngressGateway:
    """The gateway external requests enter through: where its pods run, their identity and
    labels, and the gateway object ingress routes bind to (``gateway``: an Istio Gateway for
    VirtualServices, a Gateway API Gateway for HTTPRoutes; ``namespace/name`` or a name in
    ``namespace``). With ``gateway_class`` it is a Gateway API Gateway that istiod deploys as
    ``<gateway>-<gateway_class>``, so its service account and labels follow from its name."""

    namespace: str = "istio-system"
    service_account: str = "istio-ingressgateway-service-account"
    labels: Mapping[str, str] = field(default_factory=lambda: dict(CLASSIC_GATEWAY_LABELS))
    gateway: str | None = None
    gateway_class: str | None = None
    ports: tuple[int, ...] = ()   # the container ports its pods listen on (Linkerd Servers)

    def gateway_ref(self) -> tuple[str, str] | None:
        """(namespace, name) of ``gateway``."""
        if not self.gateway:
            return None
        namespace, _, name = self.gateway.rpartition("/")
        return (namespace or self.namespace, name)


@dataclass(frozen=True)
class MeshHost:
    """A plain host (VM) that carries one catalogue service outside Kubernetes.

    Its Envoy sidecar listens on ``address:inbound_port`` (the service's port) and forwards
    to the application on ``app_address:app_port``; the application calls the services it
    uses through ``127.0.0.1:outbound_port``. The admin interface binds 127.0.0.1 only.
    """

    name: str
    service: str
    address: str
    app_port: int
    inbound_port: int
    version: str | None = None
    wave: str | None = None
    app_address: str = "127.0.0.1"
    outbound_port: int = 15001
    admin_port: int = 15000
    stats_port: int = 15090
    root: str = "/"

    @property
    def config_dir(self) -> str:
        """Where the sidecar's configuration lives on the host."""
        return _under(self.root, "etc/meshstage/envoy")

    @property
    def log_dir(self) -> str:
        return _under(self.root, "var/log/meshstage/envoy")


def _under(root: str, path: str) -> str:
    return root.rstrip("/") + "/" + path


@dataclass(frozen=True)
class GateSettings:
    """What the stage gates read (docs/intent.md, ``mesh_gates``): the Prometheus that sees
    the environment's traffic, the observation window, and whether to observe at all."""

    prometheus: str | None = None
    window: str = "1h"
    observe: bool = True  # False: the user opts out of the observed-traffic checks


@dataclass(frozen=True)
class Intent:
    environment: str
    stage: Stage
    provider: str
    trust_domain: str
    root_namespace: str
    revision: str | None
    services: tuple[Service, ...]
    injection_waves: tuple[InjectionWave, ...]
    injected_waves: int
    mtls_exceptions: tuple[MtlsExemption, ...]
    telemetry: Telemetry
    authorization: tuple[ServiceAuthorization, ...]
    default_deny: bool
    cluster: Cluster
    gitops: GitOpsSource
    ingress_gateway: IngressGateway
    proxy: ProxySettings = ProxySettings()
    install: InstallSettings = InstallSettings()
    traffic_api: str = "virtualservice"
    linkerd: LinkerdSettings = LinkerdSettings()
    hosts: tuple[MeshHost, ...] = ()
    gates: GateSettings = GateSettings()
    promotion_order: tuple[str, ...] = ()
    external_callers: tuple[ExternalCaller, ...] = ()
    # objects of the estate meshstage's own replace: (kind, namespace, name)
    replaced: tuple[tuple[str, str, str], ...] = ()
    by_name: Mapping[str, Service] = field(repr=False, compare=False, default_factory=dict)
    # each service's own injection wave (its index), for the services of a waved namespace
    service_waves: Mapping[str, int] = field(repr=False, compare=False,
                                             default_factory=dict)

    def service(self, name: str) -> Service:
        return self.by_name[name]

    def _derived(self, name: str, build: Callable[[], _T]) -> _T:
        """A value made from the fields once per Intent, kept under ``_<name>`` outside
        them: equality ignores it, pickles leave it out (``__getstate__``), and an intent
        derived with ``dataclasses.replace`` makes its own. The planners ask for each
        service what these answer by look-up, instead of a search of the catalogue."""
        found: _T | None = self.__dict__.get(name)
        if found is None:
            found = build()
            object.__setattr__(self, name, found)
        return found

    def _position(self, name: str, items: tuple[Any, ...], item: Any) -> int:
        """``items.index(item)``, by identity from an index made once (``_derived``); an
        equal item that is not one of them is searched for."""
        number = self._derived(
            name, lambda: {id(each): index for index, each in enumerate(items)}).get(id(item))
        return items.index(item) if number is None else number

    def callers_of(self, name: str) -> tuple[tuple[Service, ...], tuple[MeshHost, ...]]:
        """The services whose ``calls`` name ``name``, and the hosts that carry one of them."""
        def build() -> dict[str, tuple[list[Service], list[MeshHost]]]:
            index: dict[str, tuple[list[Service], list[MeshHost]]] = {}
            for caller in self.services:
                for callee in caller.calls:
                    index.setdefault(callee, ([], []))[0].append(caller)
            for host in self.hosts:
                carried = self.by_name.get(host.service)
                for callee in carried.calls if carried is not None else ():
                    index.setdefault(callee, ([], []))[1].append(host)
            return index

        services, hosts = self._derived("_callers", build).get(name, ((), ()))
        return tuple(services), tuple(hosts)

    def authorization_for(self, name: str) -> ServiceAuthorization | None:
        """Service ``name``'s entry of ``authorization`` (None when it has none; the parse
        allows one per service)."""
        def build() -> dict[str, ServiceAuthorization]:
            index: dict[str, ServiceAuthorization] = {}
            for entry in self.authorization:
                index.setdefault(entry.service, entry)
            return index

        return self._derived("_authorization", build).get(name)

    def authorization_path(self, entry: ServiceAuthorization) -> str:
        """Where ``entry`` is written in the intent: ``mesh_authorization[<index>]``."""
        number = self._position("_authorization_positions", self.authorization, entry)
        return f"mesh_authorization[{number}]"

    def exceptions_for(self, name: str) -> tuple[MtlsExemption, ...]:
        """The ``mtls_exceptions`` of service ``name``, in their order."""
        def build() -> dict[str, tuple[MtlsExemption, ...]]:
            index: dict[str, list[MtlsExemption]] = {}
            for exception in self.mtls_exceptions:
                index.setdefault(exception.service, []).append(exception)
            return {service: tuple(found) for service, found in index.items()}

        return self._derived("_exceptions", build).get(name, ())

    def is_injected(self, namespace: str) -> bool:
        """True when ``namespace`` is in one of the waves this environment has injected."""
        return namespace in self._derived(
            "_injected", lambda: frozenset(self.injected_namespaces()))

    def is_held(self, name: str) -> bool:
        """True when service ``name`` is held back from its injected namespace until its own
        wave is injected (``held_back``)."""
        return name in self._derived(
            "_held", lambda: frozenset(service.name for service in self.held_back()))

    def __getstate__(self) -> dict[str, object]:
        # the fields only: what ``_derived`` keeps is made again on demand, never pickled
        return {key: value for key, value in self.__dict__.items() if not key.startswith("_")}

    @property
    def host_services(self) -> frozenset[str]:
        """Services carried by hosts in this environment: not Kubernetes workloads here."""
        return self._derived("_host_services",
                             lambda: frozenset(host.service for host in self.hosts))

    def hosts_of(self, service: str) -> tuple[MeshHost, ...]:
        return tuple(host for host in self.hosts if host.service == service)

    def injected_hosts(self) -> tuple[MeshHost, ...]:
        """Hosts whose wave is injected: they run a sidecar from the injection stage on."""
        if not self.stage.reached(Stage.INJECTION):
            return ()
        waves = {wave.name for wave in self.injection_waves[: self.injected_waves]}
        return tuple(host for host in self.hosts if host.wave in waves)

    def principal(self, service: Service) -> str:
        """The SPIFFE principal Istio matches: ``<td>/ns/<namespace>/sa/<account>``."""
        return f"{self.trust_domain}/ns/{service.namespace}/sa/{service.service_account}"

    def service_path(self, service: Service) -> str:
        """Where the service is written in the intent: ``mesh_services[<index>]``."""
        return f"mesh_services[{self._position('_positions', self.services, service)}]"

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace of the catalogue, sorted."""
        return tuple(sorted({service.namespace for service in self.services}))

    def services_selecting(self, namespace: str, labels: Mapping[str, str]) -> list[Service]:
        """The services of the catalogue whose selector a pod of ``namespace`` with
        ``labels`` carries, found among the services posted once per Intent under their
        selectors (``LabelPostings``)."""
        def build() -> dict[str, LabelPostings[Service]]:
            postings: dict[str, LabelPostings[Service]] = {}
            for service in self.services:
                postings.setdefault(service.namespace, LabelPostings()).add(
                    service.selector, service)
            return postings

        found = self._derived("_selector_postings", build).get(namespace)
        if found is None:
            return []
        items = labels.items()
        return [s for s in found.candidates(labels) if s.selector.items() <= items]

    def same_pods(self, service: Service) -> tuple[Service, ...]:
        """The services of ``service``'s namespace whose selector is its own, in the
        catalogue's order, ``service`` among them: several Services over one workload (a
        chart's Service and its headless twin; Jaeger's agent, collector and query over one
        Deployment). To the mesh their pods are one workload: Istio applies one Sidecar and
        one PeerAuthentication per workload, and Linkerd admits one Server per pod port."""
        def build() -> dict[str, tuple[Service, ...]]:
            groups: dict[tuple[str, frozenset[tuple[str, str]]], list[Service]] = {}
            for each in self.services:
                groups.setdefault((each.namespace, frozenset(each.selector.items())),
                                  []).append(each)
            return {each.name: tuple(group) for group in groups.values() if len(group) > 1
                    for each in group}

        return self._derived("_same_pods", build).get(service.name, (service,))

    def injected_namespaces(self) -> tuple[str, ...]:
        """Namespaces of the waves this environment has injected so far."""
        waves = self.injection_waves[: self.injected_waves]
        return tuple(sorted({ns for wave in waves for ns in wave.namespaces}))

    def held_back(self) -> tuple[Service, ...]:
        """Services of injected namespaces whose own wave is not injected yet: the injector
        leaves them out until it is (waves that name services)."""
        injected = set(self.injected_namespaces())
        return tuple(s for s in self.services if s.inject and s.namespace in injected
                     and self.service_waves.get(s.name, 0) >= self.injected_waves)

    def kept_from_injection(self) -> tuple[Service, ...]:
        """Services the injector must leave out: ``inject: false``, and those held back."""
        held = {s.name for s in self.held_back()}
        return tuple(s for s in self.services if not s.inject or s.name in held)

    def wave_name(self, service: Service) -> str | None:
        number = self.service_waves.get(service.name)
        return self.injection_waves[number].name if number is not None else None
    def injected(self, service: Service) -> bool:
        """True when the service's pods get the proxy in this environment (at its stage):
        its namespace is injected, and its own wave too (a service held back for a later
        wave has none yet)."""
        return (service.inject and self.stage.reached(Stage.INJECTION)
                and self.is_injected(service.namespace)
                and service.name not in self.host_services
                and not self.is_held(service.name))

    def inbound_callers(self, service: Service, scrapes_identity: bool = True,
                        ) -> tuple[InboundCaller, ...]:
        """The callers of ``service`` that its catalogue callers' ``calls`` do not name: its
        peers, and ``mesh_external_callers``. An external caller has a mesh identity when it
        is injected, except Prometheus where the mesh's proxy does not carry its scrapes
        (``scrapes_identity`` False: Istio, whose sidecar passes requests to pod IPs through
        as plaintext)."""
        callers = []
        if service.peer_ports:
            callers.append(InboundCaller(
                "its peers", service.namespace, service.service_account,
                tuple(p.port for p in service.peer_ports)))
        def build() -> dict[str, list[tuple[ExternalCaller, tuple[int, ...]]]]:
            calls: dict[str, list[tuple[ExternalCaller, tuple[int, ...]]]] = {}
            for caller in self.external_callers:  # each callee's, in the callers' order
                for name, ports in caller.calls:
                    calls.setdefault(name, []).append((caller, ports))
            return calls

        for caller, ports in self._derived("_external_calls", build).get(service.name, ()):
            identity = caller.inject and (caller.kind != "prometheus" or scrapes_identity)
            by_paths: dict[tuple[str, ...], list[int]] = {}  # one caller per path it GETs
            for port in ports or service.workload_ports():
                by_paths.setdefault(caller.paths_at(service.name, port), []).append(port)
            callers.extend(InboundCaller(
                caller.title, caller.namespace, caller.service_account if identity else None,
                tuple(numbers), paths) for paths, numbers in by_paths.items())
        return tuple(callers)

    def plaintext_ports(self, service: Service, scrapes_identity: bool = True,
                        ) -> dict[int, str]:
        """Workload ports of ``service`` that callers without a mesh identity reach, and who
        they are: they must stay PERMISSIVE under STRICT."""
        ports: dict[int, list[str]] = {}
        for caller in self.inbound_callers(service, scrapes_identity):
            if not caller.identity:
                for port in caller.ports:
                    ports.setdefault(port, []).append(caller.name)
        return {port: ", ".join(names) for port, names in sorted(ports.items())}

    def exemption_for(self, name: str, scrapes_identity: bool = True) -> MtlsExemption | None:
        """Service ``name``'s entry of ``exemptions`` (None when it has none), found by name
        in the exemptions made once per Intent."""
        def build() -> dict[str, MtlsExemption]:
            by_name: dict[str, MtlsExemption] = {}
            for exemption in self.exemptions(scrapes_identity):
                by_name.setdefault(exemption.service, exemption)
            return by_name

        return self._derived(f"_exemption_of_{scrapes_identity}", build).get(name)

    def exemptions(self, scrapes_identity: bool = True) -> tuple[MtlsExemption, ...]:
        """The mTLS exceptions the strict_mtls stage renders: ``mtls_exceptions``, with a
        PERMISSIVE port for every port callers without a mesh identity reach. A service with
        no exception of its own gets mode ``UNSET`` (the mesh's) with those ports."""
        exemptions = []
        explicit = {e.service: e for e in self.mtls_exceptions}
        for service in self.services:
            plaintext = self.plaintext_ports(service, scrapes_identity)
            exemption = explicit.get(service.name)
            if not plaintext or (exemption and not exemption.ports):
                if exemption:
                    exemptions.append(exemption)
                continue
            why = "called without a mesh identity: " + "; ".join(
                f"port {port} by {names}" for port, names in plaintext.items())
            if exemption is None:
                exemptions.append(MtlsExemption(
                    service.name, "UNSET", {p: "PERMISSIVE" for p in plaintext}, why))
                continue
            ports = {**{p: "PERMISSIVE" for p in plaintext}, **exemption.ports}
            exemptions.append(MtlsExemption(service.name, exemption.mode,
                                            dict(sorted(ports.items())),
                                            f"{exemption.reason}; {why}"))
        return tuple(exemptions)

    def server_first_ports(self) -> tuple[int, ...]:
        """The service and container ports of the catalogue's server-first protocols
        (``SERVER_FIRST_PROTOCOLS``), where the injected proxies must skip protocol
        detection; none before the injection stage."""
        if not self.stage.reached(Stage.INJECTION):
            return ()
        ports = {number for service in self.services
                 for port in (*service.ports, *service.peer_ports, *service.pod_ports)
                 if port.protocol in SERVER_FIRST_PROTOCOLS
                 for number in (port.port, port.target_port) if number}
        return tuple(sorted(ports))

    def native_sidecar_services(self) -> tuple[Service, ...]:
        """Injected services that need the proxy as a native sidecar (jobs, init containers
        that reach the network); found once per Intent (asked for each namespace)."""
        return self._derived("_native", lambda: tuple(
            s for s in self.services if s.needs_native_sidecar and self.injected(s)))

    @property
    def native_sidecars(self) -> bool:
        """True when this environment's proxies run as native sidecars: asked for, or
        (``auto``) needed by an injected service, on a cluster that has them."""
        mode = self.proxy.native_sidecars
        if mode == "auto":
            return bool(self.native_sidecar_services()) and self.cluster.native_sidecars
        return mode == "enabled"
