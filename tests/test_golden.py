"""Golden trees: what the example inventories render, checked in, compared byte for byte.

The inventories are Istio's (``tests/golden/<env>``); the same inventories rendered with
``mesh_provider: linkerd`` are checked in too (``tests/golden/linkerd-<env>``).

A change to a template, a planner or the intent shows here as a readable diff per file.
Refresh after an intended change with ``make golden`` and review ``git diff tests/golden``.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)

GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_example_environment_matches_golden_tree(environment, provider, example_intent,
                                                 crd_dir, request, tmp_path):
    rendered = render_stage(example_intent(environment, mesh_provider=provider),
                            StageOptions(gitops_dir=tmp_path, crd_dirs=[crd_dir])).files
    golden = GOLDEN / (environment if provider == "istio" else f"{provider}-{environment}")
    if request.config.getoption("--update-golden"):
        shutil.rmtree(golden, ignore_errors=True)
        for path, text in rendered.items():
            target = golden / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    expected = {str(p.relative_to(golden)): p.read_text()
                for p in sorted(golden.rglob("*")) if p.is_file()}
    problems = []
    for path in sorted(set(expected) | set(rendered)):
        if path not in rendered:
            problems.append(f"{path}: in the golden tree, no longer rendered")
        elif path not in expected:
            problems.append(f"{path}: rendered, missing from the golden tree")
        elif rendered[path] != expected[path]:
            problems.append("".join(difflib.unified_diff(
                expected[path].splitlines(keepends=True),
                rendered[path].splitlines(keepends=True),
                f"golden/{environment}/{path}", f"rendered/{path}")))
    assert not problems, "\n".join(problems) + "\n(refresh with `make golden`)"
