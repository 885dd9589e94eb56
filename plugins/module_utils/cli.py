"""The ``meshstage`` command (a console script of the Python package).

    meshstage check PATH... [--mesh-config FILE] [--json] [--complete] [--provider P]
                            [--namespace NS] [--analyzer NAME]...
    meshstage analyzers                    # list the analyzers and their codes
    meshstage derive-authz -i INVENTORY [--environment ENV] [--prometheus URL]
                           [--window 1h] [--service NAME]...
    meshstage import PATH... --output DIR [--environment ENV] [--provider P]
                     [--namespace NS]... [--exclude-namespace NS]... [--prometheus URL]
                     [--window 1h] [--no-check-paths]
    meshstage flows -i INVENTORY [--environment ENV] [--gitops DIR] [--manifests PATH]...
                    [--json]
    meshstage flows PATH... [--provider P] [--mesh-config FILE] [--json]

``check`` reads YAML files, directories of them or ``-`` (stdin), analyzes every object and
prints one line per finding, ``<level> <code> <Kind namespace/name>: <sentence>``, with a
summary and notes on stderr. Besides the analyzers, it runs the flow proof over the
manifests (``flows/check.py``): a probe, a gateway's route or a scrape the manifests' own mesh
objects refuse is an Error (MST0401). Exit status: 1 when there is an Error finding, 2 when
the input cannot be read (or the command line is wrong), 0 otherwise.

``flows`` prints the flow proof's table: every request flow, whether it gets through, and
the object that decides. For an inventory's environment (as ``derive-authz`` reads it) it
renders the environment's stage, with the estate's manifests (``--manifests``, else the
intent's stand-ins), and judges each flow at that stage and as the GitOps repository
(``--gitops``) has the environment now; for manifests (a rendered tree and the estate's
own files), the flows they show. Exit status 1 when a flow that works now would stop.

``derive-authz`` reads an environment's intent from its Ansible inventory
(``ansible-inventory --list``: variables as written, not templated), asks Prometheus
(``mesh_gates.prometheus`` or ``--prometheus``) which callers called which service over the
window, and prints the ``mesh_authorization`` entries that admit exactly those callers
(``gates/derive.py``). Exit status 2 when the inventory or Prometheus cannot be read.

``import`` reads an estate's manifests (files, directories, ``-`` for stdin) and writes a
commented starting inventory under ``--output`` in the layout of ``inventories/``
(``inventory/``; docs/import.md). Exit status 2 when the input cannot be read or the output
holds files it would change.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .analyze.analysis import PROVIDERS, Report, analyze, detect_providers
from .analyze.registry import ANALYZERS
from .collector import fewer_collections
from .errors import MeshstageError
from .estate.index import MeshConfig
from .estate.manifests import Manifests, SourcePath, read_manifests, read_mesh_config
from .flows.check import flow_findings, manifests_proof
from .flows.proof import FlowProof
from .flows.stage import proof_of
from .gates.derive import derive_authorization, derived_yaml
from .gates.gate import CALLS
from .gates.observe import observe
from .gitops.repo import GitOpsRepo
from .intent.parse import intent_keys, parse_intent
from .inventory.run import import_inventory
from .pipeline import StageOptions, recorded_meta, render_stage
from .prometheus import PrometheusClient

EXIT_OK, EXIT_ERRORS, EXIT_INPUT = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meshstage", description="Staged service-mesh adoption: analysis of manifests.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check", help="analyze mesh manifests",
        description="Analyze YAML manifests (files, directories, or - for stdin): a rendered "
        "GitOps tree, kubectl kustomize output, or hand-written files. Exit status 1 when "
        "an Error is found, 2 when the input cannot be read.")
    check.add_argument("paths", nargs="+", metavar="PATH")
    check.add_argument("--mesh-config", metavar="FILE",
                       help="Istio MeshConfig (YAML, or the istio ConfigMap): root namespace, "
                       "trust domain, telemetry providers")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--complete", action="store_true",
                       help="the input is the whole cluster: a reference to an object that is "
                       "not in it is missing (by default, references to kinds the input holds "
                       "nothing of are noted as unchecked)")
    check.add_argument("--provider", choices=("auto", *PROVIDERS, "all"), default="auto",
                       help="whose analyzers to run (auto: the meshes the objects are for)")
    check.add_argument("-n", "--namespace", default="default",
                       help="namespace of objects that have none (as kubectl apply -n)")
    check.add_argument("--analyzer", action="append", choices=list(ANALYZERS),
                       metavar="NAME", help="run only this analyzer (repeatable)")
    commands.add_parser("analyzers", help="list the analyzers, their provider and codes")
    derive = commands.add_parser(
        "derive-authz", help="print least-privilege ALLOW rules from observed traffic",
        description="Print the mesh_authorization entries that admit exactly the callers "
        "Prometheus observed over the window, per called service, for the environment of "
        "an Ansible inventory. Metrics carry no method or path: a rule admits a caller.")
    derive.add_argument("-i", "--inventory", action="append", required=True,
                        metavar="INVENTORY", help="an inventory (repeatable, as ansible's -i)")
    derive.add_argument("--environment", metavar="ENV",
                        help="the environment, when the inventories hold several")
    derive.add_argument("--prometheus", metavar="URL",
                        help="the Prometheus to ask (default: mesh_gates.prometheus)")
    derive.add_argument("--window", metavar="DURATION",
                        help="how far back to look, e.g. 1h (default: mesh_gates.window)")
    derive.add_argument("--service", action="append", default=[], metavar="NAME",
                        help="only the rules of this called service (repeatable)")
    imports = commands.add_parser(
        "import", help="write a starting inventory from an estate's manifests",
        description="Read an estate's manifests (a kubectl get -A -o yaml export, helm "
        "template or kubectl kustomize output, files, directories, - for stdin) and write a "
        "commented inventory in the layout of inventories/: every guess says what it was "
        "guessed from (docs/import.md). Nothing that exists is overwritten.")
    imports.add_argument("paths", nargs="+", metavar="PATH")
    imports.add_argument("-o", "--output", required=True, metavar="DIR",
                         help="the inventory directory to write (shared/ and <environment>/)")
    imports.add_argument("--environment", metavar="ENV",
                         help="the environment's name (default: the one meshstage's objects in "
                         "the estate are labelled for, else dev)")
    imports.add_argument("--provider", choices=PROVIDERS,
                         help="the mesh to adopt (default: the one the estate runs, else istio)")
    imports.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                         help="import only this namespace's services (repeatable)")
    imports.add_argument("--exclude-namespace", action="append", default=[], metavar="NS",
                         help="leave this namespace out (repeatable)")
    imports.add_argument("--default-namespace", default=None, metavar="NS",
                         help="the namespace of the objects that name none, where kubectl "
                         "apply -n or helm install --namespace puts them (default: default); "
                         "mesh_check_paths says it for every later run")
    imports.add_argument("--prometheus", metavar="URL",
                         help="a Prometheus that scrapes the estate's proxies: the edges it saw "
                         "become calls")
    imports.add_argument("--window", default="1h", metavar="DURATION",
                         help="how far back Prometheus is asked (default 1h)")
    imports.add_argument("--no-check-paths", action="store_true",
                         help="do not write mesh_check_paths (by default every run checks the "
                         "inventory against the manifests imported)")
    flows = commands.add_parser(
        "flows", help="print every request flow and whether it gets through",
        description="The flow proof's table: every request flow of an inventory's environment "
        "at its stage (and now, as the GitOps repository has it), or of manifests. Exit "
        "status 1 when a flow that works now would stop, 2 when the input cannot be read.")
    flows.add_argument("paths", nargs="*", metavar="PATH",
                       help="manifests: a rendered tree and the estate's own files")
    flows.add_argument("-i", "--inventory", action="append", default=[],
                       metavar="INVENTORY", help="an inventory (repeatable, as ansible's -i)")
    flows.add_argument("--environment", metavar="ENV",
                       help="the environment, when the inventories hold several")
    flows.add_argument("--gitops", metavar="DIR",
                       help="the GitOps repository: judge each flow as it has the "
                       "environment now, too")
    flows.add_argument("--manifests", action="append", default=[], metavar="PATH",
                       help="the estate's manifests (mesh_check_paths), for an inventory")
    flows.add_argument("--provider", choices=("auto", *PROVIDERS), default="auto",
                       help="the mesh the manifests are for (auto: detected)")
    flows.add_argument("--mesh-config", metavar="FILE", help="Istio MeshConfig")
    flows.add_argument("--json", action="store_true", help="print the flows as JSON")
    return parser


def report_dict(report: Report, objects: int, files: int) -> dict[str, Any]:
    return {
        "findings": [finding.as_dict() for finding in report.findings],
        "unchecked": [{"analyzer": u.analyzer, "what": u.what, "missing": u.missing}
                      for u in report.unchecked],
        "counts": {"error": len(report.errors), "warning": len(report.warnings),
                   "info": len(report.findings) - len(report.errors) - len(report.warnings)},
        "objects": objects, "files": files,
    }


def check_manifests(paths: Sequence[SourcePath], mesh_config: str | None = None,
                    complete: bool = False, provider: str = "auto",
                    namespace: str = "default", analyzers: Sequence[str] | None = None,
                    stdin: TextIO | None = None) -> tuple[Report, Manifests, tuple[str, ...]]:
    """Read and analyze manifests: what ``meshstage check`` and ``meshstage.mesh.analyze`` do.
    Returns the report, what was read and the providers whose analyzers ran."""
    manifests = read_manifests(paths, stdin=stdin, default_namespace=namespace)
    mesh = read_mesh_config(mesh_config) if mesh_config else MeshConfig()
    providers = {"auto": detect_providers(manifests.resources),
                 "all": PROVIDERS}.get(provider, (provider,))
    report = analyze(manifests.resources, mesh, complete=complete, analyzers=analyzers,
                     providers=providers)
    if analyzers is None:
        findings, notes = flow_findings(manifests.resources, mesh, providers)
        report.findings = sorted([*report.findings, *findings], key=lambda f: (
            f.level.rank, f.resource, f.code, f.path, f.message))
        report.unchecked += notes
    return report, manifests, providers


def _check(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    report, manifests, providers = check_manifests(
        args.paths, args.mesh_config, args.complete, args.provider, args.namespace,
        args.analyzer, stdin)
    if args.json:
        json.dump(report_dict(report, len(manifests.resources), manifests.files), out,
                  indent=2, sort_keys=True)
        out.write("\n")
    else:
        for finding in report.findings:
            out.write(finding.line() + "\n")
        for note in report.unchecked:
            err.write(f"note: {note.line()}\n")
        counts = report_dict(report, 0, 0)["counts"]
        skipped = (f", {manifests.skipped} non-object document(s) skipped"
                   if manifests.skipped else "")
        err.write(f"{counts['error']} error(s), {counts['warning']} warning(s), "
                  f"{counts['info']} info(s) in {len(manifests.resources)} object(s) from "
                  f"{manifests.files} file(s){skipped}; analyzers: {', '.join(providers)}\n")
    return EXIT_ERRORS if report.errors else EXIT_OK


def _analyzers(out: TextIO) -> int:
    for name, analyzer in ANALYZERS.items():
        codes = ", ".join(f"{code} {level.value}" for code, level in analyzer.codes.items())
        out.write(f"{name}  [{analyzer.provider}]  {codes}\n")
    return EXIT_OK


def inventory_intent(inventories: Sequence[str], environment: str | None = None,
                     ) -> dict[str, Any]:
    """An environment's intent variables as ``ansible-inventory --list`` shows them, with
    ``mesh_hosts`` gathered from the group of that name (as the render_stage action does)."""
    binary = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent)) \
        or shutil.which("ansible-inventory")
    if binary is None:
        raise MeshstageError("ansible-inventory is not installed (it comes with ansible-core)")
    argv = [binary, "--list", *(arg for path in inventories for arg in ("-i", path))]
    listed = subprocess.run(argv, capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        raise MeshstageError(f"ansible-inventory {' '.join(inventories)} failed: "
                             f"{listed.stderr.strip()}")
    data = json.loads(listed.stdout)
    hostvars = data.get("_meta", {}).get("hostvars", {})

    def members(group: str) -> list[str]:
        entry = data.get(group) or {}
        return [*entry.get("hosts", ()), *(h for child in entry.get("children", ())
                                            for h in members(child))]

    names = [h for h in members("mesh_environments") if environment is None
             or hostvars.get(h, {}).get("mesh_environment") == environment]
    if len(names) != 1:
        raise MeshstageError(f"the inventories {', '.join(inventories)} hold "
                             f"{len(names)} environment(s)"
                             + (f" named {environment!r}" if environment else "")
                             + " in the group mesh_environments; name one with --environment")
    own = hostvars.get(names[0], {})
    variables = {key: own[key] for key in intent_keys() if key in own}
    hosts = {}
    for name in members("mesh_hosts"):
        host = hostvars.get(name, {}).get("mesh_host")
        if isinstance(host, dict):
            host = {"address": hostvars[name].get("ansible_host", name), **host}
        hosts[name] = host
    if hosts:
        variables["mesh_hosts"] = hosts
    return variables


def _derive(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    variables = inventory_intent(args.inventory, args.environment)
    settings = dict(variables.get("mesh_gates") or {})
    settings.update({key: value for key, value in (("prometheus", args.prometheus),
                                                   ("window", args.window)) if value})
    intent, _ = parse_intent({**variables, "mesh_gates": settings})
    if not intent.gates.prometheus:
        raise MeshstageError("no Prometheus to ask: give --prometheus, or set "
                             "mesh_gates.prometheus in the inventory")
    observed = observe(PrometheusClient(intent.gates.prometheus), intent, frozenset({CALLS}))
    entries, notes = derive_authorization(intent, observed.calls, args.service)
    out.write(derived_yaml(entries, notes, observed.prometheus, intent.gates.window))
    err.write(f"{len(entries)} service(s), {len(observed.calls)} observed caller pair(s) in "
              f"{intent.environment}\n")
    return EXIT_OK


def _import(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    result = import_inventory(
        args.paths, Path(args.output), environment=args.environment, provider=args.provider,
        namespaces=args.namespace, exclude=args.exclude_namespace, prometheus=args.prometheus,
        window=args.window, check_paths=not args.no_check_paths, stdin=stdin,
        default_namespace=args.default_namespace)
    for path in result.written:
        out.write(f"wrote {Path(args.output) / path}\n")
    for warning in result.warnings:
        err.write(f"warning: {warning}\n")
    err.write(result.summary() + "\n")
    return EXIT_OK
def inventory_flows(variables: dict[str, Any], gitops: str | None,
                    manifests: Sequence[str]) -> FlowProof:
    """The flow proof of an environment's intent: its stage rendered (nothing written) and
    every flow judged there and as the GitOps repository has the environment now."""
    recorded: dict[str, Any] = {}
    owned: dict[str, str] = {}
    gitops_dir = Path(gitops or ".meshstage-flows-nowhere")
    if gitops:
        repo = GitOpsRepo(gitops_dir)
        recorded = recorded_meta(repo, variables)
        owned = repo.owned(str(variables.get("mesh_environment")))
    paths = [Path(p) for p in manifests]
    options = StageOptions(gitops_dir=gitops_dir, check_mode=True, check_paths=paths)
    stage = render_stage(variables, options, recorded=recorded, prove=False)
    return proof_of(stage.intent, stage.stage_objects, stage.files, paths, gitops_dir,
                    recorded, owned)


def _flows(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    if args.inventory:
        proof = inventory_flows(inventory_intent(args.inventory, args.environment),
                                args.gitops, args.manifests)
    elif args.paths:
        manifests = read_manifests(args.paths, stdin=stdin)
        providers = detect_providers(manifests.resources) if args.provider == "auto" \
            else (args.provider,)
        if len(providers) != 1:
            raise MeshstageError(f"the manifests are for {len(providers)} meshes "
                                 f"({', '.join(providers)}); name one with --provider")
        config = read_mesh_config(args.mesh_config) if args.mesh_config else MeshConfig()
        proof = manifests_proof(manifests.resources, config, providers[0])
    else:
        raise MeshstageError("give an inventory (-i) or manifests (PATH...)")
    if args.json:
        json.dump({"now": proof.now, "target": proof.target, "counts": proof.counts(),
                   "flows": [row.as_dict() for row in proof.rows]}, out, indent=2,
                  sort_keys=True)
        out.write("\n")
    else:
        for row in proof.rows:
            verdict = row.then
            mark = "BREAKS " if row.breaks else ""
            out.write(f"{mark}{verdict.short()}: {row.flow}"
                      + (f" [{verdict.by}]" if verdict.by else "") + "\n")
        counts = proof.counts()
        err.write(f"{counts['flows']} flow(s), {counts['refused']} refused at "
                  f"{proof.target}, {counts['breaks']} that work now ({proof.now}) would "
                  "stop\n")
    return EXIT_ERRORS if proof.breaks else EXIT_OK


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None, stdin: TextIO | None = None) -> int:
    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed the usage error
        return EXIT_INPUT if stop.code else EXIT_OK
    try:
        if args.command == "analyzers":
            return _analyzers(out)
        if args.command == "derive-authz":
            return _derive(args, out, err)
        if args.command == "import":
            return _import(args, out, err, stdin)
        if args.command == "flows":
            return _flows(args, out, err, stdin)
        return _check(args, out, err, stdin)
    except (MeshstageError, OSError) as error:  # input that cannot be read: one line
        err.write(f"meshstage {args.command}: {error}\n")
        return EXIT_INPUT


def console() -> None:
    """Entry point of the ``meshstage`` console script."""
    with fewer_collections():  # a run's objects live until it ends (collector.py)
        code = main()
    sys.exit(code)
