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


def test_kubernetes_core_comes_from_the_ansible_package():
    """collections_path is ./build/collections; kubernetes.core is found in the venv's
    ansible_collections (the ansible PyPI package), Galaxy is never asked."""
    listed = run(str(BIN / "ansible-galaxy"), "collection", "list", "kubernetes.core")
    assert listed.returncode == 0, listed.stderr
    site = next(Path(p) for p in sys.path if p.endswith("site-packages"))
    assert f"# {site / 'ansible_collections'}" in listed.stdout
    assert "kubernetes.core" in listed.stdout
    doc = run(str(BIN / "ansible-doc"), "kubernetes.core.k8s")
    assert doc.returncode == 0, doc.stderr
    for text in ("server_side_apply", "field_manager", "wait_condition", "apply"):
        assert text in doc.stdout


def test_ansible_doc_shows_the_cluster_plugins():
    for args, words in (
        (("meshstage.mesh.restart_waves",), ("waves", "kubectl.kubernetes.io/restartedAt",
                                             "kubeconfig", "RETURN VALUES")),
        (("meshstage.mesh.cluster_plan",), ("apply order", "prune_kinds")),
        (("meshstage.mesh.rollback_check",), ("recorded_stage",)),
        (("-t", "filter", "meshstage.mesh.prune_selection"), ("ownerReferences",)),
        (("-t", "filter", "meshstage.mesh.rollback_steps"), ("reverse apply",)),
        (("-t", "filter", "meshstage.mesh.sidecar_facts"), ("native sidecar",)),
        (("-t", "role", "meshstage.mesh.cluster_apply"), ("cluster_apply_restart_mode",
                                                          "Restart the injected waves only",
                                                          "Gather the cluster facts")),
    ):
        result = run(str(BIN / "ansible-doc"), *args)
        assert result.returncode == 0, result.stderr
        text = " ".join(result.stdout.split())
        for word in words:
            assert word in text, (args, word)

def test_ansible_doc_shows_check():
    result = run(str(BIN / "ansible-doc"), "meshstage.mesh.analyze")
    assert result.returncode == 0, result.stderr
    for text in ("paths", "mesh_config", "complete", "provider", "fail_on_warning",
                 "findings", "unchecked", "RETURN VALUES"):
        assert text in result.stdout
    render = run(str(BIN / "ansible-doc"), "meshstage.mesh.render_stage")
    assert "check_paths" in render.stdout


def test_ansible_doc_shows_the_stage_gates():
    result = run(str(BIN / "ansible-doc"), "meshstage.mesh.stage_gates")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for word in ("force", "cluster_facts", "mesh_promotion_order", "verdicts", "blockers",
                 "Moving back, and staying at the recorded stage, is never gated",
                 "RETURN VALUES"):
        assert word in text, word
    render = run(str(BIN / "ansible-doc"), "meshstage.mesh.render_stage")
    assert "gate_verdicts" in render.stdout


def test_ansible_doc_shows_the_host_sidecar_modules_and_role():
    for module, option in (("meshstage.mesh.envoy_config", "dest"),
                           ("meshstage.mesh.mesh_certificate", "renew_before_hours")):
        result = run(str(BIN / "ansible-doc"), module)
        assert result.returncode == 0, result.stderr
        assert option in result.stdout and "RETURN VALUES" in result.stdout
    role = run(str(BIN / "ansible-doc"), "-t", "role", "meshstage.mesh.envoy_sidecar")
    assert role.returncode == 0, role.stderr
    assert "envoy_sidecar_supervisor" in role.stdout


def test_ansible_doc_shows_canary_step_and_the_sidecar_configure_entry_point():
    result = run(str(BIN / "ansible-doc"), "meshstage.mesh.canary_step")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for word in ("prometheus_url", "rollback", "check_pending", "preview", "max_waits",
                 "istio_requests_total", "response_total", "envoy_cluster_upstream_rq_total",
                 "rounds", "RETURN VALUES"):
        assert word in text, word
    role = run(str(BIN / "ansible-doc"), "-t", "role", "meshstage.mesh.envoy_sidecar")
    assert "Swap a running sidecar's committed configuration in" in \
        " ".join(role.stdout.split())


def test_collection_builds(tmp_path):
    result = run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path",
                 str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("meshstage-mesh-*.tar.gz")
    names = set(tarfile.open(archive).getnames())
    assert "plugins/action/render_stage.py" in names
    assert "plugins/module_utils/pipeline.py" in names
    assert "plugins/action/analyze.py" in names
    assert "plugins/module_utils/analyze/analyzers/destination_host.py" in names
    assert "templates/istio/virtual_service.yaml.j2" in names
    assert "playbooks/migrate.yml" in names
    assert "playbooks/rollback.yml" in names
    assert "playbooks/canary.yml" in names
    assert "playbooks/tasks/canary_round.yml" in names
    assert "plugins/action/canary_step.py" in names
    assert "roles/cluster_apply/meta/argument_specs.yml" in names
    assert "plugins/modules/restart_waves.py" in names
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


def test_mypy_clean():
    """The type checker passes on the collection's code and the benchmark (pyproject.toml's
    [tool.mypy] names them and its settings)."""
    result = run(str(BIN / "mypy"), "--cache-dir", "/dev/null")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_changelog_fragments_are_valid():
    """Every change adds a fragment under changelogs/fragments; antsibull-changelog checks
    them (known sections, lists of strings)."""
    result = run(str(BIN / "antsibull-changelog"), "lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert list((REPO / "changelogs" / "fragments").glob("*.yml"))
