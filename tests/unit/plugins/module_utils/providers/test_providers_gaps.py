"""Every "not expressible" cell of docs/providers.md shows its warning.

Each case changes one thing in the dev example, renders it for a provider, and pins the
warning: it names the intent field (and the service), says the provider cannot express it,
and lands in the task's warnings and in the runbook's "Not expressible" section.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def service(name: str, **fields: Any) -> dict[str, Any]:
    return {"service": name, **fields}


def change(variables: dict[str, Any], edit: dict[str, Any]) -> dict[str, Any]:
    """Top-level variables replaced; ``service`` edits merged into that service."""
    variables = copy.deepcopy(variables)
    for key, value in edit.items():
        if key == "services":
            for name, fields in value.items():
                item = next(s for s in variables["mesh_services"] if s["name"] == name)
                item.update(fields)
        else:
            variables[key] = value
    return variables


LINKERD = "is not expressible with linkerd: "
GATEWAY = "is not expressible with istio (mesh_traffic_api gateway-api): "

# (cell, provider, stage, edit, the warning's start)
CELLS = [
    ("injection/mesh_revision", "linkerd", "injection",
     {"mesh_revision": "1-28"},
     f"mesh_revision: '1-28' {LINKERD}Linkerd has no control-plane revisions"),
    ("injection/mesh_proxy.image_type", "linkerd", "injection",
     {"mesh_proxy": {"image_type": "distroless"}},
     f"mesh_proxy.image_type: 'distroless' {LINKERD}the Linkerd proxy comes in one"),
    ("observability/mesh_telemetry.metrics_provider", "linkerd", "observability",
     {"mesh_telemetry": {"metrics_provider": "otel-metrics"}},
     f"mesh_telemetry.metrics_provider: 'otel-metrics' {LINKERD}Linkerd proxies serve "
     "Prometheus metrics only"),
    ("observability/mesh_telemetry.tracing_provider", "linkerd", "observability",
     {"mesh_telemetry": {"tracing_provider": "otel-tracing"}},
     f"mesh_telemetry.tracing_provider: 'otel-tracing' {LINKERD}Linkerd has no tracing "
     "providers"),
    ("observability/mesh_telemetry.sampling_percentage", "linkerd", "observability",
     {"mesh_telemetry": {"sampling_percentage": 5},
      "mesh_linkerd": {"trace_collector": "collector.linkerd-jaeger:55678"}},
     f"mesh_telemetry.sampling_percentage: 5.0 {LINKERD}Linkerd proxies sample what the "
     "trace's root"),
    ("observability/mesh_telemetry.access_log_filter", "linkerd", "observability",
     {"mesh_telemetry": {"access_log_filter": "response.code >= 500"}},
     f"mesh_telemetry.access_log_filter: 'response.code >= 500' {LINKERD}Linkerd access "
     "logs have no filter"),
    ("traffic/services.calls", "linkerd", "traffic", {},
     "mesh_services[].calls (7 service(s) that call): list ['productpage', 'reviews', "
     "'ratings', 'payment-service', 'order-service', 'admin-service', 'billing-export'] "
     f"{LINKERD}Linkerd proxies do not scope egress per workload"),
    ("traffic/services.traffic.connection_pool", "linkerd", "traffic", {},
     "mesh_services[3].traffic.connection_pool (service bookinfo/ratings): dict "
     "{'max_connections': 100, 'http1_max_pending_requests': 32, "
     "'max_requests_per_connection': 10} " + LINKERD + "Linkerd proxies have no connection pool"),
    ("traffic/services.traffic.load_balancer", "linkerd", "traffic", {},
     f"mesh_services[3].traffic.load_balancer (service bookinfo/ratings): 'LEAST_REQUEST' "
     f"{LINKERD}Linkerd always balances by latency"),
    ("traffic/outlier_detection.consecutive_gateway_errors", "linkerd", "traffic",
     {"services": {"reviews": {"traffic": {"outlier_detection": {
         "consecutive_gateway_errors": 3}}}}},
     "mesh_services[2].traffic.outlier_detection.consecutive_gateway_errors (service "
     f"bookinfo/reviews): 3 {LINKERD}Linkerd counts every 5xx response as a failure"),
    ("traffic/outlier_detection.interval", "linkerd", "traffic", {},
     "mesh_services[2].traffic.outlier_detection.interval (service bookinfo/reviews): '30s' "
     f"{LINKERD}Linkerd trips on consecutive failures"),
    ("traffic/outlier_detection.max_ejection_percent", "linkerd", "traffic", {},
     "mesh_services[2].traffic.outlier_detection.max_ejection_percent (service "
     f"bookinfo/reviews): 50 {LINKERD}Linkerd can make every endpoint unavailable"),
    ("traffic/outlier_detection on a Service meshstage does not own", "linkerd", "traffic",
     {"services": {"details": {"traffic": {"outlier_detection": {
         "consecutive_5xx_errors": 7}}}}},
     "mesh_services[1].traffic.outlier_detection (service bookinfo/details): dict "
     "{'consecutive_5xx_errors': 7} " + LINKERD
     + "Linkerd reads failure accrual from annotations on Service bookinfo/details"),
    ("traffic/retries.retry_on conditions", "linkerd", "traffic", {},
     "mesh_services[2].traffic.retries.retry_on (service bookinfo/reviews): "
     f"'reset,connect-failure' {LINKERD}retry.linkerd.io/http (on the HTTPRoute of an HTTP "
     "port) takes 5xx, gateway-error"),
    ("traffic/retries.retry_on unset", "linkerd", "traffic",
     {"services": {"reviews": {"traffic": {"retries": {"attempts": 2}}}}},
     "mesh_services[2].traffic.retries.retry_on (service bookinfo/reviews): None "
     f"{LINKERD}Istio's default conditions"),
    ("traffic/retries with no condition left", "linkerd", "traffic", {},
     "mesh_services[4].traffic.retries.retry_on (service payments/payment-service): "
     f"'connect-failure,refused-stream' {LINKERD}retry.linkerd.io/http (on the HTTPRoute of "
     "an HTTP port) takes 5xx, gateway-error and HTTP status codes; no condition is left, so "
     "an HTTPRoute gets no retries"),
    ("traffic/timeout in fractions of a millisecond", "linkerd", "traffic",
     {"services": {"details": {"traffic": {"timeout": "1500us"}}}},
     "mesh_services[1].traffic.timeout (service bookinfo/details): '1500us' "
     f"{LINKERD}Linkerd durations are whole milliseconds; rendered as 2ms"),
    ("traffic/header_routes with smi", "linkerd", "traffic", {"mesh_traffic_api": "smi"},
     f"mesh_services[2].traffic.header_routes (service bookinfo/reviews): 1 {LINKERD}"
     "an SMI TrafficSplit has weights only"),
    ("traffic/timeout with smi", "linkerd", "traffic", {"mesh_traffic_api": "smi"},
     f"mesh_services[2].traffic.timeout (service bookinfo/reviews): '10s' {LINKERD}"
     "an SMI TrafficSplit has weights only"),
    ("traffic/retries with smi", "linkerd", "traffic", {"mesh_traffic_api": "smi"},
     "mesh_services[2].traffic.retries (service bookinfo/reviews): dict {'attempts': 3, "
     "'per_try_timeout': '2s', 'retry_on': '5xx,reset,connect-failure'} "
     + LINKERD + "an SMI TrafficSplit has weights only"),
    ("traffic/routes of a service without an HTTP port", "linkerd", "traffic",
     {"services": {"legacy-billing": {"traffic": {"timeout": "3s"}}}},
     "mesh_services[7].traffic (service payments/legacy-billing): dict {'timeout': '3s', "
     "'split': None} " + LINKERD + "an HTTPRoute attaches to an HTTP, HTTP2 or GRPC port"),
    ("strict_mtls/mesh_mtls_exceptions.mode DISABLE", "linkerd", "strict_mtls",
     {"mesh_mtls_exceptions": [{"service": "details", "mode": "DISABLE",
                                "reason": "plaintext health checker"}]},
     f"mesh_mtls_exceptions[0].mode (service bookinfo/details): 'DISABLE' {LINKERD}"
     "Linkerd cannot turn mTLS off for a meshed workload: meshed clients always send it mTLS. "
     "At strict_mtls, its Servers accept plaintext as well as mTLS"),
    ("strict_mtls/mesh_mtls_exceptions.ports DISABLE", "linkerd", "strict_mtls",
     {"mesh_mtls_exceptions": [{"service": "details", "mode": "PERMISSIVE",
                                "reason": "scraped in plaintext", "ports": {9080: "DISABLE"}}]},
     f"mesh_mtls_exceptions[0].ports.9080 (service bookinfo/details): 'DISABLE' {LINKERD}"
     "Linkerd cannot turn mTLS off for a meshed workload: meshed clients always send it mTLS. "
     "At strict_mtls, the Server of port 9080 accepts plaintext as well as mTLS"),
    ("authorization/principals that are no Linkerd identity", "linkerd", "authorization",
     {"mesh_authorization": [{"service": "details", "allow": [
         {"principals": ["spiffe-like/*/ops"]}, {"from": ["productpage"]}]}]},
     "mesh_authorization[0].allow[0].principals[0] (service bookinfo/details): "
     f"'spiffe-like/*/ops' {LINKERD}Linkerd identities are"),
    ("authorization/DENY by principal inside a wildcard ALLOW", "linkerd", "authorization",
     {"mesh_authorization": [{"service": "details", "allow": [{"namespaces": ["bookinfo"]}],
                              "deny": [{"from": ["reviews"]}]}]},
     "mesh_authorization[0].deny (service bookinfo/details): "
     "'bookinfo-reviews.bookinfo.serviceaccount.identity.linkerd.cluster.local' "
     f"{LINKERD}Linkerd has no DENY"),
    ("authorization/paths whose overlap cannot be computed", "linkerd", "authorization",
     {"mesh_authorization": [{"service": "details", "allow": [
         {"from": ["productpage"], "paths": ["/api/*"]},
         {"from": ["reviews"], "paths": ["*.json"]}]}]},
     "mesh_authorization[0] (service bookinfo/details): '/api/ and ^.*\\\\.json$' "
     f"{LINKERD}these paths may overlap"),
    ("traffic/retries with gateway-api on istio", "istio", "traffic",
     {"mesh_traffic_api": "gateway-api"},
     "mesh_services[2].traffic.retries (service bookinfo/reviews): dict {'attempts': 3, "
     "'per_try_timeout': '2s', 'retry_on': '5xx,reset,connect-failure'} " + GATEWAY
     + "the standard-channel HTTPRoute has no retry field"),
    ("traffic/timeout in fractions of a millisecond with gateway-api on istio", "istio",
     "traffic", {"mesh_traffic_api": "gateway-api",
                 "services": {"details": {"traffic": {"timeout": "1500us"}}}},
     f"mesh_services[1].traffic.timeout (service bookinfo/details): '1500us' {GATEWAY}"
     "Gateway API durations are whole milliseconds; rendered as 2ms"),
    ("traffic/routes of a service without an HTTP port with gateway-api on istio", "istio",
     "traffic", {"mesh_traffic_api": "gateway-api",
                 "services": {"legacy-billing": {"traffic": {"timeout": "3s"}}}},
     "mesh_services[7].traffic (service payments/legacy-billing): dict {'timeout': '3s'} "
     + GATEWAY + "an HTTPRoute attaches to an HTTP, HTTP2 or GRPC port"),
]


@pytest.mark.parametrize(("cell", "provider", "stage", "edit", "expected"), CELLS,
                         ids=[cell[0] for cell in CELLS])
def test_not_expressible_cell_warns(registry, example_intent, cell, provider, stage, edit,
                                    expected):
    variables = change(example_intent("dev", mesh_provider=provider, mesh_stage=stage), edit)
    rendered = render_stage(variables, StageOptions(gitops_dir=Path("/nonexistent")),
                            registry)
    found = [w for w in rendered.warnings if w.startswith(expected)]
    assert len(found) == 1, "\n".join(rendered.warnings)
    runbook = rendered.files["envs/dev/RUNBOOK.md"]
    section = runbook.split(f"## Not expressible with {provider}")[1].split("\n## ")[0]
    assert f"- {found[0]}" in section


def test_istio_with_virtual_services_has_nothing_it_cannot_express(registry, example_intent):
    rendered = render_stage(example_intent("dev"), StageOptions(
        gitops_dir=Path("/nonexistent")), registry)
    assert not [w for w in rendered.warnings if "is not expressible" in w]
    assert "## Not expressible" not in rendered.files["envs/dev/RUNBOOK.md"]


def test_a_gap_is_reported_once_at_the_first_stage_that_meets_it(registry, example_intent):
    rendered = render_stage(example_intent("dev", mesh_provider="linkerd"), StageOptions(
        gitops_dir=Path("/nonexistent")), registry)
    calls = [w for w in rendered.warnings if w.startswith("mesh_services[].calls")]
    assert len(calls) == 1
    assert not [g for g in rendered.plan.gaps if g.stage.value == "permissive_mtls"]


def test_the_providers_page_names_every_case(repo_root):
    """docs/providers.md marks each not-expressible cell with the case that shows it."""
    import re

    page = (repo_root / "docs" / "providers.md").read_text()
    named = set(re.findall(r"not expressible `([a-z_]+/[^`]+)`", page))
    named |= set(re.findall(r", `([a-z_]+/[^`]+)`", page))
    assert named == {cell[0] for cell in CELLS}
