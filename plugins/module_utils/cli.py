"""The ``meshstage`` command (a console script of the Python package).

    meshstage check PATH... [--mesh-config FILE] [--json] [--complete] [--provider P]
                            [--namespace NS] [--analyzer NAME]...
    meshstage analyzers                    # list the analyzers and their codes

``check`` reads YAML files, directories of them or ``-`` (stdin), analyzes every object and
prints one line per finding, ``<level> <code> <Kind namespace/name>: <sentence>``, with a
summary and notes on stderr. Exit status: 1 when there is an Error finding, 2 when the input
cannot be read (or the command line is wrong), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .analyze.analysis import PROVIDERS, Report, analyze, detect_providers
from .analyze.index import MeshConfig
from .analyze.manifests import Manifests, read_manifests, read_mesh_config
from .analyze.registry import ANALYZERS
from .errors import MeshstageError

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


def check_manifests(paths: Sequence[str], mesh_config: str | None = None,
                    complete: bool = False, provider: str = "auto",
                    namespace: str = "default", analyzers: Sequence[str] | None = None,
                    stdin: TextIO | None = None) -> tuple[Report, Manifests, tuple[str, ...]]:
    """Read and analyze manifests: what ``meshstage check`` and ``meshstage.mesh.check`` do.
    Returns the report, what was read and the providers whose analyzers ran."""
    manifests = read_manifests(paths, stdin=stdin, default_namespace=namespace)
    mesh = read_mesh_config(mesh_config) if mesh_config else MeshConfig()
    providers = {"auto": detect_providers(manifests.resources),
                 "all": PROVIDERS}.get(provider, (provider,))
    report = analyze(manifests.resources, mesh, complete=complete, analyzers=analyzers,
                     providers=providers)
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
        return _check(args, out, err, stdin)
    except MeshstageError as error:
        err.write(f"meshstage check: {error}\n")
        return EXIT_INPUT


def console() -> None:
    """Entry point of the ``meshstage`` console script."""
    sys.exit(main())
