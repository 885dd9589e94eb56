"""Checking a host sidecar's files with the host's own Envoy: ``envoy --mode validate``.

Standard library only: it runs inside the ``envoy_config`` module on the host, and on the
controller before anything is written (``providers/envoy_hosts/validate.py``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import MeshstageError

LDS = "lds.yaml"
CDS = "cds.yaml"
BOOTSTRAP = "bootstrap.yaml"
# Where the host module stages new files before they are checked and swapped in.
STAGED = ".staged"
VALIDATE_TIMEOUT = 120


class EnvoyConfigError(MeshstageError):
    """Envoy refused a host sidecar's configuration, or cannot be run to check it."""


def run_validate(envoy: str, config_path: Path) -> None:
    """``envoy --mode validate -c <config>``; raises with Envoy's own words when refused."""
    try:
        result = subprocess.run(
            [envoy, "--mode", "validate", "--log-level", "error", "-c", str(config_path)],
            capture_output=True, text=True, timeout=VALIDATE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise EnvoyConfigError(f"cannot run {envoy} --mode validate: {error}") from error
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines()
                 if "critical" in line or "error" in line] or \
            (result.stderr + result.stdout).splitlines()[-5:]
        raise EnvoyConfigError("envoy --mode validate refused it: " + " | ".join(
            line.split("] ", 3)[-1] for line in lines[-3:]))
