"""The collector's tuning for a run, which the entry points enter."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils import cli
from ansible_collections.meshstage.mesh.plugins.module_utils.collector import fewer_collections

REPO = Path(__file__).resolve().parents[4]


def test_fewer_collections_raises_the_thresholds_and_restores_them():
    before = gc.get_threshold()
    with fewer_collections():
        inside = gc.get_threshold()
    assert inside[0] >= 100_000 and inside[0] > before[0]
    assert gc.get_threshold() == before


def test_the_thresholds_are_restored_when_the_run_fails():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == before


def test_the_meshstage_command_runs_inside_it(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "main", lambda: seen.append(gc.get_threshold()) or 0)
    before = gc.get_threshold()
    with pytest.raises(SystemExit):
        cli.console()
    assert seen[0][0] >= 100_000 and gc.get_threshold() == before


@pytest.mark.parametrize("entry_point", [
    "plugins/plugin_utils/controller_action.py",  # every action that renders or checks
    "bench/run.py",                               # the benchmark
])
def test_the_other_entry_points_enter_it(entry_point):
    assert "with fewer_collections():" in (REPO / entry_point).read_text()
