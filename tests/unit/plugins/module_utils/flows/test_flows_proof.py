"""The flow proof in every run: flows collected from the intent and the estate, judged now
(the committed tree) and at the target; a flow that works now and would stop refuses the run
before anything is written, naming the flow, the object and the fix."""

from __future__ import annotations

import copy
import io
import json

import pytest
from flow_helpers import DENY_WEB, commits, shop

from ansible_collections.meshstage.mesh.plugins.module_utils.canary.step import (
    CanaryOptions,
    run_canary_step,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.cli import main
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import FlowProofError
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.index import MeshIndex
from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    read_manifests,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows import proof as judging
from ansible_collections.meshstage.mesh.plugins.module_utils.flows import stage as proving
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.collect import (
    collect_flows,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.stage import proof_of
from ansible_collections.meshstage.mesh.plugins.module_utils.flows.states import (
    estate_resources,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.gitops.repo import GitOpsRepo
from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
    StageOptions,
    render_stage,
    run_stage,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.registry import MESHES

# ---- collection


def test_flows_come_from_calls_ingress_probes_and_scrapes():
    intent, _ = parse_intent(shop())
    flows = collect_flows(intent, MeshIndex(estate_resources(intent)),
                          MESHES["istio"].flows.scrape)
    origins = {(f.origin, f.via) for f in flows}
    assert ("calls", "mesh_services[0].calls[0]") in origins
    assert ("ingress", "mesh_services[0].ingress") in origins
    assert ("ingress", "mesh_ingress_gateway") in origins    # outside -> the gateway
    assert ("probe", "mesh_services[1].probe_paths") in origins
    assert {f.protocol for f in flows if f.destination.service == "db"} == {"tcp"}
    assert sum(f.origin == "scrape" for f in flows) == 3


def test_the_estates_own_probes_gateways_and_routes_are_flows(tmp_path):
    (tmp_path / "estate.yaml").write_text("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - name: api
        ports: [{name: http, containerPort: 9000}]
        readinessProbe: {httpGet: {path: "/ready?full=1", port: http}}
        livenessProbe: {grpc: {port: 9000}}
        startupProbe: {exec: {command: [true]}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: shop}
spec:
  parentRefs: [{name: web}]
  rules: [{backendRefs: [{name: api, port: 80}]}]
""")
    index = MeshIndex(read_manifests([tmp_path]).resources)
    flows = collect_flows(None, index)
    probes = {(f.protocol, f.request.path if f.request else None) for f in flows
              if f.origin == "probe"}
    assert probes == {("http", "/ready"), ("grpc", "/grpc.health.v1.Health/Check")}
    routed = [f for f in flows if f.via == "HTTPRoute shop/api"]
    assert [(str(f.source), f.destination.port) for f in routed] == [("shop/web-istio", 9000)]
    assert routed[0].source.service_account == "web-istio"   # <gateway>-<class>
    assert any(f.destination.name == "web-istio" and f.destination.port == 80 for f in flows)


# ---- the proof in render_stage and run_stage


def test_a_flow_that_would_stop_refuses_the_run_and_nothing_is_written(tmp_path):
    repo = tmp_path / "gitops"
    run_stage(shop(mesh_stage="authorization"), StageOptions(gitops_dir=repo))
    before = commits(repo)
    with pytest.raises(FlowProofError) as refused:
        run_stage(shop(mesh_stage="authorization", mesh_authorization=DENY_WEB),
                  StageOptions(gitops_dir=repo))
    message = str(refused.value)
    assert "dev (authorization): the flow proof refuses the change" in message
    assert "shop/web -> api (shop/api:8080) http [calls: mesh_services[0].calls[0]]" in message
    assert "by AuthorizationPolicy shop/api-deny" in message
    assert "fix: narrow the DENY rule" in message
    assert commits(repo) == before


def test_what_is_refused_now_already_is_no_break(tmp_path):
    """A flow the committed tree refuses already does not stop the run (it is no change)."""
    repo = tmp_path / "gitops"
    with pytest.raises(FlowProofError):
        run_stage(shop(mesh_stage="authorization", mesh_authorization=DENY_WEB),
                  StageOptions(gitops_dir=repo))
    stage = render_stage(shop(mesh_stage="authorization", mesh_authorization=DENY_WEB),
                         StageOptions(gitops_dir=repo), prove=False)
    assert stage.flows.section == []


def test_the_runbook_lists_the_flows_and_a_rerun_changes_nothing(tmp_path):
    repo = tmp_path / "gitops"
    first = run_stage(shop(), StageOptions(gitops_dir=repo))
    runbook = (repo / "envs/dev/RUNBOOK.md").read_text()
    assert "## Flows" in runbook
    assert "| shop/web → api (shop/api:8080) http | calls: mesh_services[0].calls[0] | " \
           "allowed |" in runbook
    again = run_stage(shop(), StageOptions(gitops_dir=repo))
    assert first.changed and not again.changed


def test_the_proof_judges_now_from_the_committed_tree(tmp_path):
    repo = tmp_path / "gitops"
    run_stage(shop(mesh_stage="traffic"), StageOptions(gitops_dir=repo))
    stage = render_stage(shop(), StageOptions(gitops_dir=repo), prove=False,
                         recorded={"stage": "traffic", "provider": "istio"})
    proof = proof_of(stage.intent, stage.stage_objects, stage.files, (), repo,
                     {"stage": "traffic", "provider": "istio"}, GitOpsRepo(repo).owned("dev"))
    assert proof.now == "traffic (istio)" and proof.target == "strict_mtls (istio)"
    assert all(row.now.allowed for row in proof.rows)


def test_a_run_judges_now_only_the_flows_the_target_refuses(tmp_path, monkeypatch):
    """The run's proof (``every_now=False``) finds the breaks the whole proof finds, with
    the same target verdicts, and judges a flow now only where the target refuses it."""
    repo = tmp_path / "gitops"
    run_stage(shop(mesh_stage="authorization"), StageOptions(gitops_dir=repo))
    recorded = {"stage": "authorization", "provider": "istio"}
    judged = []
    judge = judging.judge

    def counted(flow, state):
        judged.append(flow)
        return judge(flow, state)

    monkeypatch.setattr(judging, "judge", counted)
    stage = render_stage(shop(mesh_stage="authorization", mesh_authorization=DENY_WEB),
                         StageOptions(gitops_dir=repo), prove=False, recorded=recorded)
    arguments = (stage.intent, stage.stage_objects, stage.files, (), repo, recorded,
                 GitOpsRepo(repo).owned("dev"))
    every = proof_of(*arguments)
    judged.clear()
    run = proof_of(*arguments, every_now=False)
    assert [row.line() for row in run.breaks] == [row.line() for row in every.breaks]
    assert any("shop/web -> api" in row.line() for row in run.breaks)
    assert [(row.flow, row.then) for row in run.rows] == \
        [(row.flow, row.then) for row in every.rows]
    refused = [row for row in every.rows if not row.then.allowed]
    assert 0 < len(refused) < len(every.rows)
    assert [row.now for row in run.rows if row.now is not None] == [row.now for row in refused]
    assert len(judged) == len(run.rows) + len(refused)
    counts = every.counts()
    assert counts.pop("refused_now") == sum(not row.now.allowed for row in refused)
    assert run.counts() == counts   # no count of what was not judged


def test_a_run_whose_target_refuses_nothing_reads_no_committed_tree(tmp_path, monkeypatch):
    repo = tmp_path / "gitops"
    run_stage(shop(mesh_stage="authorization"), StageOptions(gitops_dir=repo))
    recorded = {"stage": "authorization", "provider": "istio"}
    stage = render_stage(shop(), StageOptions(gitops_dir=repo), prove=False,
                         recorded=recorded)

    def unread(*args, **kwargs):
        raise AssertionError("the committed tree was read")

    monkeypatch.setattr(proving, "committed_state", unread)
    proof = proof_of(stage.intent, stage.stage_objects, stage.files, (), repo, recorded,
                     GitOpsRepo(repo).owned("dev"), every_now=False)
    assert proof.rows and all(row.then.allowed and row.now is None for row in proof.rows)
    assert proof.now == "authorization (istio)" and not proof.breaks


def test_a_passed_proof_is_kept_in_the_stage_cache(tmp_path, monkeypatch):
    repo = tmp_path / "gitops"
    run_stage(shop(), StageOptions(gitops_dir=repo))

    def refuse(*args, **kwargs):
        raise AssertionError("the proof ran again")

    monkeypatch.setattr(proving, "proof_of", refuse)
    again = run_stage(shop(), StageOptions(gitops_dir=repo))
    assert not again.changed


def test_a_canary_step_is_refused_too(tmp_path):
    variables = shop(mesh_stage="authorization")
    variables["mesh_services"][1].update({"versions": ["v1", "v2"],
                                          "canary": {"stable": "v1", "subset": "v2",
                                                     "weight": 10}})
    options = StageOptions(gitops_dir=tmp_path / "gitops")
    run_stage(variables, options)
    broken = copy.deepcopy(variables)
    broken["mesh_authorization"] = DENY_WEB
    with pytest.raises(FlowProofError, match="shop/web -> api"):
        run_canary_step(broken, options, CanaryOptions(service="api", check_pending=False))


def test_observed_edges_from_the_gates_are_judged(tmp_path):
    observed = [{"caller": "cluster.local/ns/shop/sa/web", "callee": "db",
                 "callee_namespace": "shop", "requests": 5.0, "caller_service": "web"}]
    with pytest.raises(FlowProofError, match=r"shop/web -> db .* \[observed"):
        run_stage(shop(mesh_stage="authorization"),
                  StageOptions(gitops_dir=tmp_path / "gitops", observed_calls=observed))


# ---- the commands


def test_meshstage_flows_prints_an_inventorys_flows(repo_root):
    out, err = io.StringIO(), io.StringIO()
    assert main(["flows", "-i", str(repo_root / "inventories" / "dev"), "--json"], out,
                err) == 0
    report = json.loads(out.getvalue())
    assert report["target"] == "authorization (istio)"
    assert report["counts"]["breaks"] == 0
    probe = next(f for f in report["flows"] if f["origin"] == "probe")
    assert probe["target"]["allowed"] and probe["request"] == "GET /healthz"


def test_meshstage_check_and_flows_refuse_a_probe_the_manifests_refuse(tmp_path):
    (tmp_path / "voting.yaml").write_text("""
apiVersion: v1
kind: Namespace
metadata: {name: emojivoto, annotations: {linkerd.io/inject: enabled,
           config.linkerd.io/default-inbound-policy: deny}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: voting, namespace: emojivoto}
spec:
  selector: {matchLabels: {app: voting}}
  template:
    metadata: {labels: {app: voting}}
    spec:
      containers:
      - name: voting
        ports: [{containerPort: 8080}]
        livenessProbe: {grpc: {port: 8080}}
""")
    out, err = io.StringIO(), io.StringIO()
    assert main(["check", str(tmp_path)], out, err) == 1
    assert "Error MST0401 config.linkerd.io/default-inbound-policy: deny on namespace " \
           "emojivoto: refuses kubelet -> voting" in out.getvalue()
    out = io.StringIO()
    assert main(["flows", str(tmp_path)], out, io.StringIO()) == 1
    assert "BREAKS refused (403): kubelet -> voting" in out.getvalue()
