"""The round trip: importing what meshstage rendered for an environment, with the estate's
workloads (tests/data/estate), gives back an inventory that renders the same objects, file
for file (the runbook aside: it quotes the inventory's own words), for Istio and Linkerd and
each traffic API, at every stage of the example environments."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    read_manifests,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.importer import (
    ImportOptions,
    import_estate,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

ESTATE = Path(__file__).resolve().parents[4] / "data" / "estate"


def _environment_files(files: dict[str, str], environment: str) -> dict[str, str]:
    return {path: text for path, text in files.items()
            if path.startswith(f"envs/{environment}/") and not path.endswith("RUNBOOK.md")}


def _differences(before: dict[str, str], after: dict[str, str]) -> list[str]:
    problems = []
    for path in sorted(set(before) | set(after)):
        if path not in after:
            problems.append(f"{path}: rendered from the inventory, not from the import")
        elif path not in before:
            problems.append(f"{path}: rendered from the import only")
        elif before[path] != after[path]:
            problems.append("".join(difflib.unified_diff(
                before[path].splitlines(keepends=True), after[path].splitlines(keepends=True),
                f"inventory/{path}", f"imported/{path}")))
    return problems


@pytest.mark.parametrize(("provider", "traffic_api"), [
    ("istio", "virtualservice"), ("istio", "gateway-api"),
    ("linkerd", "gateway-api"), ("linkerd", "smi")])
@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_an_import_of_what_meshstage_rendered_renders_the_same(environment, provider,
                                                               traffic_api, example_intent,
                                                               crd_dir, tmp_path):
    variables = example_intent(environment, mesh_provider=provider,
                               mesh_traffic_api=traffic_api)
    options = StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir])
    before = _environment_files(render_stage(variables, options).files, environment)
    tree = tmp_path / "tree"
    for path, text in before.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(text)

    imported = import_estate(read_manifests([tree / "envs" / environment, ESTATE]).resources,
                             ImportOptions())
    assert imported.environment["mesh_environment"] == environment
    assert imported.environment["mesh_stage"] == variables["mesh_stage"]
    assert imported.shared["mesh_provider"] == provider
    after = _environment_files(render_stage(imported.intent_variables, options).files,
                               environment)
    problems = _differences(before, after)
    assert not problems, "\n".join(problems)
