"""Every analyzer catches its hand-written broken manifests and passes the fixed ones.

The manifests are the examples in each analyzer's docstring (which docs/analyzers.md
shows): a ``Fails with CODE`` example must give exactly those codes, a ``Passes`` example
none, whether the input is taken as partial (the default of ``meshstage check``) or as the
whole cluster. An inventory check's example starts with the inventory's variables.
"""

from __future__ import annotations

import pytest
from analysis_helpers import analyze_inventory_text, analyze_text

from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.analyzer import IntentAnalyzer
from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.catalogue import examples
from ansible_collections.meshstage.mesh.plugins.module_utils.analyze.registry import ANALYZERS


@pytest.mark.parametrize("name", list(ANALYZERS))
def test_analyzer_catches_the_broken_example_and_passes_the_fixed_one(name):
    analyzer = ANALYZERS[name]
    cases = examples(analyzer)
    failing = [case for case in cases if case.codes]
    passing = [case for case in cases if not case.codes]
    assert failing and passing, f"{name}: the docstring needs a failing and a passing example"
    assert {code for case in failing for code in case.codes} == set(analyzer.codes), \
        f"{name}: every code needs a failing example"
    for complete in (False, True):
        for case in cases:
            report = (analyze_inventory_text(case.yaml) if isinstance(analyzer, IntentAnalyzer)
                      else analyze_text(case.yaml, name, complete=complete))
            codes = sorted({finding.code for finding in report.findings})
            assert codes == sorted(case.codes), (
                f"{name} ({'complete' if complete else 'partial'}): expected "
                f"{list(case.codes)}, found {[f.line() for f in report.findings]} in\n"
                f"{case.yaml}")


@pytest.mark.parametrize("name", list(ANALYZERS))
def test_analyzer_is_registered_under_its_name_with_a_provider(name):
    analyzer = ANALYZERS[name]
    assert analyzer.name == name
    assert analyzer.provider in ("istio", "linkerd", "inventory")
    assert analyzer.codes
