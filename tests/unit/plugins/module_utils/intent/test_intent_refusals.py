"""The bad inputs an adversarial probe got through, each refused or warned about with the
field, the service and the value: through ``parse_intent`` and ``pipeline.run_stage`` (the
playbook-level cases are tests/integration/test_refusals_playbook.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_intent_parse import BASE, append, errors_of, intent, put

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import (
    GitOpsError,
    IntentErrors,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
    run_stage,
)

HOST = {"environment": "dev", "service": "api", "address": "127.0.0.2", "app_port": 9091}


@pytest.mark.parametrize("mutation, line", [
    (put("mesh_services[1].traffic.connection_pool", {"http2_max_requests": 2**31}),
     "mesh_services[1] (api).traffic.connection_pool.http2_max_requests: 2147483648 is over "
     "2147483647"),
    (put("mesh_services[1].traffic.connection_pool", {"max_retries": 2**31}),
     "mesh_services[1] (api).traffic.connection_pool.max_retries: 2147483648 is over 2147483647"),
    (put("mesh_services[1].traffic.outlier_detection", {"consecutive_gateway_errors": 2**32}),
     "mesh_services[1] (api).traffic.outlier_detection.consecutive_gateway_errors: 4294967296 is "
     "over 4294967295"),
    (put("mesh_services[1].traffic.retries.per_try_timeout", "9999999999s"),
     "mesh_services[1] (api).traffic.retries.per_try_timeout: '9999999999s' is longer than "
     "2562047h, the longest duration Kubernetes and the meshes parse"),
    (put("mesh_gitops.branch", "main\ufeff"),
     "mesh_gitops.branch: 'main\\ufeff' contains U+FEFF, U+FFFE or U+FFFF, which kubectl "
     "kustomize (go-yaml) cannot read back"),
    (put("mesh_services", None),
     "mesh_services: None is null (the key has no value): list the services, or write [] "
     "for none"),
    (put("mesh_hosts", {"Ledger_1": HOST}),
     "mesh_hosts.Ledger_1: 'Ledger_1' is not a valid DNS-1123 label (lower case letters, "
     "digits and '-', at most 63, starting and ending with a letter or digit)"),
])
def test_values_upstream_would_refuse_are_errors(mutation, line) -> None:
    assert line in errors_of(intent(mutation))


def test_a_wildcard_principal_is_refused_with_deny_other_callers_and_warned_about_without():
    wide = append("mesh_authorization[0].allow", {"principals": ["cluster.local/*"]})
    _, warnings = parse_intent(intent(wide))
    assert "mesh_authorization[0].allow[1].principals[0]: 'cluster.local/*' matches every " \
        "caller of the mesh: this rule admits any workload with a mesh identity" in warnings
    lines = errors_of(intent(wide, put("mesh_authorization[0].deny_other_callers", True)))
    assert "mesh_authorization[0].allow[1].principals[0]: 'cluster.local/*' matches every " \
        "caller of the mesh, so deny_other_callers would deny nobody; name the callers " \
        "(from, or their principals)" in lines
    # a namespace's identities are not every identity
    narrow = append("mesh_authorization[0].allow", {"principals": ["cluster.local/ns/shop/*"]})
    assert parse_intent(intent(narrow, put("mesh_authorization[0].deny_other_callers",
                                           True)))[0]


def test_a_shared_service_account_that_an_allow_names_is_warned_about() -> None:
    shared = intent(put("mesh_services[0].service_account", "shop"),
                    put("mesh_services[1].service_account", "shop"),
                    append("mesh_authorization", {"service": "web",
                                                  "allow": [{"from": ["api"]}]}))
    _, warnings = parse_intent(shared)
    assert "mesh_services[1] (api).service_account: 'shop' is the service account of web, api in " \
        "namespace shop: they share one identity, so every ALLOW that admits one of them " \
        "admits them all; give each its own service_account" in warnings
    _, unshared = parse_intent(BASE)
    assert not [line for line in unshared if "share one identity" in line]


def test_a_shared_service_account_of_callers_is_warned_about_at_authorization() -> None:
    """Every workload as ``default`` (Online Boutique, Bank of Anthos): the derived ALLOW
    of a callee admits them all, which only the authorization stage enforces."""
    variables = {"mesh_environment": "dev", "mesh_services": [
        {"name": "frontend", "namespace": "shop", "service_account": "default",
         "calls": ["payment"]},
        {"name": "loadgenerator", "namespace": "shop", "service_account": "default",
         "ports": [], "calls": ["frontend"]},
        {"name": "payment", "namespace": "shop", "service_account": "default"}]}
    _, warnings = parse_intent({**variables, "mesh_stage": "authorization"})
    assert "mesh_services[1] (loadgenerator).service_account: 'default' is the service " \
        "account of frontend, loadgenerator, payment in namespace shop: they share one " \
        "identity, so every ALLOW that admits one of them admits them all; give each its " \
        "own service_account" in warnings
    _, earlier = parse_intent({**variables, "mesh_stage": "strict_mtls"})
    assert not [line for line in earlier if "share one identity" in line]


def test_a_wave_that_injects_kube_system_is_warned_about() -> None:
    variables = intent(append("mesh_services", {"name": "dns", "namespace": "kube-system"}),
                       append("mesh_injection_waves", {"name": "system",
                                                       "namespaces": ["kube-system"]}))
    _, warnings = parse_intent(variables)
    assert any(line.startswith("mesh_injection_waves[2].namespaces[0]: 'kube-system' is a "
                               "Kubernetes system namespace") for line in warnings)


def test_header_regexes_are_compiled_as_envoy_compiles_them(tmp_path: Path) -> None:
    routes = [{"headers": {"x-user": {"regex": "^([a-z]+)-\\1$"}}, "subset": "v2"},
              {"headers": {"x-team": {"regex": "(?!admin).*"}}, "subset": "v2"},
              {"headers": {"x-ok": {"regex": "^v[0-9]+$"}}, "subset": "v2"}]
    variables = intent(put("mesh_services[1].traffic.header_routes", routes),
                       put("mesh_stage", "traffic"))
    parse_intent(variables)  # Python's re accepts both: only Envoy's RE2 refuses them
    with pytest.raises(IntentErrors) as raised:
        render_stage(variables, StageOptions(gitops_dir=tmp_path / "gitops"))
    lines = [str(error) for error in raised.value.errors]
    assert len(lines) == 2
    assert lines[0].startswith("mesh_services[1] (api).traffic.header_routes[0].headers.x-user."
                               "regex: '^([a-z]+)-\\\\1$' is not a regular expression "
                               "Envoy's RE2 compiles: invalid escape sequence: \\1")
    assert lines[1].startswith("mesh_services[1] (api).traffic.header_routes[1].headers.x-team."
                               "regex: '(?!admin).*' is not a regular expression Envoy's "
                               "RE2 compiles: invalid perl operator: (?!")


def test_a_gitops_path_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "gitops"
    path.write_text("not a directory\n")
    with pytest.raises(GitOpsError, match=f"{path} is a file, not a directory: the GitOps "
                                          r"repository \(mesh_gitops_dir\) must be a "
                                          "directory"):
        run_stage(BASE, StageOptions(gitops_dir=path))


def test_a_deleted_state_file_is_named_as_deleted(tmp_path: Path) -> None:
    gitops = tmp_path / "gitops"
    run_stage(BASE, StageOptions(gitops_dir=gitops))
    (gitops / ".meshstage" / "state.json").unlink()
    with pytest.raises(GitOpsError, match=r"\.meshstage/state\.json was deleted by hand; it "
                                          "is meshstage's record of the files it owns: "
                                          "restore it"):
        run_stage(BASE, StageOptions(gitops_dir=gitops))


def test_a_ca_inside_the_repository_is_refused_before_anything_is_written(
        tmp_path: Path) -> None:
    gitops = tmp_path / "gitops"
    with pytest.raises(GitOpsError, match="is inside the GitOps repository"):
        run_stage(BASE, StageOptions(gitops_dir=gitops, ca_dir=gitops / "secrets" / "ca"))
    assert not gitops.exists()


def test_meshstage_check_refuses_an_authorization_policy_that_binds_the_whole_mesh(
        tmp_path: Path) -> None:
    manifest = tmp_path / "deny.yaml"
    manifest.write_text("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                        "metadata: {name: allow-nothing, namespace: istio-system}\nspec: {}\n")
    result = subprocess.run([str(Path(sys.executable).parent / "meshstage"), "check",
                             str(manifest)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stdout.startswith("Error MST0109 AuthorizationPolicy "
                                    "istio-system/allow-nothing: It is in the root namespace "
                                    "istio-system and selects no workload")
