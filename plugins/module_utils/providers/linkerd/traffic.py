"""Linkerd's traffic stage: HTTPRoutes (or SMI TrafficSplits) with their backends, retry and
timeout annotations, and failure accrual; and the gaps where Linkerd cannot say what the
intent asks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...intent.model import Intent, Service
from ...plan.ingress import IngressBinding
from ...plan.model import PlannedObject, StageContribution
from ...plan.model import template_meta as _meta
from ..gatewayapi.routes import (
    backend_name,
    grpc_route,
    http_route,
    route_ports,
    routes_versions,
    version_services,
    whole_duration,
)
from .api import (
    GRPC_RETRY_CONDITIONS,
    RETRY_CONDITIONS,
    SPLIT,
    linkerd_gap,
)


def set_fields(value: Any) -> dict[str, Any]:
    return {key: item for key, item in vars(value).items() if item is not None}


def failure_accrual(intent: Intent, service: Service,
                    contribution: StageContribution) -> dict[str, str]:
    """The ``balancer.linkerd.io`` annotations for the service's outlier detection; gaps for
    what consecutive-failures accrual cannot say."""
    outlier = service.traffic.outlier_detection
    if outlier is None:
        return {}
    path = f"{intent.service_path(service)}.traffic.outlier_detection"
    unsupported = {
        "consecutive_gateway_errors": "Linkerd counts every 5xx response as a failure",
        "interval": "Linkerd trips on consecutive failures, with no analysis interval",
        "max_ejection_percent": "Linkerd can make every endpoint unavailable",
    }
    for key, reason in unsupported.items():
        value = getattr(outlier, key)
        if value is not None:
            contribution.gaps.append(linkerd_gap(f"{path}.{key}", value, reason, service))
    annotations = {"balancer.linkerd.io/failure-accrual": "consecutive"}
    if outlier.consecutive_5xx_errors is not None:
        annotations["balancer.linkerd.io/failure-accrual-consecutive-max-failures"] = \
            str(outlier.consecutive_5xx_errors)
    if outlier.base_ejection_time is not None:
        penalty, exact = whole_duration(outlier.base_ejection_time)
        annotations["balancer.linkerd.io/failure-accrual-consecutive-min-penalty"] = penalty
        if not exact:
            contribution.gaps.append(linkerd_gap(
                f"{path}.base_ejection_time", outlier.base_ejection_time,
                f"Linkerd durations are whole milliseconds; rendered as {penalty}", service))
    return annotations


def accrual_elsewhere(service: Service, names: list[str], accrual: Mapping[str, str],
                      contribution: StageContribution, path: str) -> None:
    """Failure accrual for Services meshstage does not own: a gap and the command."""
    command = " ".join(f"{key}={value}" for key, value in accrual.items())
    for name in names:
        contribution.gaps.append(linkerd_gap(
            f"{path}.traffic.outlier_detection", set_fields(service.traffic.outlier_detection),
            f"Linkerd reads failure accrual from annotations on Service "
            f"{service.namespace}/{name}, which meshstage does not own; annotate it "
            "(see the runbook)", service))
        contribution.notes.append(
            f"Failure accrual for `{service.namespace}/{name}`: `kubectl annotate service "
            f"-n {service.namespace} {name} {command}`.")


def _retry_annotations(intent: Intent, service: Service, contribution: StageContribution,
                       grpc: bool = False) -> dict[str, str]:
    """``retry.linkerd.io/*`` and ``timeout.linkerd.io/request`` for the service's route: an
    HTTPRoute takes ``retry.linkerd.io/http`` (5xx, gateway-error, status codes), a GRPCRoute
    ``retry.linkerd.io/grpc`` (gRPC statuses); each is "not valid" on the other kind
    (https://linkerd.io/2/reference/retries)."""
    traffic = service.traffic
    path = f"{intent.service_path(service)}.traffic"
    annotations: dict[str, str] = {}
    if traffic.timeout:
        annotations["timeout.linkerd.io/request"] = _duration(
            traffic.timeout, f"{path}.timeout", service, contribution)
    retries = traffic.retries
    if retries is None or retries.attempts == 0:
        return annotations
    route = "a GRPCRoute" if grpc else "an HTTPRoute"
    conditions: list[str] = []
    if retries.retry_on is None:
        contribution.gaps.append(linkerd_gap(
            f"{path}.retries.retry_on", None,
            "Istio's default conditions (connect-failure, refused-stream, unavailable, "
            "cancelled, retriable-status-codes) have no Linkerd form; Linkerd retries "
            + ("the gRPC statuses it retries by default" if grpc else "5xx responses")
            + f" on {route}", service))
    else:
        dropped = []
        for condition in retries.retry_on.split(","):
            if (condition in GRPC_RETRY_CONDITIONS) if grpc else (
                    condition in RETRY_CONDITIONS or _status_code(condition)):
                conditions.append(condition)
            else:
                dropped.append(condition)
        if dropped:
            takes = ("retry.linkerd.io/grpc (on the GRPCRoute of a gRPC port) takes the gRPC "
                     f"statuses {', '.join(GRPC_RETRY_CONDITIONS)}" if grpc else
                     "retry.linkerd.io/http (on the HTTPRoute of an HTTP port) takes 5xx, "
                     "gateway-error and HTTP status codes")
            contribution.gaps.append(linkerd_gap(
                f"{path}.retries.retry_on", ",".join(dropped),
                f"{takes}; " + ("these conditions are left out" if conditions else
                                f"no condition is left, so {route} gets no retries"), service))
            if not conditions:
                return annotations
    annotations["retry.linkerd.io/limit"] = str(retries.attempts)
    if conditions:
        annotations["retry.linkerd.io/grpc" if grpc else "retry.linkerd.io/http"] = \
            ",".join(conditions)
    if retries.per_try_timeout:
        annotations["retry.linkerd.io/timeout"] = _duration(
            retries.per_try_timeout, f"{path}.retries.per_try_timeout", service, contribution)
    return annotations


def _status_code(condition: str) -> bool:
    bounds = condition.split("-", 1)
    return all(part.isdigit() and 100 <= int(part) < 600 for part in bounds) and \
        (len(bounds) == 1 or int(bounds[0]) <= int(bounds[1]))


def _duration(text: str, path: str, service: Service,
              contribution: StageContribution) -> str:
    value, exact = whole_duration(text)
    if not exact:
        contribution.gaps.append(linkerd_gap(
            path, text, f"Linkerd durations are whole milliseconds; rendered as {value}",
            service))
    return value


def http_routes(intent: Intent, service: Service, contribution: StageContribution,
                accrual: Mapping[str, str], binding: IngressBinding | None = None) -> None:
    path = intent.service_path(service)
    ports = route_ports(service)
    if not ports:
        contribution.gaps.append(linkerd_gap(
            f"{path}.traffic", {"timeout": service.traffic.timeout,
                                "split": len(service.traffic.split) or None},
            "an HTTPRoute attaches to an HTTP, HTTP2 or GRPC port and the service has none",
            service))
        if accrual:
            accrual_elsewhere(service, [service.name], accrual, contribution, path)
        return
    kinds = {port.protocol == "GRPC" for port in ports}
    annotations = {grpc: _retry_annotations(intent, service, contribution, grpc)
                   for grpc in sorted(kinds)}
    for port in ports:
        if port.protocol == "GRPC":
            contribution.objects.append(grpc_route(intent, service, port,
                                                   annotations=annotations[True] or None))
        else:
            contribution.objects.append(http_route(intent, service, port,
                                                   annotations=annotations[False] or None))
        if binding is not None and binding.gateway is not None:
            # the gateway's implementation applies it: Linkerd's annotations are left off
            contribution.objects.append(http_route(intent, service, port,
                                                   gateway=binding.gateway,
                                                   hostnames=binding.hosts))
    _version_backends(intent, service, contribution, accrual)


def _version_backends(intent: Intent, service: Service, contribution: StageContribution,
                      accrual: Mapping[str, str]) -> None:
    """Per-version Services (failure accrual on them); gaps for the ones the team owns."""
    contribution.objects.extend(version_services(intent, service, annotations=accrual or None))
    path = intent.service_path(service)
    if not accrual:
        return
    if not routes_versions(service):
        accrual_elsewhere(service, [service.name], accrual, contribution, path)
        return
    owned_elsewhere = [v.service for v in service.versions if v.service]
    if owned_elsewhere:
        accrual_elsewhere(service, owned_elsewhere, accrual, contribution, path)


def smi_split(intent: Intent, service: Service, contribution: StageContribution,
              accrual: Mapping[str, str]) -> None:
    """``mesh_traffic_api: smi``: a TrafficSplit for weights; the rest is not expressible."""
    traffic = service.traffic
    path = f"{intent.service_path(service)}.traffic"
    reason = "an SMI TrafficSplit has weights only (mesh_traffic_api smi); use gateway-api"
    if traffic.header_routes:
        contribution.gaps.append(linkerd_gap(f"{path}.header_routes", len(traffic.header_routes),
                                             reason, service))
    if traffic.timeout:
        contribution.gaps.append(linkerd_gap(f"{path}.timeout", traffic.timeout, reason, service))
    if traffic.retries:
        contribution.gaps.append(linkerd_gap(f"{path}.retries", set_fields(traffic.retries), reason,
                                             service))
    if not traffic.split:
        if accrual:
            accrual_elsewhere(service, [service.name], accrual, contribution,
                              intent.service_path(service))
        return
    contribution.objects.append(PlannedObject(
        api_version=SPLIT, kind="TrafficSplit", name=service.name,
        namespace=service.namespace, template="linkerd/traffic_split.yaml.j2",
        context={
            **_meta(service.name, service.namespace, intent),
            "service": service.name,
            # the milli-units linkerd-smi's own examples use: 90% is 900m
            "backends": [{"service": backend_name(service, item.subset),
                          "weight": f"{item.weight * 10}m"} for item in traffic.split],
        },
    ))
    _version_backends(intent, service, contribution, accrual)
