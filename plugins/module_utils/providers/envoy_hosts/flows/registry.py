"""The host sidecars' flow rules, in order, and the evaluator they make."""

from __future__ import annotations

from collections.abc import Mapping

from ....flows.evaluate import FlowEvaluator, FlowRule
from .listener import HostListener
from .rbac import HostRbac
from .sidecars import HostOutbound, HostSidecars
from .view import HostView

RULES: Mapping[str, FlowRule] = {rule.name: rule for rule in (
    HostSidecars(), HostOutbound(), HostListener(), HostRbac())}

HOST_FLOWS = FlowEvaluator(name="envoy", rules=RULES, prepare=HostView)
