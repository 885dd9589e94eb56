"""MST0203, MST0204: Linkerd authorization policies whose target or authentication is
missing."""

from __future__ import annotations

from collections.abc import Mapping

from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ...kube import selector_matches
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._linkerd import linkerd_objects, ref, refs

_TARGETS = {"Server", "HTTPRoute", "GRPCRoute", "Namespace"}
_AUTHENTICATIONS = {"MeshTLSAuthentication", "NetworkAuthentication"}


class LinkerdPolicyRefsAnalyzer(Analyzer):
    """Linkerd AuthorizationPolicies whose ``targetRef`` (a Server, an HTTPRoute or
    GRPCRoute, or their own Namespace) does not exist, ServerAuthorizations whose
    ``server`` names no Server (or whose selector selects none), and AuthorizationPolicies
    whose ``requiredAuthenticationRefs`` name a MeshTLSAuthentication or
    NetworkAuthentication that does not exist. Such a policy authorizes nothing: under
    default deny its callers are refused.

    Fails with MST0203::

        apiVersion: policy.linkerd.io/v1alpha1
        kind: AuthorizationPolicy
        metadata: {name: authors-get-policy, namespace: booksapp}
        spec:
          targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: authors-get}
          requiredAuthenticationRefs: [{name: webapp, kind: ServiceAccount}]
        ---
        apiVersion: policy.linkerd.io/v1beta3
        kind: HTTPRoute
        metadata: {name: authors-get-route, namespace: booksapp}
        spec:
          parentRefs: [{name: authors-server, kind: Server, group: policy.linkerd.io}]
          rules: [{matches: [{path: {value: /authors.json}, method: GET}]}]

    Fails with MST0204::

        apiVersion: policy.linkerd.io/v1alpha1
        kind: AuthorizationPolicy
        metadata: {name: authors-probe-policy, namespace: booksapp}
        spec:
          targetRef: {kind: Namespace, name: booksapp}
          requiredAuthenticationRefs:
          - {name: probe-authn, kind: NetworkAuthentication, group: policy.linkerd.io}
        ---
        apiVersion: policy.linkerd.io/v1alpha1
        kind: NetworkAuthentication
        metadata: {name: authors-probe-authn, namespace: booksapp}
        spec: {networks: [{cidr: 0.0.0.0/0}]}

    Passes::

        apiVersion: policy.linkerd.io/v1alpha1
        kind: AuthorizationPolicy
        metadata: {name: authors-probe-policy, namespace: booksapp}
        spec:
          targetRef: {kind: Namespace, name: booksapp}
          requiredAuthenticationRefs:
          - {name: authors-probe-authn, kind: NetworkAuthentication, group: policy.linkerd.io}
        ---
        apiVersion: policy.linkerd.io/v1alpha1
        kind: NetworkAuthentication
        metadata: {name: authors-probe-authn, namespace: booksapp}
        spec: {networks: [{cidr: 0.0.0.0/0}]}
    """

    name = "linkerd.PolicyRefsAnalyzer"
    provider = "linkerd"
    codes = {"MST0203": Level.ERROR, "MST0204": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        unchecked: set[str] = set()
        for policy in linkerd_objects(index, "AuthorizationPolicy"):
            target = ref(policy.spec.get("targetRef"), policy, "spec.targetRef")
            if target is not None and target.kind in _TARGETS:
                if target.kind == "Namespace":
                    if target.name != policy.namespace:
                        yield self.finding(policy, "MST0203", f"The target Namespace "
                                           f"{target.name} is not the policy's own namespace "
                                           f"({policy.namespace}): Linkerd ignores it.",
                                           target.path)
                elif not index.knows_in(target.namespace, target.kind):
                    unchecked.add(target.kind)
                elif index.get(target.kind, target.namespace, target.name) is None:
                    yield self.finding(policy, "MST0203", f"Referenced target {target.text} not "
                                       "found: this policy authorizes nothing.", target.path)
            for authentication in refs(policy, "requiredAuthenticationRefs"):
                if authentication.kind not in _AUTHENTICATIONS:
                    continue
                if not index.knows_in(authentication.namespace, authentication.kind):
                    unchecked.add(authentication.kind)
                elif index.get(authentication.kind, authentication.namespace,
                               authentication.name) is None:
                    yield self.finding(policy, "MST0204", "Referenced authentication "
                                       f"{authentication.text} not found: this policy "
                                       "authorizes nothing.", authentication.path)
        servers: dict[str, list[Resource]] = {}
        for server in linkerd_objects(index, "Server"):
            servers.setdefault(server.namespace, []).append(server)
        for authorization in index.of_kind("ServerAuthorization"):
            yield from self._server_authorization(index, authorization,
                                                  servers.get(authorization.namespace, []),
                                                  unchecked)
        for kind in sorted(unchecked):
            yield self.unchecked(f"references to {kind}s", f"no {kind} in the referenced "
                                 "namespace")

    def _server_authorization(self, index: MeshIndex, authorization: Resource,
                              servers: list[Resource], unchecked: set[str]) -> Results:
        server = authorization.spec.get("server")
        if not isinstance(server, Mapping):
            return
        if not index.knows_in(authorization.namespace, "Server"):
            unchecked.add("Server")
            return
        if server.get("name"):
            if not any(s.name == server["name"] for s in servers):
                yield self.finding(authorization, "MST0203", "Referenced Server "
                                   f"{authorization.namespace}/{server['name']} not found: this "
                                   "authorization applies to nothing.", "spec.server.name")
        elif isinstance(server.get("selector"), Mapping):
            if not any(selector_matches(server["selector"], s.labels) for s in servers):
                yield self.finding(authorization, "MST0203", "The server selector selects no "
                                   f"Server in namespace {authorization.namespace}: this "
                                   "authorization applies to nothing.", "spec.server.selector")
