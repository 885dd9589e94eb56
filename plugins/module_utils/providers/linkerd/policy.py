"""Linkerd authorization from the intent's ALLOW and DENY rules: who may reach which port
and route of a service, as Linkerd's allow-only policy can say it.

Istio evaluates DENY before ALLOW and ANDs the fields of a rule. Linkerd has no DENY: a
``Server`` refuses everything that no ``AuthorizationPolicy`` allows, and a request matches
exactly one ``HTTPRoute`` of its Server, the most specific one (Gateway API precedence).
So the rules are turned into *regions* (a method and a path match) and *clients* (sets of
identities or networks):

1. Each rule's methods by paths are route matches; a rule without them covers every request.
2. The matches are closed under intersection (``GET /api/*`` and ``* /api/v1/*`` add
   ``GET /api/v1/*``). For every request, the most specific match that holds it is then
   contained in every rule region that holds it.
3. For each match: the clients of the ALLOW rules that cover it, minus those of the DENY rules
   that cover it, restricted to the named callers when ``deny_other_callers`` is set.
4. Matches with the same clients become one HTTPRoute with one AuthorizationPolicy per kind of
   authentication (MeshTLSAuthentication, NetworkAuthentication).

When no rule of a port has methods or paths, the clients are authorized on the Server itself
and no HTTPRoute is needed (kubelet probes keep Linkerd's default authorization). When routes
are needed, the probe paths get a route of their own for ``mesh_linkerd.probe_networks``.

What Linkerd cannot say is returned as a gap: a principal that is no Linkerd identity, a
DENY that would have to cut clients out of a wildcard (``*``, a namespace, a network).
Everything here is pure: intent in, policy description out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ...intent.model import AuthorizationRule, Intent, Port, Service, Source
from ...plan.callers import has_sidecar, plaintext_callers
from ...plan.probes import GRPC_HEALTH_CHECK, PortProbes
from ..gatewayapi.routes import ROUTABLE_PROTOCOLS, regex_escape

ALL_NETWORKS: tuple[str, ...] = ("0.0.0.0/0", "::/0")

# Characters Gateway API accepts in an Exact or PathPrefix value (a CEL rule of its CRD).
_PLAIN_PATH = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$")
_PRINCIPAL = re.compile(r"^(?P<td>[^/*]+)/ns/(?P<ns>[^/*]+)/sa/(?P<sa>[^/]+)$")


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True, order=True)
class Client:
    """One kind of caller. ``kind`` is ``all`` (anyone, plaintext too), ``mesh`` (any mesh
    identity), ``ns`` (identities of a namespace), ``id`` (one service account) or ``net``
    (addresses in ``networks``, e.g. the kubelet's)."""

    kind: str
    namespace: str = ""
    name: str = ""
    trust_domain: str = ""
    networks: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        """The identity string a MeshTLSAuthentication lists."""
        if self.kind == "mesh":
            return "*"
        suffix = f"{self.namespace}.serviceaccount.identity.linkerd.{self.trust_domain}"
        return f"*.{suffix}" if self.kind == "ns" else f"{self.name}.{suffix}"

    @property
    def is_network(self) -> bool:
        return self.kind in ("all", "net")


ALL = Client("all", networks=ALL_NETWORKS)
MESH = Client("mesh")
Clients = frozenset[Client]


def identity_client(namespace: str, account: str, trust_domain: str) -> Client:
    return Client("id", namespace=namespace, name=account, trust_domain=trust_domain)


def network_client(networks: Sequence[str]) -> Client:
    """Callers from ``networks``; all addresses is :data:`ALL`."""
    return ALL if set(networks) >= set(ALL_NETWORKS) else Client("net", networks=tuple(networks))


def _inside(a: Client, b: Client) -> bool:
    """True when every caller ``a`` names is one ``b`` names."""
    if a == b or b.kind == "all":
        return True
    if b.kind == "mesh":
        return a.kind in ("ns", "id")
    if b.kind == "ns":
        return a.kind == "id" and (a.namespace, a.trust_domain) == (b.namespace,
                                                                    b.trust_domain)
    return False


def normalize(clients: Iterable[Client]) -> Clients:
    """The same callers, without atoms another atom already holds."""
    atoms = set(clients)
    return frozenset(a for a in atoms if not any(a != b and _inside(a, b) for b in atoms))


def union(*groups: Iterable[Client]) -> Clients:
    return normalize(atom for group in groups for atom in group)


def intersect(first: Clients, second: Clients) -> Clients:
    """Callers in both: each pair of atoms meets in the narrower one, or not at all."""
    met = []
    for a in first:
        for b in second:
            if _inside(a, b):
                met.append(a)
            elif _inside(b, a):
                met.append(b)
    return normalize(met)


def subtract(allowed: Clients, denied: Clients) -> Clients | None:
    """``allowed`` without ``denied``, or None when Linkerd cannot say it: a denied caller
    inside a wildcard or network atom that stays allowed (no authentication excludes)."""
    kept = []
    for a in allowed:
        if any(_inside(a, b) for b in denied):
            continue
        if any(_inside(b, a) for b in denied):
            return None
        if a.is_network and any(not b.is_network for b in denied):
            return None  # an identity may call from inside any network
        kept.append(a)
    return normalize(kept)


# --------------------------------------------------------------------------- route matches


@dataclass(frozen=True, order=True)
class PathMatch:
    """A Gateway API path match: ``Exact``, ``PathPrefix`` or ``RegularExpression``."""

    kind: str
    value: str

    def holds(self, path: str) -> bool:
        if self.kind == "Exact":
            return path == self.value
        if self.kind == "PathPrefix":
            prefix = self.value.rstrip("/")
            return not prefix or path == prefix or path.startswith(prefix + "/")
        return re.fullmatch(self.value, path) is not None


@dataclass(frozen=True)
class RouteMatch:
    """Requests with this method (None: any) on this path (None: any)."""

    method: str | None = None
    path: PathMatch | None = None

    def as_gateway(self) -> dict[str, object]:
        path = self.path or PathMatch("PathPrefix", "/")
        match: dict[str, object] = {"path": {"type": path.kind, "value": path.value}}
        if self.method:
            match["method"] = self.method
        return match

    @property
    def sort_key(self) -> tuple[int, str, str]:
        kinds = {"Exact": 0, "PathPrefix": 1, "RegularExpression": 2}
        path = self.path or PathMatch("PathPrefix", "/")
        return (kinds[path.kind], path.value, self.method or "")


ANY = RouteMatch()


class Undetermined(Exception):
    """Two path matches whose overlap cannot be computed (a regular expression and a
    prefix, or two regular expressions)."""


def _path_inside(a: PathMatch | None, b: PathMatch | None) -> bool:
    if b is None:
        return True
    if a is None:
        return False
    if a == b:
        return True
    if a.kind == "Exact":
        return b.holds(a.value)
    if a.kind == "PathPrefix" and b.kind == "PathPrefix":
        return b.holds(a.value.rstrip("/") or "/")
    if b.kind == "Exact":
        return False
    raise Undetermined(f"{a.value} and {b.value}")


def _path_meet(a: PathMatch | None, b: PathMatch | None) -> tuple[bool, PathMatch | None]:
    """(overlap, the narrower match) of two path matches."""
    if a is None or b is None:
        return True, a or b
    if _path_inside(a, b):
        return True, a
    if _path_inside(b, a):
        return True, b
    if "Exact" in (a.kind, b.kind):
        return False, None  # an exact path is inside the other or apart from it
    if a.kind == b.kind == "PathPrefix":
        return False, None  # nested prefixes are inside one another; others are apart
    raise Undetermined(f"{a.value} and {b.value}")


def match_inside(a: RouteMatch, b: RouteMatch) -> bool:
    """True when every request ``a`` matches is one ``b`` matches."""
    if b.method is not None and a.method != b.method:
        return False
    return _path_inside(a.path, b.path)


def match_meet(a: RouteMatch, b: RouteMatch) -> RouteMatch | None:
    """The requests both match, as one match; None when they share none."""
    if a.method and b.method and a.method != b.method:
        return None
    overlap, path = _path_meet(a.path, b.path)
    if not overlap:
        return None
    return RouteMatch(a.method or b.method, path)


def close(matches: Iterable[RouteMatch]) -> tuple[list[RouteMatch], list[str]]:
    """The matches and all their intersections, sorted; plus overlaps left undetermined."""
    closed = set(matches)
    undetermined: list[str] = []
    changed = True
    while changed:
        changed = False
        ordered = sorted(closed, key=lambda m: m.sort_key)
        for index, a in enumerate(ordered):
            for b in ordered[index + 1:]:
                try:
                    met = match_meet(a, b)
                except Undetermined as error:
                    if str(error) not in undetermined:
                        undetermined.append(str(error))
                    continue
                if met is not None and met not in closed:
                    closed.add(met)
                    changed = True
    return sorted(closed, key=lambda m: m.sort_key), undetermined


def path_match(path: str) -> PathMatch | None:
    """An intent path (Istio's: exact, ``prefix*``, ``*suffix`` or ``*``) as a path match."""
    if path == "*":
        return None
    if path.startswith("*"):
        return PathMatch("RegularExpression", f"^.*{regex_escape(path[1:])}$")
    if path.endswith("*"):
        prefix = path[:-1]
        if prefix.endswith("/") and _PLAIN_PATH.match(prefix) and "//" not in prefix:
            return PathMatch("PathPrefix", prefix)
        return PathMatch("RegularExpression", f"^{regex_escape(prefix)}.*$")
    if _PLAIN_PATH.match(path) and "//" not in path and "/./" not in path:
        return PathMatch("Exact", path)
    return PathMatch("RegularExpression", f"^{regex_escape(path)}$")


def rule_matches(rule: AuthorizationRule) -> tuple[RouteMatch, ...]:
    """The route matches of a rule: its methods by paths; () for every request."""
    methods: list[str | None] = list(rule.methods) or [None]
    paths = [path_match(p) for p in rule.paths] or [None]
    matches = tuple(dict.fromkeys(RouteMatch(m, p) for m in methods for p in paths))
    return () if matches == (ANY,) else matches


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class PolicyRule:
    """One intent rule, as Linkerd sees it."""

    clients: Clients
    matches: tuple[RouteMatch, ...] = ()
    ports: tuple[int, ...] = ()

    def applies_to(self, port: int) -> bool:
        return not self.ports or port in self.ports

    def covers(self, match: RouteMatch) -> bool:
        """True when the rule holds every request of ``match`` (an overlap that cannot be
        computed counts as not covered; ``close`` reports it)."""
        if not self.matches:
            return True
        for own in self.matches:
            try:
                if match_inside(match, own):
                    return True
            except Undetermined:
                continue
        return False


@dataclass
class ServicePolicy:
    """A service's rules, converted, with what could not be converted."""

    path: str  # where the rules are written: mesh_authorization[i], or the service's calls
    allow: list[PolicyRule] = field(default_factory=list)
    deny: list[PolicyRule] = field(default_factory=list)
    only: Clients | None = None  # deny_other_callers: nobody else, whatever allow says
    gaps: list[tuple[str, str, str]] = field(default_factory=list)  # (path, value, reason)


def principal_client(principal: str, trust_domain: str) -> Client | None:
    """An Istio principal as a Linkerd caller: ``*``, ``<td>/ns/<ns>/sa/<sa>`` or
    ``<td>/ns/<ns>/sa/*``; None for any other form."""
    if principal == "*":
        return MESH
    found = _PRINCIPAL.match(principal)
    if found is None:
        return None
    if found["sa"] == "*":
        return Client("ns", namespace=found["ns"], trust_domain=found["td"])
    if "*" in found["sa"]:
        return None
    return identity_client(found["ns"], found["sa"], found["td"])


def plaintext_clients(intent: Intent, service: Service) -> list[Client]:
    """The declared callers that reach ``service`` without a proxy, as Linkerd can admit
    them: they present no identity, so a MeshTLSAuthentication never matches them
    (https://linkerd.io/2-edge/reference/authorization-policy/#meshtlsauthentication); a
    NetworkAuthentication does, from their address where the intent knows it (a host's),
    else from any address (https://linkerd.io/2-edge/reference/authorization-policy/#networkauthentication)."""
    clients = []
    for caller in plaintext_callers(intent, service):
        if caller.address is None:
            clients.append(ALL)
        else:
            prefix = 128 if ":" in caller.address else 32
            clients.append(network_client([f"{caller.address}/{prefix}"]))
    return clients


def service_policy(intent: Intent, service: Service, callers: Sequence[Service]) -> ServicePolicy:
    """The ALLOW and DENY rules of ``service``: explicit when ``mesh_authorization`` names it,
    else derived from the services that call it (and the ingress gateway)."""
    td = intent.trust_domain
    explicit = intent.authorization_for(service.name)
    if explicit is None:
        policy = ServicePolicy(path=f"{intent.service_path(service)}.calls")
        derived = [identity_client(c.namespace, c.service_account, td) for c in callers
                   if has_sidecar(intent, c)]
        if service.ingress:
            gateway = intent.ingress_gateway
            derived.append(identity_client(gateway.namespace, gateway.service_account, td))
        derived += plaintext_clients(intent, service)
        if derived:
            # the callers reach the service's ports; its peer ports are its own pods', its
            # pod ports the callers' outside the catalogue that name them
            ports = (service.workload_ports() or tuple(p.port for p in service.pod_ports)) \
                if service.pod_only_ports() else ()
            policy.allow.append(PolicyRule(normalize(derived), (), ports))
        _inbound(intent, service, policy)
        return policy
    base = intent.authorization_path(explicit)
    policy = ServicePolicy(path=base)
    for kind, rules in (("allow", explicit.allow), ("deny", explicit.deny)):
        for number, rule in enumerate(rules):
            path = f"{base}.{kind}[{number}]"
            clients = _rule_clients(intent, rule, path, policy)
            if clients is None:
                continue
            converted = PolicyRule(clients, rule_matches(rule), rule.ports)
            (policy.allow if kind == "allow" else policy.deny).append(converted)
    if explicit.deny_other_callers:
        # Istio's notPrincipals: the principals the allow rules name, whatever else they say
        named = [_rule_clients(intent, AuthorizationRule(source=Source(
            services=rule.source.services, principals=rule.source.principals)), "", None)
            for rule in explicit.allow if rule.source.services or rule.source.principals]
        policy.only = union(*(c for c in named if c))
    _inbound(intent, service, policy)
    return policy


def _inbound(intent: Intent, service: Service, policy: ServicePolicy) -> None:
    """The callers no ``calls`` names (``Intent.inbound_callers``): its peers and callers
    outside the catalogue, each on its ports; without a mesh identity, from any network. A
    scrape's GET of its path is a route on the ports Linkerd routes; on the others (a peer
    port, a TCP port) no route can hold it, so the scraper is admitted on the Server."""
    unroutable = {port.target_port or port.port for port in service_ports(service)
                  if port.protocol not in ROUTABLE_PROTOCOLS}
    for caller in intent.inbound_callers(service):
        client = (identity_client(str(caller.namespace), caller.account, intent.trust_domain)
                  if caller.account is not None else ALL)
        matches = tuple(RouteMatch("GET", PathMatch("Exact", path)) for path in caller.paths)
        routed = tuple(p for p in caller.ports if not matches or p not in unroutable)
        if routed:
            policy.allow.append(PolicyRule(frozenset({client}), matches, routed))
        served = tuple(p for p in caller.ports if matches and p in unroutable)
        if served:
            policy.allow.append(PolicyRule(frozenset({client}), (), served))
        if policy.only is not None:
            policy.only = union(policy.only, {client})


def _rule_clients(intent: Intent, rule: AuthorizationRule, path: str,
                  policy: ServicePolicy | None) -> Clients | None:
    """The callers a rule names (None: it names callers, and none of them converts)."""
    source = rule.source
    td = intent.trust_domain
    named: list[Client] = []
    for name in source.services:
        caller = intent.service(name)
        named.append(identity_client(caller.namespace, caller.service_account, td))
    for index, principal in enumerate(source.principals):
        client = principal_client(principal, td)
        if client is None:
            if policy is not None:
                policy.gaps.append((
                    f"{path}.principals[{index}]", principal,
                    "Linkerd identities are <sa>.<namespace>.serviceaccount.identity.linkerd."
                    "<trust domain>; only '*', '<td>/ns/<ns>/sa/<sa>' and "
                    "'<td>/ns/<ns>/sa/*' convert; this principal is left out of the rule"))
            continue
        named.append(client)
    namespaces = [Client("ns", namespace=ns, trust_domain=td) for ns in source.namespaces]
    if source.services or source.principals:
        if not named:
            return None
        clients = normalize(named)
        return intersect(clients, normalize(namespaces)) if namespaces else clients
    return normalize(namespaces) if namespaces else frozenset({ALL})


# --------------------------------------------------------------------------- per port


@dataclass(frozen=True)
class RouteGroup:
    """Requests (``matches``) that the same ``clients`` may send."""

    matches: tuple[RouteMatch, ...]
    clients: Clients


@dataclass
class PortPolicy:
    """The authorization of one workload port: on the Server, or per route."""

    port: Port
    workload_port: int
    server_clients: Clients = frozenset()
    routes: list[RouteGroup] = field(default_factory=list)
    gaps: list[tuple[str, str, str]] = field(default_factory=list)
    probes_opened: bool = False   # the Server admits the probe networks (probes it can't route)


def probe_matches(service: Service, probes: PortProbes | None, http: bool) -> list[RouteMatch]:
    """The requests of the kubelet's probes on one port, as route matches: ``GET <path>`` of
    ``probe_paths`` and of the workloads' httpGet probes, ``POST`` of the gRPC health check."""
    paths = list(dict.fromkeys([*service.probe_paths, *(probes.http_paths if probes else [])]))
    matches = [RouteMatch("GET", PathMatch("Exact", p)) for p in paths]
    if probes is not None and probes.grpc and http:
        matches.append(RouteMatch("POST", PathMatch("Exact", GRPC_HEALTH_CHECK)))
    return matches


def port_policy(policy: ServicePolicy, service: Service, port: Port,
                intent: Intent, probes: PortProbes | None = None) -> PortPolicy:
    """Who may send what to one port of ``service``.

    Linkerd authorizes the kubelet's httpGet probes by itself, as long as no HTTPRoute is
    attached to the port's Server; gRPC and HTTPS probes it never does
    (https://linkerd.io/2-edge/features/server-policy/#default-authorizations; linkerd2
    ``policy-controller/k8s/index/src/inbound/workload.rs``: httpGet only;
    https://github.com/linkerd/linkerd2/issues/9595, /12806). So a port with gRPC probes gets
    routes, the health check's authorized from ``mesh_linkerd.probe_networks``; a port Linkerd
    cannot route (TLS, opaque) is opened to the probe networks on its Server."""
    number = port.target_port or port.port
    result = PortPolicy(port=port, workload_port=number)
    http = port.protocol in ROUTABLE_PROTOCOLS
    allow = [r for r in policy.allow if r.applies_to(number) and (http or not r.matches)]
    deny = [r for r in policy.deny if r.applies_to(number) and (http or not r.matches)]
    probe_clients = frozenset({network_client(intent.linkerd.probe_networks)})
    routed_probe = probes is not None and probes.grpc and http
    unrouted_probe = probes is not None and (probes.tls or (probes.grpc and not http))
    if not any(rule.matches for rule in allow + deny):
        clients = _clients_at(ANY, allow, deny, policy, result)
        if not routed_probe or ALL in clients:
            result.server_clients = union(clients, probe_clients) if unrouted_probe \
                else clients
            result.probes_opened = unrouted_probe and ALL not in clients
            return result
    seeds = [m for rule in allow + deny for m in rule.matches]
    if any(not rule.matches for rule in allow):
        seeds.append(ANY)
    probes_at = probe_matches(service, probes, http)
    matches, undetermined = close(seeds + probes_at)
    for overlap in undetermined:
        result.gaps.append((policy.path, overlap, "these paths may overlap, and Linkerd sends a "
                            "request to one route only (by Gateway API precedence): the rules "
                            "on their overlap may be applied differently from Istio"))
    groups: dict[Clients, list[RouteMatch]] = {}
    for match in matches:
        clients = _clients_at(match, allow, deny, policy, result)
        if match in probes_at:
            clients = union(clients, probe_clients)
        groups.setdefault(clients, []).append(match)
    result.routes = [RouteGroup(tuple(found), clients) for clients, found in groups.items()]
    return result


def _clients_at(match: RouteMatch, allow: list[PolicyRule], deny: list[PolicyRule],
                policy: ServicePolicy, result: PortPolicy) -> Clients:
    allowed = union(*(rule.clients for rule in allow if rule.covers(match)))
    denied = union(*(rule.clients for rule in deny if rule.covers(match)))
    clients = subtract(allowed, denied) if denied else allowed
    if clients is None:
        shown = ", ".join(sorted(_describe(c) for c in denied))
        group = ", ".join(sorted(_describe(c) for c in allowed))
        gap = (f"{policy.path}.deny", shown,
               "Linkerd has no DENY: callers are only ever allowed, and these cannot be cut "
               f"out of the callers an ALLOW rule names as a group ({group}); the ALLOW is "
               "rendered without the DENY")
        if gap not in result.gaps:
            result.gaps.append(gap)
        clients = allowed
    if policy.only is not None:
        clients = intersect(clients, policy.only)
    return clients


def _describe(client: Client) -> str:
    if client.is_network:
        return "networks " + ",".join(client.networks)
    return client.identity


def service_ports(service: Service,
                  probes: Mapping[int, PortProbes] | None = None) -> list[Port]:
    """One port per workload port (two Service ports may share a container port), the peer
    ports of a StatefulSet and the ``pod_ports`` included, and the probe-only ports whose
    probes Linkerd does not authorize by itself (gRPC, HTTPS)."""
    seen: dict[int, Port] = {}
    for port in (*service.ports, *service.peer_ports, *service.pod_ports):
        seen.setdefault(port.target_port or port.port, port)
    for number, found in (probes or {}).items():
        if number not in seen and (found.grpc or found.tls):
            protocol = "TLS" if found.tls and not found.grpc else "GRPC"
            seen[number] = Port(name=f"probe-{number}", port=number, protocol=protocol)
    return list(seen.values())
