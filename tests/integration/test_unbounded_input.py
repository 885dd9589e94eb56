"""Input that cannot be read is refused in one line, at once: ``meshstage check`` exits 2
without a traceback for every unreadable input, and YAML aliases that expand to billions of
nodes ("billion laughs") are refused in ``meshstage check`` and in inventories. Real
``meshstage`` and ``ansible-playbook`` processes; a timeout stands for "at once" (unbounded,
each of these ran for minutes or ran out of memory)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_migrate_playbook import playbook

pytestmark = pytest.mark.integration

MESHSTAGE = Path(sys.executable).parent / "meshstage"
REPO = Path(__file__).resolve().parents[2]


def laughs(levels: int, key: str = "laughs") -> str:
    """A document of 9**levels strings written in a few hundred bytes."""
    lines = ['_l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"_l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    lines.append(f"{key}: *l{levels - 1}")
    return "\n".join(lines) + "\n"


def check(*args: str, stdin: int | None = None,
          data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(MESHSTAGE), "check", *args], input=data, stdin=stdin,
                          capture_output=True, timeout=30, check=False)


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 2, result
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert result.stdout == b""
    return lines[0]


def test_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(laughs(10))  # 3.5 billion strings
    assert len(path.read_bytes()) < 1024
    line = one_line(check(str(path)))
    assert f"{path}: is not valid YAML: its aliases expand it to more than 1,000,000" in line
    line = one_line(check("-", data=path.read_bytes()))
    assert line.startswith("meshstage check: <stdin>: is not valid YAML: its aliases expand")


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [1, *a]\n")
    assert "contains itself (a recursive alias)" in one_line(check(str(path)))


def test_aliases_within_the_bound_are_read(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(laughs(3) + "---\n"
                    "apiVersion: v1\nkind: Namespace\nmetadata: &m {name: shop}\n")
    result = check(str(path))
    assert result.returncode == 0, result.stderr
    assert b"in 1 object(s)" in result.stderr


@pytest.mark.parametrize("case", ["closed stdin", "binary stdin", "empty stdin", "binary file",
                                  "fifo", "/dev/null"])
def test_every_unreadable_input_is_exit_2_and_one_line(tmp_path: Path, case: str) -> None:
    binary = Path(sys.executable).read_bytes()[:4096]
    if case == "closed stdin":
        result = subprocess.run([str(MESHSTAGE), "check", "-"], capture_output=True,
                                stdin=subprocess.DEVNULL, timeout=30, check=False,
                                preexec_fn=lambda: os.close(0))
        assert "<stdin>: is closed" in one_line(result)
    elif case == "binary stdin":
        assert "<stdin>: cannot be read as UTF-8 text" in one_line(check("-", data=binary))
    elif case == "empty stdin":
        assert "<stdin>: is empty" in one_line(check("-", data=b""))
    elif case == "binary file":
        (tmp_path / "ls.yaml").write_bytes(binary)
        assert "cannot be read as UTF-8 text" in one_line(check(str(tmp_path / "ls.yaml")))
    else:
        path = tmp_path / "pipe.yaml" if case == "fifo" else Path(case)
        if case == "fifo":
            os.mkfifo(path)
        assert f"{path}: is not a regular file or a directory" in one_line(check(str(path)))


def test_an_inventory_variable_that_expands_without_bound_is_refused(tmp_path: Path,
                                                                   crd_dir: Path) -> None:
    inventories = tmp_path / "inventories"
    shutil.copytree(REPO / "inventories", inventories, symlinks=True)
    host_vars = inventories / "dev" / "host_vars" / "dev.yml"
    host_vars.write_text(host_vars.read_text() + laughs(9, "mesh_promotion_order"))
    result = playbook(inventories / "dev", tmp_path / "gitops", crd_dir, expect_ok=False)
    assert "mesh_promotion_order: its aliases expand it to more than 1,000,000 values" \
        in result.stdout
    assert not (tmp_path / "gitops").exists()
