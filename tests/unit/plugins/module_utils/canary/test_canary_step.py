"""One round of a canary run against a real GitOps repository: what it commits, what it
refuses, and how every other run renders the record. Prometheus is a stand-in that answers
the three queries with fixed figures (the queries themselves are tested against a real
Prometheus in test_canary_queries.py); the interval is not slept."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.canary.record import CanaryError
from ansible_collections.meshstage.mesh.plugins.module_utils.canary.step import (
    CanaryOptions,
    run_canary_step,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentError
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    run_stage,
)

VARIABLES: dict[str, Any] = {
    "mesh_environment": "dev",
    "mesh_stage": "traffic",
    "mesh_services": [
        {"name": "web", "namespace": "shop", "versions": ["v1"], "calls": ["api"]},
        {"name": "api", "namespace": "shop", "versions": ["v1", "v2"],
         "canary": {"subset": "v2", "weight": 0, "steps": [10, 50, 100],
                    "analysis": {"interval": "30s", "min_requests": 20, "max_waits": 2}}},
        {"name": "db", "namespace": "shop", "versions": ["v1"]},
    ],
}


class Prometheus:
    """Answers the canary's queries: requests, 5xx among them, p99 (None: no data)."""

    def __init__(self, *answers: tuple[float, float, float | None]) -> None:
        self.answers = list(answers)
        self.queries: list[str] = []

    def scalar(self, promql: str, at: float | None = None,
               default: float | None = None) -> float:
        self.queries.append(promql)
        requests, errors, p99 = self.answers[0] if len(self.answers) == 1 else \
            self.answers[(len(self.queries) - 1) // 3]
        if promql.startswith("histogram_quantile"):
            return default if p99 is None else p99
        return errors if '"5' in promql or '"failure"' in promql else requests


HEALTHY = (200.0, 0.0, 12.0)


@pytest.fixture
def repo(tmp_path: Path) -> tuple[dict[str, Any], StageOptions]:
    options = StageOptions(gitops_dir=tmp_path / "gitops")
    variables = copy.deepcopy(VARIABLES)
    run_stage(variables, options)
    return variables, options


def step(repo, client=None, sleeps: list[float] | None = None, **canary: Any):
    """One round; as the playbook's rounds after the first, without the pending check
    (tested on its own below)."""
    variables, options = repo
    canary.setdefault("check_pending", False)
    return run_canary_step(variables, options, CanaryOptions(service="api", **canary),
                           client=client, sleep=(sleeps.append if sleeps is not None
                                                 else lambda _s: None))


def subjects(options: StageOptions) -> list[str]:
    out = subprocess.run(["git", "-C", str(options.gitops_dir), "log", "--reverse",
                          "--format=%s"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[1:]  # after the environment's first commit


def virtual_service(options: StageOptions) -> dict[str, Any]:
    path = options.gitops_dir / "envs/dev/04-traffic/04-shop/virtualservice.shop.api.yaml"
    return yaml.safe_load(path.read_text())


def default_route(options: StageOptions) -> dict[str, int]:
    route = virtual_service(options)["spec"]["http"][-1]["route"]
    return {r["destination"]["subset"]: r.get("weight", 100) for r in route}


def record(options: StageOptions) -> dict[str, Any]:
    state = json.loads((options.gitops_dir / ".meshstage/state.json").read_text())
    return state["scopes"]["dev"]["meta"]["canary"]["api"][-1]


def test_a_run_commits_each_step_then_the_promotion(repo):
    _, options = repo
    assert default_route(options) == {"v1": 100, "v2": 0}
    first = step(repo)
    assert (first.decision, first.status, first.weight, first.done) == \
        ("started", "progressing", 10, False)
    assert default_route(options) == {"v1": 90, "v2": 10}
    decisions = [step(repo, Prometheus(HEALTHY)) for _ in range(3)]
    assert [(d.decision, d.weight, d.done) for d in decisions] == [
        ("advance", 50, False), ("advance", 100, False), ("promote", 100, True)]
    assert subjects(options) == [
        "meshstage(dev): canary api: v2 at 10% (step 1 of 3)",
        "meshstage(dev): canary api: v2 at 50% (step 2 of 3)",
        "meshstage(dev): canary api: v2 at 100% (step 3 of 3)",
        "meshstage(dev): canary api: v2 promoted, v1 removed",
    ]
    assert default_route(options) == {"v2": 100}
    rule = yaml.safe_load((options.gitops_dir / "envs/dev/04-traffic/04-shop/"
                           "destinationrule.shop.api.yaml").read_text())
    assert [s["name"] for s in rule["spec"]["subsets"]] == ["v2"]
    assert decisions[-1].figures["success_rate"] == 100.0
    # nothing more to do: no commit
    again = step(repo, Prometheus(HEALTHY))
    assert (again.decision, again.done, again.commit) == ("nothing", True, None)
    assert len(subjects(options)) == 4


def test_each_round_reads_the_run_from_the_repository(repo):
    variables, options = repo
    step(repo)
    step(repo, Prometheus(HEALTHY))
    # a controller that lost its memory: another copy of the variables, the same repository
    resumed = run_canary_step(copy.deepcopy(variables), options,
                              CanaryOptions(service="api", check_pending=False),
                              client=Prometheus(HEALTHY), sleep=lambda _s: None)
    assert (resumed.decision, resumed.step, resumed.weight) == ("advance", 3, 100)


def test_too_few_requests_wait_the_interval_again_then_halt(repo):
    _, options = repo
    step(repo)
    sleeps: list[float] = []
    prometheus = Prometheus((5.0, 0.0, None))
    halted = step(repo, prometheus, sleeps)
    assert sleeps == [30.0, 30.0, 30.0]          # the interval, then max_waits more
    windows = [q.rsplit("[", 1)[1].split("]")[0] for q in prometheus.queries[::3]]
    assert windows == ["30s", "60s", "90s"]      # all requests since the step
    assert (halted.decision, halted.status, halted.weight, halted.waits, halted.done) == \
        ("halt", "halted", 10, 2, True)
    assert subjects(options)[-1] == \
        "meshstage(dev): canary api: v2 halted at 10%, too few requests (5 of 20)"
    assert default_route(options) == {"v1": 90, "v2": 10}
    # run again: the halted step is analyzed again
    resumed = step(repo, Prometheus(HEALTHY))
    assert (resumed.decision, resumed.weight) == ("advance", 50)


def test_a_failing_step_rolls_back_and_the_next_run_starts_over(repo):
    _, options = repo
    step(repo)
    rolled = step(repo, Prometheus((200.0, 40.0, 12.0)))
    assert (rolled.decision, rolled.status, rolled.weight, rolled.done) == \
        ("rollback", "rolled_back", 0, True)
    message = subprocess.run(["git", "-C", str(options.gitops_dir), "log", "-1",
                              "--format=%B"], capture_output=True, text=True).stdout
    assert message.startswith("meshstage(dev): canary api: v2 rolled back to 0%, success rate "
                              "80.00% is under 99%\n")
    assert "Step 1 (10%) failed its analysis over 30s: success rate 80.00% is under 99%." \
        in message
    assert default_route(options) == {"v1": 100, "v2": 0}
    again = step(repo)
    assert (again.decision, again.weight) == ("started", 10)
    state = json.loads((options.gitops_dir / ".meshstage/state.json").read_text())
    assert [run["status"] for run in state["scopes"]["dev"]["meta"]["canary"]["api"]] == \
        ["rolled_back", "progressing"]


def test_a_run_is_rolled_back_by_hand_and_nothing_else_is(repo):
    _, options = repo
    with pytest.raises(CanaryError, match=re.escape("no canary run of api (v1 -> v2) is in "
                                                    "progress to roll back")):
        step(repo, rollback=True)
    step(repo)
    rolled = step(repo, rollback=True)
    assert (rolled.decision, rolled.status, rolled.weight) == ("rollback", "rolled_back", 0)
    assert subjects(options)[-1] == "meshstage(dev): canary api: v2 rolled back to 0%, by hand"
    with pytest.raises(CanaryError, match="it is rolled back at step 1 of 3"):
        step(repo, rollback=True)


def test_preview_says_where_the_run_stands_and_what_it_needs(repo):
    _, options = repo
    preview = step(repo, preview=True)
    assert (preview.decision, preview.rounds, preview.done, preview.hosts) == \
        ("preview", 4, False, [])
    assert preview.message == "api (v1 -> v2) in dev: not started; measured on istio"
    step(repo)
    step(repo, Prometheus(HEALTHY))
    assert step(repo, preview=True).rounds == 2
    assert subjects(options)[-1].endswith("(step 2 of 3)")


def test_check_mode_analyzes_and_commits_nothing(repo):
    variables, options = repo
    step(repo)
    checked = run_canary_step(variables, replace(options, check_mode=True),
                              CanaryOptions(service="api"), client=Prometheus(HEALTHY),
                              sleep=lambda _s: None)
    assert (checked.decision, checked.weight, checked.done, checked.commit) == \
        ("advance", 50, True, None)
    assert checked.commit_message.startswith("meshstage(dev): canary api: v2 at 50%")
    assert record(options)["step"] == 1


@pytest.mark.parametrize(("change", "message"), [
    pytest.param({"service": "nope"}, "mesh_canary_service: 'nope' is not a service in "
                 "mesh_services", id="unknown-service"),
    pytest.param({"service": "db"}, "mesh_services[2].canary: None is required for a canary "
                 "run of db (mesh_canary_service)", id="no-canary"),
])
def test_a_service_without_a_canary_is_refused(repo, change, message):
    variables, options = repo
    with pytest.raises(IntentError) as refused:
        run_canary_step(variables, options, CanaryOptions(**change))
    assert str(refused.value) == message


def test_a_run_is_refused_before_traffic_before_migrate_and_off_the_recorded_stage(
        repo, tmp_path):
    variables, options = repo
    early = {**variables, "mesh_stage": "observability"}
    with pytest.raises(CanaryError, match="canary run of api in dev refused: the environment "
                                          "is at 'observability', and canary weights are "
                                          "rendered from the traffic stage on"):
        run_canary_step(early, options, CanaryOptions(service="api"))
    with pytest.raises(CanaryError, match=re.escape("the GitOps repository records nothing "
                                                    "for dev; run playbooks/migrate.yml "
                                                    "first")):
        run_canary_step(variables, StageOptions(gitops_dir=tmp_path / "empty"),
                        CanaryOptions(service="api"))
    later = {**variables, "mesh_stage": "strict_mtls"}
    with pytest.raises(CanaryError, match=re.escape("records dev at 'traffic' (istio), the "
                                                    "inventory says 'strict_mtls' (istio); "
                                                    "run playbooks/migrate.yml first")):
        run_canary_step(later, options, CanaryOptions(service="api"))


def test_inventory_changes_not_committed_yet_are_refused_so_a_step_commits_only_itself(repo):
    variables, options = repo
    assert run_canary_step(variables, options, CanaryOptions(service="api")).commit
    changed = copy.deepcopy(variables)
    changed["mesh_services"][0]["traffic"] = {"timeout": "3s"}
    with pytest.raises(CanaryError, match=r"dev: the inventory has changes the GitOps "
                                          r"repository does not have yet \(1 object\(s\)\); "
                                          "commit them with playbooks/migrate.yml first"):
        run_canary_step(changed, options, CanaryOptions(service="api"))
    assert len(subjects(options)) == 1


def test_an_analysis_needs_prometheus(repo):
    step(repo)
    with pytest.raises(CanaryError, match=r"needs Prometheus to analyze its step: set "
                                          r"mesh_gates.prometheus \(or mesh_prometheus_url "
                                          r"for this run\)"):
        step(repo)


def test_migrate_renders_the_record_not_the_inventory_weight_and_says_so(repo):
    variables, options = repo
    step(repo)
    step(repo, Prometheus(HEALTHY))
    # the inventory's weight moves: the run's 50% stays, with a warning naming both
    moved = copy.deepcopy(variables)
    moved["mesh_services"][1]["canary"]["weight"] = 30
    result = run_stage(moved, options)
    assert default_route(options) == {"v1": 50, "v2": 50}
    assert result.commit is None or "VirtualService" not in str(result.objects)
    assert any(w.startswith("mesh_services[1].canary.weight: 30 is not rendered for api: the "
                            "GitOps repository records its canary run (v1 -> v2) in progress "
                            "at step 2 of 3 (50% to v2)") for w in result.warnings)
    runbook = (options.gitops_dir / "envs/dev/RUNBOOK.md").read_text()
    assert "- now: **in progress at step 2 of 3 (50% to v2)**" in runbook
    assert record(options)["step"] == 2    # kept as it was


def test_migrate_after_a_promotion_keeps_it_and_refuses_to_undo_it(repo):
    variables, options = repo
    step(repo)
    for _ in range(3):
        step(repo, Prometheus(HEALTHY))
    assert run_stage(variables, options).commit is None       # unchanged inventory
    assert default_route(options) == {"v2": 100}
    undone = copy.deepcopy(variables)
    del undone["mesh_services"][1]["canary"]
    with pytest.raises(CanaryError, match=r"mesh_services\[1\].versions\[0\]: 'v1' would "
                                          "undo the canary promotion"):
        run_stage(undone, options)
    updated = copy.deepcopy(undone)
    updated["mesh_services"][1]["versions"] = ["v2"]
    result = run_stage(updated, options)
    assert not any("canary" in warning for warning in result.warnings)
    # with one version and no canary the service needs no VirtualService any more
    assert result.objects == {"added": [], "changed": [], "removed": ["VirtualService shop/api"]}


@pytest.mark.parametrize(("provider", "api", "path", "weights"), [
    ("istio", "virtualservice", "envs/dev/04-traffic/04-shop/virtualservice.shop.api.yaml",
     lambda o: {r["destination"]["subset"]: r["weight"] for r in o["spec"]["http"][-1]["route"]}),
    ("istio", "gateway-api", "envs/dev/04-traffic/04-shop/httproute.shop.api.yaml",
     lambda o: {b["name"]: b.get("weight", 100) for b in o["spec"]["rules"][-1]["backendRefs"]}),
    ("linkerd", "gateway-api", "envs/dev/04-traffic/04-shop/httproute.shop.api.yaml",
     lambda o: {b["name"]: b.get("weight", 100) for b in o["spec"]["rules"][-1]["backendRefs"]}),
    ("linkerd", "smi", "envs/dev/04-traffic/04-shop/trafficsplit.shop.api.yaml",
     lambda o: {b["service"]: b["weight"] for b in o["spec"]["backends"]}),
])
def test_every_traffic_api_renders_the_step(tmp_path, provider, api, path, weights):
    variables = {**copy.deepcopy(VARIABLES), "mesh_provider": provider, "mesh_traffic_api": api}
    options = StageOptions(gitops_dir=tmp_path / "gitops")
    run_stage(variables, options)
    quick = CanaryOptions(service="api", check_pending=False)
    run_canary_step(variables, options, quick)
    run_canary_step(variables, options, quick, client=Prometheus(HEALTHY), sleep=lambda _s: None)
    rendered = weights(yaml.safe_load((options.gitops_dir / path).read_text()))
    assert sorted(rendered.values(), key=str) in ([50, 50], ["500m", "500m"])
    for _ in range(2):
        run_canary_step(variables, options, quick, client=Prometheus(HEALTHY),
                        sleep=lambda _s: None)
    promoted = yaml.safe_load((options.gitops_dir / path).read_text())
    assert "v1" not in json.dumps(weights(promoted))
    if api != "virtualservice":   # the old version's Service leaves with it
        services = options.gitops_dir / "envs/dev/04-traffic/02-shop"
        assert not (services / "service.shop.api-v1.yaml").exists()
        assert (services / "service.shop.api-v2.yaml").exists()
