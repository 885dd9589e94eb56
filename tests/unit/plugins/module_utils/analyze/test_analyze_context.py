"""The pipeline's analysis: rendered objects judged against the estate, before any write."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.context import (
    analyze_rendered,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import (
    AnalysisError,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.stand_in import estate_objects
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
    run_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.stages import STAGE_NAMES

ESTATE = Path(__file__).resolve().parents[4] / "data" / "estate"


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_every_stage_of_the_examples_renders_without_an_error(tmp_path, example_intent,
                                                              environment):
    for stage in STAGE_NAMES:
        # prod has injected the bookinfo wave only: its clients send plaintext to the
        # services of payments (DestinationRule DISABLE), so the flow proof passes there too
        variables = example_intent(environment, mesh_stage=stage)
        rendered = render_stage(variables, StageOptions(gitops_dir=tmp_path))
        intent = rendered.intent
        report = analyze_rendered(intent, [item.obj for item in rendered.objects])
        assert report.errors == [], (stage, [f.line() for f in report.errors])
        assert report.unchecked == [], (stage, [u.line() for u in report.unchecked])
        with_estate = analyze_rendered(intent, [item.obj for item in rendered.objects],
                                       [ESTATE])
        assert with_estate.errors == [], (stage, [f.line() for f in with_estate.errors])


def test_stand_ins_follow_the_intent(example_intent):
    intent, _ = parse_intent(example_intent("dev"))
    objects = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
               for o in estate_objects(intent)}
    assert ("Deployment", "bookinfo", "reviews-v3") in objects
    billing = objects[("Deployment", "payments", "legacy-billing")]
    assert billing["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == \
        "false"
    assert ("ServiceAccount", "istio-system", "istio-ingressgateway-service-account") in objects
    assert objects[("Service", "payments", "legacy-billing")]["spec"]["ports"] == [
        {"name": "tcp-billing", "port": 7000, "targetPort": 7000}]


def test_strict_before_every_wave_is_injected_is_a_warning_in_the_runbook(tmp_path,
                                                                        example_intent):
    # order-service not reached through the gateway: its STRICT DestinationRule would
    # break the gateway's requests into the uninjected namespace (the flow proof refuses)
    variables = example_intent("prod", mesh_stage="strict_mtls",
                               mesh_service_overrides={"order-service": {"ingress": False}})
    rendered = render_stage(variables, StageOptions(gitops_dir=tmp_path))
    (warning,) = [w for w in rendered.warnings if "MST0106" in w]
    assert warning.startswith("Warning MST0106 PeerAuthentication istio-system/default: STRICT "
                              "mTLS applies to the mesh, and namespace payments is not enabled "
                              "for injection")
    assert "MST0106" in rendered.files["envs/prod/RUNBOOK.md"]


def test_an_error_stops_the_run_naming_environment_stage_and_object(tmp_path, crd_dir,
                                                                   example_intent):
    templates = tmp_path / "templates" / "istio"
    templates.mkdir(parents=True)
    builtin = (Path(__file__).resolve().parents[5] / "templates" / "istio" /
               "destination_rule.yaml.j2").read_text()
    # a team's own template that renames the subsets: the VirtualServices' subsets go missing
    (templates / "destination_rule.yaml.j2").write_text(builtin.replace(
        "- name: {{ subset.name | json }}", '- name: {{ ("ver-" ~ subset.name) | json }}'))
    gitops = tmp_path / "gitops"
    options = StageOptions(gitops_dir=gitops, crd_dirs=[crd_dir],
                           template_dirs=[tmp_path / "templates"])
    with pytest.raises(AnalysisError) as raised:
        run_stage(example_intent("dev"), options)
    message = str(raised.value)
    assert message.startswith("dev (authorization): the analyzers found ")
    assert "error(s) in the rendered objects (docs/analyzers.md explains each code)" in message
    assert ("  - Error IST0101 VirtualService bookinfo/reviews: Referenced host+subset in "
            "destinationrule not found: 'reviews+v2'. "
            "(spec.http[0].route[0].destination.subset)") in message
    assert not gitops.exists()


def test_the_estate_manifests_replace_the_stand_ins(tmp_path, example_intent):
    estate = tmp_path / "estate"
    estate.mkdir()
    text = (ESTATE / "bookinfo.yaml").read_text()
    documents = [d for d in yaml.safe_load_all(text)
                 if d["metadata"]["name"] not in ("reviews-v2", "reviews-v3")]
    (estate / "bookinfo.yaml").write_text(yaml.safe_dump_all(documents))
    options = StageOptions(gitops_dir=tmp_path / "gitops", check_paths=[estate])
    with pytest.raises(AnalysisError) as raised:
        render_stage(example_intent("staging"), options)
    assert ("Error IST0173 DestinationRule bookinfo/reviews: The subset v2 of this "
            "DestinationRule selects no pod") in str(raised.value)
    # a partial estate: Services only, so subsets cannot be judged and nothing is refused
    services = [d for d in documents if d["kind"] == "Service"]
    (estate / "bookinfo.yaml").write_text(yaml.safe_dump_all(services))
    warnings = render_stage(example_intent("staging"), options).warnings
    # no finding of the analyzers (the intent's own warnings name their field first)
    assert [w for w in warnings if w.startswith(("Error", "Warning"))] == []


def test_an_intent_whose_default_deny_refuses_a_declared_caller_is_refused(tmp_path,
                                                                          example_intent):
    """admin-service calls payment-service, but its allow rule is dropped: the rendered
    DENY for every other caller would cut it off in production."""
    variables = example_intent("dev")
    variables["mesh_authorization"] = [{
        "service": "payment-service",
        "allow": [{"from": ["order-service"], "methods": ["POST", "GET", "PUT"],
                   "paths": ["/api/v1/*"]}],
        "deny_other_callers": True,
    }]
    with pytest.raises(AnalysisError) as raised:
        render_stage(variables, StageOptions(gitops_dir=tmp_path))
    assert ("Error MST0104 AuthorizationPolicy payments/payment-service-deny: This policy "
            "denies payments/admin-service (cluster.local/ns/payments/sa/admin-service), which "
            "Sidecar payments/admin-service declares as a caller of payments/payment-service"
            ) in str(raised.value)
