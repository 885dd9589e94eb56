"""The one exception root of meshstage, and its kinds.

Every error names where it happened: the intent field path and value, the rendered object
(``Kind namespace/name``), or the file. Modules and action plugins catch ``MeshstageError``
once and turn it into a failed result with ``str(error)`` as the message.
"""

from __future__ import annotations

from typing import Any


class MeshstageError(Exception):
    """Root of every error meshstage raises on purpose."""


def describe_value(value: Any) -> str:
    """Show a bad value the way the user wrote it, short enough for one line."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (dict, list)):
        text = type(value).__name__ + " " + repr(value)
    else:
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class IntentError(MeshstageError):
    """A wrong intent: names the field path and the bad value.

    ``str()`` reads like ``mesh_services[3].canary.weight: 110 is over 100``.
    """

    def __init__(self, path: str, value: Any, problem: str) -> None:
        self.path = path
        self.value = value
        self.problem = problem
        super().__init__(f"{path}: {describe_value(value)} {problem}")


class IntentErrors(MeshstageError):
    """Several intent errors found in one pass, reported together."""

    def __init__(self, errors: list[IntentError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  - {error}" for error in errors)
        super().__init__(f"the intent has {len(errors)} error(s):\n{lines}")


class RenderError(MeshstageError):
    """A template could not be rendered, or its output is not one YAML object."""


class SchemaError(MeshstageError):
    """Rendered objects that do not validate against their schemas."""

    def __init__(self, violations: list[str]) -> None:
        self.violations = violations
        lines = "\n".join(f"  - {violation}" for violation in violations)
        super().__init__(f"{len(violations)} schema violation(s):\n{lines}")


class GitOpsError(MeshstageError):
    """The GitOps repository cannot be written or committed as asked."""


class AnalysisError(MeshstageError):
    """Rendered objects that the analyzers find wrong (at least one Error finding)."""

    def __init__(self, where: str, findings: list[str]) -> None:
        self.findings = findings
        lines = "\n".join(f"  - {finding}" for finding in findings)
        super().__init__(f"{where}: the analyzers found {len(findings)} error(s) in the "
                         f"rendered objects (docs/analyzers.md explains each code):\n{lines}")


class FlowProofError(MeshstageError):
    """Requests that work now and would stop after the run: each names the flow, the object
    that would stop it and the fix (the flow proof, ``flows/``)."""

    def __init__(self, where: str, breaks: list[str]) -> None:
        self.breaks = breaks
        lines = "\n".join(f"  - {line}" for line in breaks)
        super().__init__(f"{where}: the flow proof refuses the change: {len(breaks)} "
                         f"request flow(s) that work now would stop; nothing was written:\n"
                         f"{lines}")
