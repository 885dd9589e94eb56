"""Istio's own analyzer test table, run against meshstage's analyzers.

For each case of ../shared/reference/istio-analyzer-expectations.yaml whose analyzer is
implemented, the (code, resource) pairs found must equal the expected ones exactly, as a
multiset: upstream's own rule (ConsistOf). The case runs the one analyzer over its input
files (and mesh config), with the input taken as the whole cluster, as istioctl does.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import analyze
from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.registry import ANALYZERS
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    read_manifests,
    read_mesh_config,
)

REFERENCE = Path(__file__).resolve().parents[5].parent / "shared" / "reference"
EXPECTATIONS = REFERENCE / "istio-analyzer-expectations.yaml"
TESTDATA = REFERENCE / "istio-analyzer-testdata"
# The target: these 14 analyzers and their 28 cases.
TARGET = (
    "virtualservice.DestinationHostAnalyzer", "virtualservice.DestinationRuleAnalyzer",
    "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
    "schema.ValidationAnalyzer.VirtualService", "destinationrule.SubsetSelectPodAnalyzer",
    "auth.AuthorizationPoliciesAnalyzer", "injection.Analyzer", "service.PortNameAnalyzer",
    "sidecar.SelectorAnalyzer", "telemetry.SelectorAnalyzer",
    "telemetry.DefaultSelectorAnalyzer", "telemetry.ProviderAnalyzer",
    "deployment.MultiServiceAnalyzer", "annotations.K8sAnalyzer",
)


def _cases() -> list[dict]:
    return yaml.safe_load(EXPECTATIONS.read_text())["test_cases"]


def _implemented() -> list[dict]:
    return [case for case in _cases() if case["analyzer"] in ANALYZERS]


def _case_id(case: dict) -> str:
    return f"{case['analyzer']}:{case['name']}"


@pytest.mark.parametrize("case", _implemented(), ids=_case_id)
def test_upstream_case(case):
    manifests = read_manifests([TESTDATA / name for name in case["input_files"]])
    mesh = (read_mesh_config(TESTDATA / case["mesh_config_file"])
            if case.get("mesh_config_file") else None)
    report = analyze(manifests.resources, mesh, complete=True, analyzers=[case["analyzer"]])
    got = Counter((finding.code, finding.resource) for finding in report.findings)
    want = Counter((message["code"], message["origin"]) for message in case["expected"])
    assert got == want, (f"extra: {sorted((got - want).elements())}; "
                         f"missing: {sorted((want - got).elements())}")


def test_every_target_analyzer_is_implemented_with_its_28_cases():
    assert set(TARGET) <= set(ANALYZERS)
    assert sum(1 for case in _cases() if case["analyzer"] in TARGET) == 28


def test_upstream_analyzers_are_marked_and_have_cases():
    upstream = {name for name, analyzer in ANALYZERS.items() if analyzer.upstream}
    assert upstream == {case["analyzer"] for case in _implemented()}


def test_codes_and_levels_are_istios():
    catalogue = {m["code"]: m["level"] for m in yaml.safe_load(
        (REFERENCE / "istio-analyzer-messages.yaml").read_text())["messages"]}
    for name, analyzer in ANALYZERS.items():
        for code, level in analyzer.codes.items():
            if code.startswith("IST"):
                assert catalogue[code] == level.value, f"{name} {code}"
            else:
                assert code.startswith("MST") and code not in catalogue, f"{name} {code}"
