"""Inventory ergonomics: waves that name services (for an application in one namespace),
"did you mean" for the names a newcomer mistypes, and errors that name the service."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import IntentErrors
from ansible_collections.meshstage.mesh.plugins.module_utils.gates.strict_mtls import (
    _intent_without_sidecar,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import (
    parse_intent,
    unknown_mesh_variables,
    unknown_variables_message,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.yaml_io import load_yaml

SHOP: dict[str, Any] = {
    "mesh_environment": "dev",
    "mesh_stage": "injection",
    "mesh_services": [
        {"name": "web", "namespace": "shop", "calls": ["api"]},
        {"name": "api", "namespace": "shop", "calls": ["db"]},
        {"name": "db", "namespace": "shop", "ports": [{"port": 5432, "protocol": "TCP"}]},
        {"name": "batch", "namespace": "jobs", "ports": []},
    ],
    "mesh_injection_waves": [
        {"name": "data", "services": ["db"]},
        {"name": "backend", "services": ["api"]},
        {"name": "front", "namespaces": ["shop"]},
        {"name": "jobs", "namespaces": ["jobs"]},
    ],
}


def variables(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(SHOP), **changes}


@pytest.mark.parametrize(("injected", "namespaces", "held"), [
    (0, (), []),
    (1, ("shop",), ["api", "web"]),      # the first wave labels shop and holds the rest back
    (2, ("shop",), ["web"]),
    (3, ("shop",), []),                  # the wave that names the namespace takes the rest
    (4, ("jobs", "shop"), []),
])
def test_a_wave_of_services_labels_the_namespace_and_holds_the_others_back(injected,
                                                                           namespaces, held):
    intent, warnings = parse_intent(variables(mesh_injected_waves=injected))
    assert warnings == []
    assert intent.injected_namespaces() == namespaces
    assert sorted(s.name for s in intent.held_back()) == held
    assert [w.namespaces for w in intent.injection_waves] == [("shop",), (), (), ("jobs",)]
    assert intent.wave_name(intent.service("web")) == "front"


@pytest.mark.parametrize("provider", ["istio", "linkerd"])
def test_held_back_services_are_left_out_by_the_injector_until_their_wave(provider,
                                                                         tmp_path: Path):
    rendered = render_stage(variables(mesh_injected_waves=1, mesh_provider=provider),
                            StageOptions(gitops_dir=tmp_path))
    if provider == "istio":
        values = load_yaml(rendered.files["envs/dev/00-install/values/istiod.yaml"])
        assert values["sidecarInjectorWebhook"]["neverInjectSelector"] == [
            {"matchLabels": {"app": "web"}}, {"matchLabels": {"app": "api"}}]
    else:
        values = load_yaml(rendered.files["envs/dev/00-install/values/"
                                          "linkerd-control-plane.yaml"])
        assert {"key": "app", "operator": "NotIn", "values": ["api", "web"]} in \
            values["proxyInjector"]["objectSelector"]["matchExpressions"]
    runbook = rendered.files["envs/dev/RUNBOOK.md"]
    assert "Held back: `shop/api` waits for its wave `backend`" in runbook


def test_the_strict_mtls_gate_sees_a_held_back_service_without_sidecar():
    intent, _ = parse_intent(variables(mesh_injected_waves=2, mesh_stage="strict_mtls"))
    assert _intent_without_sidecar(intent, set())[0].startswith(
        "Service shop/web waits for its wave 'front' (mesh_injected_waves: 2 of 4)")


@pytest.mark.parametrize(("waves", "error"), [
    ([{"name": "a", "services": ["dbb"]}],
     "mesh_injection_waves[0].services[0]: 'dbb' is not a service in mesh_services "
     "(did you mean 'db'?)"),
    ([{"name": "a", "services": ["db"]}, {"name": "b", "services": ["db"]}],
     "mesh_injection_waves[1].services[0]: 'db' is already in injection wave 'a'"),
    ([{"name": "a", "namespaces": ["shopp"]}],
     "mesh_injection_waves[0].namespaces[0]: 'shopp' is not the namespace of any service in "
     "mesh_services (did you mean 'shop'?)"),
    ([{"name": "a"}],
     "mesh_injection_waves[0].namespaces: None is required (or services, for a wave of "
     "services of one namespace)"),
])
def test_wave_errors(waves, error):
    with pytest.raises(IntentErrors) as refused:
        parse_intent(variables(mesh_injection_waves=waves))
    assert error in [str(e) for e in refused.value.errors]


def test_a_mistyped_call_is_named_with_its_service_and_the_likely_name():
    services = copy.deepcopy(SHOP["mesh_services"])
    services[0]["calls"] = ["api", "dbb"]
    with pytest.raises(IntentErrors) as refused:
        parse_intent(variables(mesh_services=services))
    assert [str(e) for e in refused.value.errors] == [
        "mesh_services[0] (web).calls[1]: 'dbb' is not a service in mesh_services "
        "(did you mean 'db'?)"]


def test_a_mistyped_variable_gets_the_likely_name():
    typos = unknown_mesh_variables(["mesh_servics", "mesh_injected_wave", "mesh_zzz"])
    assert unknown_variables_message(typos) == (
        "unknown mesh_* variable(s): mesh_injected_wave (did you mean 'mesh_injected_waves'?), "
        "mesh_servics (did you mean 'mesh_services'?), mesh_zzz (see docs/intent.md for the "
        "known ones)")


def test_a_mistyped_override_gets_the_likely_service():
    with pytest.raises(IntentErrors) as refused:
        parse_intent(variables(mesh_service_overrides={"apii": {"inject": False}}))
    assert [str(e) for e in refused.value.errors] == [
        "mesh_service_overrides.apii: 'apii' is not a service in mesh_services "
        "(did you mean 'api'?)"]
