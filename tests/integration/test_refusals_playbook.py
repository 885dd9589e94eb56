"""Bad inputs that still got through, refused (or warned about) through playbooks/migrate.yml
before anything is written: policies that would bind the whole mesh, values Istio,
Kubernetes or kustomize would refuse, identities that widen a rule, duplicate keys, and the
errors that must name their cause. Real ansible-playbook, real git, real kubectl kustomize."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_migrate_playbook import REPO, playbook

pytestmark = pytest.mark.integration

ESTATE = yaml.safe_load((REPO / "inventories" / "shared" / "mesh.yml").read_text())


def inventory(tmp_path: Path, change: Any = None, text: str = "",
              sampling: str = "100.0") -> Path:
    """A copy of the dev inventory; ``change(estate)`` edits the shared estate; ``text`` is
    appended to dev's host_vars as is; ``sampling`` is dev's sampling percentage."""
    target = tmp_path / "inventories"
    shutil.copytree(REPO / "inventories", target, symlinks=True)
    estate = copy.deepcopy(ESTATE)
    if change is not None:
        change(estate)
        (target / "shared" / "mesh.yml").write_text(yaml.safe_dump(estate, sort_keys=False))
    host_vars = target / "dev" / "host_vars" / "dev.yml"
    host_vars.write_text(host_vars.read_text().replace("sampling_percentage: 100.0",
                                                       f"sampling_percentage: {sampling}")
                         + text)
    return target / "dev"


def service(estate: dict, name: str) -> dict:
    return next(item for item in estate["mesh_services"] if item["name"] == name)


def refused(tmp_path: Path, crd_dir: Path, change: Any = None, text: str = "",
            *extra: str) -> str:
    gitops = tmp_path / "gitops"
    result = playbook(inventory(tmp_path, change, text), gitops, crd_dir, *extra,
                      expect_ok=False)
    assert not gitops.exists(), "nothing is written"
    return result.stdout


def test_values_upstream_refuses_are_refused_naming_field_and_value(tmp_path, crd_dir):
    def change(estate: dict) -> None:
        reviews = service(estate, "reviews")
        reviews["traffic"]["connection_pool"] = {"max_connections": 2**31}
        reviews["traffic"]["outlier_detection"] = {"consecutive_5xx_errors": 2**32}
        reviews["traffic"]["timeout"] = "3000000h"
        estate["mesh_mtls_exceptions"][0]["reason"] = "legacy\ufffe"
        estate["mesh_authorization"][0]["allow"].append({"principals": ["*"]})

    out = refused(tmp_path, crd_dir, change)
    assert "mesh_services[2] (reviews).traffic.connection_pool.max_connections: 2147483648 " \
        "is over 2147483647" in out
    assert "mesh_services[2] (reviews).traffic.outlier_detection.consecutive_5xx_errors: " \
        "4294967296 is over 4294967295" in out
    assert "mesh_services[2] (reviews).traffic.timeout: '3000000h' is longer than 2562047h" in out
    assert "mesh_mtls_exceptions[0].reason: 'legacy\\ufffe' contains U+FEFF, U+FFFE or " \
        "U+FFFF" in out
    assert "mesh_authorization[0].allow[2].principals[0]: '*' matches every caller of the " \
        "mesh, so deny_other_callers would deny nobody" in out


def test_a_catalogue_namespace_that_is_the_root_namespace_is_refused(tmp_path, crd_dir):
    def change(estate: dict) -> None:
        service(estate, "ratings")["namespace"] = "istio-system"
        estate["mesh_injection_waves"][0]["namespaces"].append("istio-system")

    out = refused(tmp_path, crd_dir, change)
    assert "mesh_services[3].namespace: 'istio-system' is the mesh's root namespace " \
        "(mesh_root_namespace): default deny would put allow-nothing there" in out
    assert "give ratings a namespace of its own" in out


def test_a_duplicate_mesh_key_in_an_inventory_file_is_an_error(tmp_path, crd_dir):
    out = refused(tmp_path, crd_dir, text="mesh_stage: traffic\n")
    assert "host_vars/dev.yml: mesh_stage is given twice, on lines 4 and " in out
    assert "with different values (Ansible keeps the last one)" in out


def test_a_ca_inside_the_repository_is_refused_before_anything_is_committed(tmp_path,
                                                                            crd_dir):
    gitops = tmp_path / "gitops"
    out = refused(tmp_path, crd_dir, None, "", "-e", f"mesh_ca_dir={gitops}/ca")
    assert f"mesh CA directory {gitops}/ca (mesh_ca_dir) is inside the GitOps repository" \
        in out


def test_names_other_yaml_readers_misread_are_quoted_and_small_samplings_kept(
        tmp_path, crd_dir):
    """A service y in namespace n, a version on, kube-system injected, two services that
    share the service account an ALLOW names, a sampling of 0.00001%: rendered, warned
    about, and built by kubectl kustomize as strings and a float."""
    def change(estate: dict) -> None:
        estate["mesh_services"].append({"name": "y", "namespace": "n", "versions": ["on"],
                                        "ports": [{"port": 8080}]})
        estate["mesh_services"].append({"name": "coredns", "namespace": "kube-system",
                                        "inject": False})
        estate["mesh_injection_waves"].append({"name": "odd", "namespaces": ["n",
                                                                             "kube-system"]})
        service(estate, "admin-service")["service_account"] = "ops"
        service(estate, "ledger")["service_account"] = "ops"

    gitops = tmp_path / "gitops"
    result = playbook(inventory(tmp_path, change, sampling="0.00001"), gitops, crd_dir)
    out = " ".join((result.stdout + result.stderr).split())  # warnings are wrapped
    assert "mesh_injection_waves[2].namespaces[1]: 'kube-system' is a Kubernetes system " \
        "namespace" in out
    assert "mesh_services[7] (ledger).service_account: 'ops' is the service account of " \
        "admin-service, ledger in namespace payments" in out
    names = [line for path in (gitops / "envs" / "dev").rglob("*.yaml")
             for line in path.read_text().splitlines() if "'y'" in line or "'n'" in line]
    assert "  name: 'y'" in names and "  namespace: 'n'" in names
    built = subprocess.run(["kubectl", "kustomize", str(gitops / "envs" / "dev")],
                           capture_output=True, text=True, check=True, timeout=120).stdout
    objects = list(yaml.safe_load_all(built))
    assert any(o["metadata"]["name"] == "y" and o["metadata"].get("namespace") == "n"
               for o in objects if o)
    rendered = yaml.safe_load(next((gitops / "envs" / "dev").rglob("telemetry.*.yaml"))
                              .read_text())
    assert rendered["spec"]["tracing"][0]["randomSamplingPercentage"] == 0.00001
    # kustomize (YAML 1.2) writes it back as 1e-05, which it reads as the same number
    assert "randomSamplingPercentage: 1e-05" in built
