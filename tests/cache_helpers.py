"""Helpers of the stage cache's tests: an environment's cache, opened as a run opens it."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import StageOptions
from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import (
    BUILTIN_TEMPLATES,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.stage_cache import (
    StageCache,
)


def open_cache(gitops: Path, environment: str, options: StageOptions) -> StageCache:
    return StageCache.open(gitops, environment, options.template_dirs, BUILTIN_TEMPLATES,
                           options.crd_dirs, options.kubernetes_version)
