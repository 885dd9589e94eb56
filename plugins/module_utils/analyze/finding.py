"""What an analysis reports: findings (code, level, resource, one sentence) and notes.

A finding is plain data. Its text form is the line ``meshstage check`` prints::

    Error IST0101 VirtualService bookinfo/reviews: Referenced host not found: 'reviewz'.
    (spec.http[0].route[0].destination.host)

(one line; broken here to fit).

A note says what could not be checked, and why (``Unchecked``): a reference to a kind the
input holds no object of is not reported as missing unless the input is declared complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Level(Enum):
    """How bad a finding is; an Error stops a run, a Warning is written to the runbook."""

    ERROR = "Error"
    WARNING = "Warning"
    INFO = "Info"

    @property
    def rank(self) -> int:
        """0 for Error, 1 for Warning, 2 for Info: the order findings are listed in."""
        return list(Level).index(self)


@dataclass(frozen=True)
class Finding:
    code: str          # IST0101 (upstream Istio code) or MST0101 (meshstage's own)
    level: Level
    resource: str      # "Kind namespace/name", or "Kind name" without a namespace
    message: str       # one sentence
    analyzer: str      # the analyzer's registered name
    path: str = ""     # field path in the resource, e.g. spec.http[0].route[0].destination.host
    source: str = ""   # where the resource was read from: file, or file#document
    # the object itself, for the analysis to drop findings on context objects
    subject: Any = field(default=None, compare=False, repr=False)

    def line(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{self.level.value} {self.code} {self.resource}: {self.message}{where}"

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level.value, "code": self.code, "resource": self.resource,
                "message": self.message, "analyzer": self.analyzer, "path": self.path,
                "source": self.source}


@dataclass(frozen=True)
class Unchecked:
    """Something an analyzer did not check because the input cannot tell."""

    analyzer: str
    what: str          # "destination hosts"
    missing: str       # "no Service or ServiceEntry in the input"

    def line(self) -> str:
        return f"not checked by {self.analyzer}: {self.what} ({self.missing})"
