"""The six mesh stages, in the order a migration walks them.

Stages are cumulative: an environment at stage N carries everything of stages 1..N, later
stages replacing earlier ones where they overlap (STRICT replaces PERMISSIVE).
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """One stage of a migration; its order is its position here."""

    PERMISSIVE_MTLS = "permissive_mtls"
    INJECTION = "injection"
    OBSERVABILITY = "observability"
    TRAFFIC = "traffic"
    STRICT_MTLS = "strict_mtls"
    AUTHORIZATION = "authorization"

    @property
    def number(self) -> int:
        """1-based position: permissive_mtls is 1, authorization is 6."""
        return _NUMBERS[self]

    @property
    def folder(self) -> str:
        """The stage's folder in an environment's tree, e.g. ``04-traffic``."""
        return f"{self.number:02d}-{self.value.replace('_', '-')}"

    def reached(self, other: Stage) -> bool:
        """True when an environment at this stage carries ``other``'s objects."""
        return other.number <= self.number


_NUMBERS: dict[Stage, int] = {stage: index for index, stage in enumerate(Stage, start=1)}

STAGE_NAMES: tuple[str, ...] = tuple(stage.value for stage in Stage)

STAGE_PURPOSE: dict[Stage, str] = {
    Stage.PERMISSIVE_MTLS: "accept both plaintext and mTLS everywhere, so nothing breaks",
    Stage.INJECTION: "inject sidecars namespace by namespace, in waves",
    Stage.OBSERVABILITY: "metrics, tracing and access logs before any behaviour changes",
    Stage.TRAFFIC: "canaries, header routes, timeouts, retries, pools, outlier detection",
    Stage.STRICT_MTLS: "require mTLS, with explicit, visible exceptions",
    Stage.AUTHORIZATION: "ALLOW rules per service, explicit DENY rules, then default deny",
}


def stages_through(stage: Stage) -> list[Stage]:
    """Every stage an environment at ``stage`` carries, in order."""
    return [each for each in Stage if stage.reached(each)]
