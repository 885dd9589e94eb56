"""Fixtures shared by every test: where the repository, the reference data and HOME are."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# ../shared/reference sits beside the clone (CI clones main with shared/ beside it).
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE_DIR.is_dir():
        pytest.fail(f"upstream reference data missing: {REFERENCE_DIR} "
                    "(shared/ must sit beside the clone)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def crd_dir(reference_dir: Path) -> Path:
    return reference_dir / "crds"


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Ansible, git and every tool write their state under a throwaway HOME."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANSIBLE_HOME", str(home / ".ansible"))
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(home / ".ansible" / "tmp"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                 "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    return home


def load_example_intent(environment: str) -> dict:
    """An example inventory's variables, merged as Ansible merges them: group_vars/all files
    in file-name order, then the environment host's host_vars, later top-level keys
    replacing earlier ones; and ``mesh_hosts`` as the render_stage action builds it."""
    import yaml

    variables: dict = {}
    inventory = REPO_ROOT / "inventories" / environment
    paths = [*sorted((inventory / "group_vars" / "all").glob("*.yml")),
             inventory / "host_vars" / f"{environment}.yml"]
    for path in paths:
        variables.update(yaml.safe_load(path.read_text()) or {})
    # mesh_hosts as the action builds it: each host of the group mesh_hosts, its mesh_host
    # with the address from ansible_host
    inventory_hosts = (yaml.safe_load((inventory / "hosts.yml").read_text())["all"]
                       .get("children", {}).get("mesh_hosts", {}).get("hosts") or {})
    hosts = {}
    for name, inline in inventory_hosts.items():
        host_vars = {**(inline or {}), **(yaml.safe_load(
            (inventory / "host_vars" / f"{name}.yml").read_text()) or {})}
        hosts[name] = {"address": host_vars.get("ansible_host", name),
                       **host_vars["mesh_host"]}
    if hosts:
        variables["mesh_hosts"] = hosts
    return variables


@pytest.fixture
def example_intent():
    """``example_intent("dev", mesh_stage="traffic")``: an example inventory's intent."""

    def make(environment: str, **overrides: object) -> dict:
        return {**load_example_intent(environment), **overrides}

    return make


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden from what meshstage renders now")
    parser.addoption("--update-analyzers-doc", action="store_true", default=False,
                     help="rewrite docs/analyzers.md from the analyzers' docstrings")


@pytest.fixture
def prometheus_lab(tmp_path: Path):
    """A real Prometheus for one test (see tests/prometheus_lab.py), stopped afterwards."""
    from prometheus_lab import PrometheusLab

    lab = PrometheusLab(tmp_path / "prometheus")
    yield lab
    lab.stop()
