"""Whether the intent's authorization admits a caller, as the rendered policies would."""

from __future__ import annotations

import pytest
from gate_helpers import intent

from ansible_collections.meshstage.mesh.plugins.module_utils.gates.admission import admits

TD = "cluster.local"


def principal(namespace: str, account: str) -> str:
    return f"{TD}/ns/{namespace}/sa/{account}"


@pytest.mark.parametrize(("service", "caller", "admitted"), [
    # explicit rules (the payment seed): order-service and admin-service, nobody else
    ("payment-service", principal("payments", "order-service"), True),
    ("payment-service", principal("payments", "admin-service"), True),
    ("payment-service", principal("bookinfo", "bookinfo-reviews"), False),
    # derived from calls: reviews is called by productpage only
    ("reviews", principal("bookinfo", "bookinfo-productpage"), True),
    ("reviews", principal("bookinfo", "bookinfo-ratings"), False),
    # ingress: true admits the gateway
    ("productpage", principal("istio-system", "istio-ingressgateway-service-account"), True),
    # details is called by productpage only
    ("details", principal("payments", "order-service"), False),
    # inject: false: no sidecar enforces anything
    ("legacy-billing", principal("shop", "anyone"), True),
])
def test_the_example_estate_admits_whom_its_policies_admit(service, caller, admitted):
    estate = intent("dev")
    assert admits(estate, estate.service(service), caller) is admitted


def test_namespaces_and_principals_of_one_rule_must_both_match_and_deny_rules_refuse():
    estate = intent("dev", mesh_authorization=[
        {"service": "ratings",
         "allow": [{"principals": [f"{TD}/ns/bookinfo/sa/*"], "namespaces": ["bookinfo"]}],
         "deny": [{"from": ["reviews"]}]}])
    ratings = estate.service("ratings")
    assert admits(estate, ratings, principal("bookinfo", "bookinfo-productpage"))
    assert not admits(estate, ratings, principal("payments", "order-service"))
    assert not admits(estate, ratings, principal("bookinfo", "bookinfo-reviews"))  # DENY


def test_without_default_deny_a_service_with_no_rule_admits_everyone():
    estate = intent("dev", mesh_default_deny=False)
    # productpage (the ingress gateway) and order-service (admin-service) have ALLOWs
    assert admits(estate, estate.service("productpage"), principal("x", "y")) is False
    assert admits(estate, estate.service("order-service"), principal("x", "y")) is False
    # reconciler is called by nobody: no ALLOW policy, and no default deny
    assert admits(estate, estate.service("reconciler"), principal("x", "y")) is True
