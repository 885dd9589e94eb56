"""What runs a service's pods, rendered for both meshes: jobs that must complete and init
containers that reach the network get the proxy as a native sidecar, or the run refuses
(issue 14, items 1 and 2)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from plan_helpers import find, render

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.context import (
    analyze_rendered,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentErrors
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import SchemaRegistry

ESTATE = Path(__file__).resolve().parents[4] / "data" / "estate"
BILLING_EXPORT = {"name": "billing-export", "namespace": "payments", "kind": "CronJob",
                  "ports": [], "calls": ["order-service"]}


@pytest.fixture(scope="module")
def registry(crd_dir: Path) -> SchemaRegistry:
    return SchemaRegistry.from_crd_dirs([crd_dir])


def without_job(variables: dict[str, Any]) -> dict[str, Any]:
    """The example without its CronJob billing-export."""
    variables = copy.deepcopy(variables)
    variables["mesh_services"] = [s for s in variables["mesh_services"]
                                  if s["name"] != BILLING_EXPORT["name"]]
    return variables


def with_job(variables: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The example with billing-export as ``fields`` say (a CronJob by default), last."""
    variables = without_job(variables)
    variables["mesh_services"].append({**BILLING_EXPORT, **fields})
    return variables


def position(variables: dict[str, Any], name: str) -> int:
    return [s["name"] for s in variables["mesh_services"]].index(name)


def values(rendered, name: str) -> dict[str, Any]:
    return yaml.safe_load(rendered.files[f"envs/{rendered.intent.environment}/00-install/"
                                         f"values/{name}.yaml"])


def test_an_injected_cronjob_gets_native_sidecars_from_istiod(registry, example_intent):
    rendered = render(with_job(example_intent("dev")), registry)
    assert values(rendered, "istiod")["pilot"]["env"] == {"ENABLE_NATIVE_SIDECARS": "true"}
    runbook = rendered.files["envs/dev/RUNBOOK.md"]
    assert "Native sidecars (`pilot.env.ENABLE_NATIVE_SIDECARS: \"true\"`" in runbook
    assert "`payments/billing-export` (CronJob)" in runbook


def test_without_a_job_istiod_keeps_its_default(registry, example_intent):
    rendered = render(without_job(example_intent("dev")), registry)
    assert "pilot" not in values(rendered, "istiod")


def test_a_job_in_a_wave_not_injected_yet_changes_nothing(registry, example_intent):
    # prod injects the bookinfo wave only: payments, the job's namespace, is not injected
    rendered = render(with_job(example_intent("prod")), registry)
    assert "pilot" not in values(rendered, "istiod")


def test_an_injected_cronjob_gets_a_native_sidecar_namespace_with_linkerd(registry,
                                                                         example_intent):
    rendered = render(with_job(example_intent("dev", mesh_provider="linkerd")), registry)
    payments = find(rendered, "Namespace", "payments")
    assert payments["metadata"]["annotations"][
        "config.beta.linkerd.io/proxy-enable-native-sidecar"] == "true"
    bookinfo = find(rendered, "Namespace", "bookinfo")
    assert "config.beta.linkerd.io/proxy-enable-native-sidecar" not in \
        bookinfo["metadata"]["annotations"]
    assert "nativeSidecar" not in values(rendered, "linkerd-control-plane")["proxy"]


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_a_job_on_a_cluster_without_native_sidecars_is_refused(example_intent, provider):
    variables = with_job(example_intent("dev", mesh_provider=provider,
                                        mesh_cluster={"kubernetes_version": "1.28.9"}))
    with pytest.raises(IntentErrors) as raised:
        render(variables, None)
    (error,) = raised.value.errors
    last = len(variables["mesh_services"]) - 1
    assert str(error).startswith(
        f"mesh_services[{last}] (billing-export).kind: 'CronJob' is injected "
        "(payments/billing-export, in an "
        "injected wave) and its pods would never complete: the proxy outlives the job unless "
        "it runs as a native sidecar, and the cluster's Kubernetes "
        "(mesh_cluster.kubernetes_version 1.28.9) has no native sidecars")


def test_native_sidecars_turned_off_refuse_an_injected_job(example_intent):
    variables = with_job(example_intent("dev", mesh_proxy={"native_sidecars": "disabled"}))
    with pytest.raises(IntentErrors, match=r"mesh_proxy\.native_sidecars is 'disabled'"):
        render(variables, None)


def test_a_job_that_stops_its_proxy_needs_no_native_sidecar(registry, example_intent):
    variables = with_job(example_intent("dev", mesh_provider="linkerd",
                                        mesh_cluster={"kubernetes_version": "1.28"}),
                         stops_proxy=True)
    rendered = render(variables, registry)
    proxy = values(rendered, "linkerd-control-plane")["proxy"]
    assert proxy["enableShutdownEndpoint"] is True
    assert "linkerd-await --shutdown" in rendered.files["envs/dev/RUNBOOK.md"]
    istio = render(with_job(example_intent("dev"), stops_proxy=True), registry)
    assert "pilot" not in values(istio, "istiod")
    assert "quitquitquit" in istio.files["envs/dev/RUNBOOK.md"]


def test_stops_proxy_is_for_jobs_only(example_intent):
    variables = copy.deepcopy(example_intent("dev"))
    variables["mesh_services"][0]["stops_proxy"] = True
    with pytest.raises(IntentErrors, match=r"mesh_services\[0\] \(productpage\).stops_proxy: "
                                           r"True is for a Job or CronJob \(kind: Deployment "
                                           r"keeps running\)"):
        render(variables, None)


def test_init_containers_on_the_network_get_native_sidecars(registry, example_intent):
    variables = copy.deepcopy(example_intent("dev", mesh_provider="linkerd"))
    variables["mesh_services"][position(variables, "payment-service")]["init_network"] = True
    rendered = render(variables, registry)
    assert find(rendered, "Namespace", "payments")["metadata"]["annotations"][
        "config.beta.linkerd.io/proxy-enable-native-sidecar"] == "true"


def test_init_containers_on_an_old_cluster_are_a_warning(registry, example_intent):
    variables = without_job(example_intent("dev", mesh_cluster={"kubernetes_version": "1.27"}))
    at = position(variables, "payment-service")
    variables["mesh_services"][at]["init_network"] = True
    rendered = render(variables, registry)
    (warning,) = [w for w in rendered.warnings if "init_network" in w]
    assert warning.startswith(f"mesh_services[{at}] (payment-service).init_network: True "
                              "(payments/payment-service) "
                              "needs the proxy before its init containers")
    assert "runAsUser 1337" in warning


@pytest.mark.parametrize("provider,key,value", [
    ("istio", ("meshConfig", "defaultConfig", "holdApplicationUntilProxyStarts"), True),
    ("linkerd", ("proxy", "await"), True),
    ("linkerd", ("proxy", "await"), False)])
def test_hold_application_is_the_mesh_setting(registry, example_intent, provider, key, value):
    rendered = render(example_intent("dev", mesh_provider=provider,
                                     mesh_proxy={"hold_application": value}), registry)
    found = values(rendered, "istiod" if provider == "istio" else "linkerd-control-plane")
    for part in key:
        found = found[part]
    assert found is value


def test_native_sidecars_enabled_for_every_pod(registry, example_intent):
    linkerd = render(example_intent("dev", mesh_provider="linkerd",
                                    mesh_proxy={"native_sidecars": "enabled"}), registry)
    assert values(linkerd, "linkerd-control-plane")["proxy"]["nativeSidecar"] is True
    istio = render(without_job(example_intent("dev", mesh_proxy={"native_sidecars":
                                                                 "disabled"})), registry)
    assert values(istio, "istiod")["pilot"]["env"] == {"ENABLE_NATIVE_SIDECARS": "false"}


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_declared_jobs_leave_no_start_up_warning(registry, example_intent, provider):
    for fields in ({}, {"stops_proxy": True}):
        rendered = render(with_job(example_intent("dev", mesh_provider=provider), **fields),
                          registry)
        assert not [w for w in rendered.warnings if "MST0109" in w or "MST0208" in w]


@pytest.mark.parametrize("provider,code", [("istio", "MST0109"), ("linkerd", "MST0208")])
def test_a_cronjob_of_the_estate_the_intent_does_not_call_one_is_a_warning(
        registry, example_intent, provider, code):
    # the example estate runs billing-export as a CronJob (tests/data/estate/payments.yaml)
    undeclared = render(with_job(example_intent("dev", mesh_provider=provider),
                                 kind="Deployment"), registry)
    report = analyze_rendered(undeclared.intent, [o.obj for o in undeclared.objects],
                              [ESTATE])
    lines = [f.line() for f in report.findings if f.code == code]
    assert len(lines) == 1 and lines[0].startswith(
        f"Warning {code} Namespace payments: CronJob payments/billing-export gets ")
    declared = render(with_job(example_intent("dev", mesh_provider=provider)), registry)
    report = analyze_rendered(declared.intent, [o.obj for o in declared.objects], [ESTATE])
    assert [f for f in report.findings if f.code == code] == []


def test_the_estate_s_undeclared_cronjob_is_in_the_runbook(tmp_path, example_intent):
    variables = with_job(example_intent("dev"), kind="Deployment")
    rendered = render_stage(variables, StageOptions(gitops_dir=tmp_path / "gitops",
                                                    check_paths=[ESTATE]))
    assert "MST0109" in rendered.files["envs/dev/RUNBOOK.md"]
