"""Real estates the project did not write: Istio's bookinfo, Linkerd's emojivoto and booksapp,
their own manifests (in ../shared/reference, read where they are) given as the estate
(``mesh_check_paths``), rendered through every stage with both providers. Each render has no
Error (the analyzers judge the rendered objects against those manifests), and each tree
builds with ``kubectl kustomize``.

The inventories are in tests/estates/<name>/, in the layout of inventories/.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    RenderedStage,
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry
from ansible_collections.meshstage.mesh.plugins.module_utils.stages import STAGE_NAMES

ESTATES = Path(__file__).resolve().parent / "estates"
NAMES = ("bookinfo", "emojivoto", "booksapp")


def estate_variables(name: str) -> tuple[dict[str, Any], list[Path]]:
    """The inventory's variables (as Ansible merges them) and its mesh_check_paths, with
    ``{{ inventory_dir }}`` resolved as Ansible resolves it."""
    inventory = ESTATES / name
    variables: dict[str, Any] = {}
    for path in [*sorted((inventory / "group_vars" / "all").glob("*.yml")),
                 inventory / "host_vars" / f"{name}.yml"]:
        variables.update(yaml.safe_load(path.read_text()) or {})
    paths = [Path(str(p).replace("{{ inventory_dir }}", str(inventory))).resolve()
             for p in variables.pop("mesh_check_paths")]
    return variables, paths


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def test_the_estates_are_upstream_manifests_read_where_they_are(reference_dir):
    for name in NAMES:
        _, paths = estate_variables(name)
        assert paths and all(p.is_file() for p in paths), paths
        # resolved both sides: ../shared may be a symbolic link to the reference data
        assert all(reference_dir.resolve() in p.resolve().parents for p in paths), paths


def render(name: str, provider: str, stage: str, registry: SchemaRegistry,
           gitops: Path) -> RenderedStage:
    variables, paths = estate_variables(name)
    variables.update(mesh_provider=provider, mesh_stage=stage)
    return render_stage(variables, StageOptions(gitops_dir=gitops, check_paths=paths),
                        registry)


@pytest.mark.skipif(shutil.which("kubectl") is None,
                    reason="kubectl (with kustomize) is not installed on this machine")
@pytest.mark.parametrize("provider", ["istio", "linkerd"])
@pytest.mark.parametrize("name", NAMES)
def test_every_stage_renders_without_an_error_and_builds(name, provider, registry, tmp_path):
    """No analyzer Error against the estate's own manifests, and a tree that builds, at every
    stage (an Error raises AnalysisError; an intent the stage would break, IntentErrors)."""
    for stage in STAGE_NAMES:
        rendered = render(name, provider, stage, registry, tmp_path / "unused")
        tree = tmp_path / stage
        for path, text in rendered.files.items():
            target = tree / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        built = subprocess.run(["kubectl", "kustomize", str(tree / "envs" / name)],
                               capture_output=True, text=True, check=False)
        assert built.returncode == 0, (stage, built.stderr)
        assert [d for d in yaml.safe_load_all(built.stdout) if d], stage
