"""The analyzers' own documentation: examples out of their docstrings, and docs/analyzers.md.

Each analyzer's docstring holds blocks ``Fails with CODE[, CODE]::`` and ``Passes::``, each
followed by an indented YAML stream. ``examples(analyzer)`` returns them; the tests run
every one, and ``catalogue_markdown()`` renders docs/analyzers.md from the registry, the
docstrings and the upstream case counts (``make analyzers-doc`` rewrites the file; a test
fails when it is out of date).
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

from .analyzer import Analyzer
from .context import CODES
from .registry import ANALYZERS

_BLOCK = re.compile(r"^(Fails with (?P<codes>[A-Z0-9, ]+)|Passes)::\n\n"
                    r"(?P<body>(?:(?: {4}.*)?\n)+)", re.MULTILINE)


PIPELINE_CODES = {
    "MST0001": "An object of the estate has the API group, kind, namespace and name of an "
               "object the run renders (for a Namespace: sets one of the labels or annotations "
               "meshstage sets, to another value): two writers would overwrite each other on "
               "the cluster. The finding names both files.",
    "MST0002": "A Namespace of the estate is one meshstage renders too, to set its own labels "
               "and annotations on it: both can be applied, as long as the estate's copy does "
               "not set those keys.",
}


@dataclass(frozen=True)
class Example:
    codes: tuple[str, ...]   # empty for a passing example
    yaml: str


def _doc(analyzer: Analyzer) -> str:
    return inspect.cleandoc(type(analyzer).__doc__ or "") + "\n"


def examples(analyzer: Analyzer) -> list[Example]:
    found = []
    for match in _BLOCK.finditer(_doc(analyzer)):
        codes = tuple(c.strip() for c in (match.group("codes") or "").split(",") if c.strip())
        found.append(Example(codes, textwrap.dedent(match.group("body")).strip() + "\n"))
    return found


def description(analyzer: Analyzer) -> str:
    """The docstring's prose: everything before the first example."""
    doc = _doc(analyzer)
    first = _BLOCK.search(doc)
    return (doc[: first.start()] if first else doc).strip()


def catalogue_markdown(upstream_cases: Mapping[str, int]) -> str:
    """docs/analyzers.md: every registered analyzer, its codes, levels and upstream cases."""
    lines = [
        "# Analyzers",
        "",
        "Generated from the analyzers' docstrings by `make analyzers-doc`; do not edit by",
        "hand (a test fails when this file and the code disagree). How analysis runs, and",
        "how to use `meshstage check`, is in [architecture](architecture.md#analysis).",
        "",
        "Codes `IST0xxx` are Istio's own (`istioctl analyze` prints the same code for the",
        "same problem, so it can be looked up in Istio's documentation); `MST0xxx` codes are",
        "meshstage's. \"Upstream cases\" counts the cases of Istio's analyzer test table",
        "(`../shared/reference/istio-analyzer-expectations.yaml`) that the analyzer passes",
        "exactly: the same codes on the same resources, no more, no fewer.",
        "",
        "The analyzers of provider `inventory` check the inventory against the estate's own",
        "manifests, in every run given `mesh_check_paths` (and not in `meshstage check`, which",
        "has no inventory); the first YAML document of their examples is the inventory's",
        "variables, the rest the estate's manifests.",
        "",
        "| analyzer | provider | codes | upstream cases |",
        "|---|---|---|---|",
    ]
    total = 0
    for name, analyzer in ANALYZERS.items():
        codes = ", ".join(f"{code} ({level.value})" for code, level in analyzer.codes.items())
        count = upstream_cases.get(name, 0)
        total += count
        cases = str(count) if analyzer.upstream else "meshstage's own"
        lines.append(f"| [`{name}`](#{_anchor(name)}) | {analyzer.provider} | {codes} | "
                     f"{cases} |")
    lines += ["", f"{len(ANALYZERS)} analyzers; {total} upstream cases pass.", ""]
    lines += ["## Codes of the run itself", "",
              "Inside a run given the estate's manifests (`mesh_check_paths`), the rendered "
              "objects are compared with them before any analyzer runs "
              "(`analyze/context.py`):", "",
              "| code | level | what |", "|---|---|---|"]
    lines += [f"| {code} | {level.value} | {PIPELINE_CODES[code]} |"
              for code, level in CODES.items()]
    lines.append("")
    for name, analyzer in ANALYZERS.items():
        lines += [f"## {name}", "", description(analyzer), ""]
        for example in examples(analyzer):
            title = (f"Fails with {', '.join(example.codes)}:" if example.codes
                     else "Passes:")
            lines += [title, "", "```yaml", example.yaml.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def _anchor(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "", name.lower().replace(" ", "-"))
