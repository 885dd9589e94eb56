"""Reading Prometheus: the one client the live gates and the canary analysis query through.

``PrometheusClient(url).query(promql, at=None)`` runs an instant query against Prometheus'
HTTP API (``/api/v1/query``) and returns its samples as plain ``Sample`` values (labels and
a float); a range query is ``query_range``. Every failure (unreachable server, HTTP error,
a query Prometheus refuses, a result that is not a vector) is a ``PrometheusError`` naming
the server and the query, so a gate that cannot see its data stops the run and says why
instead of passing.

Only the standard library is used (``urllib``); nothing here writes anywhere.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import MeshstageError


class PrometheusError(MeshstageError):
    """Prometheus could not answer a query: the gate or the analysis cannot decide."""


@dataclass(frozen=True)
class Sample:
    """One series of a query's result: its labels and its value (the last, for a range)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    value: float = 0.0
    values: tuple[tuple[float, float], ...] = ()  # (timestamp, value), range queries only


def _number(text: Any, where: str) -> float:
    try:
        return float(text)  # Prometheus writes "NaN", "+Inf", "-Inf" as strings too
    except (TypeError, ValueError) as error:
        raise PrometheusError(f"{where}: the value {text!r} is not a number") from error


class PrometheusClient:
    """Instant and range queries against one Prometheus server."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PrometheusError(f"Prometheus URL {url!r} is not an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """The instant vector (or scalar) ``promql`` evaluates to, at ``at`` or now."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params, promql)
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list) and len(result) == 2:
            return [Sample({}, _number(result[1], self._where(promql)))]
        if kind != "vector" or not isinstance(result, list):
            raise PrometheusError(f"{self._where(promql)}: expected an instant vector, "
                                  f"got {kind!r}")
        return [Sample(dict(item.get("metric") or {}),
                       _number((item.get("value") or [None, None])[1], self._where(promql)))
                for item in result]

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Sample]:
        """The range vector of ``promql`` from ``start`` to ``end`` every ``step`` seconds."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
                  "step": f"{step:g}"}
        data = self._get("/api/v1/query_range", params, promql)
        if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
            raise PrometheusError(f"{self._where(promql)}: expected a range vector, "
                                  f"got {data.get('resultType')!r}")
        samples = []
        for item in data["result"]:
            values = tuple((float(ts), _number(v, self._where(promql)))
                           for ts, v in item.get("values") or [])
            samples.append(Sample(dict(item.get("metric") or {}),
                                  values[-1][1] if values else math.nan, values))
        return samples

    def scalar(self, promql: str, at: float | None = None, default: float | None = None
               ) -> float:
        """The single value of ``promql``; ``default`` when the result is empty."""
        samples = self.query(promql, at)
        if not samples:
            if default is None:
                raise PrometheusError(f"{self._where(promql)}: no data")
            return default
        if len(samples) > 1:
            raise PrometheusError(f"{self._where(promql)}: {len(samples)} series, expected one "
                                  "(aggregate it, e.g. with sum())")
        return samples[0].value

    def _where(self, promql: str) -> str:
        return f"Prometheus {self.url}, query {promql!r}"

    def _get(self, path: str, params: Mapping[str, str], promql: str) -> dict[str, Any]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            body = error.read()
            detail = _error_text(body) or f"HTTP {error.code}"
            raise PrometheusError(f"{self._where(promql)}: {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise PrometheusError(f"{self._where(promql)}: cannot reach it ({reason})") \
                from error
        try:
            document = json.loads(body)
        except ValueError as error:
            raise PrometheusError(f"{self._where(promql)}: the answer is not JSON") from error
        if document.get("status") != "success":
            raise PrometheusError(f"{self._where(promql)}: "
                                  f"{document.get('error') or 'the query failed'}")
        data = document.get("data")
        if not isinstance(data, dict):
            raise PrometheusError(f"{self._where(promql)}: the answer has no data")
        return data


def _error_text(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if isinstance(document, dict) and document.get("error"):
        return f"{document.get('errorType', 'error')}: {document['error']}"
    return None
