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
    def violation(self, index):
        return ["a violation"] if index == 0 else []

    monkeypatch.setattr(pipeline._SchemaCheck, "_judge", violation)
    with pytest.raises(SchemaError, match="a violation"):
        render_stage(shop(mesh_stage="authorization", mesh_authorization=DENY_WEB),
                     StageOptions(gitops_dir=tmp_path / "gitops"))
    assert forks[0].forked and forks[0]._pid is None  # reaped


# ---- the schema check shared with the proof's child


@pytest.fixture
def small_chunks(monkeypatch):
    """A chunk per object, and a caller whose analysis takes long enough for the child to
    finish its proof first: the child then judges chunks too."""
    monkeypatch.setattr(pipeline._SchemaCheck, "SMALLEST", 1)
    analyze = pipeline._analyze

    def slow(*args, **kwargs):
        time.sleep(0.5)
        return analyze(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_analyze", slow)


@pytest.fixture
def helped(monkeypatch) -> list[dict]:
    """The chunks each finished check had from the proof's child."""
    seen: list[dict] = []
    finish = pipeline._SchemaCheck.finish

    def recorded(self, helped):
        seen.append(dict(helped))
        return finish(self, helped)

    monkeypatch.setattr(pipeline._SchemaCheck, "finish", recorded)
    return seen


def _flag(monkeypatch, kind: str, name: str) -> None:
    """A violation for the ``kind`` called ``name``, in the caller and in a child alike."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import (
        SchemaRegistry,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.schema.violations import (
        SchemaViolation,
    )

    validate_all = SchemaRegistry.validate_all

    def flagged(self, objs):
        objs = list(objs)
        return validate_all(self, objs) + [
            SchemaViolation(f"{o['kind']} {name}", "metadata.name", "flagged")
            for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]

    monkeypatch.setattr(SchemaRegistry, "validate_all", flagged)


def test_the_proofs_child_judges_the_chunks_left_once_its_proof_is_done(
        tmp_path, forks, small_chunks, helped, monkeypatch, crd_dir):
    """The same stage as one process judging everything (against the reference CRDs), the
    child's chunks among the judged, and the stage cache learns every object is valid."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.kube import (
        DEFAULT_KUBERNETES_VERSION,
    )

    variables = shop(mesh_stage="authorization")
    cache = StageCache.open(tmp_path / "a", "dev", (), rendering.BUILTIN_TEMPLATES,
                            (crd_dir,), DEFAULT_KUBERNETES_VERSION)
    shared = render_stage(variables, StageOptions(gitops_dir=tmp_path / "a",
                                                  crd_dirs=[crd_dir]), cache=cache)
    assert forks[-1].forked and helped[-1] and all(v == [] for v in helped[-1].values())
    assert all(cache.known_valid(item.text) for item in shared.objects)
    monkeypatch.setattr(_fork, "FORK_AT", 10**9)
    helped.clear()
    alone = render_stage(variables, StageOptions(gitops_dir=tmp_path / "b",
                                                 crd_dirs=[crd_dir]))
    assert helped == [{}]
    assert shared.files == alone.files
    assert shared.warnings == alone.warnings


def test_a_violation_the_child_finds_is_refused_as_one_process_refuses_it(
        tmp_path, forks, small_chunks, helped, monkeypatch, crd_dir):
    """The child's chunks are the last objects: a violation in the last is refused, with
    the message one process gives, and nothing is written."""
    variables = shop(mesh_stage="authorization")
    last = render_stage(variables, StageOptions(gitops_dir=tmp_path / "x",
                                                crd_dirs=[crd_dir])).objects[-1].obj
    _flag(monkeypatch, last["kind"], last["metadata"]["name"])
    repo = tmp_path / "gitops"
    helped.clear()
    with pytest.raises(SchemaError) as shared:
        run_stage(variables, StageOptions(gitops_dir=repo, crd_dirs=[crd_dir]))
    assert any(any(violations) for violations in helped[-1].values())  # the child's find
    assert commits(repo) == 0
    monkeypatch.setattr(_fork, "FORK_AT", 10**9)
    with pytest.raises(SchemaError) as alone:
        run_stage(variables, StageOptions(gitops_dir=tmp_path / "alone", crd_dirs=[crd_dir]))
    assert str(shared.value) == str(alone.value) and "flagged" in str(alone.value)


def test_the_chunks_a_child_took_and_never_handed_back_are_judged_by_the_caller(
        tmp_path, forks, small_chunks, monkeypatch, crd_dir):
    """A child that dies after taking a chunk (the last object's) hands nothing back: the
    caller proves again and judges that chunk itself, so its violation is still refused."""
    variables = shop(mesh_stage="authorization")
    last = render_stage(variables, StageOptions(gitops_dir=tmp_path / "x",
                                                crd_dirs=[crd_dir])).objects[-1].obj
    _flag(monkeypatch, last["kind"], last["metadata"]["name"])
    help_ = pipeline._SchemaCheck.help

    def dies(self):
        if self._shared is not None and self._shared.in_child():
            assert self._shared.take() is not None
            os._exit(1)
        return help_(self)

    monkeypatch.setattr(pipeline._SchemaCheck, "help", dies)
    with pytest.raises(SchemaError, match="flagged"):
        run_stage(variables, StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir]))
    assert forks[-1].forked


def test_the_crds_child_is_stopped_when_the_intent_is_refused(tmp_path, crd_dir):
    """The CRDs are read in a child while the intent is parsed: an intent refused stops
    it and reaps it, and the collector has every object back."""
    import gc

    from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError

    with pytest.raises(MeshstageError, match="mesh_stage"):
        render_stage(shop(mesh_stage="no-such-stage"),
                     StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir]))
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child left, running or unreaped
    assert gc.get_freeze_count() == 0


def test_shared_chunks_hand_each_chunk_to_one_process():
    """The caller takes from the front and the child from the back, both at once: every
    chunk is handed out once, and once all are taken neither gets one."""
    from ansible_collections.meshstage.mesh.plugins.module_utils._fork import SharedChunks

    chunks = SharedChunks(500)

    def take_all() -> list[int]:
        taken = []
        while (index := chunks.take()) is not None:
            taken.append(index)
            time.sleep(0.0005)
        return taken

    child = ForkedCall(take_all)
    mine = take_all()
    theirs = child.result()
    chunks.close()
    assert child.forked and mine and theirs
    assert sorted(mine + theirs) == list(range(500))
    assert mine == list(range(len(mine)))  # the front
    assert theirs == list(range(499, 499 - len(theirs), -1))  # the back
    assert chunks.take() is None
    with pytest.raises(ValueError, match="at most 4096"):
        SharedChunks(SharedChunks.MOST + 1)


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


def test_a_child_collects_nothing_and_the_caller_collects_as_before():
    """The child runs with the collector off (what it allocates lives until it leaves);
    the caller's stays on, before and after the child is reaped."""
    import gc

    assert gc.isenabled()
    call = ForkedCall(gc.isenabled)
    assert call.forked and gc.isenabled()
    assert call.result() is False
    assert gc.isenabled()


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
