"""The example inventories rendered for Linkerd through playbooks/migrate.yml (real
ansible-playbook, git and kubectl kustomize), and a switch of mesh_provider in one GitOps
repository: the new mesh's tree and the old one's removal in the same commit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_migrate_playbook import ENVIRONMENTS, git, playbook, snapshot

pytestmark = pytest.mark.integration

LINKERD = ("-e", "mesh_provider=linkerd")


@pytest.fixture(scope="module")
def crd_dir_module() -> Path:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "crds"
    assert path.is_dir(), f"upstream CRDs missing at {path}"
    return path


@pytest.fixture(scope="module")
def linkerd_demo(tmp_path_factory, crd_dir_module) -> Path:
    """The three example environments rendered with -e mesh_provider=linkerd."""
    gitops = tmp_path_factory.mktemp("linkerd") / "gitops"
    playbook(ENVIRONMENTS, gitops, crd_dir_module, *LINKERD)
    return gitops


def kustomize(tree: Path) -> list[dict]:
    built = subprocess.run(["kubectl", "kustomize", str(tree)], capture_output=True,
                           text=True, check=False)
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def test_linkerd_demo_commits_each_environment(linkerd_demo):
    log = git(linkerd_demo, "log", "--format=%s").splitlines()
    assert [line.split(":")[0] for line in log] == [
        "meshstage(prod)", "meshstage(staging)", "meshstage(dev)"]
    assert git(linkerd_demo, "status", "--porcelain") == ""
    index = (linkerd_demo / "README.md").read_text()
    assert "| [dev](envs/dev/RUNBOOK.md) | linkerd | 6. authorization |" in index
    assert (linkerd_demo / "envs/dev/00-install/values/linkerd-control-plane.yaml").is_file()


@pytest.mark.skipif(shutil.which("kubectl") is None,
                    reason="kubectl (with kustomize) is not installed on this machine")
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_kubectl_kustomize_builds_every_linkerd_environment(linkerd_demo, environment):
    documents = kustomize(linkerd_demo / f"envs/{environment}")
    files = [p for p in (linkerd_demo / f"envs/{environment}").rglob("*.yaml")
             if p.name != "kustomization.yaml" and "00-install" not in p.parts]
    assert len(documents) == len(files)
    assert not [d for d in documents if "istio.io" in d["apiVersion"]]
    assert len(kustomize(linkerd_demo / f"sync/{environment}")) == 5


def test_linkerd_warnings_reach_the_task_result(linkerd_demo, crd_dir_module):
    result = playbook("dev", linkerd_demo, crd_dir_module, *LINKERD)
    assert "changed=0" in result.stdout
    # Ansible prints a task result's warnings on stderr
    assert "mesh_services[3].traffic.connection_pool (service bookinfo/ratings)" in \
        result.stderr
    assert "is not expressible with linkerd" in result.stderr


def test_second_linkerd_run_writes_and_commits_nothing(linkerd_demo, crd_dir_module):
    before = snapshot(linkerd_demo)
    head = git(linkerd_demo, "rev-parse", "HEAD")
    for environment in ENVIRONMENTS:
        result = playbook(environment, linkerd_demo, crd_dir_module, *LINKERD)
        assert "no commit" in result.stdout
    assert snapshot(linkerd_demo) == before
    assert git(linkerd_demo, "rev-parse", "HEAD") == head


def test_switching_provider_swaps_the_trees_in_one_commit(tmp_path, crd_dir_module):
    gitops = tmp_path / "gitops"
    playbook("dev", gitops, crd_dir_module)
    istio_files = set(git(gitops, "ls-files", "envs/dev").split())
    playbook("dev", gitops, crd_dir_module, *LINKERD)
    linkerd_files = set(git(gitops, "ls-files", "envs/dev").split())
    status = dict(reversed(line.split("\t", 1)) for line in git(
        gitops, "show", "--no-renames", "--name-status", "--format=", "HEAD").splitlines())
    # one commit: every Istio-only file deleted, every Linkerd-only file added
    for path in istio_files - linkerd_files:
        assert status[path] == "D", path
    for path in linkerd_files - istio_files:
        assert status[path] == "A", path
    assert "envs/dev/00-install/values/istiod.yaml" in istio_files - linkerd_files
    assert "envs/dev/00-install/values/linkerd-control-plane.yaml" in linkerd_files
    assert not [p for p in linkerd_files if "peerauthentication" in p or "sidecar." in p]
    body = git(gitops, "log", "-1", "--format=%B")
    assert "The environment moves from istio to linkerd" in body
    assert "- PeerAuthentication istio-system/default" in body.split("Removed:")[1]
    runbook = (gitops / "envs/dev/RUNBOOK.md").read_text()
    cut_over = runbook.split("## Cut-over from istio")[1]
    assert cut_over.index("Install the Gateway API CRDs, then Linkerd's charts") \
        < cut_over.index("flux suspend helmrelease") < cut_over.index("Then sync this commit") \
        < cut_over.index("kubectl label namespace bookinfo istio-injection- istio.io/rev-") \
        < cut_over.index("Restart the workloads") < cut_over.index("uninstall Istio")
    assert "Cut over with the environment at `observability` or `traffic`" in cut_over
    if shutil.which("kubectl"):
        kustomize(gitops / "envs/dev")
    # the cut-over stays in the runbook: a second run changes nothing
    head = git(gitops, "rev-parse", "HEAD")
    assert "no commit" in playbook("dev", gitops, crd_dir_module, *LINKERD).stdout
    assert git(gitops, "rev-parse", "HEAD") == head
    # and back: Linkerd's tree leaves, Istio's returns, the runbook orders that way round
    playbook("dev", gitops, crd_dir_module)
    assert set(git(gitops, "ls-files", "envs/dev").split()) == istio_files
    runbook = (gitops / "envs/dev/RUNBOOK.md").read_text()
    assert "## Cut-over from linkerd" in runbook
    assert "kubectl annotate namespace bookinfo linkerd.io/inject-" in runbook
