"""playbooks/canary.yml on a Kubernetes-only environment, with real ansible-playbook and git.

No cluster and no Prometheus here (the host-sidecar lab in tests/integration/hosts/ runs
whole canaries against real Envoy and Prometheus): the run starts, stops at an unreachable
Prometheus with the record intact, is rolled back by hand, and the cluster apply's plan and
a later migrate.yml keep to what the repository records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

ESTATE: dict[str, Any] = {
    "mesh_environment": "dev",
    "mesh_stage": "traffic",
    "mesh_services": [
        {"name": "web", "namespace": "shop", "versions": ["v1"], "calls": ["api"]},
        {"name": "api", "namespace": "shop", "versions": ["v1", "v2"],
         "canary": {"subset": "v2", "weight": 0, "steps": [10, 50, 100],
                    "analysis": {"interval": "1s", "min_requests": 5, "max_waits": 0}}},
    ],
    "mesh_telemetry": {"scrape_interval": "500ms"},
}


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    base = tmp_path / "inventory"
    (base / "host_vars").mkdir(parents=True)
    (base / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "mesh_environments": {"hosts": {"dev": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}}}))
    (base / "host_vars" / "dev.yml").write_text(yaml.safe_dump(ESTATE))
    return base


def playbook(inventory: Path, path: Path, gitops: Path, *extra: str
             ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(path),
         "-e", f"mesh_gitops_dir={gitops}", *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def subjects(gitops: Path) -> list[str]:
    return subprocess.run(["git", "-C", str(gitops), "log", "--reverse", "--format=%s"],
                          capture_output=True, text=True, check=True).stdout.splitlines()


def route(gitops: Path) -> dict[str, int]:
    vs = yaml.safe_load((gitops / "envs/dev/04-traffic/04-shop/virtualservice.shop.api.yaml")
                        .read_text())
    return {r["destination"]["subset"]: r["weight"] for r in vs["spec"]["http"][-1]["route"]}


def planned_route(inventory: Path, tmp_path: Path, gitops: Path | None) -> dict[str, int]:
    """The weights the cluster apply would send (meshstage.mesh.cluster_plan)."""
    out = tmp_path / "plan.json"
    book = tmp_path / "plan.yml"
    book.write_text(yaml.safe_dump([{
        "name": "Plan", "hosts": "mesh_environments", "gather_facts": False, "tasks": [
            {"name": "Plan", "register": "plan", "meshstage.mesh.cluster_plan": {
                **({"gitops_dir": str(gitops)} if gitops else {})}},
            {"name": "Keep it", "ansible.builtin.copy": {
                "content": "{{ plan.apply | to_json }}", "dest": str(out), "mode": "0644"}}]}]))
    result = playbook(inventory, book, gitops or tmp_path / "unused")
    assert result.returncode == 0, result.stdout[-3000:]
    (vs,) = [step["definition"] for step in json.loads(out.read_text())
             if step["resource"] == "VirtualService shop/api"]
    return {r["destination"]["subset"]: r["weight"] for r in vs["spec"]["http"][-1]["route"]}


def test_a_canary_run_without_a_cluster(inventory, tmp_path):
    gitops = tmp_path / "gitops"
    canary = REPO / "playbooks" / "canary.yml"
    # a new environment straight at traffic: the order gate is forced, as make demo does
    assert playbook(inventory, REPO / "playbooks" / "migrate.yml", gitops, "-e",
                    '{"mesh_force_gates": ["order"]}').returncode == 0
    assert route(gitops) == {"v1": 100, "v2": 0}

    # starts (step 1 committed), then cannot analyze: Prometheus does not answer
    from prometheus_lab import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    result = playbook(inventory, canary, gitops, "-e", "mesh_canary_service=api",
                      "-e", f"mesh_prometheus_url={closed}")
    assert result.returncode == 2, result.stdout[-3000:]
    assert "api (v1 -> v2) in dev: not started; measured on istio" in result.stdout
    assert f"Prometheus {closed}, query 'sum(increase(istio_requests_total" in result.stdout
    assert "cannot reach it" in result.stdout
    assert subjects(gitops)[-1] == "meshstage(dev): canary api: v2 at 10% (step 1 of 3)"
    assert route(gitops) == {"v1": 90, "v2": 10}

    # the cluster apply plans what the repository records, not the inventory's weight
    assert planned_route(inventory, tmp_path, gitops) == {"v1": 90, "v2": 10}
    assert planned_route(inventory, tmp_path, None) == {"v1": 100, "v2": 0}

    # the preview names the run in progress; a rollback by hand commits 0% and succeeds
    result = playbook(inventory, canary, gitops, "-e", "mesh_canary_service=api",
                      "-e", "mesh_canary_rollback=true")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "in progress at step 1 of 3 (10% to v2)" in result.stdout
    assert subjects(gitops)[-1] == "meshstage(dev): canary api: v2 rolled back to 0%, by hand"
    assert route(gitops) == {"v1": 100, "v2": 0}

    # a later migrate.yml keeps the rollback: the inventory's weight 30 is not rendered
    result = playbook(inventory, REPO / "playbooks" / "migrate.yml", gitops,
                      "-e", json.dumps({"mesh_service_overrides": {
                          "api": {"canary": {"weight": 30}}}}))
    assert result.returncode == 0, result.stdout[-3000:]
    # no object changes; the runbook's warnings say what the inventory should say
    assert "0 added, 0 changed, 0 removed" in result.stdout
    said = " ".join((result.stdout + result.stderr).split())   # warnings go to stderr
    assert "mesh_services[1].canary.weight: 30 is not rendered for api" in said
    assert "mesh_services[1].canary.weight: 30 is not rendered for api" in \
        (gitops / "envs/dev/RUNBOOK.md").read_text()
    assert route(gitops) == {"v1": 100, "v2": 0}

    # a service without a canary, and a play without the service, are refused
    result = playbook(inventory, canary, gitops, "-e", "mesh_canary_service=web")
    assert result.returncode == 2
    assert "mesh_services[0].canary: None is required for a canary run of web" in result.stdout
    result = playbook(inventory, canary, gitops)
    assert result.returncode == 2
    assert "canary.yml runs one service's canary in one environment" in result.stdout
