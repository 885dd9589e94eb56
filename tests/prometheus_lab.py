"""A real Prometheus (the Debian package) for tests, on a loopback port, with series
backfilled by ``promtool tsdb create-blocks-from openmetrics`` and/or live scrape jobs.

    lab = PrometheusLab(tmp_path)
    lab.backfill({"istio_requests": ("counter", [({"destination_workload": "x"},
                                                         [(t0, 1.0), (t0 + 15, 7.0)])])})
    url = lab.start()                 # or lab.start(scrape_configs=[...])
    ...
    lab.stop()

The fixture ``prometheus_lab`` in tests/conftest.py hands one out and stops it after the test.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

# name -> (type, [(labels, [(unix seconds, value), ...]), ...])
Series = Mapping[str, tuple[str, Sequence[tuple[Mapping[str, str], Iterable[tuple[float, float]]]]]]


def _ephemeral_low() -> int:
    """The first port of the kernel's range for outgoing connections' local ports."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(address: str = "127.0.0.1") -> int:
    """A port free on ``address`` now, for a server a test starts next. Drawn below the
    kernel's ephemeral range: a port that ``bind(0)`` hands out comes from that range,
    where every outgoing connection (a scrape, a request of the other test worker) may take
    it before the server binds it ("Address already in use")."""
    draw = random.SystemRandom()
    high = min(_ephemeral_low(), 65536) - 1
    for _ in range(200):
        port = draw.randint(min(20000, high), high)
        with socket.socket() as sock:
            try:
                sock.bind((address, port))
            except OSError:
                continue  # taken: draw again
            return port
    with socket.socket() as sock:  # a crowded range: whatever the kernel gives
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def openmetrics(series: Series) -> str:
    """The OpenMetrics text promtool backfills from (timestamps in seconds).

    Keys are metric families; a counter's samples are ``<family>_total``. A sample whose
    labels hold ``__name__`` is written under that name (a histogram's ``_bucket``,
    ``_count`` and ``_sum``).
    """
    lines: list[str] = []
    for family, (kind, items) in series.items():
        lines.append(f"# TYPE {family} {kind}")
        for labels, points in items:
            labels = dict(labels)
            name = labels.pop("__name__", f"{family}_total" if kind == "counter" else family)
            text = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
            for timestamp, value in points:
                lines.append(f"{name}{{{text}}} {value} {timestamp:.3f}")
    return "\n".join(lines) + "\n# EOF\n"


class PrometheusLab:
    """One Prometheus server of a test, its data under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.data = self.base / "prometheus-data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def backfill(self, series: Series) -> None:
        """Write ``series`` into the TSDB (before ``start``), as promtool backfills."""
        if self.process is not None:
            raise RuntimeError("backfill before start: Prometheus reads blocks when it starts")
        source = self.base / "backfill.om"
        source.write_text(openmetrics(series))
        result = subprocess.run(
            [_tool("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source),
             str(self.data)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"promtool backfill failed: {result.stderr or result.stdout}")

    def start(self, scrape_configs: list[dict[str, Any]] | None = None,
              scrape_interval: str = "1s") -> str:
        """Start Prometheus on a free loopback port; its URL once it is ready."""
        port = free_port()
        config = self.base / "prometheus.yml"
        config.write_text(yaml.safe_dump({"global": {"scrape_interval": scrape_interval},
                                          "scrape_configs": scrape_configs or []}))
        log = open(self.base / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [_tool("prometheus"), f"--config.file={config}",
             f"--storage.tsdb.path={self.data}", "--storage.tsdb.retention.time=30d",
             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-admin-api"],
            stdout=subprocess.DEVNULL, stderr=log)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self.url
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("Prometheus did not become ready: "
                           + (self.base / "prometheus.log").read_text()[-2000:])

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (the Debian package prometheus; "
                           "`make test` installs it)")
    return path
