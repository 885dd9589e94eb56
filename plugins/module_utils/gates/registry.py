"""Every stage gate, registered by name in one explicit mapping, in the order they judge."""

from __future__ import annotations

from collections.abc import Mapping

from .authorization import AuthorizationGate
from .gate import Gate
from .order import OrderGate
from .strict_mtls import StrictMtlsGate

GATES: Mapping[str, Gate] = {
    OrderGate.name: OrderGate(),
    StrictMtlsGate.name: StrictMtlsGate(),
    AuthorizationGate.name: AuthorizationGate(),
}
