"""The repository as an Ansible collection and a Python project: docs, build, lint."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "NO_COLOR": "1",
           "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def test_ansible_doc_shows_render_stage():
    result = run(str(BIN / "ansible-doc"), "meshstage.mesh.render_stage")
    assert result.returncode == 0, result.stderr
    for text in ("gitops_dir", "crd_dirs", "template_dirs", "check_mode", "RETURN VALUES"):
        assert text in result.stdout


def test_ansible_doc_shows_the_host_sidecar_modules_and_role():
    for module, option in (("meshstage.mesh.envoy_config", "dest"),
                           ("meshstage.mesh.mesh_certificate", "renew_before_hours")):
        result = run(str(BIN / "ansible-doc"), module)
        assert result.returncode == 0, result.stderr
        assert option in result.stdout and "RETURN VALUES" in result.stdout
    role = run(str(BIN / "ansible-doc"), "-t", "role", "meshstage.mesh.envoy_sidecar")
    assert role.returncode == 0, role.stderr
    assert "envoy_sidecar_supervisor" in role.stdout


def test_collection_builds(tmp_path):
    result = run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path",
                 str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("meshstage-mesh-*.tar.gz")
    names = set(tarfile.open(archive).getnames())
    assert "plugins/action/render_stage.py" in names
    assert "plugins/module_utils/pipeline.py" in names
    assert "templates/istio/virtual_service.yaml.j2" in names
    assert "playbooks/migrate.yml" in names
    assert "roles/envoy_sidecar/tasks/main.yml" in names
    assert "templates/envoy/lds.yaml.j2" in names
    assert not any(name.startswith((".venv/", "build/", ".ansible/")) for name in names)


def test_ansible_lint_production_profile():
    result = run(str(BIN / "ansible-lint"), "--profile", "production", "--nocolor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_ruff_clean():
    result = run(str(BIN / "ruff"), "check", "plugins", "tests", "bench")
    assert result.returncode == 0, result.stdout
