# Copyright: meshstage developers
# Apache License 2.0
"""Capabilities of the actions that only read: the same in check mode, nothing to diff."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Read-only in any mode.
  diff_mode:
    support: none
    description: Nothing changes.
"""
