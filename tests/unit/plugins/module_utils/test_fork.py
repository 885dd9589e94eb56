"""The second core: ``_fork.ForkedCall`` runs a function in a forked child and never changes
its answer. ``Renderer.render_all`` renders half of a large stage's objects in a child, and
``render_stage`` runs a large stage's flow proof in one beside the schema check and the
analysis, each with the same output, errors, refusals and stage cache as one process."""

from __future__ import annotations

import os
import threading
import time

import pytest
from flow_helpers import DENY_WEB, commits, shop

from ansible_collections.meshstage.mesh.plugins.module_utils import _fork, pipeline
from ansible_collections.meshstage.mesh.plugins.module_utils._fork import (
    ForkedCall,
    ThreadedCall,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import (
    FlowProofError,
    RenderError,
    SchemaError,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows import stage as proving
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
    run_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render import renderer as rendering
from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import Renderer
from ansible_collections.meshstage.mesh.plugins.module_utils.render.stage_cache import StageCache

REAL_CAN_FORK = _fork.can_fork


@pytest.fixture(autouse=True)
def fork_allowed(monkeypatch):
    """A fork whatever else the test worker runs: under xdist a worker may run another
    file's server threads for its whole session (the host lab's backends, idle in select),
    and ``can_fork`` refuses to fork beside any thread. The children forked here take no lock
    such a thread could hold. ``test_no_fork_while_another_thread_runs`` checks the rule."""
    monkeypatch.setattr(_fork, "can_fork", lambda: hasattr(os, "fork"))


pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this system")


def test_the_value_comes_from_a_child_process():
    call = ForkedCall(os.getpid)
    assert call.forked
    assert call.result() != os.getpid()


def test_a_child_that_raises_gives_the_callers_own_exception():
    """The child's failure is not pickled: the caller runs the function and raises itself,
    with its own traceback."""
    calls: list[int] = []

    def fails() -> None:
        calls.append(os.getpid())  # the child's append is in the child's memory only
        raise ValueError("no")

    call = ForkedCall(fails)
    assert call.forked
    with pytest.raises(ValueError, match="no"):
        call.result()
    assert calls == [os.getpid()]


def test_a_value_that_does_not_pickle_is_computed_by_the_caller():
    call = ForkedCall(lambda: (os.getpid(), lambda: None))
    assert call.forked
    pid, _function = call.result()
    assert pid == os.getpid()


def test_a_child_that_dies_is_run_again_by_the_caller():
    def dies() -> int:
        if os.getpid() != parent:
            os._exit(3)
        return 7

    parent = os.getpid()
    call = ForkedCall(dies)
    assert call.forked and call.result() == 7


def test_cancel_kills_and_reaps_the_child():
    call = ForkedCall(lambda: time.sleep(60))
    pid = call._pid
    assert pid is not None
    start = time.monotonic()
    call.cancel()
    assert time.monotonic() - start < 5
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no such child any more
    call.cancel()  # twice is harmless


def test_no_fork_while_another_thread_runs(monkeypatch):
    """A lock another thread holds at the fork stays held in the child forever: with more
    than one thread the caller runs the function itself."""
    monkeypatch.setattr(_fork, "can_fork", REAL_CAN_FORK)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not _fork.can_fork()
        call = ForkedCall(os.getpid)
        assert not call.forked and call.result() == os.getpid()
    finally:
        stop.set()
        thread.join()


def test_fork_false_runs_in_the_caller():
    call = ForkedCall(os.getpid, fork=False)
    assert not call.forked and call.result() == os.getpid()


# ---- forked on every stage (FORK_AT 0) against none forked


def _recorded(monkeypatch, module) -> list[ForkedCall]:
    """Every fork made from ``module``'s calls, to check that they were; everything forks."""
    made: list[ForkedCall] = []

    class Recorded(ForkedCall):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(_fork, "FORK_AT", 0)
    monkeypatch.setattr(module, "ForkedCall", Recorded)
    return made


@pytest.fixture
def forks(monkeypatch) -> list[ForkedCall]:
    """Every stage's proof forked."""
    return _recorded(monkeypatch, pipeline)


@pytest.fixture
def render_forks(monkeypatch) -> list[ForkedCall]:
    """Every render of many objects shared with a child."""
    return _recorded(monkeypatch, rendering)


TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ name | json }}
data:
  value: {{ value | json }}
"""


@pytest.fixture
def templates(tmp_path):
    (tmp_path / "cm.yaml.j2").write_text(TEMPLATE)
    return [tmp_path]


def _items(count: int) -> list[tuple[str, dict]]:
    return [("cm.yaml.j2", {"name": f"cm-{n}", "value": f"v {n}: x"}) for n in range(count)]


def test_a_render_shared_with_a_child_gives_the_same_renderings(templates, render_forks,
                                                                  monkeypatch):
    forked = Renderer(templates).render_all(_items(9))
    assert render_forks and render_forks[0].forked
    monkeypatch.setattr(_fork, "FORK_AT", 10**9)
    render_forks.clear()
    alone = Renderer(templates).render_all(_items(9))
    assert not any(call.forked for call in render_forks)
    assert [r.text for r in forked] == [r.text for r in alone]
    assert [r.load() for r in forked] == [r.load() for r in alone]
    assert [(r.api_version, r.kind, r.apply_class) for r in forked] == \
           [(r.api_version, r.kind, r.apply_class) for r in alone]


def test_the_childs_renderings_are_kept_in_the_stage_cache(templates, render_forks):
    cache = StageCache(None, "dev", "renderer", "schema")
    first = Renderer(templates, cache=cache).render_all(_items(9))
    assert render_forks[0].forked
    render_forks.clear()
    again = Renderer(templates, cache=cache).render_all(_items(9))
    assert cache.hits == 9 and not render_forks[0].forked  # nothing left to render
    assert [r.text for r in again] == [r.text for r in first]


@pytest.mark.parametrize("failing", [[7], [2, 7], [1]])
def test_a_failed_render_raises_the_error_of_the_first_in_order(templates, render_forks,
                                                                failing):
    """The child renders items 4 to 8 of 9: the error raised is the first in order's, the
    child's only when the parent's half rendered."""
    items = _items(9)
    for number in failing:  # NaN is no JSON: the json filter refuses it, naming the value
        items[number] = ("cm.yaml.j2", {"name": "x", "value": {"item": number,
                                                               "x": float("nan")}})
    with pytest.raises(RenderError, match=rf"value {{'item': {failing[0]}, 'x': nan}} "
                                          "cannot be written as JSON"):
        Renderer(templates).render_all(items)
    assert render_forks[0].forked


# ---- the pipeline


def test_a_forked_proof_renders_the_same_stage(tmp_path, forks, monkeypatch):
    variables = shop(mesh_stage="authorization")
    forked = render_stage(variables, StageOptions(gitops_dir=tmp_path / "a"))
    assert forks and all(call.forked for call in forks)
    monkeypatch.setattr(_fork, "FORK_AT", 10**9)
    forks.clear()
    alone = render_stage(variables, StageOptions(gitops_dir=tmp_path / "b"))
    assert forks and not any(call.forked for call in forks)
    assert forked.files == alone.files  # the runbook's table of flows among them
    assert forked.warnings == alone.warnings
    assert (forked.flows.section, forked.flows.warnings, forked.flows.counts) == \
           (alone.flows.section, alone.flows.warnings, alone.flows.counts)
    assert forked.flows.section


def test_a_forked_proof_refuses_the_same_flow_and_nothing_is_written(tmp_path, forks):
    repo = tmp_path / "gitops"
    run_stage(shop(mesh_stage="authorization"), StageOptions(gitops_dir=repo))
    before = commits(repo)
    forks.clear()
    with pytest.raises(FlowProofError, match=r"shop/web -> api .* by AuthorizationPolicy "
                                             r"shop/api-deny"):
        run_stage(shop(mesh_stage="authorization", mesh_authorization=DENY_WEB),
                  StageOptions(gitops_dir=repo))
    assert forks[0].forked
    assert commits(repo) == before


def test_a_schema_violation_is_refused_before_the_forked_proofs_refusal(tmp_path, forks,
                                                                       monkeypatch):
    """One after the other, the schema check refused first: it still does, and the child is
    stopped."""
    def violation(*args, **kwargs):
        raise SchemaError(["dev: a violation"])

    monkeypatch.setattr(pipeline, "_validate", violation)
    with pytest.raises(SchemaError, match="a violation"):
        render_stage(shop(mesh_stage="authorization", mesh_authorization=DENY_WEB),
                     StageOptions(gitops_dir=tmp_path / "gitops"))
    assert forks[0].forked and forks[0]._pid is None  # reaped


def test_a_forked_proof_that_passed_is_kept_in_the_stage_cache(tmp_path, forks,
                                                                monkeypatch):
    """The child's stage cache is its own memory: the check it kept comes back with its
    result, and the next run answers from it."""
    repo = tmp_path / "gitops"
    run_stage(shop(), StageOptions(gitops_dir=repo))
    assert forks[0].forked

    def refuse(*args, **kwargs):
        raise AssertionError("the proof ran again")

    monkeypatch.setattr(proving, "proof_of", refuse)
    again = run_stage(shop(), StageOptions(gitops_dir=repo))
    assert not again.changed


def test_a_proof_the_stage_cache_answers_forks_nothing(tmp_path, forks):
    """A run that changes nothing asks the stage cache first, in the run: a fork would cost
    more than the answer."""
    repo = tmp_path / "gitops"
    run_stage(shop(), StageOptions(gitops_dir=repo))
    assert forks[-1].forked
    forks.clear()
    again = run_stage(shop(), StageOptions(gitops_dir=repo))
    assert not again.changed
    assert forks and not any(call.forked for call in forks)


def test_the_collector_leaves_shared_objects_alone_while_a_child_runs():
    """Objects from before the fork are frozen until the child is reaped, then handed back
    to the collector (a collection would copy every page it touches)."""
    import gc

    call = ForkedCall(lambda: gc.get_freeze_count())
    assert call.forked and gc.get_freeze_count() > 0
    assert call.result() > 0  # the child has them frozen too
    assert gc.get_freeze_count() == 0
    stopped = ForkedCall(lambda: time.sleep(60))
    assert gc.get_freeze_count() > 0
    stopped.cancel()
    assert gc.get_freeze_count() == 0


def test_a_threaded_call_gives_its_value_or_raises_its_error_in_the_caller() -> None:
    """``ThreadedCall`` runs on a thread of its own and hands back what it returned, or the
    exception it raised, when the caller asks; the thread is gone by then."""
    names: list[str] = []
    call = ThreadedCall(lambda: names.append(threading.current_thread().name) or 42)
    assert call.result() == 42
    assert names == ["meshstage-meanwhile"]

    def fail() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        ThreadedCall(fail).result()
    assert threading.active_count() == 1
