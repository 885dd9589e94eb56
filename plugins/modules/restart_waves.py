#!/usr/bin/python
# Copyright: meshstage developers
# Apache License 2.0
"""meshstage.mesh.restart_waves: thin entry point; the sequencing lives in module_utils/rollout."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import (
    CoreException,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.cluster.restart_waves import (
    WORKLOAD_KINDS,
    RestartSettings,
    RolloutFailed,
    Wave,
    run_waves,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError

try:
    from kubernetes.dynamic.exceptions import DynamicApiError
    from urllib3.exceptions import HTTPError
except ImportError:  # AnsibleK8SModule reports the missing library by name
    DynamicApiError = HTTPError = CoreException  # type: ignore[misc]

DOCUMENTATION = r"""
---
module: restart_waves
short_description: Restart the workloads of injection waves, one wave at a time
version_added: "0.1.0"
description:
  - For each wave in order, lists the Deployments, StatefulSets and DaemonSets of its
    namespaces and restarts them the way C(kubectl rollout restart) does, with the pod-template
    annotation C(kubectl.kubernetes.io/restartedAt). Their pods are then created again, and
    the mesh's injector adds the sidecar.
  - Waits for every rollout of a wave, judged as C(kubectl rollout status) judges it, before
    the next wave starts. Stops at the first rollout that fails (a Deployment whose
    C(Progressing) condition says C(ProgressDeadlineExceeded)) or does not finish within
    I(timeout) seconds, naming the wave and the workload; later waves are not touched.
  - With I(mode=uninjected) only workloads that have a running pod without the sidecar are
    restarted, so a second run restarts nothing. Workloads opted out of injection and
    workloads with the C(OnDelete) update strategy are never restarted.
author:
  - meshstage developers
requirements:
  - kubernetes (Python client)
options:
  waves:
    description: The waves, in order, each with its name and namespaces.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The wave's name, used in messages.
        type: str
        required: true
      namespaces:
        description: The wave's namespaces.
        type: list
        elements: str
        required: true
  provider:
    description: The mesh, which decides the sidecar container's name.
    type: str
    choices: [istio, linkerd]
    required: true
  mode:
    description:
      - C(uninjected) restarts a workload only when one of its running pods lacks the sidecar.
      - C(all) restarts every workload of the waves (after a proxy upgrade, for example).
    type: str
    choices: [uninjected, all]
    default: uninjected
  opt_outs:
    description:
      - Label selectors (C(matchLabels) style mappings) of workloads that are never injected,
        such as the services with C(inject=false) in the intent.
    type: list
    elements: dict
    default: []
  timeout:
    description: Seconds one wave's rollouts may take.
    type: int
    default: 300
  poll:
    description: Seconds between two looks at the rollouts.
    type: int
    default: 5
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Lists what would be restarted; restarts nothing and waits for nothing.
  diff_mode:
    support: none
    description: Nothing to diff; the result lists the restarted workloads.
notes:
  - Namespaces are not labelled here; the stage's Namespace objects carry the injection label
    and are applied first.
seealso:
  - name: kubectl rollout restart
    description: The convention this module follows.
    link: https://kubernetes.io/docs/reference/kubectl/generated/kubectl_rollout/kubectl_rollout_restart/
"""

EXAMPLES = r"""
- name: Restart the injected waves, one at a time
  meshstage.mesh.restart_waves:
    provider: istio
    waves:
      - {name: bookinfo, namespaces: [bookinfo]}
      - {name: payments, namespaces: [payments]}
    opt_outs:
      - {app: legacy-billing}
    timeout: 600
"""

RETURN = r"""
waves:
  description: One entry per wave, in order, saying how far it got.
  returned: always
  type: list
  elements: dict
  sample:
    - name: bookinfo
      namespaces: [bookinfo]
      status: restarted
      restarted: [Deployment bookinfo/reviews-v1]
      skipped: ["DaemonSet bookinfo/log-agent: every pod has the sidecar"]
    - name: payments
      namespaces: [payments]
      status: not started
      restarted: []
      skipped: []
restarted:
  description: Every workload restarted (or that would be, in check mode), as C(Kind ns/name).
  returned: always
  type: list
  elements: str
"""

ARGUMENT_SPEC: dict[str, Any] = {
    **AUTH_ARG_SPEC,
    "waves": {"type": "list", "elements": "dict", "required": True, "options": {
        "name": {"type": "str", "required": True},
        "namespaces": {"type": "list", "elements": "str", "required": True},
    }},
    "provider": {"type": "str", "required": True, "choices": ["istio", "linkerd"]},
    "mode": {"type": "str", "default": "uninjected", "choices": ["uninjected", "all"]},
    "opt_outs": {"type": "list", "elements": "dict", "default": []},
    "timeout": {"type": "int", "default": 300},
    "poll": {"type": "int", "default": 5},
}


class KubernetesWorkloads:
    """The WorkloadApi of module_utils/rollout over the Kubernetes API."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _list(self, api_version: str, kind: str, namespace: str) -> list[dict[str, Any]]:
        resource = self.client.resource(kind, api_version)
        items = self.client.get(resource, namespace=namespace).to_dict().get("items") or []
        # list items come without apiVersion and kind; kubectl adds them, so do we
        return [{**item, "apiVersion": api_version, "kind": kind} for item in items]

    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        return [w for kind in WORKLOAD_KINDS for w in self._list("apps/v1", kind, namespace)]

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        return self._list("v1", "Pod", namespace)

    def restart(self, workload: dict[str, Any], patch: dict[str, Any]) -> None:
        meta = workload["metadata"]
        resource = self.client.resource(workload["kind"], workload["apiVersion"])
        self.client.patch(resource, patch, name=meta["name"], namespace=meta["namespace"],
                          content_type="application/strategic-merge-patch+json")

    def read(self, workload: dict[str, Any]) -> dict[str, Any]:
        meta = workload["metadata"]
        resource = self.client.resource(workload["kind"], workload["apiVersion"])
        found = self.client.get(resource, name=meta["name"], namespace=meta["namespace"])
        return {**found.to_dict(), "apiVersion": workload["apiVersion"],
                "kind": workload["kind"]}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    module = AnsibleK8SModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    settings = RestartSettings(
        provider=params["provider"], mode=params["mode"],
        opt_outs=tuple(params["opt_outs"]), timeout=float(params["timeout"]),
        poll=float(params["poll"]), check_mode=module.check_mode,
    )
    waves = [Wave(w["name"], tuple(w["namespaces"])) for w in params["waves"]]
    try:
        api = KubernetesWorkloads(get_api_client(module=module))
        reports = run_waves(waves, api, settings, now=_now, clock=time.monotonic,
                            sleep=time.sleep)
    except RolloutFailed as error:
        done = [name for report in error.reports for name in report.restarted
                if report.status in ("restarted", "failed")]
        module.fail_json(msg=str(error), changed=bool(done), restarted=done,
                         waves=[report.as_dict() for report in error.reports])
    except MeshstageError as error:
        module.fail_json(msg=str(error))
    except (CoreException, DynamicApiError, HTTPError) as error:  # API, connection, config
        module.fail_json(msg=f"restart_waves: {type(error).__name__}: {error}")
    restarted = [name for report in reports for name in report.restarted]
    module.exit_json(changed=bool(restarted), restarted=restarted,
                     waves=[report.as_dict() for report in reports])

if __name__ == "__main__":
    main()
