"""meshstage benchmark: full run, no-op re-run, one-service change, floor, baseline, proxy size.

    .venv/bin/python bench/run.py --services 1000
    .venv/bin/python bench/run.py --services 100 1000 5000 --baseline 100 1000 \\
        --markdown docs/performance-results.md --plot docs/performance.png

For each estate size (see ``estate.py``: N services each calling 3 others, two versions with
a canary, explicit authorization rules; dev at authorization, staging at strict_mtls, prod
at traffic) it measures, each in a fresh Python process so runs do not pollute each other:

* full: ``pipeline.run_stage`` for the three environments into a fresh git repository
  (render, validate against ../shared/reference/crds, write, commit): wall time, CPU time,
  peak memory (the process's maximum resident set), files, commits;
* noop: the same three runs again, nothing changed: wall time, files written, commits;
* change: one service's canary weight changed in every environment: wall time, files
  written, commits;
* floor: ``yaml.dump`` with ``yaml.CSafeDumper`` alone of the same objects (every YAML file
  the full run wrote, read back beforehand);
* plans and proof: the parse and the plan with each provider, and the flow proof, each
  alone in one process (how each grows with the estate, without the run around it);
* render and templating: ``pipeline.render_stage`` alone (every check, nothing written),
  and the templating alone (the planned objects rendered into their texts, nothing checked);
* kustomize: ``kubectl kustomize`` of every sync unit and sync folder;
* Helm (with the ``bench`` extra): ``helm template`` of the equivalent chart, with its file
  split, and Helm's pipeline with meshstage's duties (``helm_peer.py``);
* baseline (the sizes given to --baseline): a plain Ansible role looping
  ``ansible.builtin.template`` over the same objects, one task per object shape, run with
  the real ansible-playbook (bench/baseline/);
* per-proxy config size: the hosts the Sidecar of one Istio workload admits, and its bytes.

Each time is the best of --repeat rounds, each other figure their median (the baseline runs
once). It prints a table, whether each target is met, and ends with one line for the last
(largest) size measured::

    services=5000 full_s=… floor_ratio=… baseline_speedup=… noop_ratio=… noop_writes=0 peak_mb=…
    proof_share=… kustomize_slowest_s=… kustomize_total_s=… helm_pipeline_ratio=…
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CRD_DIR = REPO.parent / "shared" / "reference" / "crds"
TARGET_SERVICES = 1000
FLOOR_RATIO_MAX = 10.0
BASELINE_SPEEDUP_MIN = 30.0
PROOF_SHARE_MAX = 0.25  # the flow proof adds at most a quarter to the full run
NOOP_RATIO_MAX = 0.2
GROWTH_RATIO_MAX = 6.0
ARGOCD_TIMEOUT_S = 90.0  # ARGOCD_EXEC_TIMEOUT's default (argoproj/argo-cd#7898)

sys.path.insert(0, str(BENCH))
from estate import CALLEES, change_one_service, environments, service_name  # noqa: E402

# --------------------------------------------------------------------------- child processes


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file of the tree, and of meshstage's cache, with (inode, mtime_ns)."""
    found: dict[str, tuple[int, int]] = {}
    for directory, subdirectories, files in os.walk(root):
        relative = os.path.relpath(directory, root)
        if relative == ".git":
            subdirectories[:] = [d for d in subdirectories if d == "meshstage-cache"]
            continue
        for name in files:
            info = os.lstat(os.path.join(directory, name))
            found[os.path.normpath(os.path.join(relative, name))] = (info.st_ino,
                                                                     info.st_mtime_ns)
    return found


def _written(before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]]
             ) -> dict[str, int]:
    tree = [path for path in set(before) | set(after) if before.get(path) != after.get(path)]
    cache = [path for path in tree if path.startswith(".git")]
    return {"files_written": len(tree) - len(cache), "cache_files_written": len(cache)}


def _commits(root: Path) -> int:
    result = subprocess.run(["git", "-C", str(root), "rev-list", "--count", "HEAD"],
                            capture_output=True, text=True, check=False)
    return int(result.stdout.strip() or 0)


def _run_environments(variables: Mapping[str, Mapping[str, Any]], repo: Path) -> list[Any]:
    """``run_stage`` for each environment, one after the other, as the playbook does.

    The caller imports meshstage before it starts the clock: Python's start-up and imports
    are the same for every kind of run and are not part of the work measured.
    """
    from ansible_collections.meshstage.mesh.plugins.module_utils.collector import (
        fewer_collections,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
        StageOptions,
        run_stage,
    )

    options = StageOptions(gitops_dir=repo, crd_dirs=[CRD_DIR])
    with fewer_collections():  # as the actions run it
        return [run_stage(values, options) for values in variables.values()]


def _import_meshstage() -> None:
    import ansible_collections.meshstage.mesh.plugins.module_utils.pipeline  # noqa: F401


class ForkSafeTimes:
    """The wall and CPU time of each call of the functions ``timer`` wraps, by label. A call
    in a forked child (``_fork.py``: a large stage's proof and half of its render) is counted
    too: the child's memory is its own, so it appends its times to the file ``record``; the
    calls of this process are kept in memory."""

    def __init__(self, record: Path) -> None:
        self.record, self._pid = record, os.getpid()
        self._calls: list[tuple[str, float, float]] = []

    def timer(self, label: str, part: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(part)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), _cpu()
            try:
                return part(*args, **kwargs)
            finally:
                times = (label, time.perf_counter() - start, _cpu() - cpu)
                if os.getpid() == self._pid:
                    self._calls.append(times)
                else:
                    with self.record.open("a", encoding="utf-8") as stream:
                        stream.write("\t".join(map(str, times)) + "\n")

        return timed

    def taken(self) -> list[tuple[str, float, float]]:
        """Every call's (label, wall, CPU) so far, this process's and its children's; then
        forgotten, for the next run."""
        lines = self.record.read_text(encoding="utf-8").splitlines() \
            if self.record.exists() else []
        calls = self._calls + [(label, float(wall), float(cpu))
                               for label, wall, cpu in (line.split("\t") for line in lines)]
        self._calls = []
        self.record.unlink(missing_ok=True)
        return calls


def _time_the_proof(record: Path) -> ForkSafeTimes:
    """Time every flow proof of the run (``pipeline.start_proof``, which asks the stage
    cache, and ``pipeline.prove_stage``), wall and CPU: its share of the same run."""
    from ansible_collections.meshstage.mesh.plugins.module_utils import pipeline

    times = ForkSafeTimes(record)
    pipeline.start_proof = times.timer("proof", pipeline.start_proof)
    pipeline.prove_stage = times.timer("proof", pipeline.prove_stage)
    return times


def child_full(services: int, repo: Path, **_: Any) -> dict[str, Any]:
    variables = environments(services)
    _import_meshstage()
    proofs = _time_the_proof(repo.parent / f"proof-times-{os.getpid()}.txt")
    start, cpu = time.perf_counter(), _cpu()
    results = _run_environments(variables, repo)
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    proof = [(wall, cpu) for _label, wall, cpu in proofs.taken()]
    files = [path for path in _snapshot(repo) if not path.startswith(".git")]
    return {"wall_s": wall, "cpu_s": cpu, "peak_mb": _peak_mb(), "files": len(files),
            "commits": _commits(repo), "objects": sum(len(r.objects["added"]) for r in results),
            "proof_s": sum(w for w, _ in proof), "proof_cpu_s": sum(c for _, c in proof),
            # the proof's share of the run's CPU (on a busy machine wall time is others' too)
            "proof_share": sum(c for _, c in proof) / cpu}


def _rerun(variables: Mapping[str, Mapping[str, Any]], repo: Path) -> tuple[dict[str, Any],
                                                                          list[Any]]:
    """The three runs again on an existing repository: time, files written, commits."""
    _import_meshstage()
    before, commits = _snapshot(repo), _commits(repo)
    start, cpu = time.perf_counter(), _cpu()
    results = _run_environments(variables, repo)
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "peak_mb": _peak_mb(),
            **_written(before, _snapshot(repo)), "commits": _commits(repo) - commits}, results


def child_noop(services: int, repo: Path, **_: Any) -> dict[str, Any]:
    measured, results = _rerun(environments(services), repo)
    return {**measured, "changed": sum(result.changed for result in results)}


def child_change(services: int, repo: Path, weight: int = 20, **_: Any) -> dict[str, Any]:
    variables = {name: change_one_service(values, weight)
                 for name, values in environments(services).items()}
    measured, results = _rerun(variables, repo)
    return {**measured, "objects_changed": sum(len(r.objects["changed"]) for r in results)}


def child_floor(services: int, repo: Path, **_: Any) -> dict[str, Any]:
    """yaml.CSafeDumper alone over the objects the full run wrote (read back untimed)."""
    import yaml

    objects = []
    for path in sorted(repo.rglob("*.yaml")):
        if ".git" not in path.relative_to(repo).parts:
            objects.append(yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader))
    start = time.perf_counter()
    for obj in objects:
        yaml.dump(obj, Dumper=yaml.CSafeDumper)
    return {"wall_s": time.perf_counter() - start, "objects": len(objects)}


def child_render(services: int, repo: Path, **_: Any) -> dict[str, Any]:
    """meshstage's render alone: ``render_stage`` (parse, plan, render, validate against the
    CRDs, read once, analyze) for the three environments, nothing written."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.collector import (
        fewer_collections,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.kube import (
        DEFAULT_KUBERNETES_VERSION,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
        StageOptions,
        render_stage,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import (
        SchemaRegistry,
    )

    variables = environments(services)
    options = StageOptions(gitops_dir=repo, crd_dirs=[CRD_DIR])
    start = time.perf_counter()
    with fewer_collections():
        registry = SchemaRegistry.from_crd_dirs([CRD_DIR], DEFAULT_KUBERNETES_VERSION)
        files = sum(len(render_stage(values, options, registry).files)
                    for values in variables.values())
    return {"wall_s": time.perf_counter() - start, "files": files}


def child_templating(services: int, repo: Path, **_: Any) -> dict[str, Any]:
    """meshstage's templating alone, what ``helm template`` does: every planned object of the
    three environments rendered into its text (the renderer as the run uses it, its forked
    child included), with the sync objects, the install, the kustomizations and the hosts'
    files. Each environment is parsed and planned first, untimed, as Helm gets its values
    ready-made (the ``plans`` row times that); nothing is validated, analyzed, proved or
    written. With the ``render`` row it says which part of the render's gap to `helm
    template` is the templating and which the checks."""
    from ansible_collections.meshstage.mesh.plugins.module_utils import pipeline
    from ansible_collections.meshstage.mesh.plugins.module_utils.collector import (
        fewer_collections,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import Renderer

    wall, files = 0.0, 0
    with fewer_collections():
        for values in environments(services).values():
            intent, _warnings, _canary = pipeline._parse(pipeline.plain_data(values), {})
            plan = pipeline.plan_stage(intent)
            start = time.perf_counter()
            renderer = Renderer()
            rendered = pipeline._render(plan, renderer, None)
            texts, hosts = pipeline._tree(plan, rendered, renderer)
            texts.update(hosts)
            texts.update(pipeline.kustomizations(plan, rendered.stage_objects, renderer))
            wall += time.perf_counter() - start
            files += len(texts)
    return {"wall_s": wall, "files": files}


PLAN_PROVIDERS = ("istio", "linkerd")


def child_plans(services: int, repo: Path, **_: Any) -> dict[str, Any]:
    """The parse and the plan of the three environments with each provider (the estate is
    the same; only ``mesh_provider`` differs), nothing rendered: what grows with the estate
    before any object exists, for the provider the full run does not take too."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.collector import (
        fewer_collections,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import (
        parse_plain_intent,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import plain_data
    from ansible_collections.meshstage.mesh.plugins.module_utils.plan.stage_plan import (
        plan_stage,
    )

    found: dict[str, Any] = {}
    for provider in PLAN_PROVIDERS:
        variables = [plain_data({**values, "mesh_provider": provider})
                     for values in environments(services).values()]
        objects = 0
        start = time.perf_counter()
        with fewer_collections():
            for values in variables:
                intent, _warnings = parse_plain_intent(values)
                objects += len(plan_stage(intent).objects)
        found[f"{provider}_s"] = time.perf_counter() - start
        found[f"{provider}_objects"] = objects
    return found


def child_proof(services: int, repo: Path, **_: Any) -> dict[str, Any]:
    """The flow proof of the three environments alone: each stage rendered untimed
    (``render_stage`` without its proof), then ``prove_stage`` timed in this process, with the
    collector off as in the run's forked child. What grows with the estate in the proof
    itself; in the full run the proof runs in a child forked from a large process, beside
    the run's own work on the other core, and its CPU time there is also the kernel's
    copying of the pages either side writes (docs/performance.md)."""
    import gc

    from ansible_collections.meshstage.mesh.plugins.module_utils.collector import (
        fewer_collections,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.flows.stage import prove_stage
    from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
        StageOptions,
        render_stage,
    )

    options = StageOptions(gitops_dir=repo, crd_dirs=[CRD_DIR])
    cpu = 0.0
    flows = 0
    with fewer_collections():
        for values in environments(services).values():
            stage = render_stage(values, options, prove=False)
            gc.disable()
            try:
                start = time.process_time()
                proof = prove_stage(stage.intent, stage.stage_objects, stage.files, [],
                                    repo, {})
                cpu += time.process_time() - start
            finally:
                gc.enable()
            flows += sum(proof.counts.values())
    return {"cpu_s": cpu, "flows": flows}


def sync_folders(repo: Path) -> list[Path]:
    """Every folder Argo CD or Flux builds: each sync unit, and each folder of sync objects."""
    folders = [unit for unit in sorted(repo.glob("envs/*/[0-9][0-9]-*/[0-9][0-9]-*"))
               if not unit.relative_to(repo).parts[2].startswith("00-")]
    for sync in sorted(repo.glob("sync/*")):
        folders += [sync, sync / "flux", *sorted(p for p in (sync / "flux").glob("*")
                                                 if p.is_dir())]
    return [folder for folder in folders if (folder / "kustomization.yaml").is_file()]


def child_kustomize(services: int, repo: Path, **_: Any) -> dict[str, Any]:
    """``kubectl kustomize`` of every folder Argo CD and Flux build, one after the other."""
    times: dict[str, float] = {}
    objects = 0
    for folder in sync_folders(repo):
        start = time.perf_counter()
        built = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True,
                               text=True, check=False)
        times[str(folder.relative_to(repo))] = time.perf_counter() - start
        if built.returncode != 0:
            raise SystemExit(f"kubectl kustomize {folder} failed: {built.stderr}")
        objects += built.stdout.count("\nkind: ") + built.stdout.startswith("kind: ")
    slowest = max(times, key=times.__getitem__)
    sizes = [sum(1 for p in (repo / folder).glob("*.yaml") if p.name != "kustomization.yaml")
             for folder in times]
    return {"folders": len(times), "objects": objects, "total_s": sum(times.values()),
            "slowest_s": times[slowest], "slowest": slowest, "largest": max(sizes)}


def _helm_values(services: int, values_file: str = "") -> tuple[Path, dict[str, Any]]:
    """The chart and its values for each environment (from meshstage's planner: untimed),
    read from ``values_file`` when the parent wrote them there (``child_helm_values``)."""
    import helm_peer

    if values_file:
        return helm_peer.CHART, json.loads(Path(values_file).read_text())
    objects = baseline_objects(services)
    values = {name: helm_peer.chart_values(shapes) for name, shapes in objects.items()}
    return helm_peer.CHART, values


def child_helm_values(services: int, repo: Path, **_: Any) -> dict[str, Any]:
    """The chart's values of the three environments, written once per size to ``repo``."""
    _chart, values = _helm_values(services)
    repo.write_text(json.dumps(values))
    return {"environments": len(values)}


def child_helm_template(services: int, repo: Path, values_file: str = "",
                        **_: Any) -> dict[str, Any]:
    """``helm template`` of the equivalent chart for the three environments."""
    import helm_peer

    chart, values = _helm_values(services, values_file)
    start = time.perf_counter()
    streams = helm_peer.helm_template(chart, values)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "documents": sum(len(helm_peer.split_documents(text))
                                             for text in streams.values())}


def child_helm_split(services: int, repo: Path, values_file: str = "",
                     **_: Any) -> dict[str, Any]:
    """``helm template`` and its file split: one file per object, at meshstage's path."""
    import helm_peer

    chart, values = _helm_values(services, values_file)
    start = time.perf_counter()
    streams = helm_peer.helm_template(chart, values)
    files = sum(helm_peer.write_split(helm_peer.split_documents(text), repo)
                for text in streams.values())
    return {"wall_s": time.perf_counter() - start, "files": files}


def child_helm_pipeline(services: int, repo: Path, meshstage_repo: str = "",
                        values_file: str = "", **_: Any) -> dict[str, Any]:
    """Helm's pipeline with meshstage's duties: template, strict validation of every object
    against the same CRDs, one file per object, one commit per environment."""
    import helm_peer

    from ansible_collections.meshstage.mesh.plugins.module_utils.kube import (
        DEFAULT_KUBERNETES_VERSION,
    )

    chart, values = _helm_values(services, values_file)
    _git_repository(repo)
    result = helm_peer.pipeline(chart, values, repo, CRD_DIR, DEFAULT_KUBERNETES_VERSION)
    if meshstage_repo:
        result["same_objects"] = helm_peer.same_objects(repo, Path(meshstage_repo))
    return result


def _git_repository(repo: Path) -> None:
    """Helm's pipeline's repository. ``git add`` stores each new file as a loose object, and
    past ``gc.auto`` (6,700) of them git starts a detached ``git gc --auto`` that packs them
    and deletes some 6,000 files in the background: beside the pipeline's next writes, and
    after it ends, beside whatever runs next. On this ext4 without a journal each file
    created in the minutes after a deletion pays for it (``recently_deleted``, see
    docs/performance.md), so the peer's write took 0.4 s or 4 s at 1,000 services depending
    on when that gc ran, and meshstage's next run paid too. The peer runs without it: its
    own work only, at its best."""
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for key, value in (("user.name", "bench"), ("user.email", "bench@example.invalid"),
                       ("gc.auto", "0")):
        subprocess.run(["git", "-C", str(repo), "config", key, value], check=True)


def child_proxy(services: int, repo: Path, **_: Any) -> dict[str, Any]:
    """Per-proxy config size: what one workload's proxy is configured with."""
    import yaml

    sizes: dict[str, Any] = {}
    for label, measure in PROXY_SIZES.items():
        sizes[label] = measure(repo, services, yaml)
    return sizes


def _measured(services: int) -> int:
    """The service whose proxy is measured: one in the middle of the estate, never one with
    an mTLS exception (every 100th service has one), at every size."""
    return services // 2 + 1


def _istio_sidecar_hosts(repo: Path, services: int, yaml: Any) -> int:
    name = service_name(_measured(services))
    matches = list((repo / "envs" / "dev").glob(f"*/*/sidecar.*.{name}.yaml"))
    (path,) = matches
    sidecar = yaml.safe_load(path.read_text())
    return sum(len(egress["hosts"]) for egress in sidecar["spec"]["egress"])


def _istio_sidecar_bytes(repo: Path, services: int, yaml: Any) -> int:
    name = service_name(_measured(services))
    (path,) = list((repo / "envs" / "dev").glob(f"*/*/sidecar.*.{name}.yaml"))
    return path.stat().st_size


def _host_sidecar_bytes(repo: Path, services: int, yaml: Any) -> int:
    """The five files of one host sidecar (bootstrap, LDS, CDS, SDS), in bytes: the host of
    a service in the middle of the estate, whose 3 callees run on hosts too (dev, at
    authorization: mTLS, RBAC on its 3 callers, routes to its callees' 2 versions)."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import parse_intent
    from ansible_collections.meshstage.mesh.plugins.module_utils.plan.stage_plan import plan_stage
    from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import Renderer
    from ansible_collections.meshstage.mesh.plugins.module_utils.render.tree import (
        render_host_files,
    )

    variables = environments(services)["dev"]
    middle = _measured(services)
    names = [service_name((middle + offset) % services) for offset in range(CALLEES + 1)]
    variables["mesh_hosts"] = {
        f"host-{index}": {"environment": "dev", "service": name,
                          "address": f"127.0.10.{index + 1}", "app_port": 18080}
        for index, name in enumerate(names)}
    # a host's calls into the cluster are not meshed: a rule naming it by identity would never
    # match (the run refuses it), so the cluster services' rules leave the hosts' services
    # out; a service only hosts call keeps the derived ALLOW (the hosts by address)
    entries = []
    for entry in variables["mesh_authorization"]:
        for rule in entry["allow"]:
            rule["from"] = [name for name in rule["from"] if name not in names]
        if all(rule["from"] for rule in entry["allow"]):
            entries.append(entry)
    variables["mesh_authorization"] = entries
    intent, _warnings = parse_intent(variables)
    files = render_host_files(plan_stage(intent), Renderer())
    return sum(len(text.encode()) for path, text in files.items()
               if path.startswith("hosts/dev/host-0/"))


# label -> measure(repo of the full run, services, yaml module)
PROXY_SIZES: dict[str, Callable[[Path, int, Any], Any]] = {
    "istio sidecar hosts": _istio_sidecar_hosts,
    "istio sidecar bytes": _istio_sidecar_bytes,
    "host sidecar bytes": _host_sidecar_bytes,
}

CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "full": child_full, "noop": child_noop, "change": child_change, "floor": child_floor,
    "proxy": child_proxy, "render": child_render, "kustomize": child_kustomize,
    "helm_template": child_helm_template, "helm_split": child_helm_split,
    "helm_pipeline": child_helm_pipeline, "helm_values": child_helm_values,
    "plans": child_plans, "proof": child_proof, "templating": child_templating,
}


def in_child(kind: str, services: int, repo: Path, **options: Any) -> dict[str, Any]:
    """Run one measurement in a fresh Python process; its result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
               "--services", str(services), "--repo", str(repo),
               "--child-options", json.dumps(options)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"bench child {kind} ({services} services) failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the baseline

_JSON_FILTER = re.compile(r"\|\s*json\b")


def baseline_template(source: str, fields: Sequence[str]) -> str:
    """A meshstage template as a plain Ansible template: ``item.fields['<name>']`` for the
    template's values, Ansible's ``to_json`` for meshstage's ``json`` filter."""
    names = "|".join(sorted((re.escape(name) for name in fields), key=len, reverse=True))
    value = re.compile(rf"(?<![\w.'\"\[])({names})\b") if names else None

    def rewrite(match: re.Match[str]) -> str:
        inner = _JSON_FILTER.sub("| to_json", match.group(0))
        # subscripts, not attributes: a field named like a dict method (``values``) would
        # otherwise be the method
        return value.sub(r"item.fields['\1']", inner) if value else inner

    return re.sub(r"\{\{.*?\}\}|\{%.*?%\}", rewrite, source)


def baseline_objects(services: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each environment's objects by shape: the values and the path meshstage uses."""
    import yaml

    from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
        StageOptions,
        render_stage,
    )

    options = StageOptions(gitops_dir=Path("/nonexistent"), crd_dirs=[CRD_DIR])
    by_environment = {}
    for name, variables in environments(services).items():
        rendered = render_stage(variables, options)
        shapes: dict[str, list[dict[str, Any]]] = {}

        def add(template: str, path: str, fields: Mapping[str, Any],
                shapes: dict[str, list[dict[str, Any]]] = shapes) -> None:
            shape = template.rpartition("/")[2].removesuffix(".yaml.j2")
            shapes.setdefault(shape, []).append({"dest": path, "fields": _plain(fields),
                                                 "template": template})

        for item in rendered.objects:
            add(item.planned.template, item.path, item.planned.context)
        for path, text in rendered.files.items():
            if path.rpartition("/")[2] == "kustomization.yaml":
                add("gitops/kustomization.yaml.j2", path,
                    {"resources": yaml.safe_load(text)["resources"]})
        base = f"envs/{name}"
        for path, (template, context) in rendered.plan.extra_files.items():
            add(template, f"{base}/{path}", context)
        for chart in rendered.install.charts if rendered.install else ():
            add(chart.values_template, f"{base}/00-install/values/{chart.release}.yaml",
                chart.values)
        by_environment[name] = shapes
    return by_environment


def unsafe_yaml(data: Any) -> str:
    """``data`` as YAML for Ansible's variables, every string that holds template syntax
    (the ApplicationSet's Go templates) marked ``!unsafe``, so Ansible leaves it as it is."""
    import yaml

    class Dumper(yaml.CSafeDumper):
        pass

    def string(dumper: Any, text: str) -> Any:
        tag = "!unsafe" if any(mark in text for mark in ("{{", "{%", "{#")) \
            else "tag:yaml.org,2002:str"
        return dumper.represent_scalar(tag, text)

    Dumper.add_representer(str, string)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.value if hasattr(v, "value")
                                 else list(v) if isinstance(v, (set, frozenset)) else str(v)))


def run_baseline(services: int, work: Path, repo: Path,
                 budget: float | None = None) -> dict[str, Any]:
    """ansible-playbook with the template-loop role over every environment's objects.

    With ``budget`` (seconds), a baseline still running then is stopped: its time is then a
    lower bound (``complete`` is False), and so is the speed-up computed from it.
    """
    from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import (
        BUILTIN_TEMPLATES,
    )

    objects = baseline_objects(services)
    project = work / "baseline"
    shutil.copytree(BENCH / "baseline", project)
    templates = project / "roles" / "template_loop" / "templates"
    templates.mkdir()
    fields: dict[str, set[str]] = {}
    for shapes in objects.values():
        for shape, items in shapes.items():
            fields.setdefault(shape, set()).update(*(item["fields"] for item in items))
    # the templates the estate's objects were rendered from (one per shape: the synthetic
    # estate is Istio's, so no Linkerd template of the same name takes its place)
    sources = {item["template"] for shapes in objects.values() for items in shapes.values()
               for item in items}
    for name in sorted(sources):
        source = BUILTIN_TEMPLATES / name
        shape = source.name.removesuffix(".yaml.j2")
        (templates / source.name).write_text(
            baseline_template(source.read_text(), sorted(fields.get(shape, ()))))
    out = work / "baseline-out"
    inventory = project / "inventory"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(json.dumps({"environments": {"hosts": {
        name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        for name in objects}}}))
    for name, shapes in objects.items():
        (inventory / "host_vars" / f"{name}.yml").write_text(unsafe_yaml({
            "template_loop_out": str(out / name), "template_loop_objects": shapes}))
    total = sum(len(items) for shapes in objects.values() for items in shapes.values())
    env = {**os.environ, "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
           "ANSIBLE_HOME": str(work / "ansible-home")}
    # Pipelining spares each module run a temporary file: the baseline at its fastest.
    (project / "ansible.cfg").write_text(
        "[defaults]\nroles_path = roles\nretry_files_enabled = false\n"
        "interpreter_python = auto_silent\n\n[connection]\npipelining = true\n")
    log = (work / "baseline.log").open("w")
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i",
               str(inventory / "hosts.yml"), str(project / "playbook.yml")]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=project, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    complete = True
    while process.poll() is None:
        time.sleep(min(10.0, budget) if budget else 10.0)
        written = sum(1 for _ in out.rglob("*.yaml")) if out.exists() else 0
        elapsed = time.perf_counter() - start
        print(f"  baseline {services} services: {written}/{total} files, {elapsed:.0f} s",
              flush=True)
        if budget is not None and elapsed >= budget and process.poll() is None:
            os.killpg(process.pid, 15)  # the playbook and its workers, nothing else
            process.wait()
            complete = False
    wall = time.perf_counter() - start
    log.close()
    if complete and process.returncode != 0:
        raise SystemExit(f"baseline ansible-playbook failed; see {work / 'baseline.log'}")
    return {"wall_s": wall, "files": sum(1 for _ in out.rglob("*.yaml")), "tasks": total,
            "complete": complete, "same_objects": _same_objects(out, repo)}


def _same_objects(out: Path, repo: Path) -> bool:
    """Whether the baseline wrote the objects meshstage wrote into ``repo`` (nulls dropped,
    as meshstage does when it parses a rendering back)."""
    import yaml

    from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import drop_nulls

    for path in sorted(out.rglob("*.yaml")):
        environment = path.relative_to(out).parts[0]
        theirs = drop_nulls(yaml.safe_load(path.read_text()))
        mine = yaml.safe_load((repo / path.relative_to(out / environment)).read_text())
        if theirs != mine:
            print(f"  baseline differs: {path.relative_to(out)}", flush=True)
            return False
    return True

# --------------------------------------------------------------------------- the parent


def measure(services: int, repeat: int, work: Path, helm: bool = True) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"full": [], "noop": [], "change": [],
                                             "floor": [], "render": [], "plans": [],
                                             "proof": [], "templating": []}
    if helm:
        runs.update({"helm_template": [], "helm_split": [], "helm_pipeline": []})
    repo = work / "none"
    values_file = work / f"helm-values-{services}.json"
    if helm:
        in_child("helm_values", services, values_file)
    for index in range(repeat):
        repo = work / f"gitops-{services}-{index}"
        print(f"{services} services, round {index + 1}/{repeat}: full", flush=True)
        runs["full"].append(in_child("full", services, repo))
        print(f"{services} services, round {index + 1}/{repeat}: no-op, one change, floor",
              flush=True)
        runs["noop"].append(in_child("noop", services, repo))
        runs["change"].append(in_child("change", services, repo, weight=20 + index))
        in_child("change", services, repo, weight=10)  # back to the estate as generated
        runs["floor"].append(in_child("floor", services, repo))
        print(f"{services} services, round {index + 1}/{repeat}: plans, proof, templating, "
              "render"
              + (", helm template, split, pipeline" if helm else ""), flush=True)
        runs["plans"].append(in_child("plans", services, work / "none"))
        runs["proof"].append(in_child("proof", services, work / "none"))
        runs["templating"].append(in_child("templating", services, work / "none"))
        for kind in runs:
            if kind in ("render", "helm_template", "helm_split", "helm_pipeline"):
                scratch = work / f"{kind}-{services}-{index}"
                runs[kind].append(in_child(kind, services, scratch, meshstage_repo=str(repo),
                                           values_file=str(values_file)))
        # Nothing is deleted before the run ends (main removes ``work``): on an ext4 without
        # a journal, each file created in the next minutes skips every inode deleted in the
        # last 60 to 360 s, reading its inode block to see so (``recently_deleted`` in the
        # kernel's fs/ext4/ialloc.c), which made whatever came after a deletion of 70,000
        # files several times slower to write: a figure of the machine, not of the code.
    row: dict[str, Any] = {"services": services}
    for kind, results in runs.items():
        for key in results[0]:
            values = [result[key] for result in results]
            # times: the best round, the least disturbed by the machine's other work (as
            # timeit does); other figures: the median
            timed = key in ("wall_s", "cpu_s") or (kind == "plans" and key.endswith("_s"))
            best = min if timed else statistics.median
            row[f"{kind}_{key}"] = (best(values)
                                    if isinstance(values[0], (int, float)) else values[0])
    row["noop_files_written_max"] = max(r["files_written"] for r in runs["noop"])
    row["noop_commits_max"] = max(r["commits"] for r in runs["noop"])
    row["floor_ratio"] = row["full_wall_s"] / row["floor_wall_s"]
    row["noop_ratio"] = row["noop_wall_s"] / row["full_wall_s"]
    print(f"{services} services: kubectl kustomize of every sync unit", flush=True)
    row.update({f"kustomize_{key}": value
                for key, value in in_child("kustomize", services, repo).items()})
    add_ratios(row)
    row["proxy"] = in_child("proxy", services, repo)
    row["repo"] = str(repo)
    return row


# figure -> the row's time in seconds; each is also given as a ratio to the floor
FLOOR_RATIOS = {"full": "full_wall_s", "render": "render_wall_s",
                "templating": "templating_wall_s",
                "helm_template": "helm_template_wall_s", "helm_split": "helm_split_wall_s",
                "helm_pipeline": "helm_pipeline_wall_s", "kustomize": "kustomize_total_s"}


def add_ratios(row: dict[str, Any]) -> None:
    """Every time as a ratio to the floor, and meshstage's against Helm's."""
    floor = row["floor_wall_s"]
    for name, key in FLOOR_RATIOS.items():
        if key in row:
            row[f"{name}_floor_ratio"] = row[key] / floor
    if "helm_pipeline_wall_s" in row:
        row["helm_pipeline_ratio"] = row["full_wall_s"] / row["helm_pipeline_wall_s"]
        row["render_split_ratio"] = row["render_wall_s"] / row["helm_split_wall_s"]
        row["templating_ratio"] = row["templating_wall_s"] / row["helm_template_wall_s"]


def measure_baseline(row: dict[str, Any], work: Path, budget: float | None = None) -> None:
    """The Ansible baseline for one size, after every meshstage measurement: nothing else
    of the benchmark runs beside it."""
    services = row["services"]
    print(f"{services} services: baseline (ansible-playbook, one task per shape)", flush=True)
    result = run_baseline(services, work / f"baseline-{services}", Path(row["repo"]), budget)
    row.update({f"baseline_{key}": value for key, value in result.items()})
    row["baseline_speedup"] = row["baseline_wall_s"] / row["full_wall_s"]


def machine() -> dict[str, str]:
    import importlib.metadata

    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {name: importlib.metadata.version(name)
                for name in ("ansible-core", "Jinja2", "PyYAML", "jsonschema")}
    git = subprocess.run(["git", "--version"], capture_output=True, text=True,
                         check=False).stdout.strip()
    import yaml

    return {
        "nproc": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version(),
        "os": platform.platform(), "git": git.removeprefix("git version "),
        "libyaml": str(getattr(yaml, "__with_libyaml__", False)),
        **versions,
    }


def targets(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met); met is None when the run did not measure it."""
    by_size = {row["services"]: row for row in rows}
    found: list[tuple[str, str, bool | None]] = []
    target = by_size.get(TARGET_SERVICES)
    if target is None:
        found.append((f"{TARGET_SERVICES} services: full run within {FLOOR_RATIO_MAX:g}x "
                      "the floor, 30x faster than the baseline", "not measured", None))
    else:
        ratio = target["floor_ratio"]
        found.append((f"{TARGET_SERVICES} services x 3 environments: full run within "
                      f"{FLOOR_RATIO_MAX:g}x the serialization floor",
                      f"{ratio:.1f}x ({target['full_wall_s']:.2f} s vs "
                      f"{target['floor_wall_s']:.2f} s)", ratio <= FLOOR_RATIO_MAX))
        speedup = target.get("baseline_speedup")
        if speedup is None:
            measured = "not measured"
        elif target.get("baseline_complete", True):
            measured = (f"{speedup:.0f}x ({target['baseline_wall_s']:.0f} s vs "
                        f"{target['full_wall_s']:.2f} s)")
        else:
            measured = (f"at least {speedup:.0f}x: the baseline was stopped after "
                        f"{target['baseline_wall_s']:.0f} s with {target['baseline_files']:,} "
                        f"of {target['baseline_tasks']:,} files written "
                        f"(meshstage: {target['full_wall_s']:.2f} s)")
        found.append((f"{TARGET_SERVICES} services x 3 environments: at least "
                      f"{BASELINE_SPEEDUP_MIN:g}x faster than the template-loop baseline",
                      measured, None if speedup is None else speedup >= BASELINE_SPEEDUP_MIN))
    for row in rows:
        met = (row["noop_ratio"] < NOOP_RATIO_MAX and row["noop_files_written_max"] == 0
               and row["noop_commits_max"] == 0)
        found.append((f"{row['services']} services: no-op re-run under "
                      f"{NOOP_RATIO_MAX:.0%} of a full run, writing nothing",
                      f"{row['noop_ratio']:.1%}, {row['noop_files_written_max']} files "
                      f"written, {row['noop_commits_max']} commits", met))
    for row in rows:
        share = row.get("full_proof_share")
        if share is not None:
            found.append((f"{row['services']} services: the flow proof adds at most "
                          f"{PROOF_SHARE_MAX:.0%} to the full run",
                          f"{share / (1 - share):.1%} (the proof {row['full_proof_cpu_s']:.2f} s "
                          f"of the run's {row['full_cpu_s']:.2f} s CPU, in the same run)",
                          share / (1 - share) <= PROOF_SHARE_MAX))
    if 1000 in by_size and 5000 in by_size and "proof_cpu_s" in by_size[1000]:
        # the proof alone (``child_proof``), as the parse and the plan are measured alone;
        # its CPU in the full run's forked child is shown beside it
        small, large = by_size[1000], by_size[5000]
        growth = large["proof_cpu_s"] / small["proof_cpu_s"]
        in_run = large["full_proof_cpu_s"] / small["full_proof_cpu_s"]
        found.append(("1,000 -> 5,000 services: the flow proof linear",
                      f"{growth:.2f}x alone ({small['proof_cpu_s']:.2f} s -> "
                      f"{large['proof_cpu_s']:.2f} s CPU); {in_run:.2f}x in the full run's "
                      "forked child", growth <= GROWTH_RATIO_MAX))
    if 1000 in by_size and 5000 in by_size and "plans_istio_s" in by_size[1000]:
        small, large = by_size[1000], by_size[5000]
        growth = {provider: large[f"plans_{provider}_s"] / small[f"plans_{provider}_s"]
                  for provider in PLAN_PROVIDERS}
        found.append(("1,000 -> 5,000 services: the parse and the plan linear with each "
                      "provider", ", ".join(
                          f"{provider} {growth[provider]:.2f}x "
                          f"({small[f'plans_{provider}_s']:.2f} s -> "
                          f"{large[f'plans_{provider}_s']:.2f} s)"
                          for provider in PLAN_PROVIDERS),
                      all(ratio <= GROWTH_RATIO_MAX for ratio in growth.values())))
    if 1000 in by_size and 5000 in by_size:
        small, large = by_size[1000], by_size[5000]
        time_ratio = large["full_wall_s"] / small["full_wall_s"]
        memory_ratio = large["full_peak_mb"] / small["full_peak_mb"]
        found.append((f"1,000 -> 5,000 services: time and memory within "
                      f"{GROWTH_RATIO_MAX:g}x for 5x the work",
                      f"time {time_ratio:.2f}x, memory {memory_ratio:.2f}x",
                      time_ratio <= GROWTH_RATIO_MAX and memory_ratio <= GROWTH_RATIO_MAX))
    else:
        found.append(("1,000 -> 5,000 services: linear growth", "not measured", None))
    found += kustomize_targets(by_size)
    found += helm_targets(rows)
    hosts = {row["proxy"]["istio sidecar hosts"] for row in rows}
    host_bytes = {row["proxy"]["host sidecar bytes"] for row in rows}
    found.append((f"per-proxy config size constant in the estate's size ({CALLEES} callees)",
                  ", ".join(f"{row['services']}: Istio Sidecar "
                            f"{row['proxy']['istio sidecar hosts']} hosts, "
                            f"{row['proxy']['istio sidecar bytes']} B; host sidecar "
                            f"{row['proxy']['host sidecar bytes']} B" for row in rows),
                  len(hosts) == 1 and len(host_bytes) == 1))
    return found


def kustomize_targets(by_size: Mapping[int, Mapping[str, Any]]
                      ) -> list[tuple[str, str, bool | None]]:
    """The slowest sync unit under a tenth of Argo CD's 90 s at 5,000 services; all units
    together linear in the estate (5,000 / 1,000 under 6x)."""
    large, small = by_size.get(5000), by_size.get(1000)
    if large is None:
        return [("5,000 services: slowest sync unit under a tenth of Argo CD's 90 s",
                 "not measured", None)]
    found: list[tuple[str, str, bool | None]] = [(
        "5,000 services: the slowest sync unit builds with `kubectl kustomize` in under "
        f"{ARGOCD_TIMEOUT_S / 10:g} s (a tenth of Argo CD's default {ARGOCD_TIMEOUT_S:g} s)",
        f"{large['kustomize_slowest_s']:.2f} s ({large['kustomize_slowest']}; "
        f"{large['kustomize_folders']:,} folders, at most {large['kustomize_largest']} "
        "objects each)", large["kustomize_slowest_s"] < ARGOCD_TIMEOUT_S / 10)]
    if small is not None:
        growth = large["kustomize_total_s"] / small["kustomize_total_s"]
        found.append((f"1,000 -> 5,000 services: every unit together within "
                      f"{GROWTH_RATIO_MAX:g}x", f"{growth:.2f}x "
                      f"({small['kustomize_total_s']:.1f} s -> "
                      f"{large['kustomize_total_s']:.1f} s)", growth < GROWTH_RATIO_MAX))
    return found


def helm_targets(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, bool | None]]:
    """meshstage's full run no longer than Helm's pipeline with the same duties; its render
    no longer than `helm template` and the file split."""
    found: list[tuple[str, str, bool | None]] = []
    for row in rows:
        if "helm_pipeline_ratio" not in row:
            continue
        found.append((f"{row['services']:,} services: full run no longer than Helm's "
                      "pipeline (template, strict validation, split, commit)",
                      f"{row['helm_pipeline_ratio']:.2f}x ({row['full_wall_s']:.2f} s vs "
                      f"{row['helm_pipeline_wall_s']:.2f} s)", row["helm_pipeline_ratio"] <= 1))
        found.append((f"{row['services']:,} services: render no longer than `helm template` "
                      "and its file split", f"{row['render_split_ratio']:.2f}x "
                      f"({row['render_wall_s']:.2f} s vs {row['helm_split_wall_s']:.2f} s)",
                      row["render_split_ratio"] <= 1))
    return found or [("meshstage against Helm", "not measured (no helm-python-sdk)", None)]


def helm_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Every time of the consumers' side, in seconds and as a ratio to the floor."""
    header = ("| services | floor s | meshstage full | meshstage render "
              "| meshstage templating | helm template | helm template + split | helm pipeline "
              "| full / helm pipeline | render / (template + split) "
              "| templating / helm template | kustomize folders | kustomize all "
              "| kustomize slowest s |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        cells = [f"{row['services']:,}", f"{row['floor_wall_s']:.2f}"]
        for name in ("full", "render", "templating", "helm_template", "helm_split",
                     "helm_pipeline"):
            key = FLOOR_RATIOS[name]
            cells.append(f"{row[key]:.2f} s ({row[f'{name}_floor_ratio']:.1f}x)"
                         if key in row else "-")
        for key in ("helm_pipeline_ratio", "render_split_ratio", "templating_ratio"):
            cells.append(f"{row[key]:.2f}" if key in row else "-")
        cells += [f"{row['kustomize_folders']:,}",
                  f"{row['kustomize_total_s']:.1f} s ({row['kustomize_floor_ratio']:.1f}x)",
                  f"{row['kustomize_slowest_s']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    header = ("| services | objects | files | full s | cpu s | peak MB | floor s | floor ratio "
              "| no-op s | no-op ratio | no-op writes | no-op commits | change s "
              "| change writes | change commits | baseline s | baseline speedup |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        baseline = row.get("baseline_wall_s")
        speedup = row.get("baseline_speedup")
        bound = "" if row.get("baseline_complete", True) else ">="
        lines.append(
            f"| {row['services']:,} | {row['full_objects']:,.0f} | {row['full_files']:,.0f} "
            f"| {row['full_wall_s']:.2f} | {row['full_cpu_s']:.2f} | {row['full_peak_mb']:.0f} "
            f"| {row['floor_wall_s']:.2f} | {row['floor_ratio']:.1f}x "
            f"| {row['noop_wall_s']:.2f} | {row['noop_ratio']:.1%} "
            f"| {row['noop_files_written_max']} | {row['noop_commits_max']} "
            f"| {row['change_wall_s']:.2f} | {row['change_files_written']:.0f} "
            f"| {row['change_commits']:.0f} "
            f"| {'-' if baseline is None else f'{bound}{baseline:.0f}'} "
            f"| {'-' if speedup is None else f'{bound}{speedup:.0f}x'} |")
    return "\n".join(lines)


def plot(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 4.5), dpi=120)
    sizes = [row["services"] for row in rows]
    axes.plot(sizes, [row["full_wall_s"] for row in rows], "o-", label="meshstage full run")
    axes.plot(sizes, [row["noop_wall_s"] for row in rows], "o--", label="meshstage no-op")
    axes.plot(sizes, [row["floor_wall_s"] for row in rows], "s-",
              label="floor: yaml.CSafeDumper alone")
    for key, style, label in (("render_wall_s", "o-.", "meshstage render (with its checks)"),
                              ("templating_wall_s", "o:", "meshstage templating alone"),
                              ("helm_template_wall_s", "v-", "helm template"),
                              ("helm_split_wall_s", "v--", "helm template + split"),
                              ("helm_pipeline_wall_s", "D-",
                               "Helm's pipeline (template, validate, split, commit)"),
                              ("kustomize_total_s", "x:", "kubectl kustomize, every sync unit"),
                              ("kustomize_slowest_s", "+:", "kubectl kustomize, slowest unit")):
        if all(key in row for row in rows):
            axes.plot(sizes, [row[key] for row in rows], style, label=label)
    measured = [row for row in rows if row.get("baseline_wall_s") is not None]
    if measured:
        axes.plot([row["services"] for row in measured],
                  [row["baseline_wall_s"] for row in measured], "^-",
                  label="baseline: ansible.builtin.template loop")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("services (x 3 environments)")
    axes.set_ylabel("wall time, s")
    axes.set_title("meshstage: time against estate size")
    axes.grid(True, which="both", alpha=0.3)
    # beside the axes: a dozen lines cross the whole plot
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.tight_layout()
    figure.savefig(path)


def final_line(row: Mapping[str, Any]) -> str:
    ratio = row.get("helm_pipeline_ratio")
    helm = "n/a" if ratio is None else f"{ratio:.2f}"
    speedup = row.get("baseline_speedup")
    bound = "" if row.get("baseline_complete", True) else ">="
    return (f"services={row['services']} full_s={row['full_wall_s']:.2f} "
            f"floor_ratio={row['floor_ratio']:.1f} "
            f"baseline_speedup={'n/a' if speedup is None else f'{bound}{speedup:.0f}'} "
            f"noop_ratio={row['noop_ratio']:.3f} "
            f"noop_writes={row['noop_files_written_max']} peak_mb={row['full_peak_mb']:.0f} "
            f"proof_share={row.get('full_proof_share', 0):.3f} "
            f"kustomize_slowest_s={row['kustomize_slowest_s']:.2f} "
            f"kustomize_total_s={row['kustomize_total_s']:.1f} "
            f"helm_pipeline_ratio={helm}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--baseline", type=int, nargs="*", default=None,
                        help="sizes to run the Ansible baseline for (default: the sizes "
                             "given that are 100 or 1,000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-budget", type=float, metavar="SECONDS",
                        help="stop a baseline still running after this long; its time and "
                             "the speed-up are then lower bounds (default: no limit)")
    parser.add_argument("--markdown", type=Path, help="write the report here")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--plot", type=Path, help="write the PNG plot here (needs matplotlib)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--repo", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = CHILDREN[args.child](args.services[0], args.repo,
                                      **json.loads(args.child_options))
        print(json.dumps(result))
        return 0
    baseline_sizes = (set(args.baseline) if args.baseline is not None
                      else {size for size in args.services if size in (100, 1000)})
    info = machine()
    load = os.getloadavg()
    print("machine: " + ", ".join(f"{key} {value}" for key, value in info.items()), flush=True)
    work = Path(tempfile.mkdtemp(prefix="meshstage-bench-"))
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    rows: list[dict[str, Any]] = []

    def keep() -> None:  # every figure so far, in case the run is stopped
        if args.json:
            args.json.write_text(json.dumps({"machine": info, "rows": rows}, indent=2) + "\n")

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"stopped by signal {signum}"))
    try:
        helm = importlib.util.find_spec("helm_python") is not None
        for size in sorted(args.services):
            rows.append(measure(size, args.repeat, work, helm))
            keep()
        for row in rows:
            if row["services"] in baseline_sizes:
                measure_baseline(row, work, args.baseline_budget)
                keep()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    report = ["## Results", "",
              f"Run {started}: `python bench/run.py --services "
              f"{' '.join(map(str, sorted(args.services)))} --baseline "
              f"{' '.join(map(str, sorted(baseline_sizes)))} --repeat {args.repeat}"
              + (f" --baseline-budget {args.baseline_budget:g}" if args.baseline_budget else "")
              + "`; "
              f"load average {load[0]:.1f} before, {load_after[0]:.1f} after.", "",
              "Machine: " + ", ".join(f"{key} {value}" for key, value in info.items()) + ".",
              "", table(rows), "", helm_table(rows), "",
              "| target | measured | met |", "|---|---|---|"]
    for name, measured, met in targets(rows):
        report.append(f"| {name} | {measured} | "
                      f"{'not measured' if met is None else 'yes' if met else 'NO'} |")
    text = "\n".join(report) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "load": [load, load_after],
                                         "rows": rows}, indent=2) + "\n")
    if args.plot:
        plot(rows, args.plot)
    print(final_line(rows[-1]))  # rows are in size order: the last size measured
    return 0


if __name__ == "__main__":
    sys.exit(main())
