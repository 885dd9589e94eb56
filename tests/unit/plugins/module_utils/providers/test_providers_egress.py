"""Hosts outside the cluster in ``calls`` (issue 14, item 6): a ServiceEntry and the
Sidecar's egress keep a real dependency imported."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from plan_helpers import find, render

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentErrors
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def with_calls(variables: dict[str, Any], *calls: str) -> dict[str, Any]:
    variables = copy.deepcopy(variables)
    for service in variables["mesh_services"]:
        if service["name"] == "payment-service":
            service["calls"] = [*service["calls"], *calls]
    return variables


def test_calls_name_hosts_outside_the_cluster(example_intent):
    intent, _ = parse_intent(with_calls(example_intent("dev"), "api.stripe.com",
                                        "smtp.example.com:587"))
    service = intent.service("payment-service")
    assert [(c.host, c.port, c.protocol) for c in service.external_calls] == [
        ("api.stripe.com", 443, "TLS"), ("smtp.example.com", 587, "TCP")]
    assert "api.stripe.com" not in service.calls


def test_an_external_host_gets_a_service_entry_and_the_sidecar_imports_it(registry,
                                                                          example_intent):
    rendered = render(with_calls(example_intent("dev"), "api.stripe.com"), registry)
    entry = find(rendered, "ServiceEntry", "egress-api-stripe-com", "payments")
    assert entry["spec"] == {"hosts": ["api.stripe.com"], "exportTo": ["."],
                             "location": "MESH_EXTERNAL", "resolution": "DNS",
                             "ports": [{"number": 443, "name": "tls-443", "protocol": "TLS"}]}
    hosts = find(rendered, "Sidecar", "payment-service")["spec"]["egress"][0]["hosts"]
    assert "payments/api.stripe.com" in hosts


def test_a_host_without_a_dot_is_no_external_host(example_intent):
    with pytest.raises(IntentErrors, match=r"'stripe:443' is not a service in mesh_services, "
                                           "nor a fully qualified host"):
        parse_intent(with_calls(example_intent("dev"), "stripe:443"))
