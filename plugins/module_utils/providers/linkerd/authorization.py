"""Linkerd's authorization objects per service port: the Server, the HTTPRoutes its rules
need, AuthorizationPolicies and the MeshTLS and Network authentications they require, and
the proxy admin Server that keeps probes and scrapes working."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

from ...intent.model import Intent, MtlsExemption, Port, Service
from ...plan.model import PlannedObject, StageContribution, metadata
from ...plan.model import template_meta as _meta
from ...plan.probes import PortProbes
from ...stages import Stage
from ..gatewayapi.routes import (
    GATEWAY,
    ROUTABLE_PROTOCOLS,
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
    inbound_policy,
)
from .policy import (
    ALL,
    ANY,
    Clients,
    PortPolicy,
    RouteGroup,
    network_client,
    probe_matches,
    service_policy,
    service_ports,
)


def mtls_exception(intent: Intent, service: Service) -> MtlsExemption | None:
    """The service's exemption at this stage: its mTLS exception, and the ports callers
    without a mesh identity reach (``Intent.exemptions``)."""
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return None
    return intent.exemption_for(service.name)


def _server_name(service: Service, port: Port) -> str:
    """The name of what ``service`` renders for ``port``: its Server, or the routes and
    policies of its own on the Server it shares (``server_name``)."""
    return f"{service.name}-{port.name}"


def server_name(intent: Intent, service: Service, port: Port) -> str:
    """The Server of ``port`` on the pods of ``service``: named after the first service over
    the same pods (``Intent.same_pods``) that serves the workload port, or whose probes make
    it one. Linkerd's admission refuses a second Server with the same pod selector and port
    ("identical server spec already exists", ``policy-controller/src/admission.rs``), so
    services over the same pods share one."""
    number = port.target_port or port.port
    group = intent.same_pods(service)
    for each in group:
        if each is service:
            break
        for other in (*each.ports, *each.peer_ports, *each.pod_ports):
            if (other.target_port or other.port) == number:
                return _server_name(each, other)
    if port.name == f"probe-{number}":
        return _server_name(group[0], port)
    return _server_name(service, port)


def governed(intent: Intent, service: Service) -> bool:
    """True once authorization governs the service's Servers (``accessPolicy: deny``)."""
    return intent.stage.reached(Stage.AUTHORIZATION) and (
        intent.default_deny or bool(service_policy(intent, service, _callers(intent, service))
                                    .allow))


def server_objects(intent: Intent, service: Service,
                   probes: Mapping[int, PortProbes] | None = None,
                   routed: Collection[int] = ()) -> list[PlannedObject]:
    """A Server per workload port; its access policy computed from the stage: ``deny`` once
    authorization governs the service, else the mTLS exception's mode; from strict_mtls on,
    ``all-authenticated`` (the namespace default it replaces) for a port whose probes need
    routes or a Server of their own (``probe_objects``).

    A gRPC port that gets HTTPRoutes (``routed``) is served as ``HTTP/2``: Linkerd gives a
    ``gRPC`` Server GRPCRoutes only, never HTTPRoutes, and no probe route (linkerd2
    ``policy-controller/grpc/src/inbound.rs`` ``to_server``); gRPC is HTTP/2 all the same."""
    exception = mtls_exception(intent, service)
    is_governed = governed(intent, service)
    objects = []
    for port in service_ports(service, probes):
        number = port.target_port or port.port
        if is_governed:
            access = "deny"
        elif exception is not None and \
                exception.ports.get(number, exception.mode) != "UNSET":
            access = EXCEPTION_POLICY[exception.ports.get(number, exception.mode)]
        elif _needs_probe_server(intent, (probes or {}).get(number)):
            # UNSET: the namespace default (all-authenticated) says the same, unless probes
            # need a Server of their own
            access = "all-authenticated"
        else:
            continue
        name = server_name(intent, service, port)
        annotations = {"meshstage.io/reason": exception.reason} if exception else None
        objects.append(PlannedObject(
            api_version=SERVER, kind="Server", name=name, namespace=service.namespace,
            template="linkerd/server.yaml.j2",
            context={
                **_meta(name, service.namespace, intent, annotations=annotations),
                "pod_selector": {"matchLabels": service.selector},
                "port": number,
                "proxy_protocol": "HTTP/2" if port.protocol == "GRPC" and number in routed
                else PROXY_PROTOCOL[port.protocol],
                "access_policy": access,
            },
        ))
    return objects


# What each access policy admits: (an identity required, cluster networks only).
# https://linkerd.io/2-edge/reference/authorization-policy/#server
_ADMITS = {"all-unauthenticated": (False, False), "cluster-unauthenticated": (False, True),
           "all-authenticated": (True, False), "cluster-authenticated": (True, True)}


def access_union(first: str, second: str) -> str:
    """The access policy that admits what each of two admits: ``deny`` adds nothing,
    ``audit`` admits everything."""
    if first == second or second == "deny":
        return first
    if first == "deny":
        return second
    if "audit" in (first, second):
        return "audit"
    a, b = _ADMITS[first], _ADMITS[second]
    wanted = (a[0] and b[0], a[1] and b[1])
    return next(name for name, admits in _ADMITS.items() if admits == wanted)


def one_server_per_port(intent: Intent, contribution: StageContribution) -> None:
    """One Server where services over the same pods each listed the one they share
    (``server_name``): its access policy admits what each listing's admits, and the
    run warns where that opens a port one of them governs."""
    first: dict[tuple[str, str], int] = {}
    objects: list[PlannedObject] = []
    for obj in contribution.objects:
        key = (obj.namespace or "", obj.name)
        if obj.kind != "Server" or key not in first:
            if obj.kind == "Server":
                first[key] = len(objects)
            objects.append(obj)
            continue
        kept = objects[first[key]]
        was, wants = kept.context["access_policy"], obj.context["access_policy"]
        access = access_union(was, wants)
        reasons = [(each.context.get("annotations") or {}).get("meshstage.io/reason")
                   for each in (kept, obj)]
        reason = "; ".join(dict.fromkeys(r for r in reasons if r))
        objects[first[key]] = replace(kept, context={
            **kept.context, "access_policy": access,
            "annotations": {"meshstage.io/reason": reason} if reason else None})
        if access != was or access != wants:
            selector = kept.context["pod_selector"]["matchLabels"]
            names = [s.name for s in intent.services
                     if s.namespace == obj.namespace and s.selector == selector]
            contribution.warnings.append(
                f"Server {obj.namespace}/{obj.name} (port {kept.context['port']}) serves the "
                "pods of " + ", ".join(names) + ", which select the same pods: Linkerd "
                "admits one Server per pod port, and theirs ask for access policies "
                f"{was} and {wants}; it takes {access}, which admits what each admits, so "
                "the stricter one does not hold on that port")
    contribution.objects[:] = objects


def _needs_probe_server(intent: Intent, probes: PortProbes | None) -> bool:
    """From strict_mtls on, the namespace default refuses requests without an identity:
    gRPC and HTTPS probes, which Linkerd never authorizes by itself, need a Server."""
    return intent.stage.reached(Stage.STRICT_MTLS) and probes is not None and (
        probes.grpc or probes.tls)


def probe_objects(intent: Intent, service: Service, probes: Mapping[int, PortProbes],
                  contribution: StageContribution, shared: dict[str, set[str]]) -> None:
    """Before authorization governs a service: the routes and policies that let the kubelet's
    gRPC and HTTPS probes through the Servers ``server_objects`` gives their ports (every
    other request still needs an identity, as the namespace default says)."""
    exception = mtls_exception(intent, service)
    for port in service_ports(service, probes):
        number = port.target_port or port.port
        found = probes.get(number)
        if not _needs_probe_server(intent, found) or (
                exception is not None
                and EXCEPTION_POLICY[exception.ports.get(number, exception.mode)]
                == "all-unauthenticated"):
            continue
        assert found is not None
        server = server_name(intent, service, port)
        own = _server_name(service, port)
        target = {"group": POLICY_GROUP, "kind": "Server", "name": server}
        clients = frozenset({network_client(intent.linkerd.probe_networks)})
        if port.protocol not in ROUTABLE_PROTOCOLS or not found.grpc:
            _grant(intent, service.namespace, target, own, clients, contribution, shared)
            contribution.warnings.append(_opened(intent, service, found))
            continue
        routes = [RouteGroup(tuple(probe_matches(service, found, True)), clients),
                  RouteGroup((ANY,), frozenset())]
        for suffix, group in zip(("probes", "all"), routes, strict=True):
            name = f"{own}-{suffix}"
            contribution.objects.append(_inbound_route(intent, service.namespace, name,
                                                       server, group))
            if group.clients:
                _grant(intent, service.namespace,
                       {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                        "name": name}, name, group.clients, contribution, shared)


def _opened(intent: Intent, service: Service, found: PortProbes) -> str:
    return (f"{intent.service_path(service)} (service {service.namespace}/{service.name}): "
            f"the kubelet's probes on {found.describe()} are neither plain HTTP nor on a port "
            "Linkerd routes, so the Server of the port admits mesh_linkerd.probe_networks "
            f"({', '.join(intent.linkerd.probe_networks)}) whole: narrow them to the nodes' "
            "addresses")


def _callers(intent: Intent, service: Service) -> list[Service]:
    return [caller for caller in intent.services if service.name in caller.calls]


def port_objects(intent: Intent, service: Service, found: PortPolicy,
                 contribution: StageContribution, shared: dict[str, set[str]],
                 probes: PortProbes | None = None) -> None:
    """The routes, authentications and policies of one port."""
    server = server_name(intent, service, found.port)
    own = _server_name(service, found.port)
    namespace = service.namespace
    if found.probes_opened and probes is not None:
        contribution.warnings.append(_opened(intent, service, probes))
    if not found.routes:
        _grant(intent, namespace, {"group": POLICY_GROUP, "kind": "Server", "name": server},
               own, found.server_clients, contribution, shared)
        return
    for number, group in enumerate(found.routes, start=1):
        route = f"{own}-{number}"
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
    # networks: anyone (no source), the probe networks (probe routes), or the addresses of
    # plaintext callers the intent knows (hosts), in an authentication of the target's own
    networks = [c for c in clients if c.is_network]
    if ALL in networks:
        networks = [ALL]
    shared_ones = [c for c in networks
                   if c == ALL or set(c.networks) == set(intent.linkerd.probe_networks)]
    for client in shared_ones[:1]:
        authn = ALL_NETWORKS if client == ALL else PROBE_NETWORKS
        shared.setdefault(namespace, set()).add(authn)
        contribution.objects.append(_authorization_policy(
            intent, namespace, f"{name}-network", target, "NetworkAuthentication", authn))
    addresses = sorted({cidr for c in networks if c not in shared_ones for cidr in c.networks})
    if addresses:
        authn = f"{name}-hosts"
        contribution.objects.append(network_authentication(intent, namespace, authn, addresses))
        contribution.objects.append(_authorization_policy(
            intent, namespace, authn, target, "NetworkAuthentication", authn))


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


def ingress_gateway_servers(intent: Intent, contribution: StageContribution) -> None:
    """From strict_mtls on, a namespace of the catalogue refuses requests without an identity
    (``all-authenticated``, then ``deny``); an ingress gateway whose meshed pods run there
    would refuse every external request, which comes from outside the mesh. A Server per port
    the intent lists for it accepts them (``accessPolicy: all-unauthenticated``): a Server's
    access policy replaces the namespace default on its port
    (https://linkerd.io/2-edge/reference/authorization-policy/#server). Without ports, a
    warning says what to do."""
    gateway = intent.ingress_gateway
    if not intent.stage.reached(Stage.STRICT_MTLS) or gateway.namespace not in intent.namespaces:
        return
    if not gateway.ports:
        contribution.warnings.append(
            f"mesh_ingress_gateway.ports: the ingress gateway runs in namespace "
            f"{gateway.namespace} of the catalogue, whose default inbound policy is "
            f"{inbound_policy(intent, gateway.namespace)} at {intent.stage.value}: if its pods "
            "are meshed, their proxy refuses every external request (no identity); list the "
            "ports its pods listen on so meshstage opens them, or annotate its pod template "
            "config.linkerd.io/default-inbound-policy: all-unauthenticated")
        return
    for port in gateway.ports:
        name = f"meshstage-ingress-{port}"
        contribution.objects.append(PlannedObject(
            api_version=SERVER, kind="Server", name=name, namespace=gateway.namespace,
            template="linkerd/server.yaml.j2",
            context={**_meta(name, gateway.namespace, intent),
                     "pod_selector": {"matchLabels": dict(gateway.labels)},
                     "port": port, "proxy_protocol": None,
                     "access_policy": "all-unauthenticated"}))
    contribution.notes.append(
        f"The ingress gateway runs in namespace `{gateway.namespace}` of the catalogue: its "
        f"Servers `meshstage-ingress-<port>` keep port(s) "
        f"{', '.join(map(str, gateway.ports))} open to external requests.")
