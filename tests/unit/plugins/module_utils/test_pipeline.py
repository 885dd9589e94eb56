"""The one way through: what is checked before anything is written, and what a run reports."""

from __future__ import annotations

import subprocess

import pytest
from plan_helpers import every_inventory

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import (
    IntentErrors,
    SchemaError,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    migrated_from_provider,
    render_stage,
    run_stage,
)


def test_without_crd_dir_core_kinds_are_validated_and_the_rest_is_named(
        tmp_path, example_intent):
    rendered = render_stage(example_intent("dev"), StageOptions(gitops_dir=tmp_path))
    (warning,) = [w for w in rendered.warnings if w.startswith("no mesh_crd_dir given")]
    assert warning.startswith(
        "no mesh_crd_dir given: Application, ApplicationSet, AuthorizationPolicy,")
    assert "ConfigMap" not in warning and "Namespace" not in warning


def test_a_schema_violation_names_object_and_field_and_writes_nothing(
        tmp_path, crd_dir, example_intent):
    templates = tmp_path / "templates" / "istio"
    templates.mkdir(parents=True)
    (templates / "sidecar.yaml.j2").write_text(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        "metadata:\n  name: {{ name | json }}\n  namespace: {{ namespace | json }}\n"
        "spec:\n  workloadSelector:\n    labels: {{ selector | json }}\n"
        "  egres:\n  - hosts: {{ egress_hosts | json }}\n")
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir],
                           template_dirs=[tmp_path / "templates"])
    with pytest.raises(SchemaError) as raised:
        run_stage(example_intent("dev"), options)
    assert "dev: Sidecar bookinfo/reviews: spec.egres: unknown field 'egres'" in str(raised.value)
    assert not gitops.exists()


def test_an_intent_error_writes_nothing(tmp_path, crd_dir, example_intent):
    gitops = tmp_path / "gitops"
    with pytest.raises(IntentErrors, match=r"mesh_stage: 'strict' is not one of"):
        run_stage(example_intent("dev", mesh_stage="strict"),
                  StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir]))
    assert not gitops.exists()


def test_run_reports_objects_files_and_commit(tmp_path, crd_dir, example_intent):
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    first = run_stage(example_intent("prod"), options)
    assert first.changed and first.commit
    assert first.objects == {"added": [
        "Application argocd/meshstage-prod-install",
        "Application argocd/meshstage-prod-istio-base",
        "Application argocd/meshstage-prod-istiod",
        "ApplicationSet argocd/meshstage-prod",
        "GitRepository flux-system/meshstage-prod",
        "HelmRelease flux-system/meshstage-prod-istio-base",
        "HelmRelease flux-system/meshstage-prod-istiod",
        "HelmRepository flux-system/meshstage-prod-istio",
        "Kustomization flux-system/meshstage-prod",
        # one per stage folder, one per sync unit
        "Kustomization flux-system/meshstage-prod-01-06-istio-system",
        "Kustomization flux-system/meshstage-prod-01-permissive-mtls",
        "Kustomization flux-system/meshstage-prod-02-01-cluster",
        "Kustomization flux-system/meshstage-prod-02-02-bookinfo",
        "Kustomization flux-system/meshstage-prod-02-03-istio-system",
        "Kustomization flux-system/meshstage-prod-02-injection",
        "Kustomization flux-system/meshstage-prod-install",
        "Namespace bookinfo",
        "Namespace ingress-nginx",
        "PeerAuthentication istio-system/default",
        "ProxyConfig istio-system/mesh-default",
        # ratings-db's pods talk to each other: their peers Service, with the first sidecar
        "Service bookinfo/ratings-db-peers"],
        "changed": [], "removed": []}
    head = subprocess.run(["git", "-C", str(gitops), "rev-parse", "HEAD"], text=True,
                          capture_output=True, check=True).stdout.strip()
    assert first.commit == head
    again = run_stage(example_intent("prod"), options)
    assert not again.changed and again.commit is None and again.diff == []
    assert again.objects == {"added": [], "changed": [], "removed": []}


def test_a_run_names_its_objects_once_from_what_it_commits(tmp_path, crd_dir, example_intent,
                                                          monkeypatch):
    """Naming the objects reads every changed file: a run that commits does it once, from
    what it commits; a check run, which commits nothing, from the changes it plans."""
    from ansible_collections.meshstage.mesh.plugins.module_utils import pipeline

    named: list[int] = []
    name = pipeline.object_changes

    def counted(changes, known=None):
        changes = list(changes)
        named.append(len(changes))
        return name(changes, known)

    monkeypatch.setattr(pipeline, "object_changes", counted)
    gitops = tmp_path / "gitops"
    checked = run_stage(example_intent("prod"),
                        StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir], check_mode=True))
    assert len(named) == 1 and "Namespace bookinfo" in checked.objects["added"]
    named.clear()
    first = run_stage(example_intent("prod"), StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir]))
    assert len(named) == 1 and first.commit is not None
    assert first.objects == checked.objects
    assert "- Namespace bookinfo" in first.message.splitlines()
    body = subprocess.run(["git", "-C", str(gitops), "log", "-1", "--format=%B"], text=True,
                          capture_output=True, check=True).stdout
    assert body.strip() == first.message.strip()


def test_an_object_the_run_rendered_is_named_as_its_text_names_it(tmp_path, crd_dir):
    """The commit message names a file that holds what the run rendered from the rendered
    object, without reading the text: the same name as the text gives, for every object of
    every example inventory at every stage and of the three estates, both providers."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.message import (
        object_changes,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.update import (
        FileChange,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import (
        SchemaRegistry,
    )

    registry = SchemaRegistry.from_crd_dirs([crd_dir])
    named = 0
    for variables, paths in every_inventory():
        stage = render_stage(variables, StageOptions(gitops_dir=tmp_path / "none",
                                                     check_paths=paths), registry)
        changes = [FileChange(item.path, "add", None, item.text) for item in stage.objects]
        known = {item.path: item for item in stage.objects}
        read = object_changes(changes)
        assert object_changes(changes, known) == read
        named += len(read["added"])
    assert named > 1_000


def test_an_object_named_by_a_mapping_is_named_from_its_text():
    """A name the dump writes another way than the object holds it (a mapping: its keys
    sorted) is read from the text, as before the rendered objects named themselves."""
    from types import SimpleNamespace

    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.message import (
        object_changes,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.update import (
        FileChange,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.yaml_io import dump_canonical

    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": {"zz": 1, "a": 2}, "namespace": "shop"}}
    text = dump_canonical(obj)
    changes = [FileChange("envs/dev/x.yaml", "add", None, text)]
    named = object_changes(changes, {"envs/dev/x.yaml": SimpleNamespace(text=text, obj=obj)})
    assert named == object_changes(changes)
    assert named["added"] == ["ConfigMap shop/{'a': 2, 'zz': 1}"]


def test_a_stage_move_reshapes_objects_in_their_sync_units(tmp_path, crd_dir, example_intent):
    """strict_mtls reshapes the DestinationRules where traffic made them: no object goes from
    one sync unit to another, where Argo CD or Flux would prune it before the next unit
    applies it. The mesh-wide PeerAuthentication becomes STRICT, a later place in the apply
    order: its unit is after the exceptions'."""
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("dev", mesh_stage="traffic"), options)
    rule = "envs/dev/04-traffic/04-bookinfo/destinationrule.bookinfo.reviews.yaml"
    assert "ISTIO_MUTUAL" not in (gitops / rule).read_text()
    result = run_stage(example_intent("dev", mesh_stage="strict_mtls"), options)
    assert "ISTIO_MUTUAL" in (gitops / rule).read_text()
    assert "PeerAuthentication istio-system/default" in result.objects["changed"]
    assert "DestinationRule bookinfo/reviews" in result.objects["changed"]
    moved = subprocess.run(["git", "-C", str(gitops), "show", "--format=", "--name-status",
                            "-M", "HEAD"], capture_output=True, text=True, check=True).stdout
    renamed = [line.split("\t")[1:] for line in moved.splitlines() if line.startswith("R")]
    assert [pair for pair in renamed if pair[0].startswith("envs/")
            and not pair[0].endswith("/kustomization.yaml")] == [
        ["envs/dev/01-permissive-mtls/06-istio-system/peerauthentication.istio-system.default.yaml",
         "envs/dev/01-permissive-mtls/07-istio-system/peerauthentication.istio-system.default.yaml"]]
    # the legacy workload's clients must stop originating mTLS: DISABLE towards it; the
    # authorization rules arrive as a dry run
    added = [a for a in result.objects["added"] if not a.startswith("Kustomization ")]
    assert [a for a in added if not a.startswith("AuthorizationPolicy ")] == [
        "DestinationRule payments/legacy-billing",
        "PeerAuthentication payments/legacy-billing-mtls-exception",
        "PeerAuthentication payments/payment-policy-mtls-exception"]
    assert len([a for a in added if a.startswith("AuthorizationPolicy ")]) == 11
    # the PeerAuthentication's old unit is empty: its Flux Kustomization goes
    assert result.objects["removed"] == [
        "Kustomization flux-system/meshstage-dev-01-06-istio-system"]
    assert result.message.startswith(
        f"meshstage(dev): strict_mtls stage, {len(result.objects['added'])} added, "
        f"{len(result.objects['changed'])} changed, 1 removed\n")


def test_check_mode_computes_the_diff_and_writes_nothing(tmp_path, crd_dir, example_intent):
    gitops = tmp_path / "gitops"
    result = run_stage(example_intent("prod"),
                       StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir], check_mode=True))
    assert result.changed and result.commit is None
    headers = {d["after_header"] for d in result.diff}
    assert "envs/prod/02-injection/01-cluster/namespace.cluster.bookinfo.yaml" in headers
    assert "README.md" in headers
    assert not gitops.exists()


def test_a_run_interrupted_before_its_commit_is_completed_by_the_next(
        tmp_path, crd_dir, example_intent):
    from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo

    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    moved = example_intent("prod", mesh_stage="observability")
    rendered = render_stage(moved, options)
    repo = GitOpsRepo(gitops)
    repo.apply(repo.plan("prod", rendered.files, {"provider": "istio",
                                                  "stage": "observability"}))
    # the controller died here: files written, nothing committed
    result = run_stage(moved, options)
    assert result.changed and result.commit
    # the commit and its message cover what the interrupted run wrote, against HEAD
    objects = [a for a in result.objects["added"] if not a.startswith("Kustomization ")]
    assert objects == ["ConfigMap istio-system/meshstage-scrape-configs",
                       "Telemetry istio-system/mesh-default"]
    counts = {key: len(value) for key, value in result.objects.items()}
    assert result.message.startswith(
        f"meshstage(prod): observability stage, {counts['added']} added, "
        f"{counts['changed']} changed, 0 removed\n")
    status = subprocess.run(["git", "-C", str(gitops), "status", "--porcelain"],
                            capture_output=True, text=True, check=True).stdout
    assert status == ""


@pytest.mark.parametrize(("previous", "provider", "expected"), [
    ({}, "linkerd", None),                                            # a new environment
    ({"provider": "istio", "stage": "traffic"}, "istio", None),       # no switch
    ({"provider": "istio", "stage": "traffic"}, "linkerd", "istio"),  # the switch
    ({"provider": "linkerd", "migrated_from": "istio"}, "linkerd", "istio"),  # kept
    ({"provider": "linkerd", "migrated_from": "istio"}, "istio", "linkerd"),  # and back
])
def test_migrated_from_is_the_recorded_other_provider(previous, provider, expected):
    assert migrated_from_provider(previous, provider) == expected


def test_switching_provider_records_it_and_orders_the_cut_over(tmp_path, crd_dir,
                                                               example_intent):
    options = StageOptions(gitops_dir=tmp_path / "gitops", crd_dirs=[crd_dir])
    run_stage(example_intent("prod"), options)
    switched = run_stage(example_intent("prod", mesh_provider="linkerd"), options)
    assert "The environment moves from istio to linkerd" in switched.message
    assert "PeerAuthentication istio-system/default" in switched.objects["removed"]
    runbook = (tmp_path / "gitops/envs/prod/RUNBOOK.md").read_text()
    assert "## Cut-over from istio" in runbook
    state = GitOpsRepo(tmp_path / "gitops").scope_meta("prod")
    assert state == {"provider": "linkerd", "stage": "injection", "migrated_from": "istio",
                     "branch": "main"}
    again = run_stage(example_intent("prod", mesh_provider="linkerd"), options)
    assert again.commit is None and not again.changed


def test_a_run_sets_no_process_wide_state(tmp_path, crd_dir, example_intent, monkeypatch):
    """The library leaves the garbage collector as it found it: the entry points tune it."""
    import gc

    from ansible_collections.meshstage.mesh.plugins.module_utils import pipeline

    seen = []
    plan = pipeline.plan_stage
    monkeypatch.setattr(pipeline, "plan_stage",
                        lambda intent, estate=None: seen.append(gc.get_threshold())
                        or plan(intent, estate))
    before = gc.get_threshold()
    run_stage(example_intent("prod"), StageOptions(gitops_dir=tmp_path / "g",
                                                   crd_dirs=[crd_dir]))
    assert seen == [before]
    assert gc.get_threshold() == before
