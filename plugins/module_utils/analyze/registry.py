"""Every analyzer, registered by name in one explicit mapping (no discovery).

A new analyzer is a module in ``analyzers/`` and one line here; docs/analyzers.md lists
them from this mapping (``make analyzers-doc``), and a test checks that it is current.
"""

from __future__ import annotations

from collections.abc import Mapping

from .analyzer import Analyzer
from .analyzers.annotations import K8sAnnotationsAnalyzer
from .analyzers.authorization_policies import AuthorizationPoliciesAnalyzer
from .analyzers.destination_host import DestinationHostAnalyzer
from .analyzers.destination_rule import DestinationRuleAnalyzer
from .analyzers.injection import InjectionAnalyzer
from .analyzers.mesh_gateway_hosts import ConflictingMeshGatewayHostsAnalyzer
from .analyzers.multi_service import MultiServiceAnalyzer
from .analyzers.port_name import PortNameAnalyzer
from .analyzers.sidecar_selector import SidecarSelectorAnalyzer
from .analyzers.subset_pods import SubsetSelectPodAnalyzer
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
}
