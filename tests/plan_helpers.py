"""Helpers the provider plan tests share: an intent with one service changed, its render,
and the objects found in it; every example inventory and estate, to render."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    RenderedStage,
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry
from ansible_collections.meshstage.mesh.plugins.module_utils.stages import STAGE_NAMES


def with_service(variables: dict[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    variables = copy.deepcopy(variables)
    for item in variables["mesh_services"]:
        if item["name"] == name:
            item.update(fields)
    return variables


def render(variables: dict[str, Any], registry: SchemaRegistry) -> RenderedStage:
    return render_stage(variables, StageOptions(gitops_dir=Path("/nonexistent")), registry)


def find(stage: RenderedStage, kind: str, name: str, namespace: str | None = None) -> dict:
    matches = [o.obj for o in stage.objects if o.obj["kind"] == kind
               and o.obj["metadata"]["name"] == name
               and (namespace is None or o.obj["metadata"].get("namespace") == namespace)]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} found"
    return matches[0]


def kinds(stage: RenderedStage) -> set[str]:
    """Kinds of the stage folders (not the sync objects, nor the control-plane install)."""
    return {o.obj["kind"] for o in stage.objects
            if o.path.startswith("envs/") and "/00-install/" not in o.path}


def every_inventory() -> Iterator[tuple[dict[str, Any], list[Path]]]:
    """Variables and estate manifests: the three example inventories at every stage and the
    three upstream estates at the last, each with both providers."""
    from conftest import load_example_intent
    from test_estates import NAMES, estate_variables

    for environment in ("dev", "staging", "prod"):
        for provider in ("istio", "linkerd"):
            for stage in STAGE_NAMES:
                yield {**load_example_intent(environment), "mesh_provider": provider,
                       "mesh_stage": stage}, []
    for name in NAMES:
        for provider in ("istio", "linkerd"):
            variables, paths = estate_variables(name)
            yield {**variables, "mesh_provider": provider, "mesh_stage": STAGE_NAMES[-1]}, paths
