"""Who an authorization admits: Linkerd's authentications, as one ``Authz`` each.

An AuthorizationPolicy admits a client when every one of its ``requiredAuthenticationRefs``
does: a MeshTLSAuthentication an identity it lists (``*`` any mesh identity, ``*.suffix``,
or its ``identityRefs``), a NetworkAuthentication an address in its networks, a
ServiceAccount that identity; it is ignored when one of them does not exist, or names two
identity sources or two networks. A plaintext client has no identity, so no
MeshTLSAuthentication ever admits it, not even ``*``. A ServerAuthorization with no
networks admits the cluster's networks.

Follows https://linkerd.io/2-edge/reference/authorization-policy/ ("In the case of multiple
entries, all authentications must match"; "clients must be in the mesh and must have one of
the specified identities"; "An identity string of * indicates that all meshed clients are
authorized"; NetworkAuthentication: "clients must be in one of the specified networks"),
the AuthorizationPolicy CRD ("If any of the referred objects cannot be found, the
authorization will be ignored"), ``policy-controller/k8s/index/src/inbound/index.rs``
(``policy_client_authz``, ``client_authzs``) and ``policy-controller/core/src/
identity_match.rs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ....estate.objects import Resource, as_list, as_mapping
from .view import POLICY, LinkerdView


@dataclass(frozen=True)
class Authz:
    """One authorization: clients from ``networks`` (None: any address) with an identity
    matching ``identities`` (None: no identity needed; ``*`` any, ``*.suffix``, exact)."""

    by: str
    networks: tuple[object, ...] | None = None
    identities: tuple[str, ...] | None = None

    def admits(self, view: LinkerdView, identity: str | None, address: str | None) -> bool:
        if self.networks is not None and not view.in_networks(address, self.networks):
            return False
        if self.identities is None:
            return True
        return identity is not None and any(_identity_matches(p, identity)
                                            for p in self.identities)


def _identity_matches(pattern: str, identity: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return identity.endswith(pattern[1:])
    return identity == pattern


def default_authz(view: LinkerdView, policy: str, by: str) -> list[Authz]:
    """The authorization a default inbound policy (or a Server's ``accessPolicy``) gives."""
    cluster = tuple(view.cluster_networks)
    return {"all-unauthenticated": [Authz(by)], "audit": [Authz(by)],
            "cluster-unauthenticated": [Authz(by, cluster)],
            "all-authenticated": [Authz(by, None, ("*",))],
            "cluster-authenticated": [Authz(by, cluster, ("*",))]}.get(policy, [])


def policy_authz(view: LinkerdView, policy: Resource) -> Authz | None:
    """An AuthorizationPolicy's authorization, or None when Linkerd ignores it (a reference
    that does not exist, two identity sources, two network authentications)."""
    identities: list[tuple[str, ...]] = []
    networks: list[tuple[object, ...]] = []
    for ref in as_list(policy.spec.get("requiredAuthenticationRefs")):
        ref = as_mapping(ref)
        kind, name = str(ref.get("kind")), str(ref.get("name"))
        namespace = str(ref.get("namespace") or policy.namespace)
        if kind == "ServiceAccount":
            identities.append((view.identity(namespace, name),))
            continue
        found = view.authentications.get((kind, namespace, name))
        if found is None:
            return None
        if kind == "MeshTLSAuthentication":
            identities.append(mesh_tls_identities(view, found))
        elif kind == "NetworkAuthentication":
            networks.append(tuple(as_list(found.spec.get("networks"))))
        else:
            return None
    if len(identities) > 1 or len(networks) > 1:
        return None
    return Authz(policy.display, networks[0] if networks else None,
                 identities[0] if identities else None)


def mesh_tls_identities(view: LinkerdView, found: Resource) -> tuple[str, ...]:
    patterns = [str(i) for i in as_list(found.spec.get("identities"))]
    for ref in as_list(found.spec.get("identityRefs")):
        ref = as_mapping(ref)
        namespace = str(ref.get("namespace") or found.namespace)
        if ref.get("kind") == "ServiceAccount":
            patterns.append(view.identity(namespace, str(ref.get("name"))))
        elif ref.get("kind") == "Namespace":
            patterns.append("*." + view.identity(str(ref.get("name")), "x").split(".", 1)[1])
    return tuple(patterns)


def server_authorization_authz(view: LinkerdView, item: Resource) -> Authz:
    """A (legacy) ServerAuthorization's client: unset networks are the cluster's."""
    client = as_mapping(item.spec.get("client"))
    networks = tuple(as_list(client.get("networks"))) or tuple(view.cluster_networks)
    if client.get("unauthenticated"):
        return Authz(item.display, networks)
    mesh = as_mapping(client.get("meshTLS"))
    if mesh.get("unauthenticatedTLS"):
        return Authz(item.display, networks, ("*",))
    identities = [str(i) for i in as_list(mesh.get("identities"))]
    for account in as_list(mesh.get("serviceAccounts")):
        account = as_mapping(account)
        identities.append(view.identity(str(account.get("namespace") or item.namespace),
                                        str(account.get("name"))))
    return Authz(item.display, networks, tuple(identities))


def targets(policy: Resource, kind: str, name: str) -> bool:
    ref = as_mapping(policy.spec.get("targetRef"))
    return str(ref.get("kind")) == kind and str(ref.get("name")) == name


def server_authz(view: LinkerdView, server: Resource) -> list[Authz]:
    """Everything that authorizes a Server: AuthorizationPolicies targeting it or its
    namespace, ServerAuthorizations selecting it, and its ``accessPolicy``."""
    key = ("server authz", id(server))
    if key not in view.memo:
        view.memo[key] = _server_authz(view, server)
    return view.memo[key]


def _server_authz(view: LinkerdView, server: Resource) -> list[Authz]:
    found = [a for a in (policy_authz(view, p) for p in view.policies.get(server.namespace, [])
                         if targets(p, "Server", server.name)
                         or targets(p, "Namespace", server.namespace)) if a is not None]
    for item in view.server_authorizations.get(server.namespace, []):
        selected = as_mapping(item.spec.get("server"))
        labels = as_mapping(selected.get("selector")).get("matchLabels")
        if selected.get("name") == server.name or (isinstance(labels, dict) and labels and all(
                server.labels.get(str(k)) == str(v) for k, v in labels.items())):
            found.append(server_authorization_authz(view, item))
    access = str(server.spec.get("accessPolicy") or "deny")
    found += default_authz(view, access, f"{server.display} accessPolicy {access}")
    return found


def route_authz(view: LinkerdView, route: Resource) -> list[Authz]:
    key = ("route authz", id(route))
    if key not in view.memo:
        view.memo[key] = _route_authz(view, route)
    return view.memo[key]


def _route_authz(view: LinkerdView, route: Resource) -> list[Authz]:
    return [a for a in (policy_authz(view, p) for p in view.policies.get(route.namespace, [])
                        if targets(p, route.kind, route.name)
                        and str(as_mapping(p.spec.get("targetRef")).get("group") or POLICY)
                        in (POLICY, "gateway.networking.k8s.io")) if a is not None]


def admitted(view: LinkerdView, authz: Sequence[Authz], identity: str | None,
             address: str | None) -> Authz | None:
    return next((a for a in authz if a.admits(view, identity, address)), None)
