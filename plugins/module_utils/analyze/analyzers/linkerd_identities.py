"""MST0206: Linkerd identities that match no service account."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._linkerd import linkerd_objects, refs


def _identities(resource: Resource) -> Iterator[tuple[str, str]]:
    """(identity, path) of a MeshTLSAuthentication, or of a ServerAuthorization's client."""
    if resource.kind == "MeshTLSAuthentication":
        values, base = resource.spec.get("identities"), "spec.identities"
    else:
        client = resource.spec.get("client")
        mesh_tls = client.get("meshTLS") if isinstance(client, Mapping) else None
        values = mesh_tls.get("identities") if isinstance(mesh_tls, Mapping) else None
        base = "spec.client.meshTLS.identities"
    for number, value in enumerate(values if isinstance(values, list) else []):
        yield str(value), f"{base}[{number}]"


def _accounts(resource: Resource) -> Iterator[tuple[str, str, str]]:
    """(namespace, service account, path) named by reference."""
    if resource.kind == "MeshTLSAuthentication":
        for found in refs(resource, "identityRefs"):
            if found.kind == "ServiceAccount":
                yield found.namespace, found.name, found.path
    elif resource.kind == "AuthorizationPolicy":
        for found in refs(resource, "requiredAuthenticationRefs"):
            if found.kind == "ServiceAccount":
                yield found.namespace, found.name, found.path
    else:
        client = resource.spec.get("client")
        mesh_tls = client.get("meshTLS") if isinstance(client, Mapping) else None
        accounts = mesh_tls.get("serviceAccounts") if isinstance(mesh_tls, Mapping) else None
        for number, account in enumerate(accounts if isinstance(accounts, list) else []):
            if isinstance(account, Mapping) and account.get("name"):
                yield (str(account.get("namespace") or resource.namespace),
                       str(account["name"]),
                       f"spec.client.meshTLS.serviceAccounts[{number}]")


class LinkerdIdentitiesAnalyzer(Analyzer):
    """Identities in MeshTLSAuthentications, ServerAuthorizations and AuthorizationPolicies
    that match no service account: ``<account>.<namespace>.serviceaccount.identity.linkerd.
    <trust domain>`` names with another trust domain, a namespace that does not exist, or an
    account that does not exist (no ServiceAccount object, and no workload runs as it), and
    ServiceAccount references likewise. The caller they were meant for is refused.
    Identities with wildcards are not checked; ``default`` exists in every namespace.

    Fails with MST0206::

        apiVersion: policy.linkerd.io/v1alpha1
        kind: MeshTLSAuthentication
        metadata: {name: authors-get-authn, namespace: booksapp}
        spec:
          identities: [webap.booksapp.serviceaccount.identity.linkerd.cluster.local]
        ---
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: webapp, namespace: booksapp}

    Passes::

        apiVersion: policy.linkerd.io/v1alpha1
        kind: MeshTLSAuthentication
        metadata: {name: authors-get-authn, namespace: booksapp}
        spec:
          identities: [webapp.booksapp.serviceaccount.identity.linkerd.cluster.local]
          identityRefs: [{kind: ServiceAccount, name: webapp}]
        ---
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: webapp, namespace: booksapp}
    """

    name = "linkerd.IdentitiesAnalyzer"
    provider = "linkerd"
    codes = {"MST0206": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        suffix = f".serviceaccount.identity.linkerd.{index.mesh.trust_domain}"
        holders = (linkerd_objects(index, "MeshTLSAuthentication")
                   + linkerd_objects(index, "AuthorizationPolicy")
                   + index.of_kind("ServerAuthorization"))
        unchecked = False
        for holder in holders:
            named: list[tuple[str, str, str, str]] = []
            for identity, path in ([] if holder.kind == "AuthorizationPolicy"
                                   else _identities(holder)):
                if "*" in identity:
                    continue
                if not identity.endswith(suffix):
                    yield self.finding(holder, "MST0206", f"Identity {identity!r} matches no "
                                       f"service account: Linkerd identities end in {suffix}.",
                                       path)
                    continue
                account, _, namespace = identity[: -len(suffix)].partition(".")
                named.append((namespace, account, path, f"Identity {identity!r}"))
            for namespace, account, path in _accounts(holder):
                named.append((namespace, account, path, f"ServiceAccount {namespace}/{account}"))
            for namespace, account, path, what in named:
                problem = index.account_problem(namespace, account)
                if problem == "":
                    unchecked = True
                elif problem:
                    yield self.finding(holder, "MST0206", f"{what} matches no service account: "
                                       f"{problem}.", path)
        if unchecked:
            yield self.unchecked("Linkerd identities", "no ServiceAccount, pod or workload in "
                                 "the identity's namespace")
