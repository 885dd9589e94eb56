"""The intent's validation: every error names the field path, the value and the problem.

Each case starts from a small valid intent (BASE), changes one thing and pins the exact line
``str(IntentError)`` gives for it, the line a user reads in the failed task.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.errors import (
    IntentError,
    IntentErrors,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.stages import Stage

REPO_ROOT = Path(__file__).resolve().parents[5]

BASE: dict[str, Any] = {
    "mesh_environment": "dev",
    "mesh_stage": "authorization",
    "mesh_services": [
        {   # [0]
            "name": "web", "namespace": "shop",
            "ports": [{"name": "http", "port": 8080}],
            "versions": ["v1"], "calls": ["api"], "ingress": True,
        },
        {   # [1]
            "name": "api", "namespace": "shop",
            "ports": [{"name": "http", "port": 9090, "protocol": "HTTP"}],
            "versions": ["v1", "v2"],
            "traffic": {"timeout": "10s",
                        "retries": {"attempts": 3, "per_try_timeout": "2s"}},
        },
        {   # [2]
            "name": "db", "namespace": "data",
            "ports": [{"name": "tcp", "port": 5432, "protocol": "TCP"}],
            "inject": False,
        },
    ],
    "mesh_injection_waves": [
        {"name": "shop", "namespaces": ["shop"]},
        {"name": "data", "namespaces": ["data"]},
    ],
    "mesh_mtls_exceptions": [
        {"service": "db", "mode": "DISABLE", "reason": "no sidecar for the appliance yet"},
    ],
    "mesh_authorization": [
        {"service": "api",
         "allow": [{"from": ["web"], "methods": ["GET"], "paths": ["/api/*"]}]},
    ],
    "mesh_gitops": {"repo_url": "https://git.example.invalid/platform/mesh.git"},
}

DNS_LABEL = ("is not a valid DNS-1123 label (lower case letters, digits and '-', at most 63, "
             "starting and ending with a letter or digit)")
_SERVICE_KEYS = ("calls", "canary", "ingress", "ingress_hosts", "init_network", "inject", "kind",
                 "name", "namespace", "peer_ports", "pod_addressed", "pod_ports", "ports",
                 "probe_paths", "selector", "service_account", "stops_proxy", "traffic",
                 "versions")
SERVICE_KEYS = ", ".join(_SERVICE_KEYS)
OVERRIDE_KEYS = ", ".join(key for key in _SERVICE_KEYS if key != "name")
TRAFFIC_KEYS = ("connection_pool, header_routes, load_balancer, outlier_detection, retries, "
                "split, timeout")
NOT_A_DURATION = "is not a duration (e.g. 10s, 1.5s, 250ms, 1m)"
STAGES = "permissive_mtls, injection, observability, traffic, strict_mtls, authorization"

Mutation = Callable[[dict[str, Any]], None]

# ---------------------------------------------------------------------------- helpers

_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _walk(data: Any, path: str) -> tuple[Any, str | int]:
    """The container holding ``path`` (``a.b[2].c``) and the last key in it."""
    keys: list[str | int] = [int(i) if i else name for i, name in _TOKEN.findall(path)]
    for key in keys[:-1]:
        data = data[key]
    return data, keys[-1]


def put(path: str, value: Any) -> Mutation:
    def mutate(variables: dict[str, Any]) -> None:
        container, key = _walk(variables, path)
        container[key] = value
    return mutate


def drop(path: str) -> Mutation:
    def mutate(variables: dict[str, Any]) -> None:
        container, key = _walk(variables, path)
        del container[key]
    return mutate


def rename(path: str, new_key: str) -> Mutation:
    """A typo: the key at ``path`` written as ``new_key``."""
    def mutate(variables: dict[str, Any]) -> None:
        container, key = _walk(variables, path)
        container[new_key] = container.pop(key)
    return mutate


def append(path: str, value: Any) -> Mutation:
    def mutate(variables: dict[str, Any]) -> None:
        container, key = _walk(variables, path)
        container[key].append(value)
    return mutate


def intent(*mutations: Mutation) -> dict[str, Any]:
    """A deep copy of BASE with the mutations applied."""
    variables = copy.deepcopy(BASE)
    for mutate in mutations:
        mutate(variables)
    return variables


def errors_of(variables: dict[str, Any]) -> list[str]:
    with pytest.raises(IntentErrors) as caught:
        parse_intent(variables)
    assert all(isinstance(error, IntentError) for error in caught.value.errors)
    lines = [str(error) for error in caught.value.errors]
    # The exception's own message lists every error, one per line.
    for line in lines:
        assert f"  - {line}" in str(caught.value)
    return lines


def example_variables(environment: str) -> dict[str, Any]:
    """An example inventory's intent: the shared estate, then the environment's own file,
    later top-level keys replacing earlier ones as Ansible merges group_vars and host_vars."""
    variables: dict[str, Any] = {}
    for path in (REPO_ROOT / "inventories" / "shared" / "mesh.yml",
                 REPO_ROOT / "inventories" / environment / "host_vars" /
                 f"{environment}.yml"):
        variables.update(yaml.safe_load(path.read_text()) or {})
    return variables


# ---------------------------------------------------------------------------- the table

CASES = [
    # --- unknown names and keys
    pytest.param(
        [put("mesh_stage", "strict")],
        f"mesh_stage: 'strict' is not one of {STAGES}",
        id="unknown-stage"),
    pytest.param(
        [put("mesh_provider", "consul")],
        "mesh_provider: 'consul' is not one of istio, linkerd",
        id="unknown-provider"),
    pytest.param(
        [rename("mesh_services[0].namespace", "namspace")],
        f"mesh_services[0] (web).namspace: 'shop' is not a known key here; known: {SERVICE_KEYS} "
        "(did you mean 'namespace'?)",
        id="service-key-typo"),
    pytest.param(
        [rename("mesh_services[1].traffic.timeout", "timout")],
        f"mesh_services[1] (api).traffic.timout: '10s' is not a known key here; known: "
        f"{TRAFFIC_KEYS} (did you mean 'timeout'?)",
        id="traffic-key-typo"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weigth": 10})],
        "mesh_services[1] (api).canary.weigth: 10 is not a known key here; known: analysis, "
        "stable, "
        "steps, subset, weight (did you mean 'weight'?)",
        id="canary-key-typo"),
    pytest.param(
        [rename("mesh_services[1].traffic.retries.per_try_timeout", "perTryTimeout")],
        "mesh_services[1] (api).traffic.retries.perTryTimeout: '2s' is not a known key here; "
        "known: attempts, per_try_timeout, retry_on (did you mean 'per_try_timeout'?)",
        id="retries-key-typo"),
    pytest.param(
        [put("mesh_default_denny", False)],
        "mesh_default_denny: False is not a known key here; known: mesh_authorization, "
        "mesh_cluster, mesh_default_deny, mesh_environment, mesh_external_callers, "
        "mesh_gates, mesh_gitops, mesh_hosts, mesh_ingress_gateway, mesh_injected_waves, "
        "mesh_injection_waves, mesh_install, mesh_linkerd, mesh_mtls_exceptions, "
        "mesh_promotion_order, mesh_provider, mesh_proxy, mesh_replaced, mesh_revision, "
        "mesh_root_namespace, "
        "mesh_service_overrides, mesh_services, mesh_stage, mesh_telemetry, "
        "mesh_traffic_api, mesh_trust_domain (did you mean 'mesh_default_deny'?)",
        id="top-level-key-typo"),
    pytest.param(
        [put("mesh_services[0].colour", "blue")],
        f"mesh_services[0] (web).colour: 'blue' is not a known key here; known: {SERVICE_KEYS}",
        id="unknown-key-no-hint"),
    pytest.param(
        [put("mesh_service_overrides", {"web": {"injct": False}})],
        f"mesh_service_overrides.web.injct: False is not a known key here; known: "
        f"{OVERRIDE_KEYS} (did you mean 'inject'?)",
        id="override-key-typo-named-where-written"),
    # --- references to services that do not exist
    pytest.param(
        [put("mesh_services[0].calls", ["api", "ghost"])],
        "mesh_services[0] (web).calls[1]: 'ghost' is not a service in mesh_services",
        id="calls-unknown-service"),
    pytest.param(
        [put("mesh_authorization[0].allow[0].from", ["ghost"])],
        "mesh_authorization[0].allow[0].from[0]: 'ghost' is not a service in mesh_services",
        id="authorization-from-unknown-service"),
    pytest.param(
        [put("mesh_authorization[0].service", "ghost")],
        "mesh_authorization[0].service: 'ghost' is not a service in mesh_services",
        id="authorization-unknown-service"),
    pytest.param(
        [put("mesh_service_overrides", {"ghost": {"inject": False}})],
        "mesh_service_overrides.ghost: 'ghost' is not a service in mesh_services",
        id="override-unknown-service"),
    pytest.param(
        [put("mesh_service_overrides", {"web": False})],
        "mesh_service_overrides.web: False is not a mapping of the fields it overrides",
        id="override-not-a-mapping"),
    # --- subsets that are not versions of the service
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v9", "weight": 10})],
        "mesh_services[1] (api).canary.subset: 'v9' is not among the service's versions (v1, v2)",
        id="canary-subset-unknown"),
    pytest.param(
        [put("mesh_services[1].canary", {"stable": "v0", "subset": "v2", "weight": 10})],
        "mesh_services[1] (api).canary.stable: 'v0' is not among the service's versions (v1, v2)",
        id="canary-stable-unknown"),
    pytest.param(
        [put("mesh_services[2].canary", {"subset": "v2", "weight": 10})],
        "mesh_services[2] (db).canary.subset: 'v2' is not among the service's versions "
        "(none declared)",
        id="canary-without-versions"),
    pytest.param(
        [put("mesh_services[1].traffic.header_routes",
             [{"headers": {"end-user": {"exact": "jason"}}, "subset": "v3"}])],
        "mesh_services[1] (api).traffic.header_routes[0].subset: 'v3' is not among the service's "
        "versions (v1, v2)",
        id="header-route-subset-unknown"),
    pytest.param(
        [put("mesh_services[1].traffic.split", {"v1": 50, "v9": 50})],
        "mesh_services[1] (api).traffic.split.v9: 'v9' is not among the service's versions "
        "(v1, v2)",
        id="split-subset-unknown"),
    # --- weights
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 110})],
        "mesh_services[1] (api).canary.weight: 110 is over 100",
        id="canary-weight-110"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": -1})],
        "mesh_services[1] (api).canary.weight: -1 is under 0",
        id="canary-weight-negative"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": "10%"})],
        "mesh_services[1] (api).canary.weight: '10%' is not an integer",
        id="canary-weight-not-integer"),
    # --- canary runs: steps and analysis (playbooks/canary.yml)
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0, "steps": []})],
        "mesh_services[1] (api).canary.steps: list [] is not a non-empty list of weights "
        "(e.g. [10, 25, 50, 100])",
        id="canary-steps-empty"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0, "steps": 50})],
        "mesh_services[1] (api).canary.steps: 50 is not a non-empty list of weights "
        "(e.g. [10, 25, 50, 100])",
        id="canary-steps-not-a-list"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0,
                                         "steps": list(range(1, 23))})],
        "mesh_services[1] (api).canary.steps: list [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, "
        "15, 16, 17, 18, 19, 20, 21, 22] has 22 steps, more than 20",
        id="canary-steps-too-many"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0, "steps": [0, 50]})],
        "mesh_services[1] (api).canary.steps[0]: 0 is under 1",
        id="canary-step-zero"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0, "steps": [50, 110]})],
        "mesh_services[1] (api).canary.steps[1]: 110 is over 100",
        id="canary-step-over-100"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0, "steps": [10, "25%"]})],
        "mesh_services[1] (api).canary.steps[1]: '25%' is not an integer",
        id="canary-step-not-integer"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0,
                                         "steps": [10, 50, 25, 100]})],
        "mesh_services[1] (api).canary.steps[2]: 25 is not above the step before it (50)",
        id="canary-steps-not-increasing"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0,
                                         "analysis": {"interval": "500ms"}})],
        "mesh_services[1] (api).canary.analysis.interval: '500ms' is shorter than 1s",
        id="canary-interval-under-1s"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0,
                                         "analysis": {"interval": "1 minute"}})],
        f"mesh_services[1] (api).canary.analysis.interval: '1 minute' {NOT_A_DURATION}",
        id="canary-interval-not-a-duration"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0,
                                         "analysis": {"success_rate": 101}})],
        "mesh_services[1] (api).canary.analysis.success_rate: 101 is not between 0 and 100",
        id="canary-success-rate-over-100"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0,
                                         "analysis": {"latency_p99": 500}})],
        f"mesh_services[1] (api).canary.analysis.latency_p99: 500 {NOT_A_DURATION}",
        id="canary-latency-not-a-duration"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0,
                                         "analysis": {"min_requests": 0}})],
        "mesh_services[1] (api).canary.analysis.min_requests: 0 is under 1",
        id="canary-min-requests-zero"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0,
                                         "analysis": {"max_waits": -1}})],
        "mesh_services[1] (api).canary.analysis.max_waits: -1 is under 0",
        id="canary-max-waits-negative"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 0,
                                         "analysis": {"threshold": 5}})],
        "mesh_services[1] (api).canary.analysis.threshold: 5 is not a known key here; known: "
        "interval, latency_p99, max_waits, min_requests, success_rate",
        id="canary-analysis-unknown-key"),
    pytest.param(
        [put("mesh_services[1].traffic.split", {"v1": 150, "v2": -50})],
        "mesh_services[1] (api).traffic.split.v1: 150 is over 100",
        id="split-weight-over-100"),
    pytest.param(
        [put("mesh_services[1].traffic.split", {"v1": 150, "v2": -50})],
        "mesh_services[1] (api).traffic.split.v2: -50 is under 0",
        id="split-weight-negative"),
    pytest.param(
        [put("mesh_services[1].traffic.split", {"v1": 50, "v2": 40})],
        "mesh_services[1] (api).traffic.split: dict {'v1': 50, 'v2': 40} weights sum to 90, "
        "not 100",
        id="split-sum-under-100"),
    pytest.param(
        [put("mesh_services[1].traffic.split", {"v1": 60, "v2": 60})],
        "mesh_services[1] (api).traffic.split: dict {'v1': 60, 'v2': 60} weights sum to 120, "
        "not 100",
        id="split-sum-over-100"),
    pytest.param(
        [put("mesh_services[1].canary", {"subset": "v2", "weight": 10}),
         put("mesh_services[1].traffic.split", {"v1": 50, "v2": 50})],
        "mesh_services[1] (api).canary: dict {'subset': 'v2', 'weight': 10} cannot be combined "
        "with traffic.split; use one of them",
        id="canary-and-split"),
    # --- names that are not DNS-1123 labels
    pytest.param(
        [put("mesh_services[2].name", "Reviews")],
        f"mesh_services[2].name: 'Reviews' {DNS_LABEL}",
        id="name-upper-case"),
    pytest.param(
        [put("mesh_services[2].name", "a_b")],
        f"mesh_services[2].name: 'a_b' {DNS_LABEL}",
        id="name-underscore"),
    pytest.param(
        [put("mesh_services[2].name", "a" * 64)],
        f"mesh_services[2].name: '{'a' * 64}' {DNS_LABEL}",
        id="name-64-characters"),
    pytest.param(
        [put("mesh_services[2].namespace", "-x")],
        f"mesh_services[2] (db).namespace: '-x' {DNS_LABEL}",
        id="namespace-leading-dash"),
    pytest.param(
        [put("mesh_environment", "Dev")],
        f"mesh_environment: 'Dev' {DNS_LABEL}",
        id="environment-upper-case"),
    # --- duplicates
    pytest.param(
        [append("mesh_services", {"name": "web", "namespace": "shop"})],
        "mesh_services[3] (web).name: 'web' is a duplicate service (also mesh_services[0])",
        id="duplicate-service"),
    pytest.param(
        [put("mesh_services[1].versions", ["v1", "v1"])],
        "mesh_services[1] (api).versions[1].name: 'v1' is a duplicate version",
        id="duplicate-version"),
    pytest.param(
        [append("mesh_authorization", {"service": "api"})],
        "mesh_authorization[1].service: 'api' has rules already; merge them",
        id="duplicate-authorization"),
    # --- injection waves
    pytest.param(
        [append("mesh_injection_waves[1].namespaces", "shop")],
        "mesh_injection_waves[1].namespaces[1]: 'shop' is already in injection wave 'shop'",
        id="namespace-in-two-waves"),
    pytest.param(
        [append("mesh_injection_waves[1].namespaces", "ghost")],
        "mesh_injection_waves[1].namespaces[1]: 'ghost' is not the namespace of any service "
        "in mesh_services",
        id="wave-unknown-namespace"),
    pytest.param(
        [put("mesh_injected_waves", 3)],
        "mesh_injected_waves: 3 is over 2",
        id="injected-waves-over-count"),
    # --- durations
    pytest.param(
        [put("mesh_services[1].traffic.timeout", "10 seconds")],
        f"mesh_services[1] (api).traffic.timeout: '10 seconds' {NOT_A_DURATION}",
        id="timeout-words"),
    pytest.param(
        [put("mesh_services[1].traffic.timeout", 10)],
        f"mesh_services[1] (api).traffic.timeout: 10 {NOT_A_DURATION}",
        id="timeout-bare-number"),
    pytest.param(
        [put("mesh_services[1].traffic.timeout", "-1s")],
        f"mesh_services[1] (api).traffic.timeout: '-1s' {NOT_A_DURATION}",
        id="timeout-negative"),
    pytest.param(
        [put("mesh_services[1].traffic.timeout", "0s")],
        "mesh_services[1] (api).traffic.timeout: '0s' is shorter than 1ms, the least Istio accepts",
        id="timeout-zero"),
    pytest.param(
        [append("mesh_mtls_exceptions", {"service": "db", "mode": "PERMISSIVE",
                                         "reason": "again"})],
        "mesh_mtls_exceptions[1].service: 'db' has an exception already "
        "(mesh_mtls_exceptions[0]); use ports for per-port modes",
        id="mtls-exception-twice"),
    pytest.param(
        [put("mesh_proxy", {"memory": "128MB"})],
        "mesh_proxy.memory: '128MB' is not a Kubernetes quantity (e.g. 100m, 0.5, 128Mi, 1Gi)",
        id="proxy-memory-not-a-quantity"),
    pytest.param(
        [put("mesh_install", {"version": "1.29"})],
        "mesh_install.version: '1.29' is not a pinned chart version (e.g. 1.29.2)",
        id="install-version-not-pinned"),
    pytest.param(
        [put("mesh_install", {"version": ">=1.29.0"})],
        "mesh_install.version: '>=1.29.0' is not a pinned chart version (e.g. 1.29.2)",
        id="install-version-range"),
    pytest.param(
        [put("mesh_install", {"repository": "http://charts.example.invalid"})],
        "mesh_install.repository: 'http://charts.example.invalid' is not an https:// or "
        "oci:// Helm repository URL without spaces",
        id="install-repository-scheme"),
    pytest.param(
        [put("mesh_install", {"chart_version": "1.29.2"})],
        "mesh_install.chart_version: '1.29.2' is not a known key here; known: repository, "
        "version",
        id="install-unknown-key"),
    pytest.param(
        [put("mesh_proxy", {"image_type": "alpine"})],
        "mesh_proxy.image_type: 'alpine' is not one of default, debug, distroless",
        id="proxy-image-type"),
    pytest.param(
        [put("mesh_services[1].traffic.timeout", "500us")],
        "mesh_services[1] (api).traffic.timeout: '500us' is shorter than 1ms, the least Istio "
        "accepts",
        id="timeout-under-1ms"),
    pytest.param(
        [put("mesh_services[1].traffic.retries.per_try_timeout", "2")],
        f"mesh_services[1] (api).traffic.retries.per_try_timeout: '2' {NOT_A_DURATION}",
        id="per-try-timeout-bare-number"),
    pytest.param(
        [put("mesh_services[1].traffic.retries.per_try_timeout", "2 s")],
        f"mesh_services[1] (api).traffic.retries.per_try_timeout: '2 s' {NOT_A_DURATION}",
        id="per-try-timeout-space"),
    pytest.param(
        [put("mesh_gitops.sync_interval", "5 min")],
        f"mesh_gitops.sync_interval: '5 min' {NOT_A_DURATION}",
        id="sync-interval-words"),
    # --- mTLS exceptions that select nothing
    pytest.param(
        [put("mesh_mtls_exceptions[0].service", "ghost")],
        "mesh_mtls_exceptions[0].service: 'ghost' selects nothing: no service of that name "
        "in mesh_services",
        id="mtls-exception-unknown-service"),
    pytest.param(
        [put("mesh_mtls_exceptions[0].ports", {5433: "DISABLE"})],
        "mesh_mtls_exceptions[0].ports.5433: 5433 selects nothing: not a port of the service "
        "(ports: 5432)",
        id="mtls-exception-unknown-port"),
    pytest.param(
        [put("mesh_services[2].ports[0].target_port", 15432),
         put("mesh_mtls_exceptions[0].ports", {5432: "DISABLE"})],
        "mesh_mtls_exceptions[0].ports.5432: 5432 selects nothing: not a port of the service "
        "(ports: 15432)",
        id="mtls-exception-service-port-not-target-port"),
    pytest.param(
        [put("mesh_mtls_exceptions[0].mode", "STRICT")],
        "mesh_mtls_exceptions[0].mode: 'STRICT' is not one of DISABLE, PERMISSIVE",
        id="mtls-exception-mode"),
    pytest.param(
        [drop("mesh_mtls_exceptions[0].reason")],
        "mesh_mtls_exceptions[0].reason: None is required",
        id="mtls-exception-without-reason"),
    # --- wrong types and missing keys
    pytest.param(
        [put("mesh_services[0].ports[0].port", "80")],
        "mesh_services[0] (web).ports[0].port: '80' is not an integer",
        id="port-string"),
    pytest.param(
        [put("mesh_services[0].ports[0].port", 70000)],
        "mesh_services[0] (web).ports[0].port: 70000 is over 65535",
        id="port-out-of-range"),
    pytest.param(
        [put("mesh_services[0].inject", "yes")],
        "mesh_services[0] (web).inject: 'yes' is not a boolean (true or false)",
        id="inject-string"),
    pytest.param(
        [put("mesh_mtls_exceptions[0].ports", {"5432": "DISABLE"})],
        "mesh_mtls_exceptions[0].ports.5432: '5432' is not an integer",
        id="mtls-exception-port-string"),
    pytest.param(
        [drop("mesh_services[2].namespace")],
        "mesh_services[2] (db).namespace: None is required",
        id="service-without-namespace"),
    pytest.param(
        [drop("mesh_services[2].name")],
        "mesh_services[2].name: None is required",
        id="service-without-name"),
    pytest.param(
        [put("mesh_services[2].name", ["db"])],
        "mesh_services[2].name: list ['db'] is not a non-empty string",
        id="service-name-list"),
    pytest.param(
        [put("mesh_services", {"web": {"namespace": "shop"}})],
        "mesh_services: dict {'web': {'namespace': 'shop'}} is not a list",
        id="services-not-a-list"),
    pytest.param(
        [drop("mesh_stage")],
        "mesh_stage: None is required",
        id="stage-missing"),
    # --- authorization rules
    pytest.param(
        [put("mesh_authorization[0].allow[0].paths", ["/api/*/items"])],
        "mesh_authorization[0].allow[0].paths[0]: '/api/*/items' has '*' in the middle; "
        "Istio matches '*' only as a prefix, a suffix or alone",
        id="path-star-in-the-middle"),
    pytest.param(
        [put("mesh_authorization[0].allow[0].paths", ["api"])],
        "mesh_authorization[0].allow[0].paths[0]: 'api' is not a path: it must start with "
        "'/' or '*'",
        id="path-without-slash"),
    pytest.param(
        [put("mesh_authorization[0].allow[0].methods", ["get"])],
        "mesh_authorization[0].allow[0].methods[0]: 'get' is not one of GET, HEAD, POST, PUT, "
        "DELETE, CONNECT, OPTIONS, TRACE, PATCH",
        id="method-lower-case"),
    pytest.param(
        [put("mesh_authorization[0].allow", []),
         put("mesh_authorization[0].deny_other_callers", True)],
        "mesh_authorization[0].deny_other_callers: True needs an allow rule that names its "
        "callers (from or principals); otherwise it would deny every caller",
        id="deny-other-callers-without-allow"),
    pytest.param(
        [put("mesh_authorization[0].allow", [{"namespaces": ["bookinfo"]}]),
         put("mesh_authorization[0].deny_other_callers", True)],
        "mesh_authorization[0].deny_other_callers: True needs an allow rule that names its "
        "callers (from or principals); otherwise it would deny every caller",
        id="deny-other-callers-with-namespaces-only"),
    # --- strings that would change a YAML file's structure or an annotation's lines
    pytest.param(
        [put("mesh_mtls_exceptions[0].reason", "one\ntwo")],
        "mesh_mtls_exceptions[0].reason: 'one\\ntwo' contains a newline or control character",
        id="reason-newline"),
    pytest.param(
        [put("mesh_mtls_exceptions[0].reason", "one\u2028two")],
        "mesh_mtls_exceptions[0].reason: 'one\\u2028two' contains a newline or control "
        "character",
        id="reason-unicode-line-separator"),
    pytest.param(
        [put("mesh_services[1].traffic.header_routes",
             [{"headers": {"End-User": {"exact": "jason"}}, "subset": "v2"}])],
        "mesh_services[1] (api).traffic.header_routes[0].headers.End-User: 'End-User' is not a "
        "lower-case HTTP header name",
        id="header-name-upper-case"),
    pytest.param(
        [put("mesh_services[1].versions", [{"name": "v1", "labels": {"version": "v 1"}}])],
        "mesh_services[1] (api).versions[0].labels.version: 'v 1' is not a valid Kubernetes label "
        "value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter "
        "or digit)",
        id="label-value-space"),
    pytest.param(
        [put("mesh_gitops.repo_url", "git.example.invalid:platform/mesh.git")],
        "mesh_gitops.repo_url: 'git.example.invalid:platform/mesh.git' is not an http://, "
        "https:// or ssh:// Git URL without spaces",
        id="repo-url-not-a-url"),
    pytest.param(
        [put("mesh_telemetry", {"sampling_percentage": 150})],
        "mesh_telemetry.sampling_percentage: 150 is not between 0 and 100",
        id="sampling-over-100"),
    # --- the traffic API and what only Linkerd reads
    pytest.param(
        [put("mesh_traffic_api", "httproute")],
        "mesh_traffic_api: 'httproute' is not one of virtualservice, gateway-api, smi",
        id="traffic-api-unknown"),
    pytest.param(
        [put("mesh_traffic_api", "smi")],
        "mesh_traffic_api: 'smi' is not available with mesh_provider 'istio' (available: "
        "virtualservice, gateway-api)",
        id="traffic-api-smi-with-istio"),
    pytest.param(
        [put("mesh_provider", "linkerd"), put("mesh_traffic_api", "virtualservice")],
        "mesh_traffic_api: 'virtualservice' is not available with mesh_provider 'linkerd' "
        "(available: gateway-api, smi)",
        id="traffic-api-virtualservice-with-linkerd"),
    pytest.param(
        [put("mesh_linkerd", {"probe_network": ["10.0.0.0/8"]})],
        "mesh_linkerd.probe_network: list ['10.0.0.0/8'] is not a known key here; known: "
        "access_log_format, control_plane_namespace, probe_networks, trace_collector, "
        "trace_collector_service_account, viz_namespace (did you mean 'probe_networks'?)",
        id="linkerd-key-typo"),
    pytest.param(
        [put("mesh_linkerd", {"probe_networks": ["10.0.0.1/8"]})],
        "mesh_linkerd.probe_networks[0]: '10.0.0.1/8' is not a CIDR (e.g. 10.0.0.0/8, "
        "fd00::/8)",
        id="probe-network-host-bits"),
    pytest.param(
        [put("mesh_linkerd", {"probe_networks": []})],
        "mesh_linkerd.probe_networks: list [] is not a non-empty list of CIDRs",
        id="probe-networks-empty"),
    pytest.param(
        [put("mesh_linkerd", {"trace_collector": "collector.linkerd-jaeger"})],
        "mesh_linkerd.trace_collector: 'collector.linkerd-jaeger' is not a host:port address "
        "(e.g. collector.linkerd-jaeger:55678)",
        id="trace-collector-without-port"),
    pytest.param(
        [put("mesh_linkerd", {"access_log_format": "envoy"})],
        "mesh_linkerd.access_log_format: 'envoy' is not one of apache, json",
        id="access-log-format"),
    pytest.param(
        [put("mesh_linkerd", {"viz_namespace": "Linkerd_Viz"})],
        f"mesh_linkerd.viz_namespace: 'Linkerd_Viz' {DNS_LABEL}",
        id="viz-namespace"),
    # --- version backends, probe paths, rule ports
    pytest.param(
        [put("mesh_services[1].versions", [{"name": "v1", "service": "api"},
                                           {"name": "v2", "service": "api"}])],
        "mesh_services[1] (api).versions[1].service: 'api' is already the service of version 'v1'",
        id="version-service-twice"),
    pytest.param(
        [put("mesh_services[1].versions", ["v1", {"name": "v2", "service": "api-v1"}])],
        "mesh_services[1] (api).versions[1].service: 'api-v1' is the name meshstage gives the "
        "Service of another version; name that version's service too, or pick another name",
        id="version-service-clashes-with-a-rendered-one"),
    pytest.param(
        [put("mesh_services[1].versions", [{"name": "v1", "service": "Api_V1"}])],
        f"mesh_services[1] (api).versions[0].service: 'Api_V1' {DNS_LABEL}",
        id="version-service-not-a-label"),
    pytest.param(
        [put("mesh_services[1].probe_paths", ["healthz"])],
        "mesh_services[1] (api).probe_paths[0]: 'healthz' is not an exact path starting with '/' "
        "(no '*', '?', '#' or spaces)",
        id="probe-path-without-slash"),
    pytest.param(
        [put("mesh_services[1].probe_paths", ["/health/*"])],
        "mesh_services[1] (api).probe_paths[0]: '/health/*' is not an exact path starting with '/' "
        "(no '*', '?', '#' or spaces)",
        id="probe-path-wildcard"),
    pytest.param(
        [put("mesh_authorization[0].allow[0].ports", [9999])],
        "mesh_authorization[0].allow[0].ports[0]: 9999 selects nothing: not a port of the "
        "service (ports: 9090)",
        id="rule-port-not-on-the-service"),
    pytest.param(
        [put("mesh_authorization[0].allow[0].ports", ["9090"])],
        "mesh_authorization[0].allow[0].ports[0]: '9090' is not an integer",
        id="rule-port-not-an-integer"),
    pytest.param(
        [put("mesh_gates", {"prometheus": "prometheus:9090"})],
        "mesh_gates.prometheus: 'prometheus:9090' is not an http:// or https:// URL without "
        "spaces",
        id="gates-prometheus-url"),
    pytest.param(
        [put("mesh_gates", {"window": "1 hour"})],
        "mesh_gates.window: '1 hour' is not a duration (e.g. 10s, 1.5s, 250ms, 1m)",
        id="gates-window-duration"),
    pytest.param(
        [put("mesh_gates", {"window": "20s"})],
        "mesh_gates.window: '20s' is shorter than twice mesh_telemetry.scrape_interval (15s): "
        "Prometheus cannot show a change within it",
        id="gates-window-under-two-scrapes"),
    pytest.param(
        [put("mesh_gates", {"observe": "no"})],
        "mesh_gates.observe: 'no' is not a boolean (true or false)",
        id="gates-observe-boolean"),
    pytest.param(
        [put("mesh_gates", {"promethus": "http://p:9090"})],
        "mesh_gates.promethus: 'http://p:9090' is not a known key here; known: observe, "
        "prometheus, window (did you mean 'prometheus'?)",
        id="gates-unknown-key"),
    pytest.param(
        [put("mesh_promotion_order", ["dev", "staging", "dev"])],
        "mesh_promotion_order[2]: 'dev' is a duplicate environment",
        id="promotion-duplicate"),
    pytest.param(
        [put("mesh_promotion_order", ["staging", "prod"])],
        "mesh_promotion_order: list ['staging', 'prod'] does not name this environment 'dev'; "
        "list every environment, in the order changes are promoted",
        id="promotion-without-this-environment"),
    pytest.param(
        [put("mesh_promotion_order", "dev,staging")],
        "mesh_promotion_order: 'dev,staging' is not a list",
        id="promotion-not-a-list"),
    pytest.param(
        [put("mesh_promotion_order", ["dev", "Staging"])],
        "mesh_promotion_order[1]: 'Staging' is not a valid DNS-1123 label (lower case "
        "letters, digits and '-', at most 63, starting and ending with a letter or digit)",
        id="promotion-not-a-label"),
]


@pytest.mark.parametrize(("mutations", "expected"), CASES)
def test_error_names_path_value_and_problem(mutations, expected):
    assert expected in errors_of(intent(*mutations))


def test_gate_settings_default_and_parse():
    parsed, _ = parse_intent(intent())
    assert (parsed.gates.prometheus, parsed.gates.window, parsed.gates.observe) == \
        (None, "1h", True)
    assert parsed.promotion_order == ()
    parsed, _ = parse_intent(intent(put("mesh_gates", {
        "prometheus": "https://prometheus.example.com:9090/", "window": "30m",
        "observe": False}), put("mesh_promotion_order", ["dev", "prod"])))
    assert (parsed.gates.prometheus, parsed.gates.window, parsed.gates.observe) == \
        ("https://prometheus.example.com:9090/", "30m", False)
    assert parsed.promotion_order == ("dev", "prod")


def test_base_intent_is_valid():
    parsed, warnings = parse_intent(intent())
    assert warnings == []
    assert parsed.stage is Stage.AUTHORIZATION
    assert [s.name for s in parsed.services] == ["web", "api", "db"]


def test_error_carries_path_and_value():
    with pytest.raises(IntentErrors) as caught:
        parse_intent(intent(put("mesh_services[1].canary", {"subset": "v2", "weight": 110})))
    (error,) = caught.value.errors
    assert (error.path, error.value, error.problem) == (
        "mesh_services[1] (api).canary.weight", 110, "is over 100")
    assert str(error) == "mesh_services[1] (api).canary.weight: 110 is over 100"


# ---------------------------------------------------------------------------- warnings


def test_retries_longer_than_the_route_timeout_is_a_warning():
    parsed, warnings = parse_intent(intent(put("mesh_services[1].traffic.timeout", "5s")))
    assert warnings == [
        "mesh_services[1] (api).traffic.retries: dict {'attempts': 3, 'per_try_timeout': '2s'} "
        "need up to 6s, more than the route timeout 5s: the last attempts will be cut off"
    ]
    assert parsed.service("api").traffic.timeout == "5s"


@pytest.mark.parametrize(("timeout", "per_try", "attempts"), [
    pytest.param("6s", "2s", 3, id="exactly-fits"),
    pytest.param("1m", "2s", 3, id="minutes"),
    pytest.param("1500ms", "500ms", 3, id="milliseconds"),
])
def test_retries_that_fit_the_route_timeout_give_no_warning(timeout, per_try, attempts):
    _, warnings = parse_intent(intent(
        put("mesh_services[1].traffic.timeout", timeout),
        put("mesh_services[1].traffic.retries", {"attempts": attempts,
                                                 "per_try_timeout": per_try})))
    assert warnings == []


# ---------------------------------------------------------------------------- several at once


def test_every_error_is_reported_in_one_pass():
    lines = errors_of(intent(
        put("mesh_stage", "strict"),
        put("mesh_services[1].canary", {"subset": "v2", "weight": 110}),
        put("mesh_services[0].ports[0].port", "80"),
        put("mesh_mtls_exceptions[0].service", "ghost"),
        put("mesh_services[1].traffic.timeout", "10 seconds"),
    ))
    assert lines == [
        f"mesh_stage: 'strict' is not one of {STAGES}",
        "mesh_services[0] (web).ports[0].port: '80' is not an integer",
        f"mesh_services[1] (api).traffic.timeout: '10 seconds' {NOT_A_DURATION}",
        "mesh_services[1] (api).canary.weight: 110 is over 100",
        "mesh_mtls_exceptions[0].service: 'ghost' selects nothing: no service of that name "
        "in mesh_services",
    ]


def test_error_count_is_in_the_message():
    with pytest.raises(IntentErrors) as caught:
        parse_intent(intent(put("mesh_stage", "strict"), put("mesh_provider", "consul"),
                            put("mesh_services[0].inject", "yes")))
    assert len(caught.value.errors) == 3
    assert str(caught.value).startswith("the intent has 3 error(s):\n  - ")


@pytest.mark.parametrize("mutation", [
    pytest.param(put("mesh_services[0].namespace", "-x"), id="bad-namespace"),
    pytest.param(rename("mesh_services[0].namespace", "namspace"), id="key-typo"),
    pytest.param(put("mesh_services[0].ports", "http"), id="bad-ports"),
    pytest.param(put("mesh_services[0].colour", "blue"), id="unknown-key"),
])
def test_a_refused_service_is_not_reported_again_where_it_is_named(mutation):
    """web is named in an authorization rule: only its own error is reported, not
    "'web' is not a service in mesh_services" on top."""
    lines = errors_of(intent(mutation))
    assert all(line.startswith("mesh_services[0] (web).") for line in lines), lines


def test_a_refused_service_is_not_reported_again_in_calls_waves_and_exceptions():
    lines = errors_of(intent(
        put("mesh_services[2].sidecar", False),        # db is refused
        put("mesh_services[0].calls", ["api", "db"]),  # ...but called,
    ))                                                 # in a wave and an exception
    assert lines == [f"mesh_services[2] (db).sidecar: False is not a known key here; known: "
                     f"{SERVICE_KEYS}"]


# ---------------------------------------------------------------------------- the examples


@pytest.mark.parametrize(("environment", "stage"), [
    ("dev", Stage.AUTHORIZATION),
    ("staging", Stage.STRICT_MTLS),
    ("prod", Stage.INJECTION),
])
def test_example_inventories_parse_without_errors(environment, stage):
    parsed, warnings = parse_intent(example_variables(environment))
    assert warnings == []
    assert parsed.environment == environment
    assert parsed.stage is stage
    assert "reviews" in parsed.by_name
    assert parsed.service("reviews").traffic.split


def test_example_merge_matches_the_linked_group_vars():
    """The shared file is linked into each inventory's group_vars/all as 00-estate.yml."""
    for environment in ("dev", "staging", "prod"):
        group_vars = REPO_ROOT / "inventories" / environment / "group_vars" / "all"
        merged: dict[str, Any] = {}
        for path in [*sorted(group_vars.glob("*.yml")),
                     group_vars.parent.parent / "host_vars" / f"{environment}.yml"]:
            merged.update(yaml.safe_load(path.read_text()) or {})
        assert merged == example_variables(environment)


def test_access_logs_default_on_and_turned_off_by_an_explicit_null():
    on, _ = parse_intent(intent(put("mesh_telemetry", {"sampling_percentage": 5.0})))
    assert on.telemetry.access_log_provider == "envoy"
    off, _ = parse_intent(intent(put("mesh_telemetry", {"access_log_provider": None})))
    assert off.telemetry.access_log_provider is None


def test_canary_defaults_and_values():
    parsed, _ = parse_intent(intent(put("mesh_services[1].canary", {"subset": "v2",
                                                                     "weight": 5})))
    canary = parsed.service("api").canary
    assert (canary.stable, canary.subset, canary.weight, canary.steps) == \
        ("v1", "v2", 5, (10, 25, 50, 100))
    assert vars(canary.analysis) == {"interval": "1m", "success_rate": 99.0,
                                     "latency_p99": "500ms", "min_requests": 50,
                                     "max_waits": 5}
    assert [(w.subset, w.weight) for w in parsed.service("api").traffic.split] == \
        [("v1", 95), ("v2", 5)]
    parsed, _ = parse_intent(intent(put("mesh_services[1].canary", {
        "subset": "v2", "weight": 0, "steps": [5, 100],
        "analysis": {"interval": "2m", "success_rate": 99.5, "latency_p99": "1s",
                     "min_requests": 10, "max_waits": 0}})))
    canary = parsed.service("api").canary
    assert canary.steps == (5, 100)
    assert vars(canary.analysis) == {"interval": "2m", "success_rate": 99.5,
                                     "latency_p99": "1s", "min_requests": 10, "max_waits": 0}


def test_a_canary_interval_under_two_scrape_intervals_is_a_warning():
    _, warnings = parse_intent(intent(
        put("mesh_services[1].canary", {"subset": "v2", "weight": 0,
                                        "analysis": {"interval": "20s"}})))
    assert warnings == [
        "mesh_services[1] (api).canary.analysis.interval: '20s' is under two scrape intervals "
        "(mesh_telemetry.scrape_interval 15s): a step's analysis window holds too few samples "
        "to measure it"]


def test_a_namespace_in_no_wave_is_a_warning():
    _, warnings = parse_intent(intent(put("mesh_injection_waves",
                                          [{"name": "shop", "namespaces": ["shop"]}]),
                                      put("mesh_services[2].inject", True)))
    assert warnings == ["mesh_injection_waves: 'data' is a namespace of mesh_services in no "
                        "injection wave: its workloads are never injected"]


def test_a_namespace_whose_services_all_stay_out_of_the_mesh_needs_no_wave():
    """db is ``inject: false``, the only service of its namespace: no wave is the point."""
    _, warnings = parse_intent(intent(put("mesh_injection_waves",
                                          [{"name": "shop", "namespaces": ["shop"]}])))
    assert warnings == []


# ---------------------------------------------------------------------------- providers


@pytest.mark.parametrize(("provider", "api", "expected"), [
    ("istio", None, "virtualservice"),
    ("istio", "gateway-api", "gateway-api"),
    ("linkerd", None, "gateway-api"),
    ("linkerd", "smi", "smi"),
])
def test_traffic_api_defaults_per_provider(provider, api, expected):
    mutations = [put("mesh_provider", provider)]
    if api is not None:
        mutations.append(put("mesh_traffic_api", api))
    parsed, _ = parse_intent(intent(*mutations))
    assert parsed.traffic_api == expected


def test_linkerd_settings_defaults_and_values():
    parsed, _ = parse_intent(intent())
    assert parsed.linkerd.control_plane_namespace == "linkerd"
    assert parsed.linkerd.probe_networks == ("0.0.0.0/0", "::/0")
    assert parsed.linkerd.trace_collector is None
    parsed, _ = parse_intent(intent(put("mesh_linkerd", {
        "probe_networks": ["10.0.0.0/8", "fd00::/8"],
        "trace_collector": "collector.linkerd-jaeger:55678",
        "trace_collector_service_account": "collector",
        "access_log_format": "json"})))
    assert parsed.linkerd.probe_networks == ("10.0.0.0/8", "fd00::/8")
    assert parsed.linkerd.trace_collector == "collector.linkerd-jaeger:55678"
    assert parsed.linkerd.access_log_format == "json"


def test_version_service_probe_paths_and_rule_ports_are_parsed():
    parsed, _ = parse_intent(intent(
        put("mesh_services[1].versions", [{"name": "v1", "service": "api"}, "v2"]),
        put("mesh_services[1].probe_paths", ["/ready", "/live"]),
        put("mesh_authorization[0].allow[0].ports", [9090])))
    api = parsed.service("api")
    assert [(v.name, v.service) for v in api.versions] == [("v1", "api"), ("v2", None)]
    assert api.probe_paths == ("/ready", "/live")
    assert parsed.authorization[0].allow[0].ports == (9090,)
