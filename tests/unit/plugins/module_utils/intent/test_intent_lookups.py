"""What the planners ask of the intent for one service, answered from indexes made once per
Intent: the same answers as a search of the catalogue, in the same order, for the parsed
intent, for one a planner derived from it, and for one read back from a pickle.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.intent.model import Intent
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent

ESTATE: dict[str, Any] = {
    "mesh_environment": "dev",
    "mesh_stage": "authorization",
    "mesh_services": [
        {"name": "web", "namespace": "shop", "ports": [{"name": "http", "port": 8080}],
         "calls": ["api"], "ingress": True},
        {"name": "api", "namespace": "shop",
         "ports": [{"name": "http", "port": 9090}, {"name": "grpc", "port": 9091,
                                                     "protocol": "GRPC"}]},
        {"name": "db", "namespace": "data",
         "ports": [{"name": "tcp", "port": 5432, "protocol": "TCP"}], "inject": False},
        {"name": "hooks", "namespace": "shop", "ports": [{"name": "https", "port": 8443,
                                                           "protocol": "HTTPS"}]},
    ],
    "mesh_injection_waves": [{"name": "shop", "namespaces": ["shop"]},
                             {"name": "data", "namespaces": ["data"]}],
    "mesh_mtls_exceptions": [
        {"service": "db", "mode": "DISABLE", "reason": "an appliance"},
        {"service": "api", "mode": "PERMISSIVE", "ports": {9091: "DISABLE"},
         "reason": "a legacy client"},
    ],
    "mesh_authorization": [
        {"service": "api", "allow": [{"from": ["web"], "methods": ["GET"]}]},
        {"service": "web", "allow": [{"namespaces": ["shop"]}]},
    ],
    "mesh_external_callers": [
        {"name": "prometheus", "kind": "prometheus", "namespace": "monitoring",
         "calls": ["api:9090", "web", "hooks"]},
        {"name": "kube-apiserver", "kind": "kube-apiserver", "calls": ["hooks"]},
        {"name": "nginx", "kind": "ingress-controller", "namespace": "ingress-nginx",
         "inject": True, "calls": ["web", "api:9091"]},
    ],
    "mesh_gitops": {"repo_url": "https://git.example.invalid/platform/mesh.git"},
}


def searched(intent: Intent, name: str) -> dict[str, Any]:
    """The answers as a search of the intent's tuples gives them."""
    service = next(s for s in intent.services if s.name == name)
    entry = next((a for a in intent.authorization if a.service == name), None)
    external = [(caller.title, ports) for caller in intent.external_callers
                for callee, ports in caller.calls if callee == name]
    return {
        "path": f"mesh_services[{intent.services.index(service)}]",
        "authorization": entry,
        "authorization_path": None if entry is None
        else f"mesh_authorization[{intent.authorization.index(entry)}]",
        "exceptions": tuple(e for e in intent.mtls_exceptions if e.service == name),
        "exemption": next((e for e in intent.exemptions() if e.service == name), None),
        "external": external,
        "native": tuple(s for s in intent.services
                        if s.needs_native_sidecar and intent.injected(s)),
    }


def looked_up(intent: Intent, name: str) -> dict[str, Any]:
    service = next(s for s in intent.services if s.name == name)
    entry = intent.authorization_for(name)
    callers = intent.inbound_callers(service)
    return {
        "path": intent.service_path(service),
        "authorization": entry,
        "authorization_path": None if entry is None else intent.authorization_path(entry),
        "exceptions": intent.exceptions_for(name),
        "exemption": intent.exemption_for(name),
        "external": [(c.name, c.ports) for c in callers if c.name != "its peers"],
        "native": intent.native_sidecar_services(),
    }


def intents() -> list[Intent]:
    intent, _warnings = parse_intent(copy.deepcopy(ESTATE))
    derived = dataclasses.replace(intent, mtls_exceptions=intent.mtls_exceptions[::-1],
                                  authorization=intent.authorization[::-1])
    for each in (intent, derived):  # fill every index, then read the intent back
        for service in each.services:
            looked_up(each, service.name)
    return [intent, derived, pickle.loads(pickle.dumps(intent))]


@pytest.mark.parametrize("which", ["parsed", "derived", "pickled"])
@pytest.mark.parametrize("name", ["web", "api", "db", "hooks"])
def test_each_lookup_answers_as_a_search(which: str, name: str) -> None:
    intent = dict(zip(["parsed", "derived", "pickled"], intents(), strict=True))[which]
    found = looked_up(intent, name)
    expected = searched(intent, name)
    external = expected.pop("external")
    assert [caller for caller, _ports in found.pop("external")] == \
        [caller for caller, _ports in external]
    assert found == expected


def test_external_callers_keep_their_order_and_ports() -> None:
    intent = intents()[0]
    api = intent.service("api")
    assert [(c.name, c.ports, c.identity) for c in intent.inbound_callers(api)] == [
        ("Prometheus prometheus", (9090,), False), ("ingress controller nginx", (9091,), True)]


def test_a_pickled_intent_carries_no_index() -> None:
    intent = intents()[0]
    assert {"_positions", "_authorization", "_exceptions", "_external_calls"} <= set(
        intent.__dict__)
    assert {"_exemption_of_True", "_native", "_authorization_positions"} <= set(intent.__dict__)
    assert not [key for key in pickle.loads(pickle.dumps(intent)).__dict__
                if key.startswith("_")]


def test_a_service_equal_to_one_of_the_catalogue_is_found_by_search() -> None:
    intent = intents()[0]
    copied = dataclasses.replace(intent.service("db"))
    assert copied is not intent.service("db") and copied == intent.service("db")
    assert intent.service_path(copied) == "mesh_services[2]"
