"""Server-first and pooled protocols (issue 14, item 4): the intent accepts them, Linkerd
makes their ports opaque from the injection stage on, Istio is told they are TCP (the
analyzers: analyze/test_analyze_protocols.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from plan_helpers import render

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import AnalysisError
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry

EVENTS = {"name": "events", "namespace": "payments", "kind": "StatefulSet",
          "ports": [{"port": 4222, "protocol": "NATS"}],
          "peer_ports": [{"port": 6222, "protocol": "NATS"}]}
LEDGER_DB = {"name": "ledger-db", "namespace": "payments", "kind": "StatefulSet",
             "ports": [{"name": "mysql", "port": 3306, "protocol": "MYSQL"}]}


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def with_services(variables: dict[str, Any], *services: dict[str, Any]) -> dict[str, Any]:
    variables = copy.deepcopy(variables)
    variables["mesh_services"].extend(copy.deepcopy(services))
    return variables


def linkerd_values(rendered) -> dict[str, Any]:
    return yaml.safe_load(rendered.files[
        f"envs/{rendered.intent.environment}/00-install/values/linkerd-control-plane.yaml"])


@pytest.mark.parametrize("protocol", ["MYSQL", "POSTGRESQL", "SMTP", "NATS", "MEMCACHED"])
def test_the_intent_accepts_server_first_protocols(example_intent, protocol):
    # MYSQL was refused: "is not one of HTTP, HTTP2, GRPC, TCP, TLS, HTTPS, MONGO, REDIS"
    variables = with_services(example_intent("dev"), {
        "name": "db", "namespace": "payments", "ports": [{"port": 7777, "protocol": protocol}]})
    intent, _ = parse_intent(variables)
    (port,) = intent.service("db").ports
    assert port.protocol == protocol
    # named so that Istio takes it as TCP (MySQL has a prefix of its own)
    assert port.name == ("mysql-7777" if protocol == "MYSQL" else
                         f"tcp-{protocol.lower()}-7777")


def test_linkerd_makes_the_nats_ports_opaque_from_injection_on(registry, example_intent):
    variables = with_services(example_intent("prod", mesh_provider="linkerd",
                                             mesh_injected_waves=2), EVENTS, LEDGER_DB)
    rendered = render(variables, registry)
    # 3306 is opaque by default; the list replaces the chart's, so it keeps the defaults
    assert linkerd_values(rendered)["proxy"]["opaquePorts"] == \
        "25,587,3306,4222,4444,5432,6222,6379,9300,11211"
    assert "Opaque ports: 4222, 6222 join the default opaque ports" in \
        rendered.files["envs/prod/RUNBOOK.md"]
    before = render(with_services(example_intent("prod", mesh_provider="linkerd",
                                                 mesh_stage="permissive_mtls"), EVENTS),
                    registry)
    assert "opaquePorts" not in linkerd_values(before)["proxy"]


def test_linkerd_servers_of_server_first_ports_are_opaque(registry, example_intent):
    rendered = render(with_services(example_intent("dev", mesh_provider="linkerd"), EVENTS),
                      registry)
    servers = {o.obj["metadata"]["name"]: o.obj["spec"]["proxyProtocol"]
               for o in rendered.objects if o.obj["kind"] == "Server"
               and o.obj["metadata"]["name"].startswith("events-")}
    assert servers == {"events-tcp-nats-4222": "opaque", "events-peer-6222": "opaque"}


def test_an_http_port_made_opaque_by_another_service_is_a_warning(registry, example_intent):
    variables = with_services(example_intent("dev", mesh_provider="linkerd"), EVENTS, {
        "name": "nats-ui", "namespace": "payments", "ports": [{"port": 4222}]})
    warnings = [w for w in render(variables, registry).warnings if "opaque cluster-wide" in w]
    assert len(warnings) == 1 and "(service payments/nats-ui): port 4222 is a " \
        "server-first port of another service" in warnings[0]


def test_istio_a_server_first_port_it_would_sniff_stops_or_warns(registry, example_intent):
    """The intent's port name is the Service port's: a name that does not tell Istio the
    protocol is refused for a server-first protocol once injected (the connections would
    stall). PostgreSQL's clients speak first: Istio waits for their bytes (no detection
    timeout by default) and takes them for TCP (istio/istio#24856), so nothing is said."""
    postgres = with_services(example_intent("dev"), {
        "name": "orders-db", "namespace": "payments", "kind": "StatefulSet",
        "ports": [{"name": "postgres", "port": 5432, "protocol": "POSTGRESQL"}]})
    assert not [w for w in render(postgres, registry).warnings if "MST0112" in w]
    events = copy.deepcopy(EVENTS)
    events["ports"][0]["name"] = "nats"
    with pytest.raises(AnalysisError, match="Error MST0112 Namespace payments: Port 4222 of "
                                            "Service payments/events carries NATS"):
        render(with_services(example_intent("dev"), events), registry)
    assert render(with_services(example_intent("dev"), EVENTS), registry)
