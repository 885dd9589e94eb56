"""MST0103: AuthorizationPolicy principals that name no identity of the mesh."""

from __future__ import annotations

import re

from ...estate.index import MeshIndex
from ..analyzer import Analyzer, Results
from ..finding import Level
from .authorization_policies import sources

_PRINCIPAL = re.compile(r"^(?P<td>[^/]+)/ns/(?P<ns>[^/]+)/sa/(?P<sa>[^/]+)$")


class PrincipalsAnalyzer(Analyzer):
    """AuthorizationPolicy sources whose ``principals`` or ``notPrincipals`` name an identity
    no workload can have: another trust domain than the mesh's (or its aliases), a
    namespace that does not exist, or a service account that does not exist (no
    ServiceAccount object, and no workload runs as it; judged only for namespaces the input
    holds service accounts or workloads of). Under default deny, such a typo
    leaves the real caller without an ALLOW. Principals with wildcards are not checked.

    Fails with MST0103::

        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: payment-service-allow, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          rules: [{from: [{source: {principals: [cluster.local/ns/payments/sa/order-svc]}}]}]
        ---
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: order-service, namespace: payments}

    Passes::

        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: payment-service-allow, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          rules: [{from: [{source: {principals: [cluster.local/ns/payments/sa/order-service]}}]}]
        ---
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: order-service, namespace: payments}
    """

    name = "meshstage.PrincipalsAnalyzer"
    provider = "istio"
    codes = {"MST0103": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        domains = {index.mesh.trust_domain, *index.mesh.trust_domain_aliases}
        unchecked = False
        for policy in index.istio("AuthorizationPolicy"):
            for path, source in sources(policy):
                for field in ("principals", "notPrincipals"):
                    values = source.get(field)
                    for number, value in enumerate(values if isinstance(values, list) else []):
                        parsed = _PRINCIPAL.match(str(value))
                        if parsed is None or "*" in str(value):
                            continue
                        domain, namespace, account = parsed.group("td", "ns", "sa")
                        if domain not in domains:
                            problem: str | None = (f"its trust domain {domain!r} is not the "
                                                   f"mesh's ({', '.join(sorted(domains))})")
                        else:
                            problem = index.account_problem(namespace, account)
                        if problem == "":
                            unchecked = True
                        elif problem:
                            yield self.finding(policy, "MST0103", f"Principal {value!r} matches "
                                               f"no workload: {problem}.",
                                               f"{path}.{field}[{number}]")
        if unchecked:
            yield self.unchecked("AuthorizationPolicy principals", "no ServiceAccount, pod "
                                 "or workload in the principal's namespace")
