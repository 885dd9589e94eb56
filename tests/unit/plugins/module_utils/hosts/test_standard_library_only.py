"""What runs on the plain hosts imports the standard library only: the hosts need not have
PyYAML, Jinja or cryptography, which only the controller installs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[5]
HOSTS = REPO / "plugins" / "module_utils" / "hosts"
PACKAGE = "ansible_collections.meshstage.mesh.plugins.module_utils"
BLOCKED = ("yaml", "jinja2", "cryptography")

# A finder ahead of every other: importing a blocked package fails as if it were absent.
BLOCKER = f"""
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"blocked on the host: {{name}}")
        return None
sys.meta_path.insert(0, Blocker())
"""


def host_modules() -> list[str]:
    return sorted(f"{PACKAGE}.hosts.{path.stem}" for path in HOSTS.glob("*.py")
                  if path.stem != "__init__")


def test_the_hosts_package_has_modules():
    assert f"{PACKAGE}.hosts.envoy_swap" in host_modules()


@pytest.mark.parametrize("module", [*host_modules(), f"{PACKAGE}._io"])
def test_imports_with_yaml_jinja2_and_cryptography_blocked(module):
    code = BLOCKER + f"import {module}\nprint('imported')\nimport yaml\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    # the module imported; the blocker works (the last line's import of yaml fails)
    assert result.stdout.strip() == "imported", result.stderr
    assert "blocked on the host: yaml" in result.stderr


@pytest.mark.parametrize("module", ["envoy_config", "mesh_certificate"])
def test_the_host_modules_import_with_them_blocked(module):
    path = REPO / "plugins" / "modules" / f"{module}.py"
    code = BLOCKER + ("import importlib.util\n"
                      f"spec = importlib.util.spec_from_file_location('m', {str(path)!r})\n"
                      "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
                      "print('imported')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.stdout.strip() == "imported", result.stderr
