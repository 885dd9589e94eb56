"""The host sidecars' flow rules on the files meshstage renders for hosts: which filter
chain takes a connection, and what Envoy's RBAC decides (the real Envoy is the judge of
these in tests/integration/hosts/test_host_flows.py)."""

from __future__ import annotations

from flow_helpers import state

from ansible_collections.meshstage.mesh.plugins.module_utils.flows.evaluate import FlowSettings
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.model import (
    Destination,
    Flow,
    Peer,
    Request,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.proof import judge
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.stage import proof_of
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.states import host_files_of
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.envoy_hosts.flows.rbac import (  # noqa: E501
    permission_matches,
    principal_matches,
)


def test_envoy_rbac_principals_need_the_peer_certificate():
    """rbac.proto: ``authenticated``: "The name of the principal ... from the certificate"."""
    named = {"authenticated": {"principal_name": {"exact": "spiffe://td/ns/a/sa/b"}}}
    assert principal_matches(named, "spiffe://td/ns/a/sa/b")
    assert not principal_matches(named, None)
    assert principal_matches({"not_id": named}, None)
    assert principal_matches({"and_ids": {"ids": [{"any": True}, named]}},
                             "spiffe://td/ns/a/sa/b")
    assert not principal_matches({"or_ids": {"ids": [named]}}, "spiffe://td/ns/a/sa/c")
    regex = {"authenticated": {"principal_name": {"safe_regex": {"regex": ".+"}}}}
    assert principal_matches(regex, "spiffe://x") and not principal_matches(regex, None)


def test_envoy_rbac_permissions_on_method_and_path():
    get = {"header": {"name": ":method", "string_match": {"exact": "GET"}}}
    api = {"url_path": {"path": {"prefix": "/api/"}}}
    both = {"and_rules": {"rules": [get, api]}}
    assert permission_matches(both, Request("GET", "/api/x"))
    assert not permission_matches(both, Request("POST", "/api/x"))
    assert permission_matches({"or_rules": {"rules": [get, api]}}, Request("POST", "/api/x"))
    assert not permission_matches({"not_rule": api}, Request("GET", "/api/x"))


def lab(stage, exceptions=(), authorization=None, waves=2, **extra):
    services = [
        {"name": "pay", "namespace": "payments", "ports": [{"name": "http", "port": 8080}],
         "calls": ["books"]},
        {"name": "books", "namespace": "shop", "ports": [{"name": "http", "port": 8080}]},
    ]
    hosts = {"pay-1": {"environment": "lab", "service": "pay", "address": "127.0.0.2",
                       "app_port": 18080},
             "books-1": {"environment": "lab", "service": "books", "address": "127.0.0.3",
                         "app_port": 18080}}
    return {"mesh_environment": "lab", "mesh_stage": stage, "mesh_services": services,
            "mesh_hosts": hosts, "mesh_mtls_exceptions": list(exceptions),
            "mesh_authorization": authorization or [], "mesh_default_deny": True,
            "mesh_injection_waves": [{"name": "payments", "namespaces": ["payments"]},
                                     {"name": "shop", "namespaces": ["shop"]}],
            "mesh_injected_waves": waves, **extra}


def flows_of(tmp_path, variables):
    stage = render_stage(variables, StageOptions(gitops_dir=tmp_path), prove=False)
    proof = proof_of(stage.intent, stage.stage_objects, stage.files, (), tmp_path, {}, {})
    return {(str(row.flow.source), row.flow.destination.name): row.then
            for row in proof.rows if row.flow.origin == "calls"}


def test_host_to_host_is_mtls_with_the_callers_identity(tmp_path):
    verdict = flows_of(tmp_path, lab("authorization"))[("host pay-1", "books-1")]
    assert verdict.allowed and verdict.by == "lds.yaml of host books-1"


def test_an_uninjected_caller_meets_strict_and_then_rbac(tmp_path):
    strict = flows_of(tmp_path, lab("strict_mtls", waves=1))
    # pay-1's wave is injected, books-1's is not: it has no sidecar to refuse anything
    assert strict[("host pay-1", "books-1")].allowed
    first = lab("strict_mtls", waves=2)
    first["mesh_injection_waves"] = list(reversed(first["mesh_injection_waves"]))
    first["mesh_injected_waves"] = 1
    refused = flows_of(tmp_path / "b", first)[("host pay-1", "books-1")]
    assert refused.outcome == "reset"
    assert "no plaintext filter chain" in refused.reason
    permissive = [{"service": "books", "mode": "PERMISSIVE", "reason": "legacy caller"}]
    first["mesh_mtls_exceptions"] = permissive
    first["mesh_stage"] = "authorization"
    rbac = flows_of(tmp_path / "c", first)[("host pay-1", "books-1")]
    assert rbac.outcome == "403" and "without mTLS" in rbac.fix


def test_a_caller_without_a_route_gets_404_from_its_own_sidecar(tmp_path):
    rendered = render_stage(lab("authorization"), StageOptions(gitops_dir=tmp_path),
                            prove=False)
    hosts = rendered.intent.hosts
    mesh = state("istio", [], FlowSettings(hosts=hosts),
                 host_files=host_files_of(rendered.files, "lab"))
    pay = next(h for h in hosts if h.name == "pay-1")
    books_calls_pay = Flow(Peer("host", "shop", "books-1", "books", "books"),
                           Destination("host", "payments", "pay-1", pay.inbound_port, "pay",
                                       host=pay), "http", "calls")
    verdict = judge(books_calls_pay, mesh)
    assert (verdict.outcome, verdict.by) == ("404", "lds.yaml of host books-1")
