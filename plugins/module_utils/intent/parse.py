"""The intent: one description of the estate, typed, validated, defaults applied.

``parse_intent(variables)`` takes the ``mesh_*`` inventory variables of one environment and
returns an ``Intent`` and a list of warnings, or raises ``IntentErrors`` listing every
problem found, each naming the field path and the bad value::

    mesh_services[3].canary.weight: 110 is over 100

Unknown keys are errors: a typo must not pass silently. Nothing here touches the disk.
The variables are documented in docs/intent.md.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from .._plain import plain_data
from ..errors import IntentError, IntentErrors
from ..stages import STAGE_NAMES, Stage
from .model import (
    CANARY_STEPS,
    HEADER_MATCH_KINDS,
    HTTP_METHODS,
    LINKERD_ACCESS_LOG_FORMATS,
    LOAD_BALANCERS,
    MAX_CANARY_STEPS,
    MTLS_EXCEPTION_MODES,
    PROTOCOLS,
    PROXY_IMAGE_TYPES,
    AuthorizationRule,
    Canary,
    CanaryAnalysis,
    Cluster,
    ConnectionPool,
    GateSettings,
    GitOpsSource,
    HeaderMatch,
    HeaderRoute,
    IngressGateway,
    InjectionWave,
    InstallSettings,
    Intent,
    LinkerdSettings,
    MeshHost,
    MtlsException,
    OutlierDetection,
    Port,
    ProxySettings,
    Retries,
    Service,
    ServiceAuthorization,
    Source,
    Telemetry,
    TrafficPolicy,
    Version,
    WeightedSubset,
)

PROVIDERS: tuple[str, ...] = ("istio", "linkerd")
# The traffic APIs each provider can render, its default first.
TRAFFIC_APIS: dict[str, tuple[str, ...]] = {
    "istio": ("virtualservice", "gateway-api"),
    "linkerd": ("gateway-api", "smi"),
}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_GIT_URL = re.compile(r"^(http|https|ssh)://\S+$")  # what Flux's GitRepository accepts
_HTTP_URL = re.compile(r"^https?://[^\s/]+\S*$")
_HELM_REPOSITORY = re.compile(r"^(https|oci)://\S+$")
_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_ABSOLUTE_PATH = re.compile(r"^/[^\s]*$")
_RETRY_ON = re.compile(r"^[a-z0-9-]+(,[a-z0-9-]+)*$")
_PROBE_PATH = re.compile(r"^/[^\s*?#]*$")
_HOST_PORT = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[0-9]{1,5}$")
# C0 and C1 controls, and the Unicode line and paragraph separators YAML reads as breaks.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

T = TypeVar("T")


# --------------------------------------------------------------------------- the model


# --------------------------------------------------------------------------- the checker


class _Checker:
    """Collects every problem of one intent, each with its path and value."""

    def __init__(self) -> None:
        self.errors: list[IntentError] = []
        self.warnings: list[str] = []
        # Services written in mesh_services but refused for errors of their own, and their
        # namespaces: naming them elsewhere is not reported again as "not a service".
        self.refused_services: set[str] = set()
        self.refused_namespaces: set[str] = set()

    def error(self, path: str, value: Any, problem: str) -> None:
        self.errors.append(IntentError(path, value, problem))

    def warn(self, path: str, value: Any, problem: str) -> None:
        self.warnings.append(str(IntentError(path, value, problem)))

    def unknown_service(self, name: str, path: str, by_name: Mapping[str, Service],
                        problem: str = "is not a service in mesh_services") -> bool:
        """True when ``name`` is no service of the catalogue (recorded unless refused)."""
        if name in by_name:
            return False
        if name not in self.refused_services:
            self.error(path, name, problem)
        return True

    def mapping(
        self,
        value: Any,
        path: str,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> dict[str, Any] | None:
        """A dict with only the allowed keys, or None after recording why not."""
        if not isinstance(value, Mapping):
            self.error(path, value, "is not a mapping")
            return None
        allowed = set(required) | set(optional)
        ok = True
        for key in value:
            if key not in allowed:
                self.error(_join(path, str(key)), value[key], _unknown_key(key, allowed))
                ok = False
        for key in required:
            if key not in value:
                self.error(_join(path, key), None, "is required")
                ok = False
        return dict(value) if ok else None

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            self.error(path, value, "is not a list")
            return []
        return list(value)

    def string(self, value: Any, path: str, pattern: re.Pattern[str] | None = None,
               what: str = "") -> str | None:
        if not isinstance(value, str) or value == "":
            self.error(path, value, "is not a non-empty string")
            return None
        if _CONTROL_CHARS.search(value):
            self.error(path, value, "contains a newline or control character")
            return None
        if pattern is not None and not pattern.match(value):
            self.error(path, value, f"is not {what}")
            return None
        return value

    def quantity(self, value: Any, path: str) -> str | None:
        return self.string(value, path, _QUANTITY,
                           "a Kubernetes quantity (e.g. 100m, 0.5, 128Mi, 1Gi)")

    def dns_label(self, value: Any, path: str) -> str | None:
        text = self.string(value, path)
        if text is not None and (len(text) > 63 or not _DNS_LABEL.match(text)):
            self.error(path, value, "is not a valid DNS-1123 label "
                       "(lower case letters, digits and '-', at most 63, starting and "
                       "ending with a letter or digit)")
            return None
        return text

    def dns_subdomain(self, value: Any, path: str) -> str | None:
        text = self.string(value, path)
        if text is not None and (len(text) > 253 or not _DNS_SUBDOMAIN.match(text)):
            self.error(path, value, "is not a valid DNS-1123 subdomain")
            return None
        return text

    def integer(self, value: Any, path: str, low: int, high: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, value, "is not an integer")
            return None
        if value < low:
            self.error(path, value, f"is under {low}")
            return None
        if high is not None and value > high:
            self.error(path, value, f"is over {high}")
            return None
        return value

    def number(self, value: Any, path: str, low: float, high: float) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(path, value, "is not a number")
            return None
        if not low <= value <= high:
            self.error(path, value, f"is not between {low:g} and {high:g}")
            return None
        return float(value)

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.error(path, value, "is not a boolean (true or false)")
            return None
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...]) -> str | None:
        if value not in choices:
            self.error(path, value, "is not one of " + ", ".join(choices))
            return None
        return str(value)

    def duration(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str) or not _DURATION.match(value):
            self.error(path, value, "is not a duration (e.g. 10s, 1.5s, 250ms, 1m)")
            return None
        if duration_seconds(value) < 0.001:
            self.error(path, value, "is shorter than 1ms, the least Istio accepts")
            return None
        return value

    def labels(self, value: Any, path: str) -> dict[str, str] | None:
        if not isinstance(value, Mapping) or not value:
            self.error(path, value, "is not a non-empty mapping of labels")
            return None
        result: dict[str, str] = {}
        for key, val in value.items():
            key_path = _join(path, str(key))
            if not isinstance(key, str) or not _valid_label_key(key):
                self.error(key_path, key, "is not a valid Kubernetes label key")
                continue
            if not isinstance(val, str) or len(val) > 63 or not _LABEL_VALUE.match(val):
                self.error(key_path, val, "is not a valid Kubernetes label value (at most 63 "
                           "letters, digits, '-', '_' or '.', starting and ending with a "
                           "letter or digit)")
                continue
            result[key] = val
        return result


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _unknown_key(key: Any, allowed: set[str]) -> str:
    by_lower = {name.lower(): name for name in allowed}
    close = difflib.get_close_matches(str(key).lower(), sorted(by_lower), n=1, cutoff=0.8)
    hint = f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
    return "is not a known key here; known: " + ", ".join(sorted(allowed)) + hint


def _valid_label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def duration_seconds(text: str) -> float:
    """Seconds in a Go-style duration such as ``1m30s`` or ``250ms``."""
    return sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))


def _opt(check: _Checker, data: Mapping[str, Any], key: str, path: str,
         parse: Callable[[Any, str], T | None], default: T) -> T:
    if key not in data or data[key] is None:
        return default
    parsed = parse(data[key], _join(path, key))
    return default if parsed is None else parsed


# --------------------------------------------------------------------------- parsing

_TOP_KEYS: tuple[str, ...] = (
    "mesh_environment", "mesh_stage", "mesh_provider", "mesh_trust_domain",
    "mesh_root_namespace", "mesh_revision", "mesh_services", "mesh_injection_waves",
    "mesh_injected_waves", "mesh_mtls_exceptions", "mesh_telemetry", "mesh_authorization",
    "mesh_default_deny", "mesh_cluster", "mesh_gitops", "mesh_ingress_gateway",
    "mesh_service_overrides", "mesh_proxy", "mesh_install", "mesh_traffic_api", "mesh_linkerd",
    "mesh_hosts", "mesh_gates", "mesh_promotion_order",
)

_SERVICE_KEYS = ("namespace", "service_account", "ports", "versions", "calls", "inject",
                 "ingress", "canary", "traffic", "probe_paths")


# Variables that steer a run rather than describe the estate; not part of the intent.
RUN_VARIABLES: frozenset[str] = frozenset({
    "mesh_gitops_dir", "mesh_crd_dir", "mesh_crd_dirs", "mesh_template_dir",
    "mesh_template_dirs", "mesh_kubernetes_version", "mesh_apply", "mesh_check_paths",
    "mesh_ca_dir", "mesh_envoy_binary", "mesh_configure_hosts",
    "mesh_force_gates", "mesh_cluster_facts",
    # playbooks/canary.yml: the service whose canary runs, where Prometheus answers, and a
    # roll back by hand
    "mesh_canary_service", "mesh_prometheus_url", "mesh_canary_rollback",
})

# The fields of a host's ``mesh_host`` variable (hosts of the inventory group mesh_hosts).
HOST_KEYS: tuple[str, ...] = (
    "environment", "service", "address", "app_port", "inbound_port", "version", "wave",
    "app_address", "outbound_port", "admin_port", "stats_port", "root",
)


def unknown_mesh_variables(names: list[str]) -> list[str]:
    """``mesh_*`` variables that are neither intent nor run options: likely typos."""
    return sorted(name for name in names if name.startswith("mesh_")
                  and name not in _TOP_KEYS and name not in RUN_VARIABLES)


def intent_keys() -> tuple[str, ...]:
    """The inventory variables that make up the intent."""
    return _TOP_KEYS


def parse_intent(variables: Mapping[str, Any]) -> tuple[Intent, list[str]]:
    """Validate the ``mesh_*`` variables and build the Intent, or raise IntentErrors."""
    variables = plain_data(variables)
    check = _Checker()
    data = check.mapping(variables, "", required=("mesh_environment", "mesh_stage",
                                                  "mesh_services"), optional=_TOP_KEYS)
    if data is None:
        raise IntentErrors(check.errors)

    environment = check.dns_label(data["mesh_environment"], "mesh_environment") or "invalid"
    stage_name = check.choice(data["mesh_stage"], "mesh_stage", STAGE_NAMES)
    provider = _opt(check, data, "mesh_provider", "",
                    lambda v, p: check.choice(v, p, PROVIDERS), "istio")
    traffic_api = _parse_traffic_api(check, data.get("mesh_traffic_api"), provider)
    linkerd = _parse_linkerd(check, data.get("mesh_linkerd"))
    trust_domain = _opt(check, data, "mesh_trust_domain", "", check.dns_subdomain,
                        "cluster.local")
    root_namespace = _opt(check, data, "mesh_root_namespace", "", check.dns_label,
                          "istio-system")
    revision = _opt(check, data, "mesh_revision", "", check.dns_label, None)

    raw_services = _apply_overrides(check, data.get("mesh_services"),
                                    data.get("mesh_service_overrides"))
    services = _parse_services(check, raw_services)
    by_name = {service.name: service for service in services}
    for item in raw_services:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str) \
                and item["name"] not in by_name:
            check.refused_services.add(item["name"])
            if isinstance(item.get("namespace"), str):
                check.refused_namespaces.add(item["namespace"])
    _check_calls(check, raw_services, by_name)

    waves = _parse_waves(check, data.get("mesh_injection_waves"), by_name)
    injected = _opt(check, data, "mesh_injected_waves", "",
                    lambda v, p: check.integer(v, p, 0, len(waves)), len(waves))
    exceptions = _parse_mtls_exceptions(check, data.get("mesh_mtls_exceptions"), by_name)
    telemetry = _parse_telemetry(check, data.get("mesh_telemetry"))
    if provider == "linkerd" and not (isinstance(data.get("mesh_telemetry"), Mapping)
                                      and data["mesh_telemetry"].get("prometheus_namespace")):
        # Linkerd's Prometheus is viz's: its default namespace follows mesh_linkerd
        telemetry = replace(telemetry, prometheus_namespace=linkerd.viz_namespace)
    authorization = _parse_authorization(check, data.get("mesh_authorization"), by_name)
    default_deny = _opt(check, data, "mesh_default_deny", "", check.boolean, True)
    cluster = _parse_simple(check, data.get("mesh_cluster"), "mesh_cluster", Cluster,
                            {"name": check.dns_subdomain, "server": check.string,
                             "domain": check.dns_subdomain})
    gitops = _parse_simple(check, data.get("mesh_gitops"), "mesh_gitops", GitOpsSource, {
        "repo_url": lambda v, p: check.string(v, p, _GIT_URL, "an http://, https:// or "
                                              "ssh:// Git URL without spaces"),
        "branch": check.string,
        "argocd_namespace": check.dns_label, "argocd_project": check.dns_subdomain,
        "flux_namespace": check.dns_label, "sync_interval": check.duration,
    })
    ingress = _parse_simple(check, data.get("mesh_ingress_gateway"), "mesh_ingress_gateway",
                            IngressGateway, {"namespace": check.dns_label,
                                             "service_account": check.dns_subdomain})
    quantity = check.quantity
    proxy = _parse_simple(check, data.get("mesh_proxy"), "mesh_proxy", ProxySettings, {
        "concurrency": lambda v, p: check.integer(v, p, 0, 64),
        "image_type": lambda v, p: check.choice(v, p, PROXY_IMAGE_TYPES),
        "cpu": quantity, "memory": quantity, "cpu_limit": quantity, "memory_limit": quantity,
    })
    install = _parse_simple(check, data.get("mesh_install"), "mesh_install", InstallSettings, {
        "version": lambda v, p: check.string(v, p, _CHART_VERSION,
                                             "a pinned chart version (e.g. 1.29.2)"),
        "repository": lambda v, p: check.string(v, p, _HELM_REPOSITORY, "an https:// or "
                                                "oci:// Helm repository URL without spaces"),
    })
    _check_route_budgets(check, services)
    hosts = _parse_hosts(check, data.get("mesh_hosts"), environment, by_name, waves)
    _check_host_calls(check, services, {host.service for host in hosts})
    gates = _parse_gates(check, data.get("mesh_gates"), telemetry)
    promotion = _parse_promotion_order(check, data.get("mesh_promotion_order"), environment)

    if check.errors:
        raise IntentErrors(check.errors)
    assert stage_name is not None
    intent = Intent(
        environment=environment, stage=Stage(stage_name), provider=provider,
        trust_domain=trust_domain, root_namespace=root_namespace, revision=revision,
        services=tuple(services), injection_waves=tuple(waves), injected_waves=injected,
        mtls_exceptions=tuple(exceptions), telemetry=telemetry,
        authorization=tuple(authorization), default_deny=default_deny, cluster=cluster,
        gitops=gitops, ingress_gateway=ingress, proxy=proxy, install=install,
        traffic_api=traffic_api, linkerd=linkerd, hosts=tuple(hosts), gates=gates,
        promotion_order=promotion, by_name=by_name,
    )
    _check_canary_windows(check, intent)
    return intent, check.warnings


def _check_canary_windows(check: _Checker, intent: Intent) -> None:
    """A canary step is measured over its interval: it must hold two scrapes at least."""
    scrape = intent.telemetry.scrape_interval
    for service in intent.services:
        canary = service.canary
        if canary and duration_seconds(canary.analysis.interval) < \
                2 * duration_seconds(scrape):
            check.warn(f"{intent.service_path(service)}.canary.analysis.interval",
                       canary.analysis.interval, f"is under two scrape intervals "
                       f"(mesh_telemetry.scrape_interval {scrape}): a step's analysis "
                       "window holds too few samples to measure it")


def _apply_overrides(check: _Checker, services: Any, overrides: Any) -> list[Any]:
    """Per-environment overrides, deep-merged into the shared catalogue by service name."""
    items = check.sequence(services, "mesh_services")
    if overrides is None:
        return items
    if not isinstance(overrides, Mapping):
        check.error("mesh_service_overrides", overrides, "is not a mapping of service name "
                    "to the fields it overrides")
        return items
    names = [item.get("name") for item in items if isinstance(item, Mapping)]
    valid: dict[str, dict[str, Any]] = {}
    for name, fields in overrides.items():
        path = _join("mesh_service_overrides", str(name))
        if name not in names:
            check.error(path, name, "is not a service in mesh_services")
        elif not isinstance(fields, Mapping):
            check.error(path, fields, "is not a mapping of the fields it overrides")
        else:
            # Unknown keys are reported here, where they were written, not in mesh_services.
            valid[name] = {key: value for key, value in fields.items()
                           if key in _SERVICE_KEYS}
            for key in fields:
                if key not in _SERVICE_KEYS:
                    check.error(_join(path, str(key)), fields[key],
                                _unknown_key(key, set(_SERVICE_KEYS)))
    return [
        _deep_merge(item, valid[item["name"]])
        if isinstance(item, Mapping) and isinstance(item.get("name"), str)
        and item["name"] in valid else item
        for item in items
    ]


def _deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _parse_services(check: _Checker, items: list[Any]) -> list[Service]:
    services: list[Service] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        path = _join("mesh_services", index)
        data = check.mapping(item, path, required=("name", "namespace"),
                             optional=_SERVICE_KEYS)
        if data is None:
            continue
        name = check.dns_label(data["name"], _join(path, "name"))
        if name is None:
            continue
        if name in seen:
            check.error(_join(path, "name"), name,
                        f"is a duplicate service (also mesh_services[{seen[name]}])")
            continue
        seen[name] = index
        service = _parse_service(check, data, path, name)
        if service is not None:
            services.append(service)
    return services


def _parse_service(check: _Checker, data: dict[str, Any], path: str, name: str) -> Service | None:
    namespace = check.dns_label(data["namespace"], _join(path, "namespace"))
    account = _opt(check, data, "service_account", path, check.dns_subdomain, name)
    ports = _parse_ports(check, data.get("ports"), _join(path, "ports"))
    versions = _parse_versions(check, data.get("versions"), _join(path, "versions"))
    calls = tuple(
        name for name in (
            check.dns_label(call, _join(_join(path, "calls"), i))
            for i, call in enumerate(check.sequence(data.get("calls"), _join(path, "calls")))
        ) if name is not None
    )
    inject = _opt(check, data, "inject", path, check.boolean, True)
    ingress = _opt(check, data, "ingress", path, check.boolean, False)
    probe_paths = tuple(
        text for i, text in enumerate(check.sequence(data.get("probe_paths"),
                                                     _join(path, "probe_paths")))
        if check.string(text, _join(_join(path, "probe_paths"), i), _PROBE_PATH,
                        "an exact path starting with '/' (no '*', '?', '#' or spaces)")
        is not None)
    rendered = {f"{name}-{version.name}" for version in versions if version.service is None}
    for index, version in enumerate(versions):
        if version.service in rendered:
            check.error(_join(_join(_join(path, "versions"), index), "service"), version.service,
                        "is the name meshstage gives the Service of another version; "
                        "name that version's service too, or pick another name")
    version_names = tuple(version.name for version in versions)
    traffic = _parse_traffic(check, data.get("traffic"), _join(path, "traffic"), version_names)
    canary = _parse_canary(check, data.get("canary"), _join(path, "canary"), version_names)
    if canary and traffic.split:
        check.error(_join(path, "canary"), data.get("canary"),
                    "cannot be combined with traffic.split; use one of them")
        canary = None
    elif canary:
        traffic = TrafficPolicy(**{**traffic.__dict__, "split": canary.split()})
    if namespace is None:
        return None
    return Service(name=name, namespace=namespace, service_account=account, ports=ports,
                   versions=versions, calls=calls, inject=inject, ingress=ingress,
                   traffic=traffic, probe_paths=probe_paths, canary=canary)


def _parse_ports(check: _Checker, value: Any, path: str) -> tuple[Port, ...]:
    ports: list[Port] = []
    for index, item in enumerate(check.sequence(value, path)):
        item_path = _join(path, index)
        data = check.mapping(item, item_path, required=("port",),
                             optional=("name", "protocol", "target_port"))
        if data is None:
            continue
        number = check.integer(data["port"], _join(item_path, "port"), 1, 65535)
        protocol = _opt(check, data, "protocol", item_path,
                        lambda v, p: check.choice(v, p, PROTOCOLS), "HTTP")
        name = _opt(check, data, "name", item_path, check.dns_label,
                    f"{protocol.lower()}-{number}")
        target = _opt(check, data, "target_port", item_path,
                      lambda v, p: check.integer(v, p, 1, 65535), None)
        if number is not None:
            ports.append(Port(name=name, port=number, protocol=protocol, target_port=target))
    if not ports and value is None:
        ports.append(Port(name="http", port=80, protocol="HTTP"))
    return tuple(ports)


def _parse_versions(check: _Checker, value: Any, path: str) -> tuple[Version, ...]:
    versions: list[Version] = []
    seen: set[str] = set()
    services: dict[str, str] = {}
    for index, item in enumerate(check.sequence(value, path)):
        item_path = _join(path, index)
        if isinstance(item, str):
            item = {"name": item}
        data = check.mapping(item, item_path, required=("name",),
                             optional=("labels", "service"))
        if data is None:
            continue
        name = check.dns_label(data["name"], _join(item_path, "name"))
        if name is None:
            continue
        if name in seen:
            check.error(_join(item_path, "name"), name, "is a duplicate version")
            continue
        seen.add(name)
        labels = _opt(check, data, "labels", item_path, check.labels, {"version": name})
        service = _opt(check, data, "service", item_path, check.dns_label, None)
        if service is not None and service in services:
            check.error(_join(item_path, "service"), service,
                        f"is already the service of version {services[service]!r}")
            service = None
        if service is not None:
            services[service] = name
        versions.append(Version(name=name, labels=labels, service=service))
    return tuple(versions)


def _subset(check: _Checker, value: Any, path: str, versions: tuple[str, ...]) -> str | None:
    name = check.dns_label(value, path)
    if name is not None and name not in versions:
        known = ", ".join(versions) if versions else "none declared"
        check.error(path, value, f"is not among the service's versions ({known})")
        return None
    return name


def _parse_canary(check: _Checker, value: Any, path: str,
                  versions: tuple[str, ...]) -> Canary | None:
    if value is None:
        return None
    data = check.mapping(value, path, required=("subset", "weight"),
                         optional=("stable", "steps", "analysis"))
    if data is None:
        return None
    subset = _subset(check, data["subset"], _join(path, "subset"), versions)
    weight = check.integer(data["weight"], _join(path, "weight"), 0, 100)
    stable = _opt(check, data, "stable", path,
                  lambda v, p: _subset(check, v, p, versions),
                  versions[0] if versions else None)
    steps = _parse_canary_steps(check, data.get("steps"), _join(path, "steps"))
    analysis = _parse_simple(check, data.get("analysis"), _join(path, "analysis"),
                             CanaryAnalysis, {
        "interval": lambda v, p: _at_least_seconds(check, v, p, 1.0),
        "success_rate": lambda v, p: check.number(v, p, 0, 100),
        "latency_p99": check.duration,
        "min_requests": lambda v, p: check.integer(v, p, 1),
        "max_waits": lambda v, p: check.integer(v, p, 0, 100),
    })
    if subset is None or weight is None or stable is None or steps is None:
        return None
    if stable == subset:
        check.error(_join(path, "subset"), subset, "is the same as canary.stable")
        return None
    return Canary(stable=stable, subset=subset, weight=weight, steps=steps, analysis=analysis)


def _parse_canary_steps(check: _Checker, value: Any, path: str) -> tuple[int, ...] | None:
    """Canary weights, strictly increasing, each 1 to 100; None after an error."""
    if value is None:
        return CANARY_STEPS
    if not isinstance(value, list | tuple) or not value:
        check.error(path, value, "is not a non-empty list of weights (e.g. [10, 25, 50, 100])")
        return None
    if len(value) > MAX_CANARY_STEPS:
        check.error(path, value, f"has {len(value)} steps, more than {MAX_CANARY_STEPS}")
        return None
    steps: list[int] = []
    for index, item in enumerate(value):
        weight = check.integer(item, _join(path, index), 1, 100)
        if weight is None:
            return None
        if steps and weight <= steps[-1]:
            check.error(_join(path, index), weight,
                        f"is not above the step before it ({steps[-1]})")
            return None
        steps.append(weight)
    return tuple(steps)


def _at_least_seconds(check: _Checker, value: Any, path: str, least: float) -> str | None:
    text = check.duration(value, path)
    if text is not None and duration_seconds(text) < least:
        check.error(path, value, f"is shorter than {least:g}s")
        return None
    return text


def _parse_traffic(check: _Checker, value: Any, path: str,
                   versions: tuple[str, ...]) -> TrafficPolicy:
    if value is None:
        return TrafficPolicy()
    data = check.mapping(value, path, optional=(
        "split", "header_routes", "timeout", "retries", "connection_pool",
        "outlier_detection", "load_balancer"))
    if data is None:
        return TrafficPolicy()
    return TrafficPolicy(
        split=_parse_split(check, data.get("split"), _join(path, "split"), versions),
        header_routes=_parse_header_routes(check, data.get("header_routes"),
                                           _join(path, "header_routes"), versions),
        timeout=_opt(check, data, "timeout", path, check.duration, None),
        retries=_parse_retries(check, data.get("retries"), _join(path, "retries")),
        connection_pool=_parse_simple(
            check, data.get("connection_pool"), _join(path, "connection_pool"),
            ConnectionPool, {
                "max_connections": lambda v, p: check.integer(v, p, 1),
                "connect_timeout": check.duration,
                "http1_max_pending_requests": lambda v, p: check.integer(v, p, 1),
                "http2_max_requests": lambda v, p: check.integer(v, p, 1),
                "max_requests_per_connection": lambda v, p: check.integer(v, p, 1),
                "max_retries": lambda v, p: check.integer(v, p, 0),
            }, none_if_absent=True),
        outlier_detection=_parse_simple(
            check, data.get("outlier_detection"), _join(path, "outlier_detection"),
            OutlierDetection, {
                "consecutive_5xx_errors": lambda v, p: check.integer(v, p, 0),
                "consecutive_gateway_errors": lambda v, p: check.integer(v, p, 0),
                "interval": check.duration,
                "base_ejection_time": check.duration,
                "max_ejection_percent": lambda v, p: check.integer(v, p, 0, 100),
            }, none_if_absent=True),
        load_balancer=_opt(check, data, "load_balancer", path,
                           lambda v, p: check.choice(v, p, LOAD_BALANCERS), None),
    )


def _parse_split(check: _Checker, value: Any, path: str,
                 versions: tuple[str, ...]) -> tuple[WeightedSubset, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not value:
        check.error(path, value, "is not a mapping of version to weight")
        return ()
    result: list[WeightedSubset] = []
    for subset, weight in value.items():
        item_path = _join(path, str(subset))
        name = _subset(check, subset, item_path, versions)
        number = check.integer(weight, item_path, 0, 100)
        if name is not None and number is not None:
            result.append(WeightedSubset(name, number))
    total = sum(item.weight for item in result)
    if len(result) == len(value) and total != 100:
        check.error(path, dict(value), f"weights sum to {total}, not 100")
    return tuple(result)


def _parse_header_routes(check: _Checker, value: Any, path: str,
                         versions: tuple[str, ...]) -> tuple[HeaderRoute, ...]:
    routes: list[HeaderRoute] = []
    for index, item in enumerate(check.sequence(value, path)):
        item_path = _join(path, index)
        data = check.mapping(item, item_path, required=("headers", "subset"))
        if data is None:
            continue
        subset = _subset(check, data["subset"], _join(item_path, "subset"), versions)
        headers = _parse_headers(check, data["headers"], _join(item_path, "headers"))
        if subset is not None and headers:
            routes.append(HeaderRoute(headers=headers, subset=subset))
    return tuple(routes)


def _parse_headers(check: _Checker, value: Any, path: str) -> tuple[HeaderMatch, ...]:
    if not isinstance(value, Mapping) or not value:
        check.error(path, value, "is not a non-empty mapping of header name to match")
        return ()
    matches: list[HeaderMatch] = []
    for header, match in value.items():
        header_path = _join(path, str(header))
        if not isinstance(header, str) or not _HEADER_NAME.match(header):
            check.error(header_path, header, "is not a lower-case HTTP header name")
            continue
        data = check.mapping(match, header_path, optional=HEADER_MATCH_KINDS)
        if data is None:
            continue
        if len(data) != 1:
            check.error(header_path, match, "needs exactly one of exact, prefix, regex")
            continue
        ((kind, text),) = data.items()
        text = check.string(text, _join(header_path, kind))
        if text is not None:
            matches.append(HeaderMatch(header=header, kind=kind, value=text))
    return tuple(sorted(matches, key=lambda m: m.header))


def _parse_retries(check: _Checker, value: Any, path: str) -> Retries | None:
    if value is None:
        return None
    data = check.mapping(value, path, required=("attempts",),
                         optional=("per_try_timeout", "retry_on"))
    if data is None:
        return None
    attempts = check.integer(data["attempts"], _join(path, "attempts"), 0, 100)
    per_try = _opt(check, data, "per_try_timeout", path, check.duration, None)
    retry_on = _opt(check, data, "retry_on", path,
                    lambda v, p: check.string(v, p, _RETRY_ON,
                                              "a comma-separated list of retry conditions "
                                              "(e.g. 5xx,reset,connect-failure)"), None)
    if attempts is None:
        return None
    return Retries(attempts=attempts, per_try_timeout=per_try, retry_on=retry_on)


def _parse_simple(check: _Checker, value: Any, path: str, kind: type[T],
                  fields: Mapping[str, Callable[[Any, str], Any]],
                  none_if_absent: bool = False) -> Any:
    """A flat mapping whose keys are the dataclass ``kind``'s fields."""
    if value is None:
        return None if none_if_absent else kind()
    data = check.mapping(value, path, optional=tuple(fields))
    if data is None:
        return None if none_if_absent else kind()
    values = {}
    for key, parse in fields.items():
        if key in data and data[key] is not None:
            parsed = parse(data[key], _join(path, key))
            if parsed is not None:
                values[key] = parsed
    return kind(**values)


def _check_calls(check: _Checker, items: list[Any], by_name: Mapping[str, Service]) -> None:
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) \
                or item["name"] not in by_name:
            continue
        for call_index, call in enumerate(by_name[item["name"]].calls):
            check.unknown_service(call, f"mesh_services[{index}].calls[{call_index}]", by_name)


def _parse_waves(check: _Checker, value: Any,
                 by_name: Mapping[str, Service]) -> list[InjectionWave]:
    waves: list[InjectionWave] = []
    first_wave: dict[str, str] = {}
    known = {service.namespace for service in by_name.values()}
    for index, item in enumerate(check.sequence(value, "mesh_injection_waves")):
        path = _join("mesh_injection_waves", index)
        data = check.mapping(item, path, required=("namespaces",), optional=("name",))
        if data is None:
            continue
        name = _opt(check, data, "name", path, check.dns_label, f"wave-{index + 1}")
        namespaces: list[str] = []
        for ns_index, ns in enumerate(check.sequence(data["namespaces"],
                                                     _join(path, "namespaces"))):
            ns_path = _join(_join(path, "namespaces"), ns_index)
            ns = check.dns_label(ns, ns_path)
            if ns is None:
                continue
            if ns in first_wave:
                check.error(ns_path, ns, f"is already in injection wave {first_wave[ns]!r}")
                continue
            if ns not in known:
                if ns not in check.refused_namespaces:
                    check.error(ns_path, ns,
                                "is not the namespace of any service in mesh_services")
                continue
            first_wave[ns] = name
            namespaces.append(ns)
        waves.append(InjectionWave(name=name, namespaces=tuple(namespaces)))
    if value is None and known:
        waves.append(InjectionWave(name="wave-1", namespaces=tuple(sorted(known))))
    elif value is not None:
        for ns in sorted(known - set(first_wave) - check.refused_namespaces):
            check.warn("mesh_injection_waves", ns, "is a namespace of mesh_services in no "
                       "injection wave: its workloads are never injected")
    return waves


def _parse_mtls_exceptions(check: _Checker, value: Any,
                           by_name: Mapping[str, Service]) -> list[MtlsException]:
    exceptions: list[MtlsException] = []
    first: dict[str, int] = {}
    for index, item in enumerate(check.sequence(value, "mesh_mtls_exceptions")):
        path = _join("mesh_mtls_exceptions", index)
        data = check.mapping(item, path, required=("service", "mode", "reason"),
                             optional=("ports",))
        if data is None:
            continue
        name = check.dns_label(data["service"], _join(path, "service"))
        mode = check.choice(data["mode"], _join(path, "mode"), MTLS_EXCEPTION_MODES)
        reason = check.string(data["reason"], _join(path, "reason"))
        if name is not None and check.unknown_service(
                name, _join(path, "service"), by_name,
                "selects nothing: no service of that name in mesh_services"):
            continue
        if name is not None and name in first:
            check.error(_join(path, "service"), name, "has an exception already "
                        f"(mesh_mtls_exceptions[{first[name]}]); use ports for per-port modes")
            continue
        if name is not None:
            first[name] = index
        ports = _parse_exception_ports(check, data.get("ports"), _join(path, "ports"),
                                       by_name.get(name) if name else None)
        if name is not None and mode is not None and reason is not None:
            exceptions.append(MtlsException(service=name, mode=mode, ports=ports,
                                            reason=reason))
    return exceptions


def _parse_exception_ports(check: _Checker, value: Any, path: str,
                           service: Service | None) -> dict[int, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        check.error(path, value, "is not a mapping of port number to mode")
        return {}
    ports: dict[int, str] = {}
    declared = {port.target_port or port.port for port in service.ports} if service else set()
    for port, mode in value.items():
        port_path = _join(path, str(port))
        number = check.integer(port, port_path, 1, 65535)
        mode = check.choice(mode, port_path, ("DISABLE", "PERMISSIVE", "STRICT"))
        if number is not None and service is not None and number not in declared:
            known = ", ".join(str(n) for n in sorted(declared)) or "none declared"
            check.error(port_path, port,
                        f"selects nothing: not a port of the service (ports: {known})")
            continue
        if number is not None and mode is not None:
            ports[number] = mode
    return dict(sorted(ports.items()))


def _parse_telemetry(check: _Checker, value: Any) -> Telemetry:
    path = "mesh_telemetry"
    if value is None:
        return Telemetry()
    data = check.mapping(value, path, optional=(
        "metrics_provider", "tracing_provider", "sampling_percentage",
        "access_log_provider", "access_log_filter", "prometheus_namespace", "scrape_interval"))
    if data is None:
        return Telemetry()
    defaults = Telemetry()
    return Telemetry(
        metrics_provider=_opt(check, data, "metrics_provider", path, check.dns_subdomain,
                              defaults.metrics_provider),
        tracing_provider=_opt(check, data, "tracing_provider", path, check.dns_subdomain,
                              None),
        sampling_percentage=_opt(check, data, "sampling_percentage", path,
                                 lambda v, p: check.number(v, p, 0, 100),
                                 defaults.sampling_percentage),
        # an explicit null turns access logs off; leaving the key out keeps the default
        access_log_provider=(
            None if "access_log_provider" in data and data["access_log_provider"] is None
            else _opt(check, data, "access_log_provider", path, check.dns_subdomain,
                      defaults.access_log_provider)),
        access_log_filter=_opt(check, data, "access_log_filter", path, check.string, None),
        prometheus_namespace=_opt(check, data, "prometheus_namespace", path, check.dns_label,
                                  defaults.prometheus_namespace),
        scrape_interval=_opt(check, data, "scrape_interval", path, check.duration,
                             defaults.scrape_interval),
    )


def _parse_authorization(check: _Checker, value: Any,
                         by_name: Mapping[str, Service]) -> list[ServiceAuthorization]:
    result: list[ServiceAuthorization] = []
    seen: set[str] = set()
    for index, item in enumerate(check.sequence(value, "mesh_authorization")):
        path = _join("mesh_authorization", index)
        data = check.mapping(item, path, required=("service",),
                             optional=("allow", "deny", "deny_other_callers"))
        if data is None:
            continue
        name = check.dns_label(data["service"], _join(path, "service"))
        if name is not None and check.unknown_service(name, _join(path, "service"), by_name):
            continue
        if name in seen:
            check.error(_join(path, "service"), name, "has rules already; merge them")
            continue
        allow = _parse_rules(check, data.get("allow"), _join(path, "allow"), by_name,
                             by_name.get(name) if name else None)
        deny = _parse_rules(check, data.get("deny"), _join(path, "deny"), by_name,
                            by_name.get(name) if name else None)
        deny_others = _opt(check, data, "deny_other_callers", path, check.boolean, False)
        if deny_others and not any(r.source.services or r.source.principals for r in allow):
            check.error(_join(path, "deny_other_callers"), True,
                        "needs an allow rule that names its callers (from or principals); "
                        "otherwise it would deny every caller")
        if name is not None:
            seen.add(name)
            result.append(ServiceAuthorization(service=name, allow=allow, deny=deny,
                                               deny_other_callers=deny_others))
    return result


def _parse_rules(check: _Checker, value: Any, path: str, by_name: Mapping[str, Service],
                 service: Service | None) -> tuple[AuthorizationRule, ...]:
    rules: list[AuthorizationRule] = []
    for index, item in enumerate(check.sequence(value, path)):
        item_path = _join(path, index)
        data = check.mapping(item, item_path, optional=(
            "from", "principals", "namespaces", "methods", "paths", "ports"))
        if data is None:
            continue
        services = []
        for i, name in enumerate(check.sequence(data.get("from"), _join(item_path, "from"))):
            name_path = _join(_join(item_path, "from"), i)
            name = check.dns_label(name, name_path)
            if name is not None and not check.unknown_service(name, name_path, by_name):
                services.append(name)
        principals = [
            p for i, p in enumerate(check.sequence(data.get("principals"),
                                                   _join(item_path, "principals")))
            if check.string(p, _join(_join(item_path, "principals"), i)) is not None
        ]
        namespaces = [
            ns for i, ns in enumerate(check.sequence(data.get("namespaces"),
                                                     _join(item_path, "namespaces")))
            if check.dns_label(ns, _join(_join(item_path, "namespaces"), i)) is not None
        ]
        methods = [
            m for i, m in enumerate(check.sequence(data.get("methods"),
                                                   _join(item_path, "methods")))
            if check.choice(m, _join(_join(item_path, "methods"), i), HTTP_METHODS)
        ]
        paths = []
        for i, text in enumerate(check.sequence(data.get("paths"), _join(item_path, "paths"))):
            text_path = _join(_join(item_path, "paths"), i)
            text = check.string(text, text_path)
            if text is not None and not (text.startswith(("/", "*"))):
                check.error(text_path, text, "is not a path: it must start with '/' or '*'")
            elif text is not None and "*" in text.strip("*"):
                check.error(text_path, text, "has '*' in the middle; Istio matches '*' only "
                            "as a prefix, a suffix or alone")
            elif text is not None:
                paths.append(text)
        ports = _parse_rule_ports(check, data.get("ports"), _join(item_path, "ports"), service)
        rules.append(AuthorizationRule(
            source=Source(services=tuple(services), principals=tuple(principals),
                          namespaces=tuple(namespaces)),
            methods=tuple(methods), paths=tuple(paths), ports=ports))
    return tuple(rules)


def _parse_rule_ports(check: _Checker, value: Any, path: str,
                      service: Service | None) -> tuple[int, ...]:
    """Workload ports a rule is limited to; each must be a port of the service."""
    ports: list[int] = []
    declared = service.workload_ports() if service else ()
    for index, port in enumerate(check.sequence(value, path)):
        port_path = _join(path, index)
        number = check.integer(port, port_path, 1, 65535)
        if number is not None and service is not None and number not in declared:
            known = ", ".join(str(n) for n in sorted(declared)) or "none declared"
            check.error(port_path, port,
                        f"selects nothing: not a port of the service (ports: {known})")
        elif number is not None:
            ports.append(number)
    return tuple(dict.fromkeys(ports))


def _parse_traffic_api(check: _Checker, value: Any, provider: str) -> str:
    """The routing API: the provider's default, or one the provider can render."""
    apis = TRAFFIC_APIS.get(provider, TRAFFIC_APIS["istio"])
    if value is None:
        return apis[0]
    every = tuple(dict.fromkeys(api for known in TRAFFIC_APIS.values() for api in known))
    if check.choice(value, "mesh_traffic_api", every) is None:
        return apis[0]
    if value not in apis:
        check.error("mesh_traffic_api", value, f"is not available with mesh_provider "
                    f"{provider!r} (available: {', '.join(apis)})")
        return apis[0]
    return str(value)


def _parse_linkerd(check: _Checker, value: Any) -> LinkerdSettings:
    path = "mesh_linkerd"
    if value is None:
        return LinkerdSettings()
    data = check.mapping(value, path, optional=(
        "control_plane_namespace", "viz_namespace", "probe_networks", "trace_collector",
        "trace_collector_service_account", "access_log_format"))
    if data is None:
        return LinkerdSettings()
    defaults = LinkerdSettings()
    networks = defaults.probe_networks
    if data.get("probe_networks") is not None:
        networks = _parse_networks(check, data["probe_networks"], _join(path, "probe_networks"))
    return LinkerdSettings(
        control_plane_namespace=_opt(check, data, "control_plane_namespace", path,
                                     check.dns_label, defaults.control_plane_namespace),
        viz_namespace=_opt(check, data, "viz_namespace", path, check.dns_label,
                           defaults.viz_namespace),
        probe_networks=networks or defaults.probe_networks,
        trace_collector=_opt(check, data, "trace_collector", path,
                             lambda v, p: check.string(
                                 v, p, _HOST_PORT,
                                 "a host:port address (e.g. collector.linkerd-jaeger:55678)"),
                             None),
        trace_collector_service_account=_opt(check, data, "trace_collector_service_account",
                                             path, check.dns_subdomain, None),
        access_log_format=_opt(check, data, "access_log_format", path,
                               lambda v, p: check.choice(v, p, LINKERD_ACCESS_LOG_FORMATS),
                               defaults.access_log_format),
    )


def _parse_networks(check: _Checker, value: Any, path: str) -> tuple[str, ...]:
    items = check.sequence(value, path)
    if not items and isinstance(value, list | tuple):
        check.error(path, value, "is not a non-empty list of CIDRs")
    networks: list[str] = []
    for index, item in enumerate(items):
        item_path = _join(path, index)
        text = check.string(item, item_path)
        if text is None:
            continue
        try:
            networks.append(str(ipaddress.ip_network(text, strict=True)))
        except ValueError:
            check.error(item_path, item, "is not a CIDR (e.g. 10.0.0.0/8, fd00::/8)")
    return tuple(dict.fromkeys(networks))


def _check_route_budgets(check: _Checker, services: list[Service]) -> None:
    """Warn when retries cannot all fit in the route timeout."""
    for index, service in enumerate(services):
        traffic = service.traffic
        retries = traffic.retries
        if not (traffic.timeout and retries and retries.per_try_timeout):
            continue
        budget = duration_seconds(retries.per_try_timeout) * max(retries.attempts, 1)
        if budget > duration_seconds(traffic.timeout):
            check.warn(f"mesh_services[{index}].traffic.retries", {
                "attempts": retries.attempts, "per_try_timeout": retries.per_try_timeout},
                f"need up to {budget:g}s, more than the route timeout {traffic.timeout}: "
                "the last attempts will be cut off")


def _ip_address(check: _Checker, value: Any, path: str) -> str | None:
    text = check.string(value, path)
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        check.error(path, value, "is not an IP address")
        return None


def _parse_hosts(check: _Checker, value: Any, environment: str,
                 by_name: Mapping[str, Service],
                 waves: list[InjectionWave]) -> list[MeshHost]:
    """The hosts of ``environment`` (each host's ``mesh_host``, keyed by inventory name).

    Hosts of other environments (inventories combined in one run) are left out here, after
    their ``environment`` is checked: each host belongs to exactly its own environment.
    """
    if value is None:
        return []
    if not isinstance(value, Mapping):
        check.error("mesh_hosts", value, "is not a mapping of host name to its mesh_host")
        return []
    hosts: list[MeshHost] = []
    wave_of = {ns: wave.name for wave in waves for ns in wave.namespaces}
    wave_names = [wave.name for wave in waves]
    listeners: dict[tuple[str, int], str] = {}
    for name, item in sorted(value.items(), key=lambda pair: str(pair[0])):
        path = _join("mesh_hosts", str(name))
        check.string(name, path)
        if not isinstance(item, Mapping):
            check.error(path, item, "is not a mapping (the host's mesh_host variable)")
            continue
        owner = check.dns_label(item.get("environment"), _join(path, "environment"))
        if owner != environment:
            continue  # another environment's host: checked when that environment runs
        data = check.mapping(item, path, required=("environment", "service", "address",
                                                   "app_port"),
                             optional=tuple(k for k in HOST_KEYS if k not in (
                                 "environment", "service", "address", "app_port")))
        if data is None:
            continue
        host = _parse_host(check, str(name), data, path, by_name, wave_of, wave_names)
        if host is None:
            continue
        other = listeners.setdefault((host.address, host.inbound_port), host.name)
        if other != host.name:
            check.error(_join(path, "inbound_port"), host.inbound_port,
                        f"on {host.address} is host {other!r}'s inbound port too")
            continue
        hosts.append(host)
    return hosts


def _parse_host(check: _Checker, name: str, data: Mapping[str, Any], path: str,
                by_name: Mapping[str, Service], wave_of: Mapping[str, str],
                wave_names: list[str]) -> MeshHost | None:
    """One host of this environment, or None after recording what is wrong with it."""
    service_name = check.dns_label(data["service"], _join(path, "service"))
    service = None
    if service_name is not None and not check.unknown_service(
            service_name, _join(path, "service"), by_name):
        service = by_name[service_name]
        if not service.inject:
            check.error(_join(path, "service"), service_name,
                        "has inject: false; a host that carries it gets a sidecar, "
                        "so the service must not opt out of injection")
            service = None
    address = _ip_address(check, data["address"], _join(path, "address"))

    def port(value: Any, port_path: str) -> int | None:
        return check.integer(value, port_path, 1, 65535)

    app_port = port(data["app_port"], _join(path, "app_port"))
    default_inbound = service.ports[0].port if service and service.ports else None
    inbound = _opt(check, data, "inbound_port", path, port, default_inbound)
    if inbound is None and service is not None and "inbound_port" not in data:
        check.error(_join(path, "inbound_port"), None,
                    f"is required: service {service.name!r} declares no port")
    numbers = {key: _opt(check, data, key, path, port, default) for key, default in (
        ("outbound_port", 15001), ("admin_port", 15000), ("stats_port", 15090))}
    seen_ports: dict[int, str] = {}
    for key, number in {"inbound_port": inbound, **numbers}.items():
        if number is not None and number in seen_ports:
            check.error(_join(path, key), number, f"is the same port as {seen_ports[number]}")
        elif number is not None:
            seen_ports[number] = key
    app_address = _opt(check, data, "app_address", path,
                       lambda v, p: _ip_address(check, v, p), "127.0.0.1")
    versions = tuple(v.name for v in service.versions) if service else ()
    version = _opt(check, data, "version", path, lambda v, p: _subset(check, v, p, versions),
                   versions[0] if versions else None)
    wave = _opt(check, data, "wave", path, lambda v, p: _wave(check, v, p, wave_names),
                wave_of.get(service.namespace) if service else None)
    root = _opt(check, data, "root", path, lambda v, p: check.string(
        v, p, _ABSOLUTE_PATH, "an absolute path without spaces"), "/")
    if service is not None and wave is None and "wave" not in data:
        check.warn(_join(path, "wave"), None, f"is not set and no injection wave holds "
                   f"namespace {service.namespace!r}: host {name} never gets its sidecar")
    if service is None or address is None or app_port is None or inbound is None \
            or None in numbers.values() or len(seen_ports) < 4:
        return None
    return MeshHost(
        name=name, service=service.name, address=address, app_port=app_port,
        inbound_port=inbound, version=version, wave=wave, app_address=app_address,
        outbound_port=numbers["outbound_port"] or 0, admin_port=numbers["admin_port"] or 0,
        stats_port=numbers["stats_port"] or 0, root=root)


def _wave(check: _Checker, value: Any, path: str, names: list[str]) -> str | None:
    if isinstance(value, str) and value in names:
        return value
    check.error(path, value, "is not an injection wave (waves: "
                + (", ".join(names) or "none") + ")")
    return None


def _parse_gates(check: _Checker, value: Any, telemetry: Telemetry) -> GateSettings:
    """``mesh_gates``: the window must hold at least two scrapes, or Prometheus cannot show
    a change within it."""
    path = "mesh_gates"
    settings = _parse_simple(check, value, path, GateSettings, {
        "prometheus": lambda v, p: check.string(v, p, _HTTP_URL, "an http:// or https:// URL "
                                                "without spaces"),
        "window": check.duration,
        "observe": check.boolean,
    })
    scrape = duration_seconds(telemetry.scrape_interval)
    if duration_seconds(settings.window) < 2 * scrape:
        check.error(_join(path, "window"), settings.window,
                    f"is shorter than twice mesh_telemetry.scrape_interval "
                    f"({telemetry.scrape_interval}): Prometheus cannot show a change within it")
    return settings


def _parse_promotion_order(check: _Checker, value: Any, environment: str) -> tuple[str, ...]:
    """``mesh_promotion_order``: every environment once, in the order changes are promoted;
    it must name the environment that runs."""
    path = "mesh_promotion_order"
    names: list[str] = []
    for index, item in enumerate(check.sequence(value, path)):
        name = check.dns_label(item, _join(path, index))
        if name is not None and name in names:
            check.error(_join(path, index), name, "is a duplicate environment")
        elif name is not None:
            names.append(name)
    if value is not None and isinstance(value, list | tuple) and names \
            and len(names) == len(value) and environment not in names:
        check.error(path, list(value), f"does not name this environment {environment!r}; "
                    "list every environment, in the order changes are promoted")
    return tuple(names)


def _check_host_calls(check: _Checker, services: list[Service], on_hosts: set[str]) -> None:
    """Calls between Kubernetes and host services are not meshed: say so, never silently."""
    for index, service in enumerate(services):
        for call_index, callee in enumerate(service.calls):
            path = f"mesh_services[{index}].calls[{call_index}]"
            if service.name in on_hosts and callee not in on_hosts:
                check.warn(path, callee, f"is a Kubernetes service called from host service "
                           f"{service.name!r}: the host sidecar has no route to it, so the "
                           "call is not meshed (no mTLS, no routing); call it through the "
                           "cluster's ingress")
            elif service.name not in on_hosts and callee in on_hosts:
                check.warn(path, callee, f"runs on hosts and is called from Kubernetes "
                           f"service {service.name!r}: the call is not meshed; the host "
                           "accepts its plaintext only while permissive (before strict_mtls) "
                           "or under a PERMISSIVE mesh_mtls_exceptions entry")
