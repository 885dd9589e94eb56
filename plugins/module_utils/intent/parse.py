"""The intent: one description of the estate, typed, validated, defaults applied.

``parse_intent(variables)`` takes the ``mesh_*`` inventory variables of one environment and
returns an ``Intent`` and a list of warnings, or raises ``IntentErrors`` listing every
problem found, each naming the field path and the bad value::

    mesh_services[3].canary.weight: 110 is over 100

Unknown keys are errors: a typo must not pass silently. Nothing here touches the disk.
The variables are documented in docs/intent.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .._plain import plain_data
from ..errors import IntentErrors
from ..providers.registry import TRAFFIC_APIS
from ..stages import STAGE_NAMES, Stage
from .callers import parse_external_callers, with_catalogue_callers
from .checker import (
    CHART_VERSION,
    GIT_URL,
    HELM_REPOSITORY,
    Checker,
    join_path,
    optional,
    parse_simple,
    suggestion,
    unknown_key,
)
from .hosts import (
    check_host_calls,
    parse_gates,
    parse_hosts,
    parse_promotion_order,
    parse_replaced,
)
from .model import (
    NATIVE_SIDECAR_MODES,
    PROXY_IMAGE_TYPES,
    Cluster,
    GitOpsSource,
    InstallSettings,
    Intent,
    ProxySettings,
)
from .policies import (
    parse_authorization,
    parse_ingress_gateway,
    parse_linkerd,
    parse_mtls_exceptions,
    parse_telemetry,
    parse_waves,
)
from .services import (
    SERVICE_KEYS,
    check_calls,
    check_canary_windows,
    check_route_budgets,
    check_shared_accounts,
    parse_services,
)
from .workloads import check_native_sidecars, kubernetes_version

# --------------------------------------------------------------------------- the model


# --------------------------------------------------------------------------- the checker


# --------------------------------------------------------------------------- parsing

_TOP_KEYS: tuple[str, ...] = (
    "mesh_environment", "mesh_stage", "mesh_provider", "mesh_trust_domain",
    "mesh_root_namespace", "mesh_revision", "mesh_services", "mesh_injection_waves",
    "mesh_injected_waves", "mesh_mtls_exceptions", "mesh_telemetry", "mesh_authorization",
    "mesh_default_deny", "mesh_cluster", "mesh_gitops", "mesh_ingress_gateway",
    "mesh_service_overrides", "mesh_proxy", "mesh_install", "mesh_traffic_api", "mesh_linkerd",
    "mesh_hosts", "mesh_gates", "mesh_promotion_order", "mesh_external_callers",
    "mesh_replaced",
)


# Variables that steer a run rather than describe the estate; not part of the intent.
RUN_VARIABLES: frozenset[str] = frozenset({
    "mesh_gitops_dir", "mesh_crd_dir", "mesh_crd_dirs", "mesh_template_dir",
    "mesh_template_dirs", "mesh_kubernetes_version", "mesh_apply", "mesh_check_paths",
    "mesh_ca_dir", "mesh_envoy_binary", "mesh_configure_hosts",
    "mesh_force_gates", "mesh_cluster_facts", "mesh_git_hooks",
    # playbooks/canary.yml: the service whose canary runs, where Prometheus answers, and a
    # roll back by hand
    "mesh_canary_service", "mesh_prometheus_url", "mesh_canary_rollback",
    # playbooks/import.yml: what to import, where to, and what Prometheus saw
    "mesh_import_paths", "mesh_import_output", "mesh_import_environment",
    "mesh_import_provider", "mesh_import_prometheus", "mesh_import_window",
})


def unknown_mesh_variables(names: list[str]) -> list[str]:
    """``mesh_*`` variables that are neither intent nor run options: likely typos."""
    return sorted(name for name in names if name.startswith("mesh_")
                  and name not in _TOP_KEYS and name not in RUN_VARIABLES)


def unknown_variables_message(names: list[str]) -> str:
    """The error for misspelt ``mesh_*`` variables, each with the closest known name."""
    known = {*_TOP_KEYS, *RUN_VARIABLES}
    return ("unknown mesh_* variable(s): " + ", ".join(f"{name}{suggestion(name, known)}"
                                                       for name in names)
            + " (see docs/intent.md for the known ones)")


def intent_keys() -> tuple[str, ...]:
    """The inventory variables that make up the intent."""
    return _TOP_KEYS


def parse_intent(variables: Mapping[str, Any]) -> tuple[Intent, list[str]]:
    """Validate the ``mesh_*`` variables and build the Intent, or raise IntentErrors."""
    return parse_plain_intent(plain_data(variables))


def parse_plain_intent(variables: Mapping[str, Any]) -> tuple[Intent, list[str]]:
    """``parse_intent`` of variables that are plain data already (``plain_data``'s copy)."""
    check = Checker()
    data = check.mapping(variables, "", required=("mesh_environment", "mesh_stage",
                                                  "mesh_services"), optional=_TOP_KEYS)
    if data is None:
        raise IntentErrors(check.errors)

    environment = check.dns_label(data["mesh_environment"], "mesh_environment") or "invalid"
    stage_name = check.choice(data["mesh_stage"], "mesh_stage", STAGE_NAMES)
    provider = optional(check, data, "mesh_provider", "",
                        lambda v, p: check.choice(v, p, tuple(TRAFFIC_APIS)), "istio")
    traffic_api = _parse_traffic_api(check, data.get("mesh_traffic_api"), provider)
    linkerd = parse_linkerd(check, data.get("mesh_linkerd"))
    trust_domain = optional(check, data, "mesh_trust_domain", "", check.dns_subdomain,
                            "cluster.local")
    root_namespace = optional(check, data, "mesh_root_namespace", "", check.dns_label,
                              "istio-system")
    revision = optional(check, data, "mesh_revision", "", check.dns_label, None)

    raw_services = _apply_overrides(check, data.get("mesh_services"),
                                    data.get("mesh_service_overrides"))
    services = parse_services(check, raw_services)
    by_name = {service.name: service for service in services}
    for item in raw_services:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str) \
                and item["name"] not in by_name:
            check.refused_services.add(item["name"])
            if isinstance(item.get("namespace"), str):
                check.refused_namespaces.add(item["namespace"])
    check_calls(check, raw_services, by_name)

    waves, service_waves = parse_waves(check, data.get("mesh_injection_waves"), by_name)
    injected = optional(check, data, "mesh_injected_waves", "",
                        lambda v, p: check.integer(v, p, 0, len(waves)), len(waves))
    exceptions = parse_mtls_exceptions(check, data.get("mesh_mtls_exceptions"), by_name)
    telemetry = parse_telemetry(check, data.get("mesh_telemetry"))
    if provider == "linkerd" and not (isinstance(data.get("mesh_telemetry"), Mapping)
                                      and data["mesh_telemetry"].get("prometheus_namespace")):
        # Linkerd's Prometheus is viz's: its default namespace follows mesh_linkerd
        telemetry = replace(telemetry, prometheus_namespace=linkerd.viz_namespace)
    authorization = parse_authorization(check, data.get("mesh_authorization"), by_name,
                                        trust_domain)
    check_shared_accounts(check, services, authorization,
                          stage_name == Stage.AUTHORIZATION.value)
    default_deny = optional(check, data, "mesh_default_deny", "", check.boolean, True)
    cluster = parse_simple(check, data.get("mesh_cluster"), "mesh_cluster", Cluster,
                           {"name": check.dns_subdomain, "server": check.string,
                            "domain": check.dns_subdomain,
                            "kubernetes_version": lambda v, p: kubernetes_version(check, v, p)})
    gitops = parse_simple(check, data.get("mesh_gitops"), "mesh_gitops", GitOpsSource, {
        "repo_url": lambda v, p: check.string(v, p, GIT_URL, "an http://, https:// or "
                                              "ssh:// Git URL without spaces"),
        "branch": check.string,
        "argocd_namespace": check.dns_label, "argocd_project": check.dns_subdomain,
        "flux_namespace": check.dns_label, "sync_interval": check.duration,
    })
    ingress = parse_ingress_gateway(check, data.get("mesh_ingress_gateway"))
    quantity = check.quantity
    proxy = parse_simple(check, data.get("mesh_proxy"), "mesh_proxy", ProxySettings, {
        "concurrency": lambda v, p: check.integer(v, p, 0, 64),
        "image_type": lambda v, p: check.choice(v, p, PROXY_IMAGE_TYPES),
        "cpu": quantity, "memory": quantity, "cpu_limit": quantity, "memory_limit": quantity,
        "native_sidecars": lambda v, p: check.choice(v, p, NATIVE_SIDECAR_MODES),
        "hold_application": check.boolean,
    })
    install = parse_simple(check, data.get("mesh_install"), "mesh_install", InstallSettings, {
        "version": lambda v, p: check.string(v, p, CHART_VERSION,
                                             "a pinned chart version (e.g. 1.29.2)"),
        "repository": lambda v, p: check.string(v, p, HELM_REPOSITORY, "an https:// or "
                                                "oci:// Helm repository URL without spaces"),
    })
    external = parse_external_callers(check, data.get("mesh_external_callers"), by_name)
    check_route_budgets(check, services)
    hosts = parse_hosts(check, data.get("mesh_hosts"), environment, by_name, waves)
    check_host_calls(check, services, {host.service for host in hosts})
    gates = parse_gates(check, data.get("mesh_gates"), telemetry)
    promotion = parse_promotion_order(check, data.get("mesh_promotion_order"), environment)
    replaced = parse_replaced(check, data.get("mesh_replaced"))

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
        promotion_order=promotion, external_callers=tuple(external), replaced=replaced,
        by_name=by_name,
        service_waves=service_waves,
    )
    intent = with_catalogue_callers(intent)
    check_canary_windows(check, intent)
    check_native_sidecars(check, intent)
    if check.errors:
        raise IntentErrors(check.errors)
    return intent, check.warnings


def _apply_overrides(check: Checker, services: Any, overrides: Any) -> list[Any]:
    """Per-environment overrides, deep-merged into the shared catalogue by service name."""
    if services is None:
        check.error("mesh_services", None, "is null (the key has no value): list the services, "
                    "or write [] for none")
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
        path = join_path("mesh_service_overrides", str(name))
        if name not in names:
            check.error(path, name, "is not a service in mesh_services"
                        + suggestion(name, [n for n in names if isinstance(n, str)]))
        elif not isinstance(fields, Mapping):
            check.error(path, fields, "is not a mapping of the fields it overrides")
        else:
            # Unknown keys are reported here, where they were written, not in mesh_services.
            valid[name] = {key: value for key, value in fields.items()
                           if key in SERVICE_KEYS}
            for key in fields:
                if key not in SERVICE_KEYS:
                    check.error(join_path(path, str(key)), fields[key],
                                unknown_key(key, set(SERVICE_KEYS)))
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


def _parse_traffic_api(check: Checker, value: Any, provider: str) -> str:
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


