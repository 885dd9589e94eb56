"""Applying to a cluster: playbooks/migrate.yml with mesh_apply, playbooks/restart_waves.yml and
playbooks/rollback.yml, run for real with ansible-playbook, git and kubernetes.core.

No Kubernetes API server can run on this machine. The tests below that need none run always:
they go up to the first request (a kubeconfig pointing at a closed loopback port) and check
what was sent first and that the run stopped there. The last test runs the three playbooks
against the cluster of KUBECONFIG when one is set, and is skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_migrate_playbook import FORCE_GATES

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CRDS = REPO.parent / "shared" / "reference" / "crds"
LIVE_KUBECONFIG = os.environ.get("KUBECONFIG", "")


def run_playbook(name: str, environment: str, gitops: Path, *extra: str,
                 kubeconfig: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0"}
    env.pop("KUBECONFIG", None)
    if kubeconfig:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories" / environment),
         str(REPO / "playbooks" / name), "-e", f"mesh_gitops_dir={gitops}",
         "-e", f"mesh_crd_dir={CRDS}",
         # the example environments start at later stages (as in `make demo`)
         *(FORCE_GATES if name == "migrate.yml" else ()), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def closed_port_kubeconfig(tmp_path) -> Path:
    """A kubeconfig whose API server is a loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "closed",
        "clusters": [{"name": "closed", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                    "insecure-skip-tls-verify": True}}],
        "contexts": [{"name": "closed", "context": {"cluster": "closed", "user": "nobody"}}],
        "users": [{"name": "nobody", "user": {"token": "not-a-token"}}],
    }))
    return path


def test_apply_commits_then_sends_the_first_object_in_apply_order(tmp_path,
                                                                 closed_port_kubeconfig):
    gitops = tmp_path / "gitops"
    result = run_playbook("migrate.yml", "prod", gitops, "-e", "mesh_apply=true",
                          kubeconfig=closed_port_kubeconfig)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    # GitOps first: the stage is committed before anything is sent to the cluster
    # 13 objects and 5 Flux Kustomizations (two stage folders, three sync units)
    assert git(gitops, "log", "--format=%s") == \
        "meshstage(prod): injection stage, 21 added, 0 changed, 0 removed\n"
    assert "TASK [meshstage.mesh.cluster_apply : Plan the cluster apply" in out
    assert "TASK [meshstage.mesh.cluster_apply : Apply server-side as field manager meshstage]" \
        in out
    # the Namespace comes first, the connection is refused, and the loop stops there
    assert "failed: [prod] (item=Namespace bookinfo)" in out
    assert "Connection refused" in out
    assert "item=PeerAuthentication" not in out and "item=ProxyConfig" not in out
    assert "Restart each injected wave" not in out


def test_the_gates_ask_the_cluster_for_its_pods_before_anything_is_written(
        tmp_path, closed_port_kubeconfig):
    """mesh_cluster_facts: the pods are listed (kubernetes.core.k8s_info) before the stage
    gates judge the move; a cluster that cannot answer stops the run with nothing written."""
    gitops = tmp_path / "gitops"
    result = run_playbook("migrate.yml", "staging", gitops, "-e", "mesh_cluster_facts=true",
                          kubeconfig=closed_port_kubeconfig)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "TASK [meshstage.mesh.cluster_apply : List the pods of the catalogue's namespaces]" \
        in out
    assert "Connection refused" in out
    assert "TASK [Judge the move with the stage gates]" not in out
    assert not gitops.exists()


def test_restart_waves_loads_and_reaches_the_api(tmp_path, closed_port_kubeconfig):
    result = run_playbook("restart_waves.yml", "prod", tmp_path / "gitops",
                          kubeconfig=closed_port_kubeconfig)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "TASK [meshstage.mesh.cluster_apply : Restart each injected wave's workloads" in out
    assert "restart_waves: MaxRetryError" in out and "Connection refused" in out


@pytest.fixture
def dev_at_authorization(tmp_path) -> Path:
    gitops = tmp_path / "gitops"
    result = run_playbook("migrate.yml", "dev", gitops)
    assert result.returncode == 0, result.stdout + result.stderr
    return gitops


def test_rollback_renders_and_commits_the_earlier_stage(dev_at_authorization):
    gitops = dev_at_authorization
    result = run_playbook("rollback.yml", "dev", gitops, "-e", "mesh_stage=strict_mtls")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    subject = git(gitops, "log", "-1", "--format=%s").strip()
    # the 11 AuthorizationPolicies stay, as a dry run (istio.io/dry-run, in 05-strict-mtls's
    # sync units, whose 5 Flux Kustomizations come as authorization's 5 and its stage folder
    # go); the 3 hosts' listeners run their RBAC rules in shadow
    assert subject == "meshstage(dev): strict_mtls stage, 5 added, 15 changed, 6 removed"
    body = git(gitops, "log", "-1", "--format=%b")
    changed = [line[2:] for line in body.split("Changed:")[1].splitlines()
               if line.startswith("- ")]
    assert [c for c in changed if c.startswith("EnvoyConfig")] == [
        "EnvoyConfig dev/dev-ledger-1/lds.yaml", "EnvoyConfig dev/dev-ledger-2/lds.yaml",
        "EnvoyConfig dev/dev-reconciler-1/lds.yaml"]
    assert len([c for c in changed if c.startswith("AuthorizationPolicy ")]) == 11
    dry_run = yaml.safe_load((gitops / "envs/dev/05-strict-mtls/11-payments/"
                              "authorizationpolicy.payments.allow-nothing.yaml").read_text())
    assert dry_run["metadata"]["annotations"] == {"istio.io/dry-run": "true"}
    assert not list((gitops / "envs" / "dev").glob("06-authorization/*"))
    assert "dev rolled back from authorization to strict_mtls" in out
    assert "Set mesh_stage: strict_mtls in the inventory too" in out
    state = json.loads((gitops / ".meshstage" / "state.json").read_text())
    assert state["scopes"]["dev"]["meta"]["stage"] == "strict_mtls"


@pytest.mark.parametrize(("stage", "message"), [
    ("authorization", "rollback of dev to 'authorization' refused: the GitOps repository "
     "records dev at 'authorization' (stage 6), and 'authorization' (stage 6) is not earlier; "
     "move forward with playbooks/migrate.yml"),
    ("strict", "rollback of dev: mesh_stage 'strict' is not one of permissive_mtls, injection,"),
])
def test_rollback_refuses_anything_but_an_earlier_stage(dev_at_authorization, stage, message):
    head = git(dev_at_authorization, "rev-parse", "HEAD")
    result = run_playbook("rollback.yml", "dev", dev_at_authorization, "-e",
                          f"mesh_stage={stage}")
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert message in out.replace("''", "'")
    assert git(dev_at_authorization, "rev-parse", "HEAD") == head


def test_rollback_refuses_an_environment_never_rendered(tmp_path):
    result = run_playbook("rollback.yml", "prod", tmp_path / "gitops", "-e",
                          "mesh_stage=permissive_mtls")
    out = " ".join((result.stdout + result.stderr).split()).replace("''", "'")
    assert result.returncode != 0
    assert "the GitOps repository records no stage for prod" in out
    assert not (tmp_path / "gitops").exists()


def test_rollback_check_mode_writes_nothing(dev_at_authorization):
    head = git(dev_at_authorization, "rev-parse", "HEAD")
    result = run_playbook("rollback.yml", "dev", dev_at_authorization, "-e",
                          "mesh_stage=traffic", "--check", "--diff")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "--- before: envs/dev/06-authorization/" in out
    assert git(dev_at_authorization, "rev-parse", "HEAD") == head
    assert git(dev_at_authorization, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- a live cluster


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=300,
                          check=check)


@pytest.mark.skipif(not LIVE_KUBECONFIG,
                    reason="KUBECONFIG is not set: no Kubernetes API server to apply to "
                    "(none can run on this machine)")
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_live_apply_restart_and_rollback(tmp_path):
    """Against the cluster of KUBECONFIG (use a disposable one: this installs Istio's CRDs
    from the reference data when they are missing, and creates and deletes objects)."""
    gitops = tmp_path / "gitops"
    if kubectl("get", "crd", "peerauthentications.security.istio.io", check=False).returncode:
        kubectl("apply", "--server-side", "-f", str(CRDS / "istio" / "crd-all.gen.yaml"))
        kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
    kubectl("create", "namespace", "istio-system", check=False)

    applied = run_playbook("migrate.yml", "prod", gitops, "-e", "mesh_apply=true",
                           kubeconfig=LIVE_KUBECONFIG)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    peer = json.loads(kubectl("get", "peerauthentication", "default", "-n", "istio-system",
                              "-o", "json", "--show-managed-fields").stdout)
    assert "meshstage" in {f["manager"] for f in peer["metadata"]["managedFields"]}
    namespace = json.loads(kubectl("get", "namespace", "bookinfo", "-o", "json").stdout)
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"

    try:
        kubectl("create", "deployment", "meshstage-probe", "-n", "bookinfo",
                "--image=registry.k8s.io/pause:3.10")
        kubectl("rollout", "status", "deployment/meshstage-probe", "-n", "bookinfo",
                "--timeout=180s")
        restarted = run_playbook("restart_waves.yml", "prod", gitops, "-e",
                                 "cluster_apply_restart_mode=all", kubeconfig=LIVE_KUBECONFIG)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        template = json.loads(kubectl("get", "deployment", "meshstage-probe", "-n", "bookinfo",
                                      "-o", "json").stdout)["spec"]["template"]
        assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]

        back = run_playbook("rollback.yml", "prod", gitops, "-e", "mesh_stage=permissive_mtls",
                            "-e", "mesh_apply=true", kubeconfig=LIVE_KUBECONFIG)
        assert back.returncode == 0, back.stdout + back.stderr
        gone = kubectl("get", "proxyconfig", "mesh-default", "-n", "istio-system", check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
        # Namespaces are never pruned
        assert kubectl("get", "namespace", "bookinfo", check=False).returncode == 0
    finally:
        kubectl("delete", "deployment", "meshstage-probe", "-n", "bookinfo",
                "--ignore-not-found", check=False)
        kubectl("delete", "peerauthentication", "default", "-n", "istio-system",
                "--ignore-not-found", check=False)
