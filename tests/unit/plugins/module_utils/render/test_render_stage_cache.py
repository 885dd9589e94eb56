"""The stage cache answers only what the same code, templates and schemas gave before, and
never stands in for the disk."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
from cache_helpers import counting, open_cache

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import (
    GitOpsError,
    SchemaError,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
    run_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.control_plane import (
    SCHEMA_OPTIONAL,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import (
    BUILTIN_TEMPLATES,
    Renderer,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.stage_cache import (
    CACHE_DIR,
    CACHE_VERSION,
    StageCache,
)


def cache_files(gitops: Path) -> list[str]:
    directory = gitops / ".git" / CACHE_DIR
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def test_a_second_run_renders_and_validates_nothing_anew(tmp_path, crd_dir, example_intent):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    first = run_stage(example_intent("dev"), options)
    assert cache_files(gitops) == ["crds.json", "stage-dev.pickle"]

    cache = open_cache(gitops, "dev", options)
    rendered = render_stage(example_intent("dev"), options, cache=cache)
    assert cache.misses == 0 and cache.hits >= len(rendered.objects)
    # every object that was validated (Flux's HelmRelease has no reference CRD to be)
    assert all(cache.known_valid(item.text) for item in rendered.objects
               if (item.obj["apiVersion"], item.obj["kind"]) not in SCHEMA_OPTIONAL)
    # what the cache answers is what rendering gives
    fresh = render_stage(example_intent("dev"), options)
    assert rendered.files == fresh.files
    assert [item.obj for item in rendered.objects] == [item.obj for item in fresh.objects]
    assert first.changed


def test_the_schemas_are_not_read_when_every_object_is_known_valid(
        tmp_path, crd_dir, example_intent, monkeypatch):
    from ansible_collections.meshstage.mesh.plugins.module_utils.schema import registry as schema

    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)

    def refuse(*args, **kwargs):
        raise AssertionError("the CRDs were read")

    monkeypatch.setattr(schema.SchemaRegistry, "from_crd_dirs", refuse)
    result = run_stage(example_intent("prod"), options)
    assert not result.changed


def test_a_changed_template_is_rendered_again(tmp_path, crd_dir, example_intent):
    templates = tmp_path / "templates"
    shutil.copytree(BUILTIN_TEMPLATES / "istio", templates / "istio")
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir], template_dirs=[templates])
    run_stage(example_intent("dev"), options)
    sidecar = templates / "istio" / "sidecar.yaml.j2"
    sidecar.write_text(sidecar.read_text()
                       + "  outboundTrafficPolicy:\n    mode: REGISTRY_ONLY\n")
    result = run_stage(example_intent("dev"), options)
    assert "Sidecar bookinfo/reviews" in result.objects["changed"]
    assert "REGISTRY_ONLY" in (
        gitops / "envs/dev/04-traffic/03-bookinfo/sidecar.bookinfo.reviews.yaml").read_text()


def test_changed_schemas_validate_again(tmp_path, crd_dir, example_intent):
    crds = tmp_path / "crds"
    shutil.copytree(crd_dir, crds)
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crds])
    run_stage(example_intent("dev"), options)
    # the same CRDs, but Sidecar no longer knows spec.egress: the cached verdict must go
    path = crds / "istio" / "crd-all.gen.yaml"
    text = path.read_text()
    start = text.index("kind: Sidecar\n")
    marker = "              egress:\n"
    at = text.index(marker, start)
    path.write_text(text[:at] + "              egres:\n" + text[at + len(marker):])
    with pytest.raises(SchemaError, match=r"Sidecar bookinfo/reviews: spec.egress: "
                                          r"unknown field 'egress'"):
        run_stage(example_intent("dev"), options)


def test_the_crd_files_are_read_beforehand_only_when_the_cache_holds_none(
        tmp_path, crd_dir, example_intent, monkeypatch):
    """A repository's first run reads every CRD file in a child while it parses and plans;
    a later run starts none (it reads no CRD file unless the render needs the schemas),
    and a CRD file changed since is still read, its changed schema the one judged."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.schema import crds as reading

    read: list[list[Path]] = []
    prefetch = reading.CrdPrefetch

    class Recorded(prefetch):
        def __init__(self, files):
            super().__init__(files)
            if self._child is not None:  # files to read beforehand
                read.append(list(files))

    monkeypatch.setattr("ansible_collections.meshstage.mesh.plugins.module_utils."
                        "pipeline.CrdPrefetch", Recorded)
    crds = tmp_path / "crds"
    shutil.copytree(crd_dir, crds)
    options = StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crds])
    run_stage(example_intent("dev"), options)
    assert read == [reading.crd_files([crds])]
    run_stage(example_intent("dev", mesh_stage="observability"), options)
    path = crds / "istio" / "crd-all.gen.yaml"
    text = path.read_text()
    marker = "              egress:\n"
    at = text.index(marker, text.index("kind: Sidecar\n"))
    path.write_text(text[:at] + "              egres:\n" + text[at + len(marker):])
    with pytest.raises(SchemaError, match=r"Sidecar bookinfo/reviews: spec.egress: "
                                          r"unknown field 'egress'"):
        run_stage(example_intent("dev"), options)
    assert len(read) == 1


def test_a_run_whose_commit_fails_keeps_no_cache(tmp_path, crd_dir, example_intent,
                                                 monkeypatch):
    """The cache is staged while the commit runs (on a thread) and kept only once the
    commit is made: a failed commit leaves neither the cache nor its staged files."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo

    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])

    def fail(self, message):
        raise GitOpsError("the commit failed")

    monkeypatch.setattr(GitOpsRepo, "commit", fail)
    with pytest.raises(GitOpsError, match="the commit failed"):
        run_stage(example_intent("prod"), options)
    assert cache_files(gitops) == []
    monkeypatch.undo()
    run_stage(example_intent("prod"), options)
    assert cache_files(gitops) == ["crds.json", "stage-prod.pickle"]


def test_check_mode_writes_no_cache(tmp_path, crd_dir, example_intent):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    shutil.rmtree(gitops / ".git" / CACHE_DIR)
    run_stage(example_intent("prod", mesh_stage="traffic"),
              StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir], check_mode=True))
    assert cache_files(gitops) == []


def test_a_broken_cache_file_is_ignored(tmp_path, crd_dir, example_intent):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    for name in cache_files(gitops):
        (gitops / ".git" / CACHE_DIR / name).write_text("{not json")
    result = run_stage(example_intent("prod", mesh_stage="observability"), options)
    # the two objects, each in a new sync unit with its Flux Kustomization, and the one of
    # the new stage folder
    assert result.objects["added"] == [
        "ConfigMap istio-system/meshstage-scrape-configs",
        "Kustomization flux-system/meshstage-prod-03-02-istio-system",
        "Kustomization flux-system/meshstage-prod-03-03-istio-system",
        "Kustomization flux-system/meshstage-prod-03-observability",
        "Telemetry istio-system/mesh-default"]
    assert json.loads((gitops / ".git" / CACHE_DIR / "crds.json").read_text())
    cache = open_cache(gitops, "prod", options)  # read back: it answers every rendering
    render_stage(example_intent("prod", mesh_stage="observability"), options, cache=cache)
    assert cache.misses == 0 and cache.hits > 0
    assert cache_files(gitops) == ["crds.json", "stage-prod.pickle"]


class _Runs:
    """Whatever unpickles this calls os.system: the cache must never build it."""

    def __reduce__(self):
        import os
        return (os.system, ("touch ran",))


def test_a_cache_file_that_names_a_class_or_function_builds_nothing(tmp_path, crd_dir,
                                                                    example_intent,
                                                                    monkeypatch):
    """The stage file is plain data read with an unpickler that refuses every class and
    function: a file someone else put there runs no code, and is ignored like a broken one."""
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    monkeypatch.chdir(tmp_path)
    stage = gitops / ".git" / CACHE_DIR / "stage-prod.pickle"
    stage.write_bytes(pickle.dumps({"version": CACHE_VERSION, "objects": _Runs()}))
    cache = open_cache(gitops, "prod", options)
    assert not (tmp_path / "ran").exists()
    rendered = render_stage(example_intent("prod"), options, cache=cache)
    assert cache.hits == 0 and cache.misses >= len(rendered.objects)


def test_the_json_file_of_an_earlier_version_is_removed(tmp_path, crd_dir, example_intent):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    (gitops / ".git" / CACHE_DIR / "stage-prod.json").write_text('{"version": 1}')
    run_stage(example_intent("prod", mesh_stage="observability"), options)
    assert cache_files(gitops) == ["crds.json", "stage-prod.pickle"]


@pytest.mark.parametrize("ahead", [False, True], ids=["read-by-plan", "read-ahead"])
def test_a_warm_cache_never_stands_in_for_the_disk(tmp_path, crd_dir, example_intent, ahead,
                                                   monkeypatch):
    """Nor does the files' read ahead of the plan (``disk.OwnedRead``): a run that changes
    nothing reads none of them itself, and still refuses a file changed by hand."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops import repo as gitops_repo

    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    owned = gitops_repo.GitOpsRepo(gitops).owned("prod")
    monkeypatch.setattr(gitops_repo, "READ_AHEAD_AT", 1 if ahead else 10**9)
    read: list[str] = []
    read_disk = gitops_repo.read_disk
    monkeypatch.setattr(gitops_repo, "read_disk",
                        lambda root, path, parents=None: read.append(path)
                        or read_disk(root, path, parents))
    assert not run_stage(example_intent("prod"), options).changed
    assert bool(set(read) & set(owned)) is not ahead
    edited = gitops / "envs/prod/02-injection/01-cluster/namespace.cluster.bookinfo.yaml"
    edited.write_text(edited.read_text() + "# mine\n")
    with pytest.raises(GitOpsError, match="was changed by hand since meshstage wrote it"):
        run_stage(example_intent("prod"), options)
    edited.unlink()
    with pytest.raises(GitOpsError, match="was deleted by hand"):
        run_stage(example_intent("prod"), options)


def test_an_object_json_cannot_carry_is_parsed_from_its_text(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    # a date and an integer key: JSON would turn them into strings
    (templates / "odd.yaml.j2").write_text(
        "kind: X\nwhen: 2024-01-02\nports:\n  9080: {{ mode | json }}\n")
    cache = StageCache(None, "dev", "renderer", "schema")
    renderer = Renderer([templates], cache=cache)
    obj, text = renderer.render_canonical("odd.yaml.j2", {"mode": "DISABLE"})
    again, again_text = Renderer([templates], cache=cache).render_canonical(
        "odd.yaml.j2", {"mode": "DISABLE"})
    assert cache.hits == 1
    assert again == obj and again_text == text
    assert list(again["ports"]) == [9080]


def test_values_that_cannot_be_fingerprinted_are_rendered_every_time(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "one.yaml.j2").write_text("kind: X\nname: {{ name | json }}\n")
    cache = StageCache(None, "dev", "renderer", "schema")
    renderer = Renderer([templates], cache=cache)
    context = {"name": "a", "not_picklable": lambda: None}
    for _ in range(2):
        assert renderer.render_canonical("one.yaml.j2", context)[0] == {"kind": "X",
                                                                       "name": "a"}
    assert cache.hits == 0


def test_a_tuple_and_a_list_are_different_values(tmp_path):
    cache = StageCache(None, "dev", "renderer", "schema")
    assert cache.key("t", {"a": (1,)}) != cache.key("t", {"a": [1]})
    assert cache.key("t", {1: "x"}) != cache.key("t", {"1": "x"})
    assert cache.key("t", {"a": 1}) != cache.key("u", {"a": 1})


def test_a_linked_worktree_gets_no_cache_on_disk(tmp_path, crd_dir, example_intent):
    main = tmp_path / "main"
    options = StageOptions(gitops_dir=main, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    linked = tmp_path / "linked"
    subprocess.run(["git", "-C", str(main), "worktree", "add", "-q", str(linked)],
                   check=True, capture_output=True)
    # the worktree is on its own branch: the environment moves there on purpose
    moved = {"repo_url": "https://git.example.invalid/platform/mesh-gitops.git",
             "branch": "linked"}
    result = run_stage(example_intent("prod", mesh_stage="observability", mesh_gitops=moved),
                       StageOptions(gitops_dir=linked, crd_dirs=[crd_dir]))
    assert result.changed
    assert (linked / ".git").is_file()


def test_a_passed_analysis_and_host_check_are_not_run_again(
        tmp_path, crd_dir, example_intent, monkeypatch):
    from ansible_collections.meshstage.mesh.plugins.module_utils import pipeline

    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    first = run_stage(example_intent("dev"), options)
    assert example_intent("dev")["mesh_hosts"]  # the example's host sidecars were checked

    def refuse(*args, **kwargs):
        raise AssertionError("checked again")

    monkeypatch.setattr(pipeline, "analyze_rendered", refuse)
    monkeypatch.setattr(pipeline, "check_rendered", refuse)
    again = run_stage(example_intent("dev"), options)
    assert not again.changed
    assert again.warnings == first.warnings  # the analysis's warnings come from the cache


def counting_checks(monkeypatch) -> list[str]:
    """The checks that run from now on: "analysis", or the host the envoy check is for."""
    return counting(monkeypatch, {"analyze_rendered": lambda args: "analysis",
                                  "check_rendered": lambda args: args[0]})


def test_of_the_hosts_only_a_changed_one_is_validated_again(tmp_path, crd_dir, example_intent,
                                                   monkeypatch):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("dev"), options)
    calls = counting_checks(monkeypatch)
    variables = example_intent("dev")
    # one host sidecar's stats port moves: its files change, no cluster object does
    (name, host), *_ = sorted(variables["mesh_hosts"].items())
    variables["mesh_hosts"] = {**variables["mesh_hosts"],
                               name: {**host, "stats_port": 15091}}
    assert run_stage(variables, options).changed
    # the intent changed, so it is analyzed again; of the hosts, only this one is validated
    assert calls == ["analysis", f"dev/{name}"]


def test_a_changed_rendering_is_analyzed_again(tmp_path, crd_dir, example_intent,
                                               monkeypatch):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    variables = example_intent("dev")
    run_stage(variables, options)
    calls = counting_checks(monkeypatch)
    services = [dict(s) for s in variables["mesh_services"]]
    (reviews,) = [s for s in services if s["name"] == "reviews"]
    reviews["canary"] = {**reviews["canary"], "weight": 20}
    assert run_stage({**variables, "mesh_services": services}, options).changed
    assert calls == ["analysis"]


def test_a_failed_analysis_is_not_kept(tmp_path, crd_dir, example_intent, monkeypatch):
    from ansible_collections.meshstage.mesh.plugins.module_utils import pipeline
    from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analysis import Report
    from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.finding import (
        Finding,
        Level,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.errors import AnalysisError

    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)  # a cache file, with prod's checks
    variables = example_intent("prod", mesh_stage="observability")
    error = Finding("IST0101", Level.ERROR, "VirtualService bookinfo/reviews", "made up",
                    "made-up")
    analyses: list[int] = []

    def failing(*args, **kwargs):
        analyses.append(1)
        return Report([error])

    cache = open_cache(gitops, "prod", options)
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "analyze_rendered", failing)
        for _ in range(2):  # the same cache: the failed analysis runs (and fails) again
            with pytest.raises(AnalysisError, match="made up"):
                render_stage(variables, options, cache=cache)
        with pytest.raises(AnalysisError):
            run_stage(variables, options)
    assert len(analyses) == 3
    calls = counting_checks(monkeypatch)
    run_stage(variables, options)
    assert calls[0] == "analysis"
