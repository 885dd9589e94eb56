"""The canary's queries per provider, decided on series backfilled into a real Prometheus.

One Prometheus (the Debian package, promtool backfill) holds ten minutes of Istio, Linkerd
and host-sidecar series for four canaries: ``healthy``, ``failing`` (a fifth of v2's
answers are 503), ``slow`` (v2 answers in about a second) and ``quiet`` (too few requests).
Each v1 fails half its requests, so a query that picked the wrong version would be seen.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.canary.decisions import judge_step
from ansible_collections.meshstage.mesh.plugins.module_utils.canary.queries import (
    measure,
    prometheus_duration,
    version_queries,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.canary.record import Decision
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.prometheus import PrometheusClient
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.registry import HOSTS, MESHES

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="Prometheus (Debian package prometheus) is not "
                                "installed; `make test` installs it")

WINDOW = 300.0
BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, "+Inf")
# service -> (requests a second, share failing, share of answers under each bucket)
FAST = {1: 0.0, 5: 0.5, 10: 0.8, 25: 1.0}
SLOW = {500: 0.05, 1000: 0.5, 2500: 1.0}
CANARIES: dict[str, tuple[float, float, dict[Any, float]]] = {
    "healthy": (2.0, 0.0, FAST),
    "failing": (2.0, 0.2, FAST),
    "slow": (2.0, 0.0, SLOW),
    "quiet": (0.01, 0.0, FAST),
}
V1 = (2.0, 0.5, FAST)


def _share(spread: dict[Any, float], bucket: Any) -> float:
    if bucket == "+Inf":
        return 1.0
    below = [share for le, share in spread.items() if le <= bucket]
    return max(below, default=0.0)


def _series(start: float, end: float) -> dict[str, Any]:
    points = [start + 15 * i for i in range(int((end - start) // 15) + 1)]

    def counter(rate: float) -> list[tuple[float, float]]:
        return [(t, round(rate * (t - start), 6)) for t in points]

    istio: list[Any] = []
    istio_latency: list[Any] = []
    linkerd: list[Any] = []
    linkerd_latency: list[Any] = []
    envoy: list[Any] = []
    envoy_latency: list[Any] = []
    for service, canary in CANARIES.items():
        for version, (rate, failing, spread) in (("v1", V1), ("v2", canary)):
            good, bad = rate * (1 - failing), rate * failing
            istio_base = {"reporter": "destination", "destination_workload_namespace": "shop",
                          "destination_app": service, "destination_version": version}
            linkerd_base = {"direction": "outbound", "dst_namespace": "shop",
                            "dst_service": f"{service}-{version}"}
            envoy_base = {"mesh_environment": "dev",
                          "envoy_cluster_name": f"outbound_{service}_{version}"}
            istio += [({**istio_base, "response_code": "200"}, counter(good)),
                      ({**istio_base, "response_code": "503"}, counter(bad))]
            linkerd += [({**linkerd_base, "classification": "success", "status_code": "200"},
                         counter(good)),
                        ({**linkerd_base, "classification": "failure", "status_code": "503"},
                         counter(bad))]
            # Envoy: a retried 503 is counted under retry.upstream_rq_xx, the final answer
            # under upstream_rq_xx
            envoy += [({**envoy_base, "__name__": "envoy_cluster_upstream_rq_xx",
                        "envoy_response_code_class": "2"}, counter(good)),
                      ({**envoy_base, "__name__": "envoy_cluster_retry_upstream_rq_xx",
                        "envoy_response_code_class": "5"}, counter(bad))]
            for bucket in BUCKETS:
                share = _share(spread, bucket)
                istio_latency.append(({**istio_base, "le": str(bucket)}, counter(rate * share)))
                linkerd_latency.append(({**linkerd_base, "le": str(bucket)},
                                        counter(rate * share)))
                envoy_latency.append(({**envoy_base, "le": str(bucket)}, counter(rate * share)))
    return {
        "istio_requests": ("counter", istio),
        "istio_request_duration_milliseconds_bucket": ("gauge", istio_latency),
        "response": ("counter", linkerd),
        "response_latency_ms_bucket": ("gauge", linkerd_latency),
        "envoy_cluster_upstream_rq_xx": ("gauge", envoy),
        "envoy_cluster_upstream_rq_time_bucket": ("gauge", envoy_latency),
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[PrometheusClient, float]]:
    from prometheus_lab import PrometheusLab

    lab = PrometheusLab(tmp_path_factory.mktemp("canary-prometheus"))
    end = time.time() - 120
    lab.backfill(_series(end - 600, end))
    try:
        yield PrometheusClient(lab.start()), end
    finally:
        lab.stop()


def intent_for(provider: str):
    services = [{"name": name, "namespace": "shop", "versions": ["v1", "v2"],
                 "canary": {"subset": "v2", "weight": 10,
                            "analysis": {"min_requests": 20, "max_waits": 1,
                                         "latency_p99": "250ms"}}}
                for name in CANARIES]
    services.append({"name": "caller", "namespace": "shop", "calls": list(CANARIES)})
    variables: dict[str, Any] = {"mesh_environment": "dev", "mesh_stage": "traffic",
                                 "mesh_provider": "linkerd" if provider == "linkerd"
                                 else "istio", "mesh_services": services}
    if provider == "envoy":  # every service on plain hosts: their sidecars measure
        variables["mesh_hosts"] = {
            f"{name}-{version}": {"environment": "dev", "service": name, "version": version,
                                  "address": f"192.0.2.{10 + i}", "app_port": 8080}
            for i, (name, version) in enumerate(
                (n, v) for n in (*CANARIES, "caller") for v in ("v1", "v2"))
            if not (name == "caller" and version == "v2")}
        variables["mesh_hosts"]["caller-v1"].pop("version")
    return parse_intent(variables)[0]


@pytest.mark.parametrize("provider", ["istio", "linkerd", "envoy"])
@pytest.mark.parametrize(("service", "waits", "decision", "check"), [
    ("healthy", 0, Decision.ADVANCE, "all checks"),
    ("failing", 0, Decision.ROLLBACK, "success rate"),
    ("slow", 0, Decision.ROLLBACK, "p99 latency"),
    ("quiet", 0, Decision.WAIT, "request count"),
    ("quiet", 1, Decision.HALT, "request count"),
])
def test_queries_measure_the_canary_version_and_decide(served, provider, service, waits,
                                                       decision, check):
    client, end = served
    intent = intent_for(provider)
    canary = intent.service(service)
    queries = version_queries(intent, canary, "v2")
    assert queries.provider == provider
    measured = measure(client, queries, WINDOW, at=end)
    verdict = judge_step(measured, canary.canary.analysis, waits, last_step=False)
    assert (verdict.decision, verdict.check) == (decision, check), measured
    rate, failing, _spread = CANARIES[service]
    assert measured.requests == pytest.approx(rate * WINDOW, rel=0.05)
    if service != "quiet":
        assert measured.success_rate == pytest.approx(100 * (1 - failing), abs=0.5)


def test_latency_is_the_99th_percentile_of_the_histogram(served):
    client, end = served
    intent = intent_for("istio")
    fast = measure(client, version_queries(intent, intent.service("healthy"), "v2"), WINDOW,
                   at=end)
    slow = measure(client, version_queries(intent, intent.service("slow"), "v2"), WINDOW,
                   at=end)
    # 20% of the answers between 10 and 25 ms; 50% between 1000 and 2500 ms
    assert 10 < fast.latency_p99_ms <= 25
    assert 1000 < slow.latency_p99_ms <= 2500


def test_no_series_means_no_requests_and_no_latency(served):
    client, end = served
    intent = intent_for("istio")
    queries = version_queries(intent, intent.service("healthy"), "v3")
    measured = measure(client, queries, WINDOW, at=end)
    assert (measured.requests, measured.errors, measured.latency_p99_ms) == (0.0, 0.0, None)
    assert measured.success_rate is None


def test_the_version_is_named_by_its_label_its_backend_service_or_its_cluster():
    variables = {"mesh_environment": "dev", "mesh_stage": "traffic", "mesh_services": [
        {"name": "api", "namespace": "shop", "versions": [
            "v1", {"name": "v2", "labels": {"version": "2.0", "track": "canary"},
                   "service": "api-canary"}],
         "canary": {"subset": "v2", "weight": 10}}]}
    istio = parse_intent(variables)[0]
    assert 'destination_version="2.0"' in version_queries(
        istio, istio.service("api"), "v2").requests
    linkerd = parse_intent({**variables, "mesh_provider": "linkerd"})[0]
    assert 'dst_service="api-canary"' in version_queries(
        linkerd, linkerd.service("api"), "v2").requests
    assert 'dst_service="api-v1"' in version_queries(
        linkerd, linkerd.service("api"), "v1").requests


def test_queries_are_data_with_a_window_to_fill():
    providers = [*MESHES.values(), HOSTS]
    assert {p.name for p in providers if p.canary_queries} == {"istio", "linkerd", "envoy"}
    intent = intent_for("envoy")
    queries = version_queries(intent, intent.service("healthy"), "v2")
    assert queries.at_window(90)["errors"] == (
        'sum(increase({__name__=~"envoy_cluster_(retry_)?upstream_rq_xx",'
        'mesh_environment="dev",envoy_cluster_name="outbound_healthy_v2",'
        'envoy_response_code_class="5"}[90s]))')
    assert [prometheus_duration(s) for s in (30, 1.5, 0.25, 3600)] == \
        ["30s", "1500ms", "250ms", "3600s"]
