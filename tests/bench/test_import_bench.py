"""bench/import_estate.py works: at a tiny estate it imports the export and renders the
estate, and says both; timings are the benchmark's business, never a test's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.integration
def test_the_import_benchmark_measures_a_tiny_estate():
    result = subprocess.run([sys.executable, str(BENCH / "import_estate.py"), "--services",
                             "8", "--repeat", "1"], capture_output=True, text=True,
                            check=False, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "import: " in result.stdout and "(8 services, 24 calls, stage authorization)" in \
        result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"services=8 import_s=[0-9.]+ render_s=[0-9.]+ "
                        r"import_render_ratio=[0-9.]+ dev_render_s=[0-9.]+ "
                        r"target=(met|MISSED)", last), last
