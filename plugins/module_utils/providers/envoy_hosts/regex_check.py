"""Header regexes compiled by the real Envoy, as its RE2 engine compiles them: for the
services of a cluster (Istio hands a VirtualService's ``regex`` to Envoy's ``safe_regex``,
"RE2 style regex-based match", https://istio.io/latest/docs/reference/config/networking/
virtual-service/#StringMatch; Linkerd's proxy uses Rust's regex crate, the same dialect: no
look-around, no back-references), as the host sidecars' files are (``validate.py``).

One ``envoy --mode validate`` of a bootstrap whose routes match every regex; only when it
refuses is each regex compiled alone, to name the ones Envoy refuses."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...hosts.envoy_validate import EnvoyConfigError, run_validate

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3." \
    "HttpConnectionManager"
# what Envoy says before its reason, naming the throwaway file
_INITIALIZING = re.compile(r"error initializing configuration '[^']*': ")
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def _bootstrap(regexes: list[str]) -> dict[str, Any]:
    """A bootstrap with one listener whose routes each match one header by one regex."""
    routes = [{"match": {"prefix": "/", "headers": [
        {"name": "x-check", "string_match": {"safe_regex": {"regex": regex}}}]},
        "direct_response": {"status": 200}} for regex in regexes]
    manager = {"@type": _HCM, "stat_prefix": "regex_check",
               "http_filters": [{"name": "envoy.filters.http.router",
                                 "typed_config": {"@type": _ROUTER}}],
               "route_config": {"virtual_hosts": [{"name": "check", "domains": ["*"],
                                                   "routes": routes}]}}
    return {
        # only the dialect is judged: no program-size limit (each mesh sets its own)
        "layered_runtime": {"layers": [{"name": "static", "static_layer": {
            "re2.max_program_size.error_level": 1 << 30}}]},
        "static_resources": {"listeners": [{
            "name": "regex_check",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": manager}]}]}]},
    }


def _refusal(regexes: list[str], envoy: str) -> str | None:
    """Envoy's words when it refuses one of ``regexes``, else None."""
    with tempfile.TemporaryDirectory(prefix="meshstage-regex-check-") as temp:
        path = Path(temp) / "bootstrap.json"
        path.write_text(json.dumps(_bootstrap(regexes)))
        try:
            run_validate(envoy, path)
        except EnvoyConfigError as error:
            return _INITIALIZING.sub("", str(error).removeprefix(
                "envoy --mode validate refused it: "))
    return None


def refused_regexes(regexes: Mapping[str, str], envoy: str) -> dict[str, str]:
    """Field path -> Envoy's refusal, for each regex of ``regexes`` (path -> regex) that
    Envoy's RE2 does not compile."""
    if not regexes or _refusal(sorted(set(regexes.values())), envoy) is None:
        return {}
    refused: dict[str, str] = {}
    for regex in sorted(set(regexes.values())):
        problem = _refusal([regex], envoy)
        if problem is not None:
            refused.update({path: problem for path, value in regexes.items()
                            if value == regex})
    return refused
