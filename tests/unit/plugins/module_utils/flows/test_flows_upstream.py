"""No false refusal on upstream's own configurations: the flow proof over the inputs of
Istio's analyzer test table and over Linkerd's samples finds no flow they refuse (the
issue's "no new false positive" on the upstream analyzer cases)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshConfig
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    read_manifests,
    read_mesh_config,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.check import flow_findings

REFERENCE = Path(__file__).resolve().parents[5].parent / "shared" / "reference"
TESTDATA = REFERENCE / "istio-analyzer-testdata"
LINKERD = REFERENCE / "samples" / "linkerd"
SAMPLES = [
    ["website/run.linkerd.io/public/emojivoto.yml",
     "website/run.linkerd.io/public/emojivoto-policy.yml"],
    ["website/run.linkerd.io/public/booksapp.yml"],
    ["linkerd2/test/integration/install/testdata/smoke_test.yaml"],
    ["linkerd2/test/integration/viz/policy/testdata/emoji-policy.yaml",
     "website/run.linkerd.io/public/emojivoto.yml"],
]


def _cases() -> list[dict]:
    cases = yaml.safe_load((REFERENCE / "istio-analyzer-expectations.yaml").read_text())
    return cases["test_cases"]


def test_no_istio_analyzer_case_has_a_refused_flow():
    refused = []
    for case in _cases():
        manifests = read_manifests([TESTDATA / name for name in case["input_files"]])
        mesh = (read_mesh_config(TESTDATA / case["mesh_config_file"])
                if case.get("mesh_config_file") else MeshConfig())
        findings, _ = flow_findings(manifests.resources, mesh, ("istio",))
        refused += [f"{case['name']}: {f.line()}" for f in findings]
    assert refused == []


@pytest.mark.parametrize("files", SAMPLES, ids=lambda files: files[-1].rsplit("/", 1)[-1])
def test_no_linkerd_sample_has_a_refused_flow(files):
    manifests = read_manifests([LINKERD / name for name in files])
    findings, _ = flow_findings(manifests.resources, MeshConfig(), ("linkerd",))
    assert [f.line() for f in findings] == []
