"""A flow: one kind of request the estate makes, and what the mesh's configuration does to it.

A ``Flow`` has a source (``Peer``: a workload, a plain host, a gateway, the kubelet,
Prometheus, a client outside the cluster), a destination (``Destination``: a workload or a
plain host, and the port its pods receive on), a protocol, the request when it is known
(a probe's path), and where it comes from (``origin``: declared ``calls``, ``ingress``
through a gateway or an ingress controller, a kubelet ``probe``, a Prometheus ``scrape``, an
``observed`` edge, the API server calling a ``webhook``, a StatefulSet's ``peers``).

A ``Verdict`` says what the flow's requests get through a configuration: through
(``ok``), refused at the connection (``reset``), or refused by policy (``403``, or ``404``
where no route admits them), the object that decides, and the fix when they are refused.
A verdict is ``partial`` when some requests of a flow whose request is not known get
through and some do not (an ALLOW that names methods or paths).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ORIGINS: tuple[str, ...] = ("calls", "ingress", "probe", "scrape", "observed", "webhook",
                            "peers")

# What the request gets: through, reset (connection refused, reset or TLS failure),
# an HTTP denial, or nothing to judge (the destination has no proxy to scrape, say).
OK, RESET, FORBIDDEN, NO_ROUTE, NOT_APPLICABLE = "ok", "reset", "403", "404", "n/a"


@dataclass(frozen=True)
class Peer:
    """Who sends a flow's requests.

    ``kind``: ``workload`` (pods of the estate), ``host`` (a plain host), ``gateway`` (an
    ingress gateway's proxy), ``kubelet``, ``prometheus``, ``external`` (a client outside
    the cluster), ``ingress-controller`` or ``apiserver`` (the Kubernetes API server calling
    an admission webhook). ``proxy`` is what is known of its proxy without
    the mesh's configuration: True or False, or None when the mesh's injection decides.
    """

    kind: str
    namespace: str
    name: str
    service_account: str = ""
    service: str | None = None
    proxy: bool | None = None
    address: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    workload: Any = field(default=None, compare=False, repr=False)  # estate Workload

    def __str__(self) -> str:
        if self.kind in ("kubelet", "external", "ingress-controller", "apiserver") \
                or not self.namespace:
            return self.name
        if self.kind == "host":
            return f"host {self.name}"
        return f"{self.namespace}/{self.name}"

    @property
    def identity(self) -> str:
        """``namespace/account``: who the mesh would say the peer is, when it has a proxy."""
        return f"{self.namespace}/{self.service_account}" if self.service_account else ""


@dataclass(frozen=True)
class Destination:
    """Where a flow's requests arrive: a workload's pods (``workload``), or a plain host's
    sidecar (``host``), on ``port``: the container port, or the host's inbound port."""

    kind: str
    namespace: str
    name: str
    port: int
    service: str | None = None         # the Service (or catalogue service) it is called as
    service_port: int | None = None    # the Service port the caller addresses
    port_name: str | None = None
    workload: Any = field(default=None, compare=False, repr=False)  # estate Workload
    host: Any = field(default=None, compare=False, repr=False)      # intent MeshHost

    def __str__(self) -> str:
        where = f"host {self.name}" if self.kind == "host" else f"{self.namespace}/{self.name}"
        return f"{where}:{self.port}"


@dataclass(frozen=True)
class Request:
    """One request, when the flow's request is known (a probe's): method and path."""

    method: str
    path: str


@dataclass(frozen=True)
class Flow:
    source: Peer
    destination: Destination
    protocol: str                    # http | http2 | grpc | tcp | tls
    origin: str                      # one of ORIGINS
    request: Request | None = None   # None: whatever the caller sends
    via: str = ""                    # what declares it: an intent field, a probe, a route
    # how the caller addresses the destination: through its Service ("service"), or the
    # pod's own address ("pod": StatefulSet peers by pod DNS name, Prometheus, an ingress
    # controller that sends to the endpoints)
    addressed: str = "service"

    def __str__(self) -> str:
        called = self.destination.service or self.destination.name
        request = f" {self.request.method} {self.request.path}" if self.request else ""
        return (f"{self.source} -> {called} ({self.destination}) {self.protocol}{request} "
                f"[{self.origin}{': ' + self.via if self.via else ''}]")

    def key(self) -> tuple[Any, ...]:
        return (self.origin, str(self.source), self.destination.namespace,
                self.destination.name, self.destination.port, self.protocol,
                self.request, self.via)


@dataclass(frozen=True)
class Verdict:
    """What a flow's requests get through one configuration."""

    outcome: str          # OK, RESET, FORBIDDEN, NO_ROUTE or NOT_APPLICABLE
    reason: str           # one sentence: why
    by: str = ""          # the object that decides ("AuthorizationPolicy ns/name"), if any
    fix: str = ""         # how to make it work, when it does not
    rule: str = ""        # the evaluator rule that decided
    partial: str = ""     # some requests only: which ones get through
    routing: str = ""     # a route rule of the destination that does not shape the flow

    @property
    def allowed(self) -> bool:
        return self.outcome in (OK, NOT_APPLICABLE)

    def short(self) -> str:
        """``allowed`` / ``partly: ...`` / ``refused (403)`` for a table cell."""
        if self.outcome == NOT_APPLICABLE:
            return "not applicable"
        if self.allowed:
            return f"partly: {self.partial}" if self.partial else "allowed"
        return f"refused ({self.outcome})"

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "allowed": self.allowed, "reason": self.reason,
                "by": self.by, "fix": self.fix, "rule": self.rule, "partial": self.partial,
                "routing": self.routing}


def allowed(reason: str, by: str = "", partial: str = "") -> Verdict:
    return Verdict(OK, reason, by, partial=partial)


def refused(outcome: str, reason: str, by: str = "", fix: str = "") -> Verdict:
    return Verdict(outcome, reason, by, fix)
