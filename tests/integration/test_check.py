"""``meshstage check`` and ``meshstage.mesh.analyze`` end to end: the example environments
rendered by the real playbook (with the estate's manifests as ``mesh_check_paths``), then
checked as a tree, as ``kubectl kustomize`` output, and with the estate; a broken manifest
among the estate's stops the playbook before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_migrate_playbook import ENVIRONMENTS, REPO, git, playbook

pytestmark = pytest.mark.integration

ESTATE = REPO / "tests" / "data" / "estate"
MESHSTAGE = Path(sys.executable).parent / "meshstage"


def check(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MESHSTAGE), "check", *map(str, args)], capture_output=True,
                          text=True, check=False, timeout=120)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, crd_dir_module) -> Path:
    gitops = tmp_path_factory.mktemp("check") / "gitops"
    result = playbook(ENVIRONMENTS, gitops, crd_dir_module,
                      "-e", json.dumps({"mesh_check_paths": [str(ESTATE)]}))
    assert "TASK [Analyze the estate's own manifests]" in result.stdout
    return gitops


@pytest.fixture(scope="module")
def crd_dir_module() -> Path:
    return REPO.parent / "shared" / "reference" / "crds"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_rendered_tree_checks_without_an_error(rendered, environment):
    result = check(rendered / "envs" / environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Error" not in result.stdout
    assert "0 error(s)" in result.stderr
    with_estate = check(rendered / "envs" / environment, ESTATE)
    assert with_estate.returncode == 0, with_estate.stdout
    assert with_estate.stdout == ""
    assert "note:" not in with_estate.stderr  # with the estate, everything is judged


@pytest.mark.skipif(shutil.which("kubectl") is None,
                    reason="kubectl (with kustomize) is not installed on this machine")
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_kustomize_output_checks_without_an_error(rendered, environment, tmp_path):
    built = subprocess.run(["kubectl", "kustomize", str(rendered / "envs" / environment)],
                           capture_output=True, text=True, check=True, timeout=120)
    output = tmp_path / f"{environment}.yaml"
    output.write_text(built.stdout)
    # the stages' objects run under the control plane 00-install/ installs (Flux's here),
    # which says how the proxy is injected (native sidecars, for the estate's CronJob)
    result = check(output, ESTATE, rendered / "envs" / environment / "00-install" / "flux")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_a_broken_estate_manifest_stops_the_playbook_before_any_write(rendered, tmp_path,
                                                                     crd_dir_module):
    estate = tmp_path / "estate"
    shutil.copytree(ESTATE, estate)
    (estate / "canary.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: reviews-canary, namespace: bookinfo}\n"
        "spec:\n  hosts: [reviews.example.com]\n"
        "  http: [{route: [{destination: {host: reviewz, port: {number: 9080}}}]}]\n")
    head = git(rendered, "rev-parse", "HEAD")
    result = playbook("dev", rendered, crd_dir_module, "-e", "mesh_stage=strict_mtls",
                      "-e", json.dumps({"mesh_check_paths": [str(estate)]}),
                      expect_ok=False)
    assert ("Error IST0101 VirtualService bookinfo/reviews-canary: Referenced host not found: "
            "'reviewz'.") in result.stdout
    assert "Render the stage into the GitOps repository" not in result.stdout
    assert git(rendered, "rev-parse", "HEAD") == head
    assert git(rendered, "status", "--porcelain") == ""


def test_a_missing_check_path_stops_the_playbook(rendered, tmp_path, crd_dir_module):
    result = playbook("dev", rendered, crd_dir_module,
                      "-e", json.dumps({"mesh_check_paths": [str(tmp_path / "nope")]}),
                      expect_ok=False)
    assert f"{tmp_path}/nope: no such file or directory" in result.stdout


def test_the_check_module_reports_and_fails_on_warnings_when_asked(tmp_path):
    manifest = tmp_path / "gateway.yaml"
    manifest.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: shop, namespace: shop}\n"
        "spec:\n  hosts: [shop.example]\n  gateways: [istio-system/ingress]\n"
        "  http: [{route: [{destination: {host: cart}}]}]\n---\n"
        "apiVersion: networking.istio.io/v1\nkind: Gateway\n"
        "metadata: {name: ingress, namespace: istio-system}\n"
        "spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, "
        "protocol: HTTP}, hosts: [other.example]}]}\n")
    play = tmp_path / "check.yml"
    play.write_text(f"""\
- name: Check manifests with meshstage.mesh.analyze
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Check, warnings allowed
      meshstage.mesh.analyze:
        paths: [{manifest}]
      register: __allowed
    - name: Check, warnings refused
      meshstage.mesh.analyze:
        paths: [{manifest}]
        fail_on_warning: true
      register: __refused
      ignore_errors: true
    - name: Say what was found
      ansible.builtin.assert:
        that:
          - __allowed.counts.warning == 1
          - __allowed.findings[0].code == 'IST0132'
          - __allowed.unchecked | length > 0
          - __refused is failed
          - "'Warning IST0132 VirtualService shop/shop' in __refused.msg"
""")
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    result = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i",
                             "localhost,", str(play)], cwd=REPO, env=env, capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All assertions passed" in result.stdout
