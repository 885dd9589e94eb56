# Copyright: meshstage developers
# Apache License 2.0
"""Documentation of the canary_step action; the work happens in plugins/action."""

from __future__ import annotations

from ansible_collections.meshstage.mesh.plugins.module_utils._action_only import refuse_to_run

DOCUMENTATION = r"""
---
module: canary_step
short_description: Take one step of a service's canary run and commit it to the GitOps repository
version_added: "0.1.0"
description:
  - One round of C(playbooks/canary.yml), which calls it until the run is over. The run's
    state is read from the GitOps repository at I(gitops_dir) (the C(canary) entry of the
    environment's scope metadata in C(.meshstage/state.json)), never from an earlier call, so
    an interrupted run resumes where its last commit left it.
  - Without a run for the service's C(canary) pair of versions (or after a rollback), it
    starts one and commits the first of C(canary.steps).
  - With a run in progress (or halted), it waits C(canary.analysis.interval), asks Prometheus
    at I(prometheus_url) for the canary version's request count, failures and p99 latency
    over the time since the step, and decides. Too few requests (under
    C(canary.analysis.min_requests)) wait another interval, at most C(max_waits) times, then
    the run halts without promoting. A success rate under C(success_rate) or a p99 latency
    over C(latency_p99) rolls back (the canary gets 0%), the commit naming the failed check
    and its figure. Otherwise it commits the next step, or after the last step the promotion
    (the canary becomes the stable version with 100%, the old version leaves the routes).
  - Which Prometheus series are read depends on who proxies the service (docs/architecture.md
    "Canary delivery"). Istio's sidecars (C(istio_requests_total),
    C(istio_request_duration_milliseconds_bucket)), Linkerd's proxies (C(response_total),
    C(response_latency_ms_bucket)) or, for a service the environment's plain hosts carry, the
    callers' host sidecars (C(envoy_cluster_upstream_rq_total) of C(outbound_<service>_<version>)).
  - Every commit renders the whole environment through the same pipeline as
    C(meshstage.mesh.render_stage) (validated, analyzed); the step's commit holds the step
    only. The first round of a run (I(check_pending)) refuses when the inventory has changes
    not committed yet.
  - Runs on the controller (it is an action plugin).
author:
  - meshstage developers
options:
  gitops_dir:
    description: Path of the GitOps repository.
    type: path
    required: true
  service:
    description: The service whose canary runs; it must have a C(canary) in C(mesh_services).
    type: str
    required: true
  prometheus_url:
    description:
      - The Prometheus that scrapes the environment's proxies (C(http://) or C(https://)).
        Needed to analyze a step; not to start a run or roll it back.
    type: str
  rollback:
    description: Roll the run in progress (or halted) back to 0% by hand, with a commit.
    type: bool
    default: false
  check_pending:
    description:
      - Refuse when the inventory renders anything the GitOps repository does not have yet,
        so that the step's commit holds the step only. The playbook sets it on its first
        round.
    type: bool
    default: true
  preview:
    description:
      - Only say where the run stands, how many rounds it needs at most (C(rounds)) and which
        hosts route to the service (C(hosts)); analyze and commit nothing.
    type: bool
    default: false
extends_documentation_fragment:
  - meshstage.mesh.render_options
attributes:
  check_mode:
    support: full
    description: Analyzes as usual and reports the commit it would make; writes nothing.
  diff_mode:
    support: full
    description: Shows every file the step would change.
seealso:
  - name: Canary delivery
    description: docs/architecture.md in the collection, section "Canary delivery by commit".
    link: https://example.invalid/meshstage/mesh/docs/architecture.md
"""

EXAMPLES = r"""
- name: Take the next step of the reviews canary
  meshstage.mesh.canary_step:
    gitops_dir: /srv/gitops/mesh
    service: reviews
    prometheus_url: http://prometheus.monitoring:9090
    crd_dirs: [/srv/crds]
  register: canary
  # playbooks/canary.yml calls it once per round, until canary.done
"""

RETURN = r"""
decision:
  description:
    - What the round did. C(started), C(advance), C(promote), C(rollback), C(halt), C(nothing)
      (already promoted), or C(preview).
  returned: always
  type: str
  sample: advance
status:
  description: The run's status afterwards, C(progressing), C(halted), C(promoted),
    C(rolled_back), or C(none) without a run.
  returned: always
  type: str
  sample: progressing
step:
  description: The step in force (1-based); with I(steps) and I(weight).
  returned: always
  type: int
  sample: 2
steps:
  description: The run's steps, weights in percent.
  returned: always
  type: list
  elements: int
  sample: [10, 25, 50, 100]
weight:
  description: The canary's weight now, in percent.
  returned: always
  type: int
  sample: 25
done:
  description: True when the run is over (promoted, rolled back, halted) or there is nothing
    to do; the playbook stops calling.
  returned: always
  type: bool
figures:
  description: What the analysis measured (requests, errors, success_rate, latency_p99_ms,
    window_s), or null when nothing was analyzed.
  returned: always
  type: dict
  sample:
    requests: 147
    errors: 0
    success_rate: 100.0
    latency_p99_ms: 4.9
    window_s: 5.0
waits:
  description: How many extra intervals the analysis waited for requests.
  returned: always
  type: int
hosts:
  description:
    - The plain hosts whose sidecar files the commit changed (the playbook configures them).
    - With I(preview), the hosts whose sidecars route to the service.
  returned: always
  type: list
  elements: str
rounds:
  description: With I(preview), how many more rounds the run needs at most.
  returned: always
  type: int
commit:
  description: The commit made, or null.
  returned: always
  type: str
message:
  description: One line saying what the round did (the commit's subject).
  returned: always
  type: str
commit_message:
  description: The whole commit message (also computed in check mode).
  returned: always
  type: str
warnings:
  description: The render's warnings (see C(meshstage.mesh.render_stage)).
  returned: always
  type: list
  elements: str
"""

def main() -> None:
    refuse_to_run("canary_step")


if __name__ == "__main__":
    main()
