"""bench/run.py works: at a tiny estate it measures every kind of run and says what it wrote.

Only correctness facts are asserted (nothing written and nothing committed by a no-op, one
commit per environment for a change, the baseline writing the same objects); timings are
the benchmark's business, never a test's.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module():
    spec = importlib.util.spec_from_file_location("meshstage_bench_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_bench(tmp_path: Path, *args: str) -> tuple[str, dict]:
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), *args, "--json", str(report),
         "--markdown", str(tmp_path / "report.md")],
        capture_output=True, text=True, check=False, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, json.loads(report.read_text())


@pytest.mark.integration
def test_the_benchmark_measures_a_tiny_estate(tmp_path):
    output, report = run_bench(tmp_path, "--services", "5", "--baseline", "--repeat", "1")
    last = output.strip().splitlines()[-1]
    assert re.fullmatch(r"services=5 full_s=[0-9.]+ floor_ratio=[0-9.]+ "
                        r"baseline_speedup=n/a noop_ratio=[0-9.]+ noop_writes=0 "
                        r"peak_mb=[0-9]+ proof_share=[0-9.]+ kustomize_slowest_s=[0-9.]+ "
                        r"kustomize_total_s=[0-9.]+ "
                        r"helm_pipeline_ratio=[0-9.]+", last), last
    (row,) = report["rows"]
    assert row["full_commits"] == 3  # one commit per environment
    assert row["noop_files_written_max"] == 0 and row["noop_commits_max"] == 0
    assert row["noop_cache_files_written"] == 0
    assert row["noop_changed"] == 0
    # one canary weight: one VirtualService per environment, its runbook (whose canary
    # section states the weight), and the state file
    assert row["change_commits"] == 3
    assert row["change_objects_changed"] == 3
    assert row["change_files_written"] == 7
    assert row["proxy"]["istio sidecar hosts"] == 4  # 3 callees and the root namespace
    assert row["proxy"]["host sidecar bytes"] > 5000  # bootstrap, LDS, CDS and SDS files
    # every YAML file: all but the README, three runbooks and the state file
    assert row["floor_objects"] == row["full_files"] - 5
    assert "| 5 services: no-op re-run under 20% of a full run" in (
        tmp_path / "report.md").read_text()
    # every folder Argo CD and Flux build: each sync unit, and each folder of sync objects
    assert row["kustomize_folders"] > 3
    # every object but the control-plane install's (two Applications, a HelmRepository and
    # two HelmReleases per environment), which its own Application or Kustomization builds
    assert row["kustomize_objects"] == row["full_objects"] - 3 * 5
    assert row["kustomize_largest"] <= 500
    # Helm's pipeline wrote the objects meshstage wrote, each where meshstage put it
    assert row["helm_pipeline_same_objects"] is True
    assert row["helm_pipeline_files"] == row["helm_split_files"] == \
        row["helm_template_documents"] == row["floor_objects"]
    # the parse and the plan with each provider: the same estate, objects planned by both
    assert row["plans_istio_objects"] > 0 and row["plans_linkerd_objects"] > 0
    assert row["plans_istio_s"] > 0 and row["plans_linkerd_s"] > 0
    # the flow proof alone, in one process: every flow of the three environments judged
    assert row["proof_cpu_s"] > 0 and row["proof_flows"] > 0
    # the templating alone: every file the render makes, but the three runbooks (what the
    # checks and the proof decide)
    assert row["templating_files"] == row["render_files"] - 3
    assert row["templating_ratio"] == row["templating_wall_s"] / row["helm_template_wall_s"]
    for name in ("full", "render", "templating", "helm_template", "helm_split",
                 "helm_pipeline", "kustomize"):
        assert row[f"{name}_floor_ratio"] > 0, name


@pytest.mark.integration
def test_the_baseline_writes_the_same_objects_with_ansible_playbook(tmp_path):
    _output, report = run_bench(tmp_path, "--services", "4", "--baseline", "4",
                                "--repeat", "1")
    (row,) = report["rows"]
    assert row["baseline_same_objects"] is True
    assert row["baseline_files"] == row["baseline_tasks"] == row["floor_objects"]
    assert row["baseline_speedup"] > 0


def test_a_meshstage_template_becomes_a_plain_ansible_template():
    source = ("  name: {{ name | json }}\n{% for route in http %}\n"
              "  - host: {{ route.host | json }}\n    rules: {{ rule['from'] | json }}\n"
              "{% endfor %}\n")
    converted = bench_module().baseline_template(source, ["name", "http", "host"])
    assert converted == ("  name: {{ item.fields['name'] | to_json }}\n"
                         "{% for route in item.fields['http'] %}\n"
                         "  - host: {{ route.host | to_json }}\n"
                         "    rules: {{ rule['from'] | to_json }}\n{% endfor %}\n")


def test_the_phase_timers_cover_every_phase_of_a_full_run_and_a_no_op(tmp_path):
    result = subprocess.run([sys.executable, str(BENCH / "phases.py"), "--services", "20"],
                            capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    spec = importlib.util.spec_from_file_location("meshstage_bench_phases",
                                                  BENCH / "phases.py")
    labels = [label for _, _, label in _phases(spec)]
    for run in ("full run", "no-op"):
        (block,) = re.findall(rf"^{run}, 20 services x 3 environments: .*?(?=^\S|\Z)",
                              result.stdout, re.MULTILINE | re.DOTALL)
        timed = {label.strip(): float(value) for label, value in
                 re.findall(r"^  (.+?)\s+([0-9.]+) s$", block, re.MULTILINE)}
        assert sorted(timed) == sorted(label.strip() for label in labels)
        if run == "full run":
            for label in ("render (cache look-ups included)", "Jinja", "write path: write files",
                          "commit"):
                assert timed[label] > 0, label
        else:  # nothing rendered, validated or stored anew
            for label in ("Jinja", "Jinja and parse back", "canonical dump",
                          "schema validation", "git fast-import"):
                assert timed[label] == 0, label


def _phases(spec):
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PHASES


def test_the_helm_chart_is_meshstages_templates_as_go_templates():
    """bench/helm/meshstage-peer is what helm_peer.write_chart makes of the templates the
    benchmark's objects come from (regenerate it with write_chart when they change)."""
    peer = bench_helper("helm_peer")
    run = bench_module()
    objects = run.baseline_objects(5)
    sources = sorted({item["template"] for shapes in objects.values()
                      for items in shapes.values() for item in items})
    expected = peer.chart_files(BENCH.parent / "templates", sources)
    committed = {str(path.relative_to(peer.CHART)): path.read_text()
                 for path in peer.CHART.rglob("*") if path.is_file()}
    assert committed == expected


def test_helms_pipeline_commits_without_gits_background_gc(tmp_path):
    """The peer's repository never starts ``git gc --auto``: a gc detached from the commit
    deletes thousands of loose objects beside the next measurement (run.py,
    ``_git_repository``)."""
    run = bench_module()
    repo = tmp_path / "gitops"
    run._git_repository(repo)
    setting = subprocess.run(["git", "-C", str(repo), "config", "gc.auto"],
                             capture_output=True, text=True, check=True).stdout
    assert setting.strip() == "0"


def test_a_jinja_template_becomes_a_chart_template():
    peer = bench_helper("helm_peer")
    source = ("{# one object #}\nkind: X\nmetadata:\n  name: {{ name | json }}\nrules:\n"
              "{% for rule in rules %}\n  - from: {{ rule['from'] | json }}\n"
              "    to: {{ rule.to | json }}\n{% endfor %}\n")
    assert peer.chart_template(source, "x") == (
        '{{- range $item := (index .Values.objects "x") }}\n---\n'
        "# meshstage-path: {{ $item.dest }}\n{{- $f := $item.fields }}\n"
        "kind: X\nmetadata:\n  name: {{ $f.name | toJson }}\nrules:\n"
        "{{- range $rule := $f.rules }}\n"
        '  - from: {{ (index $rule "from") | toJson }}\n'
        "    to: {{ $rule.to | toJson }}\n{{- end }}\n{{- end }}\n")


def bench_helper(name: str):
    spec = importlib.util.spec_from_file_location(f"meshstage_bench_{name}",
                                                  BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_template_syntax_in_values_reaches_ansible_unsafe():
    text = bench_module().unsafe_yaml({"a": ["{{.name}}", "plain"], "b": "x {% y %}"})
    assert text == "a:\n- !unsafe '{{.name}}'\n- plain\nb: !unsafe x {% y %}\n"
