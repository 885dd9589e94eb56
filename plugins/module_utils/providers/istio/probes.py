"""Kubelet probes Istio does not rewrite, and what keeps them working.

Istio rewrites a pod's httpGet, tcpSocket and gRPC probes to its agent (port 15020, outside
the sidecar's capture), so neither PeerAuthentication nor AuthorizationPolicy sees them. A pod
annotated ``sidecar.istio.io/rewriteAppHTTPProbers: "false"`` (on the pod template: the
annotation is ignored anywhere else) keeps its probes: they reach the application port
through the sidecar, in plaintext and without an identity, so STRICT refuses them and, under
PERMISSIVE, an ALLOW that names principals does too
(https://istio.io/latest/docs/ops/configuration/mesh/app-health-check/, "This becomes a
problem when mutual TLS is enabled, because the Kubelet does not have an Istio issued
certificate"). tcpSocket probes still pass (the sidecar accepts every connection) and exec
probes never cross the network.

meshstage keeps them working as it does for any caller that cannot be meshed: from
strict_mtls on, the probed ports get a PERMISSIVE port-level exception (``portLevelMtls`` on
the workload port: https://istio.io/latest/docs/reference/config/security/peer_authentication/),
and where an ALLOW policy governs the workload, ``<service>-probes`` admits the probes' own
requests on those ports (GET of the probe paths, POST of the gRPC health check; the port
alone over TLS, where Istio sees no HTTP).
"""

from __future__ import annotations

from typing import Any

from ...errors import IntentError
from ...estate.estate import Estate
from ...estate.objects import Workload
from ...intent.model import Intent, MtlsExemption, Service
from ...plan.callers import RELAXED, exception_of
from ...plan.model import PlannedObject
from ...plan.probes import GRPC_HEALTH_CHECK, PortProbes, service_probes
from ..gatewayapi.routes import ROUTABLE_PROTOCOLS
from .authorization import workload_policy

REWRITE = "sidecar.istio.io/rewriteAppHTTPProbers"


def not_rewritten(workload: Workload) -> bool:
    return workload.annotations.get(REWRITE, "").lower() == "false"


def unrewritten_probes(estate: Estate | None, service: Service) -> dict[int, PortProbes]:
    """The probes that reach the service's ports through the sidecar, by port."""
    return service_probes(estate, service, only=not_rewritten)


def probe_exception(intent: Intent, service: Service,
                    probes: dict[int, PortProbes]) -> tuple[MtlsExemption | None,
                                                            list[IntentError]]:
    """The PERMISSIVE port-level exception for probed ports that would be STRICT; a refusal
    where the intent's own exception sets such a port STRICT."""
    exception = exception_of(intent, service)
    if exception is not None:
        strict = [port for port in probes if port in exception.ports
                  and exception.ports[port] not in RELAXED]
        return None, [IntentError(
            f"mesh_mtls_exceptions[{intent.mtls_exceptions.index(exception)}].ports.{port}",
            "STRICT", f"refuses the kubelet's probes of {service.namespace}/{service.name} on "
            f"{probes[port].describe()}: Istio does not rewrite them ({REWRITE}: \"false\"), "
            "so they arrive in plaintext; make the port PERMISSIVE, or let Istio rewrite the "
            "probes") for port in strict]
    reasons = "; ".join(found.describe() for found in probes.values())
    return MtlsExemption(
        service.name, "UNSET", {port: "PERMISSIVE" for port in probes},
        f"kubelet probes not rewritten ({REWRITE}: \"false\") arrive in plaintext: "
        f"{reasons}"), []


def probe_rules(service: Service, probes: dict[int, PortProbes]) -> list[dict[str, Any]]:
    """ALLOW rules for the probes' own requests, without a source (they have none)."""
    protocols = {port.target_port or port.port: port.protocol for port in service.ports}
    rules = []
    for port, found in probes.items():
        http = protocols.get(port, "HTTP") in ROUTABLE_PROTOCOLS
        operations = []
        if found.http_paths and http:
            operations.append({"ports": [str(port)], "methods": ["GET"],
                               "paths": list(found.http_paths)})
        if found.grpc and http:
            operations.append({"ports": [str(port)], "methods": ["POST"],
                               "paths": [GRPC_HEALTH_CHECK]})
        if found.tls or not http:
            # TLS, or a port Istio treats as TCP: an ALLOW rule with HTTP fields would be
            # dropped (https://istio.io/latest/docs/tasks/security/authorization/authz-tcp/)
            operations = [{"ports": [str(port)]}]
        rules += [{"from": None, "to": [{"operation": operation}]} for operation in operations]
    return rules


def probe_allow(intent: Intent, service: Service, probes: dict[int, PortProbes],
                dry_run: bool) -> PlannedObject:
    return workload_policy(intent, f"{service.name}-probes", service.namespace,
                           service.selector, "ALLOW", probe_rules(service, probes), dry_run)
