"""Ingress gateways under Istio's authorization: the principals a backend admits for them,
and the ALLOW that keeps a gateway working when its pods run in a namespace of the
catalogue, where default deny puts an ``allow-nothing``.

A namespace-wide AuthorizationPolicy (no selector, no targetRefs) applies to every workload
of its namespace, the Envoy of a Gateway API gateway included, as long as istiod's
``ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY`` keeps its default (true); an ``allow-nothing``
there refuses every external request at the gateway (403).
https://istio.io/latest/docs/reference/config/security/authorization-policy/ ("If the
authorization policy is in the root namespace, the selector will additionally match ...";
selector semantics), ``pilot/pkg/model/policyattachment.go`` (istio/istio). The gateway is
the edge: its requests come from outside the mesh, with no principal to name, so its ALLOW
admits every request (``rules: [{}]``) and the gateway's own routes decide where they go.
"""

from __future__ import annotations

from ...estate.estate import Estate, GatewayWorkload
from ...intent.model import Intent, Service
from ...plan.model import PlannedObject, StageContribution
from .authorization import workload_policy


def intent_gateway(intent: Intent) -> GatewayWorkload:
    """The intent's ingress gateway as a gateway workload."""
    gateway = intent.ingress_gateway
    ref = gateway.gateway_ref()
    name = ref[1] if ref and gateway.gateway_class else "ingress-gateway"
    return GatewayWorkload(namespace=gateway.namespace, name=name,
                           service_account=gateway.service_account,
                           labels=dict(gateway.labels), shown_as="mesh_ingress_gateway")


def gateways_in_catalogue(intent: Intent, estate: Estate | None) -> list[GatewayWorkload]:
    """The ingress gateways whose pods run in a namespace of the catalogue: the intent's, and
    those the estate shows (Gateway API Gateways istiod deploys, classic gateways)."""
    found: dict[tuple[str, str], GatewayWorkload] = {}
    gateway = intent_gateway(intent)
    if gateway.namespace in intent.namespaces:
        found[(gateway.namespace, gateway.service_account)] = gateway
    for workload in estate.gateways(intent.namespaces) if estate is not None else []:
        found.setdefault((workload.namespace, workload.service_account), workload)
    return [found[key] for key in sorted(found)]


def gateway_allows(intent: Intent, estate: Estate | None, dry_run: bool,
                   contribution: StageContribution) -> list[PlannedObject]:
    """Under default deny, an ALLOW for each gateway in a namespace of the catalogue."""
    objects = []
    for gateway in gateways_in_catalogue(intent, estate):
        name = f"{gateway.name}-ingress"
        objects.append(workload_policy(intent, name, gateway.namespace, dict(gateway.labels),
                                       "ALLOW", [{"from": None, "to": None}], dry_run))
        contribution.notes.append(
            f"Gateway `{gateway.namespace}/{gateway.name}` ({gateway.shown_as}) runs in a "
            "namespace of the catalogue, where `allow-nothing` would refuse every external "
            f"request at the gateway: `{name}` admits every request to its pods; its routes "
            "decide where they go.")
    return objects


def ingress_principals(intent: Intent, service: Service, estate: Estate | None) -> list[str]:
    """The principals of the gateways that send ingress requests to ``service``: the intent's
    ingress gateway for ``ingress: true``, and the gateways of the estate's routes to it (an
    HTTPRoute on a Gateway istiod deploys, a VirtualService bound to an Istio Gateway whose
    pods the estate shows)."""
    td = intent.trust_domain
    found = []
    if service.ingress:
        gateway = intent.ingress_gateway
        found.append(f"{td}/ns/{gateway.namespace}/sa/{gateway.service_account}")
    if estate is not None:
        for route in estate.ingress_routes(service.namespace, service.name,
                                           _backends(service)):
            found += [f"{td}/ns/{namespace}/sa/{account}"
                      for namespace, account in estate.route_gateway_accounts(route)]
    return list(dict.fromkeys(found))


def _backends(service: Service) -> list[str]:
    return [version.service or f"{service.name}-{version.name}" for version in service.versions]
