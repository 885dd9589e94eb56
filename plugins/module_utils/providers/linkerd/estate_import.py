"""What an estate's Linkerd says, as the intent says it (``meshstage import``): the control
plane's values, the namespaces' injection and default inbound policy, telemetry annotations,
the Servers' protocols and mTLS exceptions, retry and timeout annotations of the services'
routes, failure accrual, and SMI TrafficSplits. Authorization is read in
``estate_policy.py``.

- Injection: ``linkerd.io/inject: enabled`` on a namespace
  (https://linkerd.io/2-edge/features/proxy-injection/); the default inbound policy
  ``config.linkerd.io/default-inbound-policy`` (all-unauthenticated, all-authenticated,
  deny: https://linkerd.io/2-edge/reference/authorization-policy/#default-policies).
- A Server's ``proxyProtocol`` says its port's protocol; a Server that is not ``deny`` with
  meshstage's ``meshstage.io/reason`` annotation is an mTLS exception.
- ``retry.linkerd.io/*`` and ``timeout.linkerd.io/request`` on a service's HTTPRoute
  (https://linkerd.io/2-edge/reference/retries/, /reference/timeouts/);
  ``balancer.linkerd.io/failure-accrual*`` on its Services
  (https://linkerd.io/2-edge/reference/circuit-breaking/).
- A TrafficSplit (``split.smi-spec.io``) splits a service over its version backends.
"""

from __future__ import annotations

from typing import Any

from ...estate.objects import Resource, as_list, as_mapping
from ...inventory.draft import Draft, ServiceDraft
from ...stages import Stage
from ..gatewayapi.estate_import import service_routes
from .api import ACCESS_LOG, INBOUND_POLICY, INJECT, PROXY_PROTOCOL, TRACE_ACCOUNT, TRACE_COLLECTOR
from .estate_policy import import_policy, servers_of

_PROTOCOLS = {value: key for key, value in PROXY_PROTOCOL.items()
              if key in ("HTTP", "HTTP2", "GRPC", "TCP", "TLS")}
_STAGE_OF_POLICY = {"all-authenticated": Stage.STRICT_MTLS, "deny": Stage.AUTHORIZATION}
_ACCRUAL = "balancer.linkerd.io/failure-accrual"


def import_linkerd(draft: Draft) -> None:
    """Everything an estate's Linkerd objects say, into ``draft``."""
    _control_plane(draft)
    _namespaces(draft)
    _servers(draft)
    _route_annotations(draft)
    _failure_accrual(draft)
    _traffic_splits(draft)
    import_policy(draft)


def _control_plane(draft: Draft) -> None:
    values = as_mapping(draft.charts.get("linkerd-control-plane"))
    if not values:
        return
    linkerd = draft.shared.setdefault("mesh_linkerd", {})
    if values.get("identityTrustDomain"):
        draft.shared["mesh_trust_domain"] = str(values["identityTrustDomain"])
        draft.note("mesh_trust_domain", "from Linkerd's chart values (identityTrustDomain)")
    if values.get("clusterDomain") and values["clusterDomain"] != "cluster.local":
        draft.environment.setdefault("mesh_cluster", {})["domain"] = values["clusterDomain"]
    networks = as_list(as_mapping(values.get("policyController")).get("probeNetworks"))
    if networks and set(map(str, networks)) != {"0.0.0.0/0", "::/0"}:
        linkerd["probe_networks"] = [str(n) for n in networks]
    proxy = as_mapping(values.get("proxy"))
    resources = as_mapping(proxy.get("resources"))
    found = {key: as_mapping(resources.get(part)).get(kind) for key, part, kind in (
        ("cpu", "cpu", "request"), ("memory", "memory", "request"),
        ("cpu_limit", "cpu", "limit"), ("memory_limit", "memory", "limit"))}
    found = {k: str(v) for k, v in found.items() if v is not None}
    workers = as_mapping(as_mapping(proxy.get("runtime")).get("workers"))
    if workers.get("minimum") is not None and workers.get("minimum") == workers.get("maximum"):
        found["concurrency"] = workers["minimum"]
    elif workers.get("maximumCPURatio") == 1.0:
        found["concurrency"] = 0
    if found:
        draft.shared.setdefault("mesh_proxy", {}).update(found)
    selector = as_mapping(as_mapping(values.get("proxyInjector")).get("objectSelector"))
    for expression in (as_mapping(e) for e in as_list(selector.get("matchExpressions"))):
        if expression.get("key") == "app" and expression.get("operator") == "NotIn":
            for name in as_list(expression.get("values")):
                service = draft.services.get(str(name))
                if service is not None:
                    service.put("inject", False, "Linkerd's proxy injector leaves it out "
                                "(proxyInjector.objectSelector)")
                    draft.held.add(service.name)
    if not linkerd:
        draft.shared.pop("mesh_linkerd")


def _namespaces(draft: Draft) -> None:
    linkerd: dict[str, Any] = {}
    logs = []
    for namespace in draft.index.of_kind("Namespace"):
        annotations = namespace.annotations
        # "ingress": injected in ingress mode (an ingress controller's namespace)
        # https://linkerd.io/2-edge/tasks/using-ingress/#ingress-mode
        if annotations.get(INJECT) in ("enabled", "ingress"):
            draft.injected[namespace.name] = \
                f"{namespace.display} {INJECT}={annotations[INJECT]}"
            draft.hint_stage(Stage.INJECTION, f"{namespace.display} is annotated for injection")
            logs.append(annotations.get(ACCESS_LOG))
        policy = annotations.get(INBOUND_POLICY)
        if policy in _STAGE_OF_POLICY:
            draft.hint_stage(_STAGE_OF_POLICY[policy], f"{namespace.display} defaults to "
                             f"{policy}")
        if policy == "deny":
            draft.default_deny.append(f"{namespace.display} defaults to deny")
        elif policy is not None and policy not in ("all-unauthenticated", "all-authenticated"):
            draft.keep(namespace, f"its default inbound policy {policy} is none the stages "
                       "render")
        if annotations.get(TRACE_COLLECTOR):
            linkerd["trace_collector"] = annotations[TRACE_COLLECTOR]
            if annotations.get(TRACE_ACCOUNT):
                linkerd["trace_collector_service_account"] = annotations[TRACE_ACCOUNT]
        if annotations.get(ACCESS_LOG) in ("json",):
            linkerd["access_log_format"] = annotations[ACCESS_LOG]
        if annotations.get(TRACE_COLLECTOR) or annotations.get(ACCESS_LOG):
            draft.hint_stage(Stage.OBSERVABILITY, f"{namespace.display} has telemetry "
                             "annotations")
    if linkerd:
        draft.shared.setdefault("mesh_linkerd", {}).update(linkerd)
        draft.note("mesh_linkerd", "from the namespaces' Linkerd annotations")
    if logs and not any(logs) and any(h[0].reached(Stage.OBSERVABILITY)
                                      for h in draft.stage_hints):
        draft.shared.setdefault("mesh_telemetry", {})["access_log_provider"] = None


def _servers(draft: Draft) -> None:
    """Protocols and mTLS exceptions from the Servers of the services' pods."""
    for service, servers in servers_of(draft).items():
        modes: dict[int, str] = {}
        reason = None
        for server, port in servers:
            protocol = _PROTOCOLS.get(str(server.spec.get("proxyProtocol") or ""))
            _protocol(service, port, protocol, server)
            access = str(server.spec.get("accessPolicy") or "")
            if server.annotations.get("meshstage.io/reason") and access != "deny":
                modes[port] = "STRICT" if access == "all-authenticated" else "PERMISSIVE"
                reason = server.annotations["meshstage.io/reason"]
        if modes:
            draft.hint_stage(Stage.STRICT_MTLS, f"the Servers of {service.name} are an mTLS "
                             "exception")
            mode = max(("PERMISSIVE", "STRICT"), key=list(modes.values()).count)
            mode = "PERMISSIVE" if mode == "STRICT" else mode
            exception: dict[str, Any] = {"service": service.name, "mode": mode,
                                         "reason": reason}
            ports = {p: m for p, m in sorted(modes.items()) if m != mode}
            if ports:
                exception["ports"] = ports
            draft.mtls_exceptions.append(exception)


def _protocol(service: ServiceDraft, port: int, protocol: str | None,
              server: Resource) -> None:
    """A Server's proxyProtocol for a port whose protocol was only guessed."""
    if protocol is None:
        return
    for number, entry in enumerate(service.fields.get("ports") or []):
        if entry.get("target_port", entry["port"]) != port:
            continue
        notes = service.notes.get(f"ports[{number}]", [])
        if entry["protocol"] != protocol and any("guessed" in n for n in notes):
            entry["protocol"] = protocol
            service.notes[f"ports[{number}]"] = [
                f"protocol {protocol}: from the proxyProtocol of {server.display}"]


def _route_annotations(draft: Draft) -> None:
    for name, routes in service_routes(draft).items():
        annotations = routes[0].annotations
        traffic = draft.services[name].fields.get("traffic")
        if traffic is None:
            continue
        if annotations.get("timeout.linkerd.io/request"):
            traffic["timeout"] = annotations["timeout.linkerd.io/request"]
        if annotations.get("retry.linkerd.io/limit"):
            retries: dict[str, Any] = {"attempts": int(annotations["retry.linkerd.io/limit"])}
            if annotations.get("retry.linkerd.io/timeout"):
                retries["per_try_timeout"] = annotations["retry.linkerd.io/timeout"]
            if annotations.get("retry.linkerd.io/http"):
                retries["retry_on"] = annotations["retry.linkerd.io/http"]
            traffic["retries"] = retries


def _failure_accrual(draft: Draft) -> None:
    """Outlier detection from the failure accrual annotations of a service's Services."""
    for resource in draft.index.of_kind("Service"):
        annotations = resource.annotations
        if annotations.get(_ACCRUAL) != "consecutive":
            continue
        service = draft.service_for_host(resource.namespace, resource.name)
        if service is None:
            continue
        outlier: dict[str, Any] = {}
        failures = annotations.get(f"{_ACCRUAL}-consecutive-max-failures")
        if failures and failures.isdigit():
            outlier["consecutive_5xx_errors"] = int(failures)
        penalty = annotations.get(f"{_ACCRUAL}-consecutive-min-penalty")
        if penalty:
            outlier["base_ejection_time"] = penalty
        if outlier:
            service.fields.setdefault("traffic", {})["outlier_detection"] = outlier
            service.note("traffic", f"outlier detection from the failure accrual of "
                         f"{resource.display}")


def _traffic_splits(draft: Draft) -> None:
    for split in draft.index.of_kind("TrafficSplit"):
        service = draft.service_at(split.namespace, str(split.spec.get("service") or ""))
        draft.hint_stage(Stage.TRAFFIC, f"{split.display} splits traffic")
        weights: dict[str, int] = {}
        for backend in (as_mapping(b) for b in as_list(split.spec.get("backends"))):
            version = draft.version_of_backend(split.namespace, str(backend.get("service")))
            weight = _milli(backend.get("weight"))
            if service is None or version is None or weight is None:
                weights = {}
                break
            weights[version] = weight
        if service is None or not weights or sum(weights.values()) != 100:
            draft.keep(split, "its backends are not versions of one service, or its weights "
                       "do not sum to 100%")
            continue
        service.fields.setdefault("traffic", {})["split"] = weights
        draft.shared["mesh_traffic_api"] = "smi"
        draft.became(split, f"{service.name}: traffic.split (mesh_traffic_api smi)")


def _milli(value: Any) -> int | None:
    """An SMI weight (``900m``, or a plain number out of the backends' sum) in percent."""
    text = str(value)
    if text.endswith("m") and text[:-1].isdigit():
        return int(text[:-1]) // 10
    return int(text) if text.isdigit() else None

