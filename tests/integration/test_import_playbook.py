"""``playbooks/import.yml`` writes an inventory from an estate (the same function as
``meshstage import``), and ``playbooks/migrate.yml`` runs it as it is: its relative
``mesh_check_paths`` are read from the inventory and said so, every run checks the inventory
against the estate, and an inventory without plain hosts gets no warning about the
``mesh_hosts`` group."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from test_migrate_playbook import BIN, REPO, git, playbook

pytestmark = pytest.mark.integration


def import_playbook(*extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(REPO / "playbooks" /
                                                                "import.yml"), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_import_then_migrate(reference_dir, crd_dir, tmp_path):
    estate = tmp_path / "estate"
    estate.mkdir()
    sample = reference_dir / "samples" / "istio-bookinfo" / "platform" / "kube"
    (estate / "bookinfo.yaml").write_text((sample / "bookinfo.yaml").read_text())
    inventories = tmp_path / "inventories"
    result = import_playbook("-e", json.dumps({"mesh_import_paths": [str(estate)],
                                               "mesh_import_output": str(inventories),
                                               "mesh_import_environment": "staging"}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 service(s), 0 call(s), stage permissive_mtls for staging" in result.stdout
    host_vars = yaml.safe_load((inventories / "staging/host_vars/staging.yml").read_text())
    assert host_vars["mesh_check_paths"] == ["../../estate"]

    gitops = tmp_path / "gitops"
    run = playbook(inventories / "staging", gitops, crd_dir)
    output = run.stdout + run.stderr
    assert "Could not match supplied host pattern" not in output
    assert "[WARNING]" not in output
    assert f"checked against the estate in {inventories}/staging/../../estate" in \
        " ".join(run.stdout.split())
    assert git(gitops, "log", "--format=%s").startswith("meshstage(staging): permissive_mtls")

    # a port name that disagrees with the Service is said in the run (and the runbook)
    shared = inventories / "shared" / "mesh.yml"
    shared.write_text(shared.read_text().replace("{name: http, port: 9080",
                                                 "{name: web, port: 9080", 1))
    again = playbook(inventories / "staging", gitops, crd_dir)
    assert "MST0303" in again.stdout + again.stderr
    runbook = (gitops / "envs" / "staging" / "RUNBOOK.md").read_text()
    assert "mesh_services[0] (details).ports[0].name: 'web' is not the Service's name of " \
        "port 9080 ('http')" in runbook


def test_import_in_check_mode_writes_nothing(reference_dir, tmp_path):
    sample = reference_dir / "samples" / "linkerd" / "website" / "run.linkerd.io" / "public"
    result = import_playbook("--check", "-e", json.dumps({
        "mesh_import_paths": [str(sample / "emojivoto.yml")],
        "mesh_import_output": str(tmp_path / "inventories")}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "changed: [localhost]" in result.stdout
    assert not Path(tmp_path / "inventories").exists()
