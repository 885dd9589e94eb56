"""Every analyzer, registered by name in one explicit mapping (no discovery).

A new analyzer is a module in ``analyzers/`` and one line here; docs/analyzers.md lists
them from this mapping (``make analyzers-doc``), and a test checks that it is current.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..inventory.crosscheck import InventoryEstateAnalyzer
from .analyzer import Analyzer
from .analyzers.annotations import K8sAnnotationsAnalyzer
from .analyzers.authorization_policies import AuthorizationPoliciesAnalyzer
from .analyzers.declared_callers import DeclaredCallersAnalyzer
from .analyzers.destination_host import DestinationHostAnalyzer
from .analyzers.destination_rule import DestinationRuleAnalyzer
from .analyzers.destination_rule_conflicts import DestinationRuleConflictAnalyzer
from .analyzers.gateways import GatewayAnalyzer
from .analyzers.http10 import Http10Analyzer
from .analyzers.injection import InjectionAnalyzer
from .analyzers.linkerd_identities import LinkerdIdentitiesAnalyzer
from .analyzers.linkerd_opaque_ports import LinkerdOpaquePortsAnalyzer
from .analyzers.linkerd_outside_callers import LinkerdOutsideCallersAnalyzer
from .analyzers.linkerd_policy_refs import LinkerdPolicyRefsAnalyzer
from .analyzers.linkerd_probes import LinkerdProbesAnalyzer
from .analyzers.linkerd_route_backends import LinkerdRouteBackendsAnalyzer
from .analyzers.linkerd_server_conflicts import LinkerdServerConflictAnalyzer
from .analyzers.linkerd_server_ports import LinkerdServerPortAnalyzer
from .analyzers.linkerd_startup import LinkerdStartupAnalyzer
from .analyzers.mesh_gateway_hosts import ConflictingMeshGatewayHostsAnalyzer
from .analyzers.multi_service import MultiServiceAnalyzer
from .analyzers.outside_callers import OutsideCallersAnalyzer
from .analyzers.peer_authentication import PeerAuthenticationConflictAnalyzer
from .analyzers.port_name import PortNameAnalyzer
from .analyzers.principals import PrincipalsAnalyzer
from .analyzers.probes import ProbesAnalyzer
from .analyzers.progressive_delivery import ProgressiveDeliveryAnalyzer
from .analyzers.revision import RevisionAnalyzer
from .analyzers.root_namespace_policy import RootNamespacePolicyAnalyzer
from .analyzers.server_first import ServerFirstAnalyzer
from .analyzers.sidecar_egress import SidecarEgressAnalyzer
from .analyzers.sidecar_selector import SidecarSelectorAnalyzer
from .analyzers.startup import StartupAnalyzer
from .analyzers.stateful_peers import StatefulPeersAnalyzer
from .analyzers.strict_tls import StrictTlsAnalyzer
from .analyzers.strict_uninjected import StrictUninjectedAnalyzer
from .analyzers.subset_pods import SubsetSelectPodAnalyzer
from .analyzers.tcp_allow import TcpAllowAnalyzer
from .analyzers.telemetry_default_selector import TelemetryDefaultSelectorAnalyzer
from .analyzers.telemetry_provider import TelemetryProviderAnalyzer
from .analyzers.telemetry_selector import TelemetrySelectorAnalyzer
from .analyzers.virtual_service_matches import VirtualServiceMatchesAnalyzer

ANALYZERS: Mapping[str, Analyzer] = {
    # Istio, as istioctl analyze (upstream names and codes)
    "annotations.K8sAnalyzer": K8sAnnotationsAnalyzer(),
    "auth.AuthorizationPoliciesAnalyzer": AuthorizationPoliciesAnalyzer(),
    "deployment.MultiServiceAnalyzer": MultiServiceAnalyzer(),
    "destinationrule.SubsetSelectPodAnalyzer": SubsetSelectPodAnalyzer(),
    "injection.Analyzer": InjectionAnalyzer(),
    "schema.ValidationAnalyzer.VirtualService": VirtualServiceMatchesAnalyzer(),
    "service.PortNameAnalyzer": PortNameAnalyzer(),
    "sidecar.SelectorAnalyzer": SidecarSelectorAnalyzer(),
    "telemetry.DefaultSelectorAnalyzer": TelemetryDefaultSelectorAnalyzer(),
    "telemetry.ProviderAnalyzer": TelemetryProviderAnalyzer(),
    "telemetry.SelectorAnalyzer": TelemetrySelectorAnalyzer(),
    "virtualservice.ConflictingMeshGatewayHostsAnalyzer": ConflictingMeshGatewayHostsAnalyzer(),
    "virtualservice.DestinationHostAnalyzer": DestinationHostAnalyzer(),
    "virtualservice.DestinationRuleAnalyzer": DestinationRuleAnalyzer(),
    "virtualservice.GatewayAnalyzer": GatewayAnalyzer(),
    # Istio, meshstage's own: what a staged migration can get wrong
    "meshstage.StrictTlsAnalyzer": StrictTlsAnalyzer(),
    "meshstage.PeerAuthenticationConflictAnalyzer": PeerAuthenticationConflictAnalyzer(),
    "meshstage.PrincipalsAnalyzer": PrincipalsAnalyzer(),
    "meshstage.RootNamespacePolicyAnalyzer": RootNamespacePolicyAnalyzer(),
    "meshstage.DeclaredCallersAnalyzer": DeclaredCallersAnalyzer(),
    "meshstage.ProbesAnalyzer": ProbesAnalyzer(),
    "meshstage.StrictUninjectedAnalyzer": StrictUninjectedAnalyzer(),
    "meshstage.DestinationRuleConflictAnalyzer": DestinationRuleConflictAnalyzer(),
    "meshstage.StartupAnalyzer": StartupAnalyzer(),
    "meshstage.StatefulPeersAnalyzer": StatefulPeersAnalyzer(),
    "meshstage.ServerFirstAnalyzer": ServerFirstAnalyzer(),
    "meshstage.Http10Analyzer": Http10Analyzer(),
    "meshstage.OutsideCallersAnalyzer": OutsideCallersAnalyzer(),
    "meshstage.RevisionAnalyzer": RevisionAnalyzer(),
    "meshstage.TcpAllowAnalyzer": TcpAllowAnalyzer(),
    "meshstage.SidecarEgressAnalyzer": SidecarEgressAnalyzer(),
    "meshstage.ProgressiveDeliveryAnalyzer": ProgressiveDeliveryAnalyzer(),
    # Linkerd, meshstage's own
    "linkerd.ServerPortAnalyzer": LinkerdServerPortAnalyzer(),
    "linkerd.PolicyRefsAnalyzer": LinkerdPolicyRefsAnalyzer(),
    "linkerd.ProbesAnalyzer": LinkerdProbesAnalyzer(),
    "linkerd.IdentitiesAnalyzer": LinkerdIdentitiesAnalyzer(),
    "linkerd.RouteBackendsAnalyzer": LinkerdRouteBackendsAnalyzer(),
    # the inventory against the estate's manifests (a run given mesh_check_paths)
    "meshstage.InventoryEstateAnalyzer": InventoryEstateAnalyzer(),
    "linkerd.StartupAnalyzer": LinkerdStartupAnalyzer(),
    "linkerd.OpaquePortsAnalyzer": LinkerdOpaquePortsAnalyzer(),
    "linkerd.OutsideCallersAnalyzer": LinkerdOutsideCallersAnalyzer(),
    "linkerd.ServerConflictAnalyzer": LinkerdServerConflictAnalyzer(),
}
