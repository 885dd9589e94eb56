"""Each action's argument spec is what its documentation says: the same options, each with
the same type, elements, default, choices and requiredness, as ``ansible-doc`` shows them
(doc fragments included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ACTIONS = sorted(path.stem for path in (REPO / "plugins" / "action").glob("*.py"))

# Loads every action plugin through Ansible's collection loader and prints its ARGUMENT_SPEC.
SPECS = """
import importlib, json, sys
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[sys.argv[1]])._install()
specs = {}
for name in sys.argv[2:]:
    module = importlib.import_module(f"ansible_collections.meshstage.mesh.plugins.action.{name}")
    specs[name] = module.ARGUMENT_SPEC
print(json.dumps(specs, default=list))
"""
KEYS = ("type", "elements", "default", "choices", "required")


def _normal(option: dict[str, Any]) -> dict[str, Any]:
    found = {key: option.get(key) for key in KEYS}
    found["type"] = found["type"] or "str"
    found["required"] = bool(found["required"])
    return found


@pytest.fixture(scope="module")
def specs() -> dict[str, dict[str, Any]]:
    collections = REPO / "build" / "collections"
    result = subprocess.run([str(BIN / "python"), "-c", SPECS, str(collections), *ACTIONS],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    result = subprocess.run([str(BIN / "ansible-doc"), "--json",
                             *(f"meshstage.mesh.{name}" for name in ACTIONS)],
                            capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout)


def test_every_action_has_a_documented_module():
    modules = {path.stem for path in (REPO / "plugins" / "modules").glob("*.py")}
    assert set(ACTIONS) <= modules


@pytest.mark.parametrize("action", ACTIONS)
def test_the_argument_spec_equals_the_documentation(action, specs, docs):
    documented = docs[f"meshstage.mesh.{action}"]["doc"].get("options") or {}
    spec = specs[action]
    assert sorted(spec) == sorted(documented), "options differ"
    for name, option in spec.items():
        assert _normal(option) == _normal(documented[name]), f"option {name}"
