"""Where a full run's time goes, phase by phase: the numbers behind docs/performance.md's
"Where the time goes now".

    python bench/phases.py --services 1000

Runs ``pipeline.run_stage`` for the three environments of ``bench/estate.py`` into a fresh
git repository, as ``bench/run.py``'s full run does, with a wall-clock timer around each
phase's function. Phases nest (``place_objects`` holds ``render_object``, which holds
``render_text``) and some are also called from elsewhere (the sync objects, the install
and the kustomizations are rendered too), so the column does not add up to the total.
Then the same again with nothing changed (the no-op). One run, no rounds: for the
proportions, not the figures of record (those are ``bench/run.py``'s).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench
from estate import environments

PHASES: list[tuple[str, str, str]] = [
    # (module under plugins/module_utils, attribute path, label)
    ("pipeline", "PlanMemo", "intent and plan: the last run's, looked up"),
    ("pipeline", "parse_plain_intent", "intent: parse and validate"),
    ("pipeline", "plan_stage", "plan"),
    ("plan.memo", "PlanMemo.keep", "intent and plan: kept (pickled)"),
    ("pipeline", "place_objects", "render (cache look-ups included)"),
    ("render.renderer", "Renderer.render_text", "  Jinja"),
    ("render.renderer", "Renderer.render_object", "  Jinja and parse back"),
    ("render.renderer", "dump_canonical", "  canonical dump"),
    ("schema.registry", "SchemaRegistry.from_crd_dirs", "CRDs read"),
    ("schema.registry", "SchemaRegistry.validate_all", "schema validation"),
    ("pipeline", "_analyze", "analysis"),
    ("pipeline", "start_proof", "flow proof: the stage cache's answer"),
    ("pipeline", "prove_stage", "flow proof: collect, judge now and at the target"),
    ("_fork", "ForkedCall.result", "  of which the run waited for its children"),
    ("pipeline", "_check_host_configs", "host sidecars: envoy --mode validate"),
    ("gitops.repo", "GitOpsRepo.plan", "write path: plan"),
    ("gitops.repo", "GitOpsRepo.apply", "write path: write files"),
    ("gitops.repo", "GitOpsRepo.commit", "commit"),
    ("gitops.git", "Git.store_blobs", "  git fast-import"),
    ("pipeline", "object_changes", "commit message: changed objects"),
]


# Each phase's calls, timed (a phase a forked child runs, a large stage's proof and half of
# its render, is counted too)
TIMES = bench.ForkSafeTimes(Path(tempfile.gettempdir()) / f"meshstage-phases-{os.getpid()}.tsv")


def totals_of_run() -> collections.defaultdict[str, float]:
    """Each phase's wall time in the run just made (then forgotten, for the next)."""
    totals: collections.defaultdict[str, float] = collections.defaultdict(float)
    for label, wall, _cpu in TIMES.taken():
        totals[label] += wall
    return totals


def instrument() -> None:
    import importlib

    for module_name, attribute, label in PHASES:
        module = importlib.import_module(
            f"ansible_collections.meshstage.mesh.plugins.module_utils.{module_name}")
        owner: Any = module
        *parents, name = attribute.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        wrapped: Any
        if isinstance(original, classmethod):
            wrapped = classmethod(TIMES.timer(label, original.__func__))
        else:
            wrapped = TIMES.timer(label, original)
        setattr(owner, name, wrapped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    args = parser.parse_args()
    variables = environments(args.services)
    bench._import_meshstage()
    with tempfile.TemporaryDirectory(prefix="meshstage-phases-") as work:
        repo = Path(work) / "gitops"
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        for run in ("full run", "no-op"):
            instrument()
            start, cpu = time.perf_counter(), bench._cpu()
            bench._run_environments(variables, repo)
            wall, cpu = time.perf_counter() - start, bench._cpu() - cpu
            totals = totals_of_run()
            print(f"{run}, {args.services} services x 3 environments: {wall:.2f} s "
                  f"(CPU {cpu:.2f} s)")
            for _module, _attribute, label in PHASES:
                print(f"  {label:42s} {totals[label]:8.3f} s")
            reload_meshstage()


def reload_meshstage() -> None:
    """Undo the timers: a fresh import of meshstage's modules for the next run."""
    for name in [n for n in sys.modules if n.startswith("ansible_collections.meshstage")]:
        del sys.modules[name]


if __name__ == "__main__":
    main()
