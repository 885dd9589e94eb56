"""Injection waves proposed from the call graph and the injection risk of the workloads.

Leaves first: a namespace (or, for an application that lives in one namespace, a service)
that calls no other goes in the first wave, and each wave after holds what calls only
what earlier waves hold (a cycle of calls stays together). A caller injected before its
callees would send mTLS-capable requests to uninjected servers, which works while the mesh
is permissive but leaves the riskiest moves for last; leaves first keeps each wave's blast
radius to what it serves. Workloads that are riskier to inject wait one wave more, with the
reason: Jobs and CronJobs (an injected job's pod does not complete while the proxy runs,
https://istio.io/latest/docs/ops/common-problems/injection/ and Linkerd's
https://linkerd.io/2-edge/tasks/graceful-shutdown/#slow-updating-clients), StatefulSets
(peers that talk pod to pod), DaemonSets (node agents), and ports whose protocol is a
server-first one (MySQL, SMTP, NATS) or whose clients hold their connections open (AMQP,
Kafka, PostgreSQL and memcached pools). A server-first server waits for every wave of its
callers, too: Istio's PERMISSIVE mode tells mTLS from plaintext by the client's first bytes,
which a server-first protocol's client does not send, so a server injected before its
callers stalls their plaintext connections, while callers injected first send it mTLS
(client first) once it is injected ("Server First Protocols",
https://istio.io/latest/docs/ops/deployment/application-requirements/#server-first-protocols).
Namespaces the estate has injected already are the first wave, and the environment starts
with it injected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..intent.model import SERVER_FIRST_PROTOCOLS
from .draft import Draft, ServiceDraft

_RISKY_KINDS = {"Job": "a Job", "CronJob": "a CronJob", "StatefulSet": "a StatefulSet",
                "DaemonSet": "a DaemonSet"}
SERVER_FIRST = "a server-first protocol"  # the risk's words, which order it after its callers
# clients that hold their connections open for long: the proxies' restart or protocol
# detection reaches them mid-connection; ordered after their callers too
LONG_LIVED = "whose clients hold their connections open"
_HOW_LONG = {False: "a wave", True: "for its callers' waves"}
_SERVER_FIRST = ("MySQL", "SMTP", "NATS")
# PostgreSQL and memcached clients speak first, and pool their connections
_LONG_LIVED = ("AMQP", "ZooKeeper", "Kafka", "Cassandra", "PostgreSQL", "memcached")
_POOLED = {"POSTGRESQL": "PostgreSQL", "MEMCACHED": "memcached"}


@dataclass(frozen=True)
class ProposedWave:
    name: str
    namespaces: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    why: str = ""


def risk(service: ServiceDraft) -> str | None:
    """Why injecting the service is riskier than most, or None."""
    for group in service.workloads:
        if group.root.resource.kind in _RISKY_KINDS:
            return f"{group.display} is {_RISKY_KINDS[group.root.resource.kind]}"
    for number, port in enumerate(service.fields.get("ports") or []):
        if port.get("protocol") in _POOLED:
            return f"port {port['port']} speaks {_POOLED[port['protocol']]}, {LONG_LIVED}"
        if port.get("protocol") in SERVER_FIRST_PROTOCOLS:
            return f"port {port['port']} speaks {port['protocol']}, {SERVER_FIRST}"
        notes = " ".join(service.notes.get(f"ports[{number}]", []))
        hit = next((what for what in _SERVER_FIRST if what in notes), None)
        if hit:
            return f"port {port['port']} speaks {hit}, {SERVER_FIRST}"
        # AMQP, Kafka, ZooKeeper and Cassandra clients speak first, but keep connections
        hit = next((what for what in _LONG_LIVED if what in notes), None)
        if hit:
            return f"port {port['port']} speaks {hit}, {LONG_LIVED}"
    return None


def levels(nodes: Sequence[str], edges: Mapping[str, set[str]]) -> dict[str, int]:
    """0 for a node that calls no other node; else one more than the deepest node it calls.
    The nodes of a cycle share a level (their strongly connected component, Kosaraju's two
    passes, without recursion)."""
    order: list[str] = []
    seen: set[str] = set()
    for start in nodes:
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(sorted(edges.get(start, ()))))]
        while stack:
            node, rest = stack[-1]
            nxt = next((o for o in rest if o not in seen), None)
            if nxt is None:
                stack.pop()
                order.append(node)
            else:
                seen.add(nxt)
                stack.append((nxt, iter(sorted(edges.get(nxt, ())))))
    reverse: dict[str, set[str]] = {}
    for node in nodes:
        for other in edges.get(node, ()):
            reverse.setdefault(other, set()).add(node)
    component: dict[str, int] = {}
    members: list[list[str]] = []
    for start in reversed(order):
        if start in component:
            continue
        component[start] = len(members)
        found, todo = [start], [start]
        while todo:
            for other in reverse.get(todo.pop(), ()):
                if other not in component:
                    component[other] = len(members)
                    found.append(other)
                    todo.append(other)
        members.append(found)
    depth: dict[int, int] = {}
    for number in reversed(range(len(members))):  # callees' components have higher numbers
        callees = {component[o] for m in members[number] for o in edges.get(m, ())
                   if o in component} - {number}
        depth[number] = 1 + max((depth[c] for c in callees), default=-1)
    return {node: depth[component[node]] for node in nodes}


def propose_waves(draft: Draft) -> tuple[list[ProposedWave], int]:
    """The waves, and how many of them (from the first) the estate has injected already.
    A service kept out of the mesh (``inject: false``) is in none: a namespace all of whose
    services are kept out gets no wave, so its Namespace is never labelled for injection
    over the estate's own opt-out."""
    services = [s for s in draft.services.values() if s.fields.get("inject") is not False]
    namespaces = sorted({s.namespace for s in services})
    if not namespaces:
        return [], 0
    injected = [ns for ns in namespaces if ns in draft.injected]
    waves: list[ProposedWave] = []
    if injected:
        waves.append(ProposedWave("injected", tuple(injected), why="injected in the estate "
                                  "already: " + "; ".join(draft.injected[ns] for ns in injected)))
    rest = [s for s in services if s.namespace not in injected]
    edges: dict[str, set[str]] = {}
    risky: dict[str, str | None] = {}
    if len(namespaces) == 1 and rest:
        nodes = [s.name for s in rest]
        edges = {s.name: {c for c in s.calls if c in nodes} for s in rest}
        risky = {s.name: risk(s) for s in rest}
        waves += _by_level(nodes, edges, risky, by_service=True)
    elif rest:
        nodes = sorted({s.namespace for s in rest})
        for service in rest:
            edges.setdefault(service.namespace, set()).update(
                draft.services[c].namespace for c in service.calls
                if c in draft.services and draft.services[c].namespace in nodes
                and draft.services[c].namespace != service.namespace)
            risky[service.namespace] = risky.get(service.namespace) or risk(service)
        waves += _by_level(nodes, edges, risky, by_service=False)
    return waves, 1 if injected else 0


def _after(why: str | None) -> bool:
    """True when the risk orders the node after its callers (not only a wave later)."""
    return bool(why) and (SERVER_FIRST in str(why) or LONG_LIVED in str(why))


def _after_callers(depth: dict[str, int], edges: Mapping[str, set[str]],
                   servers: Sequence[str]) -> None:
    """Move each server-first node to a wave after every node that calls it (a chain of
    them in turn; a cycle of calls moves no further than one pass per node)."""
    callers: dict[str, list[str]] = {}
    for node, callees in edges.items():
        for callee in callees:
            if callee != node:
                callers.setdefault(callee, []).append(node)
    for _ in range(len(depth)):
        moved = False
        for server in servers:
            after = 1 + max((depth[c] for c in callers.get(server, ()) if c in depth),
                            default=-1)
            if after > depth[server]:
                depth[server], moved = after, True
        if not moved:
            return


def _by_level(nodes: list[str], edges: Mapping[str, set[str]],
              risky: Mapping[str, str | None], by_service: bool) -> list[ProposedWave]:
    depth = levels(nodes, edges)
    for node, why in risky.items():
        if why:
            depth[node] += 1
    _after_callers(depth, edges, [n for n, why in risky.items() if _after(why)])
    waves: list[ProposedWave] = []
    what = "service" if by_service else "namespace"
    for level in sorted(set(depth.values())):
        members = tuple(sorted(n for n in nodes if depth[n] == level))
        reasons = []
        calm = [n for n in members if not risky.get(n)]
        leaves = [n for n in calm if not edges.get(n, set()) - {n}]
        beside = {n: sorted(c for c in edges.get(n, ()) if c != n and depth.get(c) == level)
                  for n in calm}
        if leaves:
            reasons.append(f"no call to another {what} of the catalogue found")
        if [n for n in calm if n not in leaves and not beside[n]]:
            reasons.append("calls only what the waves before it hold")
        reasons += [f"{n} calls {', '.join(found)} of this wave too" for n, found in
                    beside.items() if found]
        reasons += [(f"{n} waits {_HOW_LONG[_after(risky[n])]}: {risky[n]}" if waves else
                     f"{n} goes first though {risky[n]}: nothing of the catalogue could "
                     "go before it") for n in members if risky.get(n)]
        name = f"wave-{len(waves) + 1}"
        waves.append(ProposedWave(name, services=members, why="; ".join(reasons))
                     if by_service else ProposedWave(name, namespaces=members,
                                                     why="; ".join(reasons)))
    return waves
