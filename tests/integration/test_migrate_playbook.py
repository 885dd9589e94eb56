"""playbooks/migrate.yml end to end: real ansible-playbook, real git, real kubectl kustomize."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENVIRONMENTS = ("dev", "staging", "prod")
# As `make demo`: the example environments start at later stages, with no Prometheus, which
# the stage gates refuse (tests/integration/test_stage_gates.py judges them unforced).
FORCE_GATES = ("-e", '{"mesh_force_gates": ["order", "strict_mtls", "authorization"]}')


def playbook(inventory: str | Path | tuple[str, ...], gitops: Path, crd_dir: Path, *extra: str,
             expect_ok: bool = True, force: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    names = inventory if isinstance(inventory, tuple) else (inventory,)
    inventories = [arg for name in names for arg in (
        "-i", str(name if isinstance(name, Path) else REPO / "inventories" / name))]
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), *inventories,
         str(REPO / "playbooks" / "migrate.yml"),
         "-e", f"mesh_gitops_dir={gitops}", "-e", f"mesh_crd_dir={crd_dir}",
         *(FORCE_GATES if force else ()), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    if expect_ok:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode != 0, result.stdout
    return result


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file outside .git with its mtime and bytes."""
    return {
        str(path.relative_to(root)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory, crd_dir_module) -> Path:
    """The three example environments rendered once, as `make demo` does."""
    gitops = tmp_path_factory.mktemp("demo") / "gitops"
    playbook(ENVIRONMENTS, gitops, crd_dir_module)
    return gitops


@pytest.fixture(scope="module")
def crd_dir_module() -> Path:
    path = REPO.parent / "shared" / "reference" / "crds"
    assert path.is_dir(), f"upstream CRDs missing at {path}"
    return path


def copy_inventory(tmp_path: Path, environment: str) -> Path:
    """A writable copy of an example inventory (the shared catalogue made a real file)."""
    target = tmp_path / "inventories"
    shutil.copytree(REPO / "inventories", target, symlinks=True)
    return target / environment


def test_demo_commits_each_environment(demo):
    log = git(demo, "log", "--format=%s").splitlines()
    # the objects, and one Flux Kustomization per sync unit and per stage folder
    assert log == [
        "meshstage(prod): injection stage, 21 added, 0 changed, 0 removed",
        "meshstage(staging): strict_mtls stage, 88 added, 0 changed, 0 removed",
        "meshstage(dev): authorization stage, 89 added, 0 changed, 0 removed",
    ]
    assert git(demo, "status", "--porcelain") == ""
    index = (demo / "README.md").read_text()
    for line in ("| [dev](envs/dev/RUNBOOK.md) | istio | 6. authorization |",
                 "| [staging](envs/staging/RUNBOOK.md) | istio | 5. strict_mtls |",
                 "| [prod](envs/prod/RUNBOOK.md) | istio | 2. injection |"):
        assert line in index


def test_example_hosts_are_rendered_and_committed_but_not_contacted(demo):
    """Each host in exactly its own environment; prod's hosts wait for the payments wave."""
    for environment in ("dev", "staging"):
        hosts = sorted(p.name for p in (demo / "hosts" / environment).iterdir() if p.is_dir())
        assert hosts == [f"{environment}-ledger-1", f"{environment}-ledger-2",
                         f"{environment}-reconciler-1"]
        bootstrap = yaml.safe_load((demo / "hosts" / environment / hosts[0] /
                                    "bootstrap.yaml").read_text())
        assert bootstrap["node"]["metadata"]["environment"] == environment
    assert not (demo / "hosts" / "prod").exists()
    assert "0 of 3 hosts injected; still to come: prod-ledger-1" in \
        (demo / "envs/prod/RUNBOOK.md").read_text()
    body = git(demo, "log", "-1", "--format=%B", "--grep=^meshstage(staging)")
    assert "- EnvoyConfig staging/staging-ledger-2/lds.yaml" in body


def test_mesh_hosts_set_by_hand_is_refused(tmp_path, crd_dir_module):
    result = playbook("dev", tmp_path / "gitops", crd_dir_module, "-e",
                      '{"mesh_hosts": {}}', expect_ok=False)
    assert "mesh_hosts is built from the inventory group mesh_hosts" in result.stdout
    assert not (tmp_path / "gitops").exists()


def test_each_environment_in_a_combined_run_renders_its_own_values(demo):
    for environment, stage in (("dev", "authorization"), ("staging", "strict_mtls"),
                               ("prod", "injection")):
        units = yaml.safe_load((demo / f"sync/{environment}/argocd-applicationset.yaml")
                               .read_text())
        assert units["spec"]["template"]["spec"]["destination"]["server"] == \
            f"https://{environment}.k8s.example.invalid:6443"
        assert "- stage: **" in (demo / f"envs/{environment}/RUNBOOK.md").read_text()
        assert stage in (demo / f"envs/{environment}/RUNBOOK.md").read_text()


def test_commit_message_says_what_and_why(demo):
    body = git(demo, "log", "-1", "--format=%B", "--grep=^meshstage(staging)")
    assert "Environment staging (istio) is at stage 5 of 6, strict_mtls: require mTLS" in body
    assert "- PeerAuthentication payments/legacy-billing-mtls-exception" in body


def test_forced_gates_are_recorded_in_the_commit_message_and_the_runbook(demo):
    """The demo forces the gates that refuse its new environments; each refusal it
    overrode is in the commit, and the runbook lists it from then on."""
    body = git(demo, "log", "-1", "--format=%B", "--grep=^meshstage(staging)")
    assert "Stage gates, moving from nothing to strict_mtls:" in body
    assert "- order: FORCED (mesh_force_gates) over its refusal: staging is not recorded in " \
        "the GitOps repository (a new environment starts at permissive_mtls)" in body
    assert "- strict_mtls: FORCED (mesh_force_gates) over its refusal: plaintext traffic " \
        "cannot be judged: no Prometheus is configured (mesh_gates.prometheus)" in body
    runbook = (demo / "envs/staging/RUNBOOK.md").read_text()
    assert "## Forced gates" in runbook
    assert "- `order`, moving from `nothing` to `strict_mtls`: staging is not recorded" \
        in runbook
    assert "- `strict_mtls`, moving from `nothing` to `strict_mtls`: plaintext traffic " \
        "cannot be judged" in runbook
    state = json.loads((demo / ".meshstage/state.json").read_text())
    assert [r["gate"] for r in state["scopes"]["staging"]["meta"]["forced_gates"]] == \
        ["order", "strict_mtls"]


@pytest.mark.skipif(shutil.which("kubectl") is None,
                    reason="kubectl (with kustomize) is not installed on this machine")
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_kubectl_kustomize_builds_every_environment(demo, environment):
    """The whole environment builds (its units are folders of it), and so does every folder
    of sync objects, each holding the objects of its own files only."""
    install = f"envs/{environment}/00-install"
    flux = demo / "sync" / environment / "flux"
    sync = [f"sync/{environment}", *(str(p.relative_to(demo)) for p in flux.iterdir()
                                     if p.is_dir()), str(flux.relative_to(demo))]
    for tree in (f"envs/{environment}", *sync, f"{install}/argocd", f"{install}/flux"):
        built = subprocess.run(["kubectl", "kustomize", str(demo / tree)], capture_output=True,
                               text=True, check=False)
        assert built.returncode == 0, built.stderr
        documents = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
        # the install folder (Helm values, one GitOps tool's objects each) is built apart
        found = (demo / tree).glob("*.yaml") if tree in sync else (demo / tree).rglob("*.yaml")
        files = [p for p in found if p.name != "kustomization.yaml" and "00-install" not in
                 p.relative_to(demo / tree).parts]
        assert len(documents) == len(files), tree


def test_runbook_has_stage_verification_and_rollback(demo):
    runbook = (demo / "envs/staging/RUNBOOK.md").read_text()
    assert "- stage: **5. strict_mtls** of 6" in runbook
    assert "istioctl x describe pod" in runbook
    assert "-e mesh_stage=traffic" in runbook
    assert "Exception: `payments/legacy-billing` stays DISABLE" in runbook


def test_second_run_writes_and_commits_nothing(demo, crd_dir_module):
    before = snapshot(demo)
    head = git(demo, "rev-parse", "HEAD")
    for environment in ENVIRONMENTS:
        result = playbook(environment, demo, crd_dir_module)
        assert "changed=0" in result.stdout
        assert "no commit" in result.stdout
    assert snapshot(demo) == before
    assert git(demo, "rev-parse", "HEAD") == head


def kept_plans(gitops: Path) -> dict[str, list]:
    """Each environment's kept intent and plan in the stage cache: [key, pickle]."""
    import pickle

    return {path.name: pickle.loads(path.read_bytes())["plan"]
            for path in sorted((gitops / ".git" / "meshstage-cache").glob("stage-*.pickle"))}


def test_a_run_with_the_last_runs_variables_loads_its_intent_and_plan(demo, crd_dir_module):
    """Through Ansible's variables: the same playbook run twice finds the last run's intent
    and plan under the same key, and they load. (A run of one inventory after a run of all
    three does not: each host's ``mesh_hosts`` then lists other hosts, and the key is the
    variables as given.)"""
    from ansible_collections.meshstage.mesh.plugins.module_utils.plan.memo import _load

    playbook(ENVIRONMENTS, demo, crd_dir_module)
    plans = kept_plans(demo)
    assert sorted(plans) == [f"stage-{e}.pickle" for e in sorted(ENVIRONMENTS)]
    head = git(demo, "rev-parse", "HEAD")
    result = playbook(ENVIRONMENTS, demo, crd_dir_module)
    assert "no commit" in result.stdout and git(demo, "rev-parse", "HEAD") == head
    assert kept_plans(demo) == plans
    assert all(_load(data) is not None for _key, data in plans.values())


def test_check_diff_shows_the_change_and_writes_nothing(demo, crd_dir_module):
    before = snapshot(demo)
    head = git(demo, "rev-parse", "HEAD")
    result = playbook("prod", demo, crd_dir_module, "-e", "mesh_stage=observability",
                      "--check", "--diff")
    assert "+++ after: envs/prod/03-observability/03-istio-system/" \
        "telemetry.istio-system.mesh-default.yaml" in result.stdout
    assert "+kind: Telemetry" in result.stdout
    assert "changed=1" in result.stdout
    assert snapshot(demo) == before
    assert git(demo, "rev-parse", "HEAD") == head


def test_stage_move_forward_and_back(tmp_path, crd_dir_module):
    gitops = tmp_path / "gitops"
    playbook("prod", gitops, crd_dir_module)
    playbook("prod", gitops, crd_dir_module, "-e", "mesh_stage=observability")
    # ConfigMap and Telemetry in two new sync units: their Flux Kustomizations and the stage
    # folder's; the units after them wait for them (dependsOn), the ApplicationSet lists them
    assert git(gitops, "log", "-1", "--format=%s").strip() == \
        "meshstage(prod): observability stage, 5 added, 3 changed, 0 removed"
    playbook("prod", gitops, crd_dir_module)
    assert git(gitops, "log", "-1", "--format=%s").strip() == \
        "meshstage(prod): injection stage, 0 added, 3 changed, 5 removed"
    assert not (gitops / "envs/prod/03-observability").exists()


def test_removed_service_leaves_the_tree(tmp_path, crd_dir_module):
    gitops = tmp_path / "gitops"
    inventory = copy_inventory(tmp_path, "dev")
    playbook(inventory, gitops, crd_dir_module)
    shared = inventory.parent / "shared" / "mesh.yml"
    data = yaml.safe_load(shared.read_text())
    data["mesh_services"] = [s for s in data["mesh_services"] if s["name"] != "ratings"]
    for item in data["mesh_services"]:
        item["calls"] = [c for c in item.get("calls", []) if c != "ratings"]
    shared.write_text(yaml.safe_dump(data))
    playbook(inventory, gitops, crd_dir_module)
    subject = git(gitops, "log", "-1", "--format=%s").strip()
    # Changed: reviews' Sidecar and ratings-db's ALLOW, which no longer admits ratings.
    assert subject.endswith("0 added, 2 changed, 3 removed"), subject
    remaining = [p.name for p in (gitops / "envs/dev").rglob("*ratings*")
                 if "ratings-db" not in p.name]
    assert remaining == []


def test_user_files_are_never_touched(tmp_path, crd_dir_module):
    gitops = tmp_path / "gitops"
    playbook("prod", gitops, crd_dir_module)
    notes = gitops / "envs/prod/02-injection/NOTES.md"
    notes.write_text("ours\n")
    playbook("prod", gitops, crd_dir_module, "-e", "mesh_stage=permissive_mtls")
    assert notes.read_text() == "ours\n"
    assert "??" in git(gitops, "status", "--porcelain", "--", str(notes))


def test_user_file_at_a_planned_path_stops_the_run(tmp_path, crd_dir_module):
    gitops = tmp_path / "gitops"
    playbook("prod", gitops, crd_dir_module)
    mine = gitops / "envs/prod/03-observability/kustomization.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("# mine\n")
    before = snapshot(gitops)
    result = playbook("prod", gitops, crd_dir_module, "-e", "mesh_stage=observability",
                      expect_ok=False)
    assert "envs/prod/03-observability/kustomization.yaml" in result.stdout
    assert snapshot(gitops) == before


def test_intent_error_names_field_and_value_and_writes_nothing(tmp_path, crd_dir_module):
    gitops = tmp_path / "gitops"
    result = playbook("dev", gitops, crd_dir_module, "-e",
                      '{"mesh_service_overrides": {"reviews": {"canary": {"weight": 110}}}}',
                      expect_ok=False)
    assert "mesh_services[2] (reviews).canary.weight: 110 is over 100" in result.stdout
    assert not gitops.exists()


def test_misspelt_variable_is_refused(tmp_path, crd_dir_module):
    result = playbook("dev", tmp_path / "gitops", crd_dir_module, "-e", "mesh_stagee=traffic",
                      expect_ok=False)
    assert "unknown mesh_* variable(s): mesh_stagee (did you mean 'mesh_stage'?)" \
        in result.stdout


def test_unsafe_values_pass_through_exactly(tmp_path, crd_dir_module):
    gitops = tmp_path / "gitops"
    inventory = copy_inventory(tmp_path, "dev")
    shared = inventory.parent / "shared" / "mesh.yml"
    text = shared.read_text().replace(
        "headers: {end-user: {exact: test-user}}",
        "headers: {end-user: {exact: !unsafe \"{{ lookup('env', 'HOME') }}: #x\"}}")
    shared.write_text(text)
    playbook(inventory, gitops, crd_dir_module)
    unit = gitops / "envs/dev/04-traffic/04-bookinfo"
    route = yaml.safe_load((unit / "virtualservice.bookinfo.reviews.yaml").read_text())
    assert route["spec"]["http"][0]["match"] == [
        {"headers": {"end-user": {"exact": "{{ lookup('env', 'HOME') }}: #x"}}}]


def test_user_template_directory_comes_first(tmp_path, crd_dir_module):
    templates = tmp_path / "templates" / "istio"
    templates.mkdir(parents=True)
    builtin = (REPO / "templates/istio/sidecar.yaml.j2").read_text()
    (templates / "sidecar.yaml.j2").write_text(builtin.replace(
        "  labels: {{ labels | json }}\n",
        "  labels: {{ labels | json }}\n  annotations: {{ {'team': 'platform'} | json }}\n"))
    gitops = tmp_path / "gitops"
    playbook("dev", gitops, crd_dir_module, "-e", f"mesh_template_dir={tmp_path / 'templates'}")
    sidecar = yaml.safe_load(
        (gitops / "envs/dev/04-traffic/03-bookinfo/sidecar.bookinfo.reviews.yaml").read_text())
    assert sidecar["metadata"]["annotations"] == {"team": "platform"}
