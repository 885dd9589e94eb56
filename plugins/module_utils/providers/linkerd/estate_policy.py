"""An estate's Linkerd authorization as the intent's: who may reach which port and route of a
service (https://linkerd.io/2-edge/reference/authorization-policy/).

A Server selects a service's pods and one port. Its clients are those of the
AuthorizationPolicies that target it (``MeshTLSAuthentication`` identities or
ServiceAccounts, ``NetworkAuthentication`` networks), or of the deprecated
ServerAuthorizations that name it; an HTTPRoute attached to it narrows its policies to the
route's matches. As intent:

- clients on the Servers only, the same on every port, every identity a catalogue service's
  or the ingress gateway's: the shape meshstage derives from ``calls`` (the importer keeps it
  derived when the calls give back the same identities);
- otherwise ``mesh_authorization`` rules: per port (``ports``) and per route match
  (``methods`` and ``paths``), one rule per kind of client (``from``/``principals``;
  ``namespaces`` for ``*.<ns>`` identities; no source for a network that holds every
  address);
- a route of ``GET`` exact paths for the probe networks (meshstage's
  ``meshstage-probe-networks``) is ``probe_paths``.

The proxy admin Server meshstage renders under default deny says nothing of the services.
What the intent cannot say (header or query matches, networks that are not everything, a
namespace-wide target) keeps the service's objects as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...estate.objects import Resource, as_list, as_mapping
from ...inventory.draft import Draft, ServiceDraft
from ...stages import Stage
from ..gatewayapi.routes import regex_literal
from .api import ADMIN_SERVER, PROBE_NETWORKS

_IDENTITY_SUFFIX = ".serviceaccount.identity.linkerd."
Client = tuple[str, str]   # ("id", principal) | ("ns", namespace) | ("mesh", "*") | ("all", "")
Grant = tuple[Resource | None, set[Client], Resource]   # (HTTPRoute narrowing it, clients, policy)
RouteGrant = tuple[int, Resource, set[Client]]          # (port, HTTPRoute, clients)


def servers_of(draft: Draft) -> dict[ServiceDraft, list[tuple[Resource, int]]]:
    """Each service's Servers with the workload port each one selects."""
    found: dict[ServiceDraft, list[tuple[Resource, int]]] = {}
    for server in draft.index.of_kind("Server"):
        if not server.group.startswith("policy.linkerd.io") or server.name == ADMIN_SERVER:
            continue
        selector = as_mapping(server.spec.get("podSelector"))
        services = draft.services_selected(server.namespace, selector) if selector else []
        port = server.spec.get("port")
        if len(services) != 1:
            draft.keep(server, "it selects the pods of no one service of the catalogue")
            continue
        if isinstance(port, str):
            numbers = {n for w in services[0].pods() for name, n in w.container_ports()
                       if name == port}
            port = numbers.pop() if len(numbers) == 1 else None
        if not isinstance(port, int):
            draft.keep(server, "its port names no one container port of the pods")
            continue
        found.setdefault(services[0], []).append((server, port))
    return found


def import_policy(draft: Draft) -> None:
    servers = servers_of(draft)
    by_server = {(s.namespace, s.name): (service, port)
                 for service, items in servers.items() for s, port in items}
    grants = _grants(draft, by_server)
    for service, items in servers.items():
        _service(draft, service, items, grants)
    for server in draft.index.of_kind("Server"):
        if server.name == ADMIN_SERVER:
            draft.became(server, "mesh_default_deny (the proxies' admin port stays open)")


def _grants(draft: Draft, by_server: Mapping[tuple[str, str], tuple[ServiceDraft, int]]
            ) -> dict[tuple[str, str], list[Grant]]:
    """Per Server: (the HTTPRoute narrowing it or None, the clients, the policy)."""
    grants: dict[tuple[str, str], list[Grant]] = {}
    for policy in draft.index.of_kind("AuthorizationPolicy"):
        if not policy.group.startswith("policy.linkerd.io"):
            continue
        draft.hint_stage(Stage.AUTHORIZATION, f"{policy.display} authorizes clients")
        target = as_mapping(policy.spec.get("targetRef"))
        kind, name = str(target.get("kind") or ""), str(target.get("name") or "")
        route = None
        if kind == "HTTPRoute":
            route = draft.index.get("HTTPRoute", policy.namespace, name)
            parents = [as_mapping(p) for p in as_list(route.spec.get("parentRefs"))] \
                if route is not None else []
            servers = [str(p.get("name")) for p in parents if p.get("kind") == "Server"]
            name, kind = (servers[0], "Server") if len(servers) == 1 else ("", "")
        if kind != "Server" or (policy.namespace, name) not in by_server:
            if name != ADMIN_SERVER and not (route is not None and route.name.startswith(
                    ADMIN_SERVER)):
                draft.keep(policy, "it targets no Server of one catalogue service")
            continue
        clients = _clients(draft, policy, as_list(policy.spec.get(
            "requiredAuthenticationRefs")))
        grants.setdefault((policy.namespace, name), []).append((route, clients, policy))
    for legacy in draft.index.of_kind("ServerAuthorization"):
        server = as_mapping(legacy.spec.get("server"))
        client = as_mapping(legacy.spec.get("client"))
        if not server.get("name") or (legacy.namespace, server["name"]) not in by_server:
            draft.keep(legacy, "it names no Server of one catalogue service")
            continue
        admitted: set[Client] = set()
        if client.get("unauthenticated"):
            admitted.add(("all", ""))
        tls = as_mapping(client.get("meshTLS"))
        for account in (as_mapping(a) for a in as_list(tls.get("serviceAccounts"))):
            admitted.add(("id", _principal(draft, str(account.get("namespace")
                                                      or legacy.namespace),
                                           str(account.get("name")))))
        for identity in as_list(tls.get("identities")):
            admitted.add(_identity_client(draft, str(identity)))
        grants.setdefault((legacy.namespace, str(server["name"])), []).append(
            (None, admitted, legacy))
    return grants


def _principal(draft: Draft, namespace: str, account: str) -> str:
    return f"{draft.trust_domain}/ns/{namespace}/sa/{account}"


def _identity_client(draft: Draft, identity: str) -> Client:
    """A Linkerd identity (``<sa>.<ns>.serviceaccount.identity.linkerd.<td>``, ``*.<ns>...``
    or ``*``) as a client."""
    if identity == "*":
        return ("mesh", "*")
    head, _, trust_domain = identity.partition(_IDENTITY_SUFFIX)
    account, _, namespace = head.rpartition(".")
    if not trust_domain or not namespace:
        return ("raw", identity)
    if account == "*":
        return ("ns", namespace)
    return ("id", f"{trust_domain}/ns/{namespace}/sa/{account}")


def _clients(draft: Draft, policy: Resource, refs: list[Any]) -> set[Client]:
    clients: set[Client] = set()
    for ref in (as_mapping(r) for r in refs):
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        namespace = str(ref.get("namespace") or policy.namespace)
        if kind == "ServiceAccount":
            clients.add(("id", _principal(draft, namespace, name)))
        elif kind == "MeshTLSAuthentication":
            authn = draft.index.get("MeshTLSAuthentication", namespace, name)
            spec = authn.spec if authn is not None else {}
            for identity in as_list(spec.get("identities")):
                clients.add(_identity_client(draft, str(identity)))
            for account in (as_mapping(a) for a in as_list(spec.get("identityRefs"))):
                if account.get("kind") == "ServiceAccount":
                    clients.add(("id", _principal(draft, str(account.get("namespace") or
                                                             namespace), str(account["name"]))))
            if authn is not None:
                draft.became(authn, "the callers of mesh_authorization (or calls)")
        elif kind == "NetworkAuthentication":
            authn = draft.index.get("NetworkAuthentication", namespace, name)
            networks = {str(as_mapping(n).get("cidr")) for n in
                        as_list((authn.spec if authn is not None else {}).get("networks"))}
            if name == PROBE_NETWORKS:
                clients.add(("probe", ""))
            elif networks >= {"0.0.0.0/0", "::/0"} or networks == {"0.0.0.0/0"}:
                clients.add(("all", ""))
            else:
                clients.add(("raw", f"networks {', '.join(sorted(networks))}"))
            if authn is not None:
                draft.became(authn, "mesh_authorization (callers from any network)")
    return clients


def _service(draft: Draft, service: ServiceDraft, items: list[tuple[Resource, int]],
             grants: Mapping[tuple[str, str], list[Grant]]) -> None:
    """A service's grants as the callers its calls derive, as its mesh_authorization entry
    (and probe_paths), or kept as they are when the intent cannot say one of them."""
    ports = {port for _, port in items}
    at_servers, routes, policies = _service_grants(items, grants)
    if not policies:
        return
    names = ", ".join(sorted({p.display for p in policies}))
    raw = sorted(c[1] for _, _, cs in routes for c in cs if c[0] == "raw") + sorted(
        c[1] for cs in at_servers.values() for c in cs if c[0] == "raw")
    if raw:
        _keep(draft, service, policies, f"clients the intent cannot name ({', '.join(raw)})")
        return
    derived = _derived_callers(at_servers, routes, ports)
    if derived is not None:
        draft.admit(service, derived, names)
        for policy in policies:
            draft.became(policy, f"{service.name}: the callers its calls derive")
        return
    several = len(ports) > 1
    rules: list[dict[str, Any]] = []
    for port, clients in sorted(at_servers.items()):
        rules += _rules(draft, clients, {}, [port] if several else [])
    found = _route_rules(draft, service, policies, routes, several)
    if found is None:
        return
    route_rules, probes = found
    rules += route_rules
    if probes:
        service.put("probe_paths", sorted(set(probes)), "the probe routes of its Servers")
    _authorize(draft, service, policies, names, rules)


def _service_grants(items: list[tuple[Resource, int]],
                    grants: Mapping[tuple[str, str], list[Grant]]
                    ) -> tuple[dict[int, set[Client]], list[RouteGrant], list[Resource]]:
    """A service's grants: the clients of each port's Servers, the grants an HTTPRoute
    narrows, and every policy that grants them."""
    at_servers: dict[int, set[Client]] = {}
    routes: list[RouteGrant] = []
    policies: list[Resource] = []
    for server, port in items:
        for route, clients, policy in grants.get((server.namespace, server.name), []):
            policies.append(policy)
            if route is None:
                at_servers.setdefault(port, set()).update(clients)
            else:
                routes.append((port, route, clients))
    return at_servers, routes, policies


def _derived_callers(at_servers: Mapping[int, set[Client]], routes: list[RouteGrant],
                     ports: set[int]) -> list[str] | None:
    """The principals admitted when the grants are the shape meshstage derives from
    ``calls`` (identities only, on the Servers only, the same on every port), else None."""
    same = len({frozenset(c) for c in at_servers.values()}) == 1 and \
        set(at_servers) == ports
    if routes or not same:
        return None
    clients = next(iter(at_servers.values()))
    if not all(kind == "id" for kind, _ in clients):
        return None
    return sorted(p for _, p in clients)


def _route_rules(draft: Draft, service: ServiceDraft, policies: list[Resource],
                 routes: list[RouteGrant], several: bool
                 ) -> tuple[list[dict[str, Any]], list[str]] | None:
    """The rules of the grants HTTPRoutes narrow, one per match, and the probe paths (GET
    exact paths for the probe networks); None, the service keeping its policies, when a
    route matches more than the intent can say."""
    rules: list[dict[str, Any]] = []
    probes: list[str] = []
    for port, route, clients in routes:
        matches = _matches(route)
        if matches is None:
            _keep(draft, service, policies, f"{route.display} matches more than methods "
                  "and paths")
            return None
        if ("probe", "") in clients and all(m == "GET" and p and not p.endswith("*")
                                            for m, p in matches):
            probes += [p for _, p in matches if p]
            clients = clients - {("probe", "")}
        for method, path in matches:
            operation = {**({"methods": [method]} if method else {}),
                         **({"paths": [path]} if path else {})}
            rules += _rules(draft, clients, operation, [port] if several else [])
        draft.became(route, f"{service.name}: mesh_authorization rules")
    return rules, probes


def _authorize(draft: Draft, service: ServiceDraft, policies: list[Resource], names: str,
               rules: list[dict[str, Any]]) -> None:
    """The service's mesh_authorization entry (each rule once), and the calls its rules'
    ``from`` say."""
    unique: list[dict[str, Any]] = []
    for rule in rules:
        if rule not in unique:
            unique.append(rule)
    draft.authorization[service.name] = {"service": service.name, "allow": unique}
    draft.note(f"mesh_authorization.{service.name}", f"from {names}")
    for policy in policies:
        draft.became(policy, f"{service.name}: mesh_authorization")
    for rule in unique:
        for name in rule.get("from", []):
            draft.call(draft.services[name], service, f"{names} admits it")


def _keep(draft: Draft, service: ServiceDraft, policies: list[Resource], why: str) -> None:
    service.keeps_own_policies = True
    for policy in policies:
        draft.keep(policy, f"{service.name} keeps its policies: {why}")


def _rules(draft: Draft, clients: set[Client], operation: Mapping[str, Any],
           ports: list[int]) -> list[dict[str, Any]]:
    """One intent rule per kind of client of a grant (an intent rule ANDs its fields)."""
    rules = []
    extra = {**operation, **({"ports": ports} if ports else {})}
    if ("all", "") in clients:
        return [dict(extra)]
    services, principals = draft.named_callers(value for kind, value in sorted(clients)
                                               if kind == "id")
    if ("mesh", "*") in clients:
        principals.insert(0, "*")
    if services or principals:
        rules.append({**({"from": sorted(set(services))} if services else {}),
                      **({"principals": principals} if principals else {}), **extra})
    namespaces = sorted(value for kind, value in clients if kind == "ns")
    if namespaces:
        rules.append({"namespaces": namespaces, **extra})
    return rules


def _matches(route: Resource) -> list[tuple[str | None, str | None]] | None:
    """(method, intent path) of every match of an inbound route; None when a match says
    more (headers, query parameters) or a path the intent cannot say."""
    found: list[tuple[str | None, str | None]] = []
    for rule in (as_mapping(r) for r in as_list(route.spec.get("rules"))):
        for match in (as_mapping(m) for m in as_list(rule.get("matches")) or [{}]):
            if set(match) - {"method", "path"}:
                return None
            path = _path(as_mapping(match.get("path")))
            if path is False or path is True:
                return None
            found.append((str(match["method"]) if match.get("method") else None, path))
    return found


def _path(match: Mapping[str, Any]) -> str | bool | None:
    """A Gateway API path match as an intent path (Istio's form); None for every path, False
    when the intent cannot say it."""
    kind, value = str(match.get("type") or "PathPrefix"), str(match.get("value") or "/")
    if kind == "Exact":
        return value
    if kind == "PathPrefix":
        return None if value == "/" else (value if value.endswith("/") else value + "/") + "*"
    if kind == "RegularExpression":
        for head, tail, shape in (("^.*", "$", "*{}"), ("^", ".*$", "{}*"), ("^", "$", "{}")):
            if value.startswith(head) and value.endswith(tail) and \
                    len(value) >= len(head) + len(tail):
                literal = regex_literal(value[len(head): len(value) - len(tail)])
                return False if not literal else shape.format(literal)
    return False
