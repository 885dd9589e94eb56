"""The stage gates in playbooks/migrate.yml (real ansible-playbook and git): a refusal names
what blocks and how to proceed, and writes nothing, in --check too; a forced gate is recorded
in the commit message and the runbook; and, against a real Prometheus with Istio-shaped
series backfilled by promtool, plaintext blocks strict_mtls until it is outside the window,
and the dry run's would-be denials block authorization."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from istio_mesh_series import istio_mesh_series
from test_migrate_playbook import git, playbook

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def crd_dir_module() -> Path:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "crds"
    assert path.is_dir(), f"upstream CRDs missing at {path}"
    return path


def gates(url: str, window: str) -> tuple[str, str]:
    return "-e", json.dumps({"mesh_gates": {"prometheus": url, "window": window}})


def test_a_new_environment_at_a_later_stage_is_refused_before_anything_is_written(
        tmp_path, crd_dir_module):
    gitops = tmp_path / "gitops"
    for check in ((), ("--check", "--diff")):
        result = playbook("prod", gitops, crd_dir_module, *check, expect_ok=False, force=False)
        assert "prod (istio): the stage gates refuse the move from nothing (a new " \
            "environment) to injection:" in result.stdout
        assert "gate order: prod is not recorded in the GitOps repository (a new environment " \
            "starts at permissive_mtls): injection (stage 2) would skip permissive_mtls" \
            in result.stdout
        assert "to proceed: move one stage at a time: mesh_stage: permissive_mtls next; " \
            "promote staging to injection first" in result.stdout
        assert "Render the stage" not in result.stdout
        assert not gitops.exists()


def test_forcing_records_the_override_and_later_runs_keep_it(tmp_path, crd_dir_module):
    gitops = tmp_path / "gitops"
    force = ("-e", '{"mesh_force_gates": ["order"]}')
    playbook("prod", gitops, crd_dir_module, "-e", "mesh_stage=permissive_mtls", *force,
             force=False)
    body = git(gitops, "log", "-1", "--format=%B")
    assert "- order: FORCED (mesh_force_gates) over its refusal: prod is promoted from " \
        "staging (mesh_promotion_order: dev, staging, prod), which the GitOps repository " \
        "records nowhere" in body
    runbook = (gitops / "envs/prod/RUNBOOK.md").read_text()
    assert "- `order`, moving from `nothing` to `permissive_mtls`: prod is promoted from " \
        "staging" in runbook
    # the next stage, forced again (staging is still not there): both overrides listed
    playbook("prod", gitops, crd_dir_module, *force, force=False)
    runbook = (gitops / "envs/prod/RUNBOOK.md").read_text()
    assert "- `order`, moving from `nothing` to `permissive_mtls`" in runbook
    assert "- `order`, moving from `permissive_mtls` to `injection`" in runbook
    # staying at the recorded stage: no gate judges, nothing changes
    head = git(gitops, "rev-parse", "HEAD")
    result = playbook("prod", gitops, crd_dir_module, force=False)
    assert "no gate judges this run (not a move forward)" in result.stdout
    assert git(gitops, "rev-parse", "HEAD") == head


@pytest.fixture(scope="module")
def istio_prometheus(tmp_path_factory):
    from prometheus_lab import PrometheusLab

    lab = PrometheusLab(tmp_path_factory.mktemp("istio-prometheus"))
    lab.backfill(istio_mesh_series(time.time()))
    url = lab.start()
    yield url
    lab.stop()


def test_observed_traffic_gates_strict_mtls_and_authorization(istio_prometheus, tmp_path,
                                                              crd_dir_module):
    """dev (Istio) walks from traffic to authorization against the backfilled mesh: each
    gate refuses while the window holds what blocks it, and passes once it does not."""
    gitops = tmp_path / "gitops"
    url = istio_prometheus
    playbook("dev", gitops, crd_dir_module, "-e", "mesh_stage=traffic", force=True)
    head = git(gitops, "rev-parse", "HEAD")
    refused = playbook("dev", gitops, crd_dir_module, "-e", "mesh_stage=strict_mtls",
                       *gates(url, "15m"), expect_ok=False, force=False)
    assert "dev (istio): the stage gates refuse the move from traffic to strict_mtls:" in \
        refused.stdout
    assert "gate strict_mtls: Workload bookinfo/reviews-v1 (service reviews): " in \
        refused.stdout
    assert "plaintext request(s) in the last 15m; under STRICT they would be refused" in \
        refused.stdout
    assert git(gitops, "rev-parse", "HEAD") == head
    # the plaintext stopped 8 minutes ago: outside a 5-minute window
    playbook("dev", gitops, crd_dir_module, "-e", "mesh_stage=strict_mtls",
             *gates(url, "5m"), force=False)
    body = git(gitops, "log", "-1", "--format=%B")
    assert "- strict_mtls: passed: every workload in scope has a sidecar (from the intent " \
        "(no cluster facts gathered)); plaintext into " in body
    refused = playbook("dev", gitops, crd_dir_module, *gates(url, "15m"), expect_ok=False,
                       force=False)
    assert "gate authorization: Service payments/payment-service: the dry run would have " \
        "denied" in refused.stdout
    assert "gate authorization: caller reviews (cluster.local/ns/bookinfo/sa/" \
        "bookinfo-reviews), seen by istio, made" in refused.stdout
    playbook("dev", gitops, crd_dir_module, *gates(url, "5m"), force=False)
    assert git(gitops, "log", "-1", "--format=%s").startswith(
        "meshstage(dev): authorization stage")
    assert "- authorization: passed: " in git(gitops, "log", "-1", "--format=%B")
