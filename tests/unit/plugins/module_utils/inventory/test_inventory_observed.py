"""Observed edges become calls: ``meshstage import --prometheus`` against a real Prometheus
(the Debian package) with thirty minutes of series backfilled by promtool, of both meshes:
Istio's ``istio_requests_total`` and ``istio_tcp_connections_opened_total`` for bookinfo (as
the destination's and the source's proxies report them), Linkerd's outbound
``request_total`` and ``tcp_open_total`` for emojivoto (labelled by the linkerd-proxy scrape
job: namespace, pod, deployment), and a host sidecar's outbound cluster."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_lab import PrometheusLab

from ansible_collections.meshstage.mesh.plugins.module_utils.cli import main

STEP = 15.0
SPIFFE = "spiffe://cluster.local/ns/{}/sa/{}"


def _istio(reporter: str, source: tuple[str, str, str], service: str,
           protocol: str = "http") -> dict[str, str]:
    namespace, workload, account = source
    return {"reporter": reporter, "source_workload": workload,
            "source_workload_namespace": namespace,
            "source_principal": SPIFFE.format(namespace, account),
            "destination_service_name": service, "destination_service_namespace": "default",
            "destination_workload_namespace": "default", "request_protocol": protocol,
            "connection_security_policy": "mutual_tls", "response_code": "200"}


def _linkerd(deployment: str, service: str) -> dict[str, str]:
    return {"direction": "outbound", "namespace": "emojivoto", "deployment": deployment,
            "pod": f"{deployment}-5d8f7c9b4-abcde", "dst_namespace": "emojivoto",
            "dst_service": service, "tls": "true"}


def estate_series(now: float) -> dict[str, Any]:
    """Thirty minutes of both meshes, every 15 s, up to 20 s before ``now``."""
    end = now - 20
    points = [end - 1800 + STEP * i for i in range(int(1800 / STEP) + 1)]

    def rising(rate: float = 1.0) -> list[tuple[float, float]]:
        return [(t, rate * (t - points[0])) for t in points]

    productpage = ("default", "productpage-v1", "bookinfo-productpage")
    reviews = ("default", "reviews-v2", "bookinfo-reviews")
    gateway = ("istio-system", "istio-ingressgateway", "istio-ingressgateway-service-account")
    return {
        "istio_requests": ("counter", [
            # both proxies report the call: it counts once
            (_istio("destination", productpage, "details"), rising()),
            (_istio("source", productpage, "details"), rising()),
            (_istio("destination", productpage, "reviews"), rising(0.5)),
            (_istio("destination", reviews, "ratings"), rising(0.2)),
            (_istio("destination", gateway, "productpage"), rising(2.0)),
            # a caller outside the estate
            (_istio("destination", ("tools", "curl", "curl"), "ratings"), rising(0.1)),
        ]),
        "istio_tcp_connections_opened": ("counter", [
            (_istio("destination", reviews, "ratings", "tcp"), rising(0.05)),
        ]),
        "request": ("counter", [
            (_linkerd("web", "emoji-svc"), rising()),
            (_linkerd("vote-bot", "web-svc"), rising(0.3)),
        ]),
        "tcp_open": ("counter", [(_linkerd("web", "voting-svc"), rising(0.1))]),
        "envoy_cluster_upstream_rq": ("counter", [
            ({"mesh_environment": "dev", "mesh_host": "pay-1", "mesh_service": "ledger",
              "mesh_namespace": "payments", "envoy_cluster_name": "outbound_billing_v1"},
             rising(0.4)),
        ]),
    }


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    lab = PrometheusLab(tmp_path_factory.mktemp("estate-prometheus"))
    lab.backfill(estate_series(time.time()))
    yield lab.start()
    lab.stop()


def test_observed_edges_of_both_meshes_become_calls(prometheus, reference_dir, tmp_path):
    samples = reference_dir / "samples"
    bookinfo = samples / "istio-bookinfo" / "platform" / "kube" / "bookinfo.yaml"
    # emojivoto without its environment: only Prometheus says who calls whom
    emojivoto = tmp_path / "emojivoto.yaml"
    documents = list(yaml.safe_load_all((samples / "linkerd" / "website" / "run.linkerd.io"
                                         / "public" / "emojivoto.yml").read_text()))
    for document in documents:
        for container in (document or {}).get("spec", {}).get("template", {}).get(
                "spec", {}).get("containers", []):
            container.pop("env", None)
    emojivoto.write_text(yaml.safe_dump_all(documents))
    out, err = io.StringIO(), io.StringIO()
    code = main(["import", str(bookinfo), str(emojivoto), "--output", str(tmp_path / "inv"),
                 "--prometheus", prometheus, "--window", "15m"], out=out, err=err)
    assert code == 0, err.getvalue()
    text = (tmp_path / "inv" / "shared" / "mesh.yml").read_text()
    services = {s["name"]: s for s in yaml.safe_load(text)["mesh_services"]}
    assert services["productpage"]["calls"] == ["details", "reviews"]
    assert services["productpage"]["ingress"] is True
    assert services["reviews"]["calls"] == ["ratings"]
    assert services["web-svc"]["calls"] == ["emoji-svc", "voting-svc"]
    assert services["vote-bot"]["calls"] == ["web-svc"]
    assert "calls" not in services["details"]
    # each call says what saw it, and how much (comments joined across their lines)
    text = re.sub(r"\n\s*#\s+", " ", text)
    assert re.search(r"details: observed by istio: 8\d\d request\(s\) \(http\) in Prometheus "
                     + re.escape(prometheus) + " over the last 15m", text), text
    assert "observed by linkerd" in text and "(tcp)" in text
    assert "the ingress gateway's requests" in text
    # edges whose ends are not both in the catalogue are listed, not guessed
    assert "tools/curl -> default/ratings" in text
    assert "host pay-1" in text and "billing" in text
    assert "wave-1" in text and Path(tmp_path / "inv" / "dev" / "hosts.yml").is_file()
