"""docs/analyzers.md is generated from the analyzers: it must match the code.

``make analyzers-doc`` rewrites it (pytest ... --update-analyzers-doc).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.catalogue import (
    catalogue_markdown,
    description,
    examples,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.registry import ANALYZERS

REPO = Path(__file__).resolve().parents[5]
DOC = REPO / "docs" / "analyzers.md"
EXPECTATIONS = REPO.parent / "shared" / "reference" / "istio-analyzer-expectations.yaml"


def upstream_case_counts() -> Counter[str]:
    """Cases per implemented analyzer (each passes: test_analyze_upstream checks it)."""
    cases = yaml.safe_load(EXPECTATIONS.read_text())["test_cases"]
    return Counter(case["analyzer"] for case in cases if case["analyzer"] in ANALYZERS)


def test_docs_analyzers_md_is_current(request):
    text = catalogue_markdown(upstream_case_counts())
    if request.config.getoption("--update-analyzers-doc"):
        DOC.write_text(text)
    assert DOC.read_text() == text, "docs/analyzers.md is out of date: run make analyzers-doc"


def test_the_catalogue_lists_every_analyzer_and_the_case_total():
    text = catalogue_markdown(upstream_case_counts())
    for name, analyzer in ANALYZERS.items():
        assert f"## {name}" in text
        assert description(analyzer) in text
        for code in analyzer.codes:
            assert code in text
    assert f"{len(ANALYZERS)} analyzers; 35 upstream cases pass." in text


def test_examples_are_parsed_from_the_docstring():
    cases = examples(ANALYZERS["service.PortNameAnalyzer"])
    assert [case.codes for case in cases] == [("IST0118",), ("IST0150",), ()]
    assert cases[0].yaml.startswith("apiVersion: v1\nkind: Service\n")
