"""Linkerd's authorization objects per service port: the Server, the HTTPRoutes its rules
need, AuthorizationPolicies and the MeshTLS and Network authentications they require, and
the proxy admin Server that keeps probes and scrapes working."""

from __future__ import annotations

from collections.abc import Mapping

from ...intent.model import Intent, MtlsExemption, Port, Service
from ...plan.model import PlannedObject, StageContribution, metadata
from ...plan.model import template_meta as _meta
from ...stages import Stage
from ..gatewayapi.routes import (
    GATEWAY,
)
from .api import (
    ADMIN_SERVER,
    ALL_NETWORKS,
    EXCEPTION_POLICY,
    POLICY,
    POLICY_GROUP,
    PROBE_NETWORKS,
    PROXY_PROTOCOL,
    SCRAPERS,
    SERVER,
)
from .policy import (
    ALL,
    Clients,
    PortPolicy,
    RouteGroup,
    service_policy,
    service_ports,
)


def mtls_exception(intent: Intent, service: Service) -> MtlsExemption | None:
    """The service's exemption at this stage: its mTLS exception, and the ports callers
    without a mesh identity reach (``Intent.exemptions``)."""
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return None
    return next((e for e in intent.exemptions() if e.service == service.name), None)


def _server_name(service: Service, port: Port) -> str:
    return f"{service.name}-{port.name}"


def server_objects(intent: Intent, service: Service) -> list[PlannedObject]:
    """A Server per workload port; its access policy computed from the stage: ``deny`` once
    authorization governs the service, else the mTLS exception's mode."""
    exception = mtls_exception(intent, service)
    governed = intent.stage.reached(Stage.AUTHORIZATION) and (
        intent.default_deny or bool(service_policy(intent, service, _callers(intent, service))
                                    .allow))
    objects = []
    for port in service_ports(service):
        number = port.target_port or port.port
        if governed:
            access = "deny"
        elif exception is not None:
            mode = exception.ports.get(number, exception.mode)
            if mode == "UNSET":
                continue  # the namespace default (all-authenticated) says the same
            access = EXCEPTION_POLICY[mode]
        else:
            continue
        name = _server_name(service, port)
        annotations = {"meshstage.io/reason": exception.reason} if exception else None
        objects.append(PlannedObject(
            api_version=SERVER, kind="Server", name=name, namespace=service.namespace,
            template="linkerd/server.yaml.j2",
            context={
                **_meta(name, service.namespace, intent, annotations=annotations),
                "pod_selector": {"matchLabels": service.selector},
                "port": number,
                "proxy_protocol": PROXY_PROTOCOL[port.protocol],
                "access_policy": access,
            },
        ))
    return objects


def _callers(intent: Intent, service: Service) -> list[Service]:
    return [caller for caller in intent.services if service.name in caller.calls]


def port_objects(intent: Intent, service: Service, found: PortPolicy,
                 contribution: StageContribution, shared: dict[str, set[str]]) -> None:
    """The routes, authentications and policies of one port."""
    server = _server_name(service, found.port)
    namespace = service.namespace
    if not found.routes:
        _grant(intent, namespace, {"group": POLICY_GROUP, "kind": "Server", "name": server},
               server, found.server_clients, contribution, shared)
        return
    for number, group in enumerate(found.routes, start=1):
        route = f"{server}-{number}"
        contribution.objects.append(_inbound_route(intent, namespace, route, server, group))
        _grant(intent, namespace, {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                   "name": route}, route, group.clients, contribution, shared)


def _inbound_route(intent: Intent, namespace: str, name: str, server: str,
                   group: RouteGroup) -> PlannedObject:
    meta = metadata(name, namespace, intent)
    return PlannedObject(
        api_version=GATEWAY, kind="HTTPRoute", name=name, namespace=namespace,
        template="gatewayapi/http_route.yaml.j2",
        context={
            "name": name, "namespace": namespace, "labels": meta["labels"], "annotations": None,
            "parent_refs": [{"group": POLICY_GROUP, "kind": "Server", "name": server}],
            "rules": [{"matches": [m.as_gateway() for m in group.matches],
                       "backend_refs": None, "timeouts": None}],
        },
    )


def _grant(intent: Intent, namespace: str, target: Mapping[str, str], name: str,
           clients: Clients, contribution: StageContribution,
           shared: dict[str, set[str]]) -> None:
    """AuthorizationPolicies that let ``clients`` reach ``target``: one for the mesh
    identities (a MeshTLSAuthentication of the same name), one for a network."""
    identities = sorted(c.identity for c in clients if not c.is_network)
    if identities:
        contribution.objects.append(_meshtls_authentication(intent, namespace, name,
                                                            identities))
        contribution.objects.append(_authorization_policy(
            intent, namespace, f"{name}-mesh", target, "MeshTLSAuthentication", name))
    # at most one network: anyone (no source), or the probe networks (probe routes)
    for client in sorted(c for c in clients if c.is_network):
        authn = ALL_NETWORKS if client == ALL else PROBE_NETWORKS
        shared.setdefault(namespace, set()).add(authn)
        contribution.objects.append(_authorization_policy(
            intent, namespace, f"{name}-network", target, "NetworkAuthentication", authn))


def _authorization_policy(intent: Intent, namespace: str, name: str,
                          target: Mapping[str, str], kind: str,
                          authentication: str) -> PlannedObject:
    return PlannedObject(
        api_version=POLICY, kind="AuthorizationPolicy", name=name, namespace=namespace,
        template="linkerd/authorization_policy.yaml.j2",
        context={**_meta(name, namespace, intent), "target_ref": dict(target),
                 "authentication_refs": [{"group": POLICY_GROUP, "kind": kind,
                                          "name": authentication}]},
    )


def _meshtls_authentication(intent: Intent, namespace: str, name: str,
                            identities: list[str]) -> PlannedObject:
    return PlannedObject(
        api_version=POLICY, kind="MeshTLSAuthentication", name=name, namespace=namespace,
        template="linkerd/meshtls_authentication.yaml.j2",
        context={**_meta(name, namespace, intent), "identities": identities},
    )


def network_authentication(intent: Intent, namespace: str, name: str,
                           networks: list[str]) -> PlannedObject:
    return PlannedObject(
        api_version=POLICY, kind="NetworkAuthentication", name=name, namespace=namespace,
        template="linkerd/network_authentication.yaml.j2",
        context={**_meta(name, namespace, intent),
                 "networks": [{"cidr": cidr} for cidr in networks]},
    )


def proxy_admin(intent: Intent, namespace: str) -> list[PlannedObject]:
    """Under default deny, the proxies' admin port stays open to Prometheus on /metrics
    and to kubelet probes on /live and /ready (what `linkerd viz allow-scrapes` writes)."""
    linkerd = intent.linkerd
    td = intent.trust_domain
    server = PlannedObject(
        api_version=SERVER, kind="Server", name=ADMIN_SERVER, namespace=namespace,
        template="linkerd/server.yaml.j2",
        context={**_meta(ADMIN_SERVER, namespace, intent),
                 "pod_selector": {"matchExpressions": [
                     {"key": "linkerd.io/control-plane-ns", "operator": "Exists"}]},
                 "port": "linkerd-admin", "proxy_protocol": "HTTP/1",
                 "access_policy": "deny"},
    )
    objects = [server]
    # viz's Prometheus, and any identity of the namespace of a Prometheus of the team's own
    scrapers = [f"prometheus.{linkerd.viz_namespace}.serviceaccount.identity.linkerd.{td}"]
    if intent.telemetry.prometheus_namespace != linkerd.viz_namespace:
        scrapers.insert(0, f"*.{intent.telemetry.prometheus_namespace}.serviceaccount."
                           f"identity.linkerd.{td}")
    for suffix, paths in (("metrics", ["/metrics"]), ("probes", ["/live", "/ready"])):
        name = f"{ADMIN_SERVER}-{suffix}"
        meta = metadata(name, namespace, intent)
        objects.append(PlannedObject(
            api_version=GATEWAY, kind="HTTPRoute", name=name, namespace=namespace,
            template="gatewayapi/http_route.yaml.j2",
            context={"name": name, "namespace": namespace, "labels": meta["labels"],
                     "annotations": None,
                     "parent_refs": [{"group": POLICY_GROUP, "kind": "Server",
                                      "name": ADMIN_SERVER}],
                     "rules": [{"matches": [{"path": {"type": "Exact", "value": p},
                                             "method": "GET"} for p in paths],
                                "backend_refs": None, "timeouts": None}]},
        ))
        target = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}
        if suffix == "metrics":
            objects.append(_meshtls_authentication(intent, namespace, SCRAPERS, scrapers))
            objects.append(_authorization_policy(intent, namespace, name, target,
                                                 "MeshTLSAuthentication", SCRAPERS))
        else:
            objects.append(_authorization_policy(intent, namespace, name, target,
                                                 "NetworkAuthentication", PROBE_NETWORKS))
    return objects
