"""The Prometheus client, against a real Prometheus with backfilled series."""

from __future__ import annotations

import math
import time

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.prometheus import (
    PrometheusClient,
    PrometheusError,
)


@pytest.fixture
def served(prometheus_lab):
    """Two counters over the last 10 minutes, every 15 s: 1 and 3 requests per second."""
    end = time.time() - 60
    points = [end - 600 + 15 * i for i in range(41)]
    prometheus_lab.backfill({"requests": ("counter", [
        ({"workload": "a", "code": "200"}, [(t, 1.0 * (t - points[0])) for t in points]),
        ({"workload": "b", "code": "200"}, [(t, 3.0 * (t - points[0])) for t in points]),
    ])})
    return PrometheusClient(prometheus_lab.start()), end


def test_instant_query_returns_each_series_with_its_labels(served):
    client, end = served
    samples = client.query("sum by (workload) (rate(requests_total[5m]))", at=end)
    rates = {s.labels["workload"]: round(s.value, 3) for s in samples}
    assert rates == {"a": 1.0, "b": 3.0}


def test_scalar_of_an_aggregate_and_the_default_for_no_data(served):
    client, end = served
    assert client.scalar("sum(rate(requests_total[5m]))", at=end) == pytest.approx(4.0)
    assert client.scalar('sum(rate(requests_total{workload="nobody"}[5m]))', at=end,
                         default=0.0) == 0.0
    with pytest.raises(PrometheusError, match="no data"):
        client.scalar('sum(rate(requests_total{workload="nobody"}[5m]))', at=end)
    with pytest.raises(PrometheusError, match="2 series, expected one"):
        client.scalar("rate(requests_total[5m])", at=end)
    assert client.scalar("scalar(vector(2))", at=end) == 2.0


def test_range_query_returns_the_points(served):
    client, end = served
    (sample,) = client.query_range('rate(requests_total{workload="a"}[1m])',
                                   end - 300, end, 60)
    assert len(sample.values) == 6
    assert all(value == pytest.approx(1.0) for _, value in sample.values)
    assert not math.isnan(sample.value)


def test_a_query_prometheus_refuses_names_server_and_query(served):
    client, _ = served
    with pytest.raises(PrometheusError) as raised:
        client.query("sum(rate(requests_total[5m])")
    assert client.url in str(raised.value)
    assert "'sum(rate(requests_total[5m])'" in str(raised.value)
    assert "bad_data" in str(raised.value)


def test_an_unreachable_server_is_an_error_not_an_empty_answer():
    from prometheus_lab import free_port

    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(PrometheusError, match="cannot reach it"):
        client.query("up")


@pytest.mark.parametrize("url", ["127.0.0.1:9090", "ftp://127.0.0.1", ""])
def test_a_url_that_is_not_http_is_refused(url):
    with pytest.raises(PrometheusError, match="is not an http:// or https:// URL"):
        PrometheusClient(url)
