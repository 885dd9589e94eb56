"""Helpers of the stage cache's tests: an environment's cache, opened as a run opens it,
and what a run does anew, counted."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils import pipeline
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


def counting(monkeypatch: pytest.MonkeyPatch,
             names: Mapping[str, Callable[[tuple[Any, ...]], str]]) -> list[str]:
    """The calls of ``pipeline``'s functions ``names`` from now on, each as its callable
    names it from the call's arguments; each call still does what it did."""
    calls: list[str] = []
    for name, label in names.items():
        original = getattr(pipeline, name)

        def counted(*args: Any, _original: Any = original,
                    _label: Callable[[tuple[Any, ...]], str] = label, **kwargs: Any) -> Any:
            calls.append(_label(args))
            return _original(*args, **kwargs)

        monkeypatch.setattr(pipeline, name, counted)
    return calls
