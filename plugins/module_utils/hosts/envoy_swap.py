"""Swapping a host sidecar's configuration in, on the host: check first, then rename.

Runs inside the ``envoy_config`` module on the host, with the standard library only. Every
new file is written to ``<dest>/.staged/``; the validation bootstrap (built on the
controller, see ``providers/envoy_hosts/validate.py``) is checked with the host's own
``envoy --mode validate``; only then are the changed files renamed into place, in the order
that keeps the running Envoy consistent: secrets, then clusters, then listeners, then the
bootstrap (which only a restart reads). Envoy watches the LDS, CDS and SDS files for moves,
so it picks each one up whole.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from .._io import atomic_write
from .envoy_validate import STAGED, run_validate

# clusters before the listeners that route to them; the bootstrap last
SWAP_ORDER = ("sds-trust.yaml", "sds-identity.yaml", "cds.yaml", "lds.yaml", "bootstrap.yaml")


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def changed_files(dest: Path, files: Mapping[str, str]) -> list[str]:
    """Names whose bytes differ from what ``dest`` holds, in swap order."""
    changed = []
    for name in sorted(files, key=lambda n: (SWAP_ORDER.index(n) if n in SWAP_ORDER
                                             else len(SWAP_ORDER), n)):
        try:
            current = (dest / name).read_text()
        except OSError:
            current = None
        if current != _with_newline(files[name]):
            changed.append(name)
    return changed


def swap_in(dest: Path, files: Mapping[str, str], validation_config: str, envoy: str,
            changed: list[str], validate: bool = True) -> None:
    """Stage every file, check them with Envoy, then rename the changed ones into place."""
    staged = dest / STAGED
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(mode=0o700, parents=True)
    try:
        for name, text in files.items():
            atomic_write(staged / name, _with_newline(text), 0o644, make_dirs=False)
        if validate:
            (staged / "validate.json").write_text(validation_config)
            run_validate(envoy, staged / "validate.json")
        for name in changed:
            os.replace(staged / name, dest / name)
        fd = os.open(dest, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
