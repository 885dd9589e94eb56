"""Synthetic estates for the benchmark: valid intent, every stage exercised.

``estate(n)`` describes ``n`` services, each calling 3 others, two versions each with a
canary, explicit authorization rules; ``environments(n)`` gives the three environments'
variables (dev at authorization, staging at strict_mtls, prod at traffic), which together
carry all six stages (stages are cumulative). Everything goes through ``parse_intent``.
"""

from __future__ import annotations

import copy
from typing import Any

CALLEES = 3
SERVICES_PER_NAMESPACE = 25
WAVES = 3
EXCEPTION_EVERY = 100
STAGES = {"dev": "authorization", "staging": "strict_mtls", "prod": "traffic"}


def service_name(index: int) -> str:
    return f"svc-{index:05d}"


def namespace_of(index: int) -> str:
    return f"team-{index // SERVICES_PER_NAMESPACE:03d}"


def callees_of(index: int, services: int, callees: int = CALLEES) -> list[int]:
    """The ``callees`` services after ``index``, wrapping around: each has ``callees`` callers."""
    return [(index + step) % services for step in range(1, callees + 1)]


def _service(index: int, services: int, callees: int) -> dict[str, Any]:
    return {
        "name": service_name(index),
        "namespace": namespace_of(index),
        "ports": [{"name": "http", "port": 8080, "protocol": "HTTP"}],
        "versions": ["v1", "v2"],
        "calls": [service_name(i) for i in callees_of(index, services, callees)],
        "canary": {"stable": "v1", "subset": "v2", "weight": 10},
        "traffic": {
            "timeout": "5s",
            "retries": {"attempts": 2, "per_try_timeout": "2s", "retry_on": "5xx,reset"},
            "outlier_detection": {"consecutive_5xx_errors": 5, "interval": "30s",
                                  "base_ejection_time": "60s"},
        },
    }


def estate(services: int, callees: int = CALLEES) -> dict[str, Any]:
    """The shared intent (group_vars) of an estate of ``services`` services."""
    if services <= callees:
        raise ValueError(f"an estate needs more than {callees} services, got {services}")
    items = [_service(i, services, callees) for i in range(services)]
    callers: dict[int, list[int]] = {i: [] for i in range(services)}
    for i in range(services):
        for j in callees_of(i, services, callees):
            callers[j].append(i)
    namespaces = sorted({namespace_of(i) for i in range(services)})
    waves = [namespaces[w::WAVES] for w in range(WAVES)]
    return {
        "mesh_provider": "istio",
        "mesh_trust_domain": "cluster.local",
        "mesh_root_namespace": "istio-system",
        "mesh_injection_waves": [{"name": f"wave-{w + 1}", "namespaces": wave}
                                 for w, wave in enumerate(waves) if wave],
        "mesh_services": items,
        "mesh_mtls_exceptions": [
            {"service": service_name(i), "mode": "PERMISSIVE",
             "reason": "scraped by a legacy monitor without mTLS"}
            for i in range(0, services, EXCEPTION_EVERY)
        ],
        "mesh_proxy": {"concurrency": 2, "cpu": "100m", "memory": "128Mi"},
        "mesh_telemetry": {"metrics_provider": "prometheus", "access_log_provider": "envoy",
                           "sampling_percentage": 1.0},
        "mesh_authorization": [
            {"service": service_name(i),
             "allow": [{"from": [service_name(c) for c in sorted(callers[i])],
                        "methods": ["GET", "POST"], "paths": ["/api/*"]}],
             "deny_other_callers": True}
            for i in range(services)
        ],
        "mesh_default_deny": True,
        "mesh_gitops": {"repo_url": "https://git.example.invalid/platform/mesh-gitops.git",
                        "branch": "main"},
    }


def environments(services: int, callees: int = CALLEES) -> dict[str, dict[str, Any]]:
    """Each environment's variables: the shared estate plus its host_vars."""
    shared = estate(services, callees)
    result = {}
    for name, stage in STAGES.items():
        variables = copy.deepcopy(shared)
        variables.update({
            "mesh_environment": name,
            "mesh_stage": stage,
            "mesh_cluster": {"name": name, "server": f"https://{name}.k8s.example.invalid:6443"},
        })
        result[name] = variables
    return result


def change_one_service(variables: dict[str, Any], weight: int = 20,
                       index: int = 0) -> dict[str, Any]:
    """The same environment with one service's canary moved from 10% to ``weight``%."""
    changed = copy.deepcopy(variables)
    changed["mesh_services"][index]["canary"]["weight"] = weight
    return changed
