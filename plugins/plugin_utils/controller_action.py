# Copyright: meshstage developers
# Apache License 2.0
"""The shape of meshstage's controller-only actions: arguments checked, one call into
module_utils, a ``MeshstageError`` turned into a failed task that says why.

An action declares ``ARGUMENT_SPEC`` and writes ``act``; the host is never contacted.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.meshstage.mesh.plugins.module_utils.collector import fewer_collections
from ansible_collections.meshstage.mesh.plugins.module_utils.errors import MeshstageError


class ControllerAction(ActionBase):
    """Base of an action that runs on the controller only."""

    TRANSFERS_FILES = False
    _requires_connection = False
    ARGUMENT_SPEC: dict[str, Any] = {}

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        try:
            with fewer_collections():  # a run's objects live until it ends (collector.py)
                return {**result, **self.act(args, task_vars or {})}
        except MeshstageError as error:
            return {**result, "failed": True, "msg": str(error)}

    def act(self, args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        """The task's result (merged over ActionBase's); a MeshstageError fails the task."""
        raise NotImplementedError
