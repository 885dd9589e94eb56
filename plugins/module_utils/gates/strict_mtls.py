"""strict_mtls: refused while a workload in scope has no sidecar, or while Prometheus shows
plaintext requests into one during the window."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..intent.model import Intent
from ..plan.callers import (
    exception_of,
    has_sidecar,
    plaintext_ports,
    with_plaintext_exceptions,
)
from ..providers.registry import mesh
from ..stages import Stage
from .gate import PLAINTEXT, Evidence, Gate, Move, Target, Verdict, count, window_text


class StrictMtlsGate(Gate):
    """Judges the move that brings an environment to ``strict_mtls``. Under STRICT, a
    workload without a sidecar cannot present a certificate, and a plaintext request into a
    workload is refused. Services listed in ``mesh_mtls_exceptions`` are out of scope: they
    stay PERMISSIVE or DISABLE, visibly.

    A caller without a sidecar sends plaintext, which STRICT refuses at the callee before any
    policy is read (https://istio.io/latest/docs/concepts/security/#peer-authentication;
    Linkerd's ``all-authenticated`` likewise refuses requests without an identity). An
    exception on the caller changes nothing for its requests: an exception applies to the
    workload that receives them. So every declared call from a caller without a sidecar to a
    meshed callee must find the callee's ports open to plaintext: a PERMISSIVE (or DISABLE)
    exception on the callee or on its ports. meshstage renders one by default for the callees
    of callers that can never be meshed (``inject: false``, plain hosts: ``plan/callers.py``);
    a caller that will be meshed later (its wave is not injected yet) blocks until it is, or
    until its callees have exceptions of their own. Its ALLOW rules at ``authorization`` then
    admit such callers without an identity (by port, or by a host's address).

    Sidecars come from the cluster facts when the run gathered them (``mesh_cluster_facts``:
    every pod of the catalogue's namespaces), from the intent otherwise: services with
    ``inject: false``, services whose namespace is in a wave not injected yet, hosts whose
    wave is not injected yet. Plaintext comes from Prometheus over ``mesh_gates.window``:
    Istio's ``istio_requests_total`` (and TCP connections) with
    ``connection_security_policy!="mutual_tls"``, reported by the destination; each host
    sidecar's requests on its plaintext filter chain.

    Refuses::

        mesh_injected_waves: 1 of 2            (the second wave's services have no sidecar)
        host pay: 23 plaintext requests into payment-service in the last 1h
        batch (its wave not injected yet) calls payment-service, which has no exception

    Passes::

        every wave injected, no plaintext request into any workload in the last 1h
    """

    name = "strict_mtls"

    def applies(self, move: Move) -> bool:
        return move.crosses(Stage.STRICT_MTLS)

    def needs(self, move: Move) -> frozenset[str]:
        return frozenset({PLAINTEXT}) if move.intent.gates.observe else frozenset()

    def judge(self, move: Move, evidence: Evidence) -> Verdict:
        intent = move.intent
        excepted = {e.service for e in intent.mtls_exceptions}
        if evidence.facts is not None:
            blockers = _facts_without_sidecar(intent, evidence.facts, excepted)
            unmeshed = _apps_without_sidecar(intent, evidence.facts)
            source = "the cluster facts"
        else:
            blockers = _intent_without_sidecar(intent, excepted)
            unmeshed = {s.name for s in intent.services if not has_sidecar(intent, s)}
            source = "the intent (no cluster facts gathered)"
        refused_calls = _plaintext_calls(intent, unmeshed, excepted)
        blockers += refused_calls
        blockers += _hosts_without_sidecar(intent, excepted)  # hosts: the intent says
        summary = f"every workload in scope has a sidecar (from {source})"
        proceed = []
        if blockers:
            summary = f"workloads without a sidecar (from {source})"
            proceed.append("inject the workloads without a sidecar (and restart their pods: "
                           "playbooks/restart_waves.yml) or list them in mesh_mtls_exceptions")
        if refused_calls:
            proceed.append("for a caller without a sidecar, open its callee to plaintext: "
                           "mesh_mtls_exceptions {service: <callee>, mode: PERMISSIVE} (or its "
                           "ports); an exception on the caller changes nothing for its "
                           "requests")
        if not intent.gates.observe:
            summary += "; plaintext traffic not observed (mesh_gates.observe: false)"
        else:
            # callers the intent names without identity (the API server, ...) keep their
            # ports PERMISSIVE: plaintext into those workloads is expected
            declared = {e.service for e in intent.exemptions(scrapes_identity=False)}
            traffic, note = _plaintext(move, evidence, excepted | declared)
            if traffic:
                proceed.append("stop the plaintext callers or bring them into the mesh (or "
                               "list the workload in mesh_mtls_exceptions); then run again "
                               f"once {window_text(move)} shows no plaintext request")
            blockers += traffic
            summary += "; " + note
        return self.verdict(blockers, summary, "; ".join(proceed))


def _intent_without_sidecar(intent: Intent, excepted: set[str]) -> list[str]:
    """Services whose wave is not injected yet (a service with ``inject: false`` is out of
    the mesh by the intent: its callers send it plaintext, and its own calls are judged by
    ``_plaintext_calls``)."""
    blockers = []
    injected = set(intent.injected_namespaces())
    on_hosts = intent.host_services
    waves = {ns: wave.name for wave in intent.injection_waves for ns in wave.namespaces}
    held = {service.name for service in intent.held_back()}
    for service in intent.services:
        if service.name in excepted or service.name in on_hosts or not service.inject:
            continue
        where = f"Service {service.namespace}/{service.name}"
        if service.name in held:
            blockers.append(f"{where} waits for its wave {intent.wave_name(service)!r} "
                            f"(mesh_injected_waves: {intent.injected_waves} of "
                            f"{len(intent.injection_waves)}): its workloads have no sidecar")
        elif service.namespace not in injected:
            wave = waves.get(service.namespace)
            blockers.append(
                f"{where}: namespace {service.namespace} is "
                + (f"in wave {wave!r}, not injected yet (mesh_injected_waves: "
                   f"{intent.injected_waves} of {len(intent.injection_waves)})"
                   if wave else "in no injection wave") + ": its workloads have no sidecar")
    return blockers


def _apps_without_sidecar(intent: Intent, facts: Mapping[str, Any]) -> set[str]:
    """Catalogue services with pods that run without a sidecar, by the cluster facts (and
    those the intent opts out of injection)."""
    namespaces = facts.get("namespaces") or {}
    found = {s.name for s in intent.services if not s.inject}
    for entry in namespaces.values():
        found.update(str(app) for app in entry.get("apps_without_sidecar") or ())
    return found


def _plaintext_calls(intent: Intent, unmeshed: set[str], excepted: set[str]) -> list[str]:
    """Declared calls that STRICT would refuse: from a caller without a sidecar to a meshed
    callee whose ports are not open to plaintext (by its exception, the intent's or the one
    meshstage derives for callers that can never be meshed)."""
    effective = with_plaintext_exceptions(intent)
    on_hosts = intent.host_services
    blockers = []
    for caller in intent.services:
        if caller.name not in unmeshed or caller.name in on_hosts:
            continue
        for name in caller.calls:
            callee = intent.by_name.get(name)
            if callee is None or name in on_hosts or name in unmeshed:
                continue
            ports = list(callee.workload_ports())
            opened = plaintext_ports(exception_of(effective, callee), callee)
            closed = [port for port in ports if port not in opened]
            if not closed:
                continue
            note = (" (its own mesh_mtls_exceptions entry changes nothing for these requests:"
                    " an exception applies to the workload receiving them)"
                    if caller.name in excepted else "")
            blockers.append(
                f"Service {caller.namespace}/{caller.name} has no sidecar and calls "
                f"{callee.namespace}/{callee.name}, whose port(s) "
                f"{', '.join(map(str, closed))} go STRICT: its plaintext requests will be "
                f"refused{note}; give {callee.name} a PERMISSIVE exception (or its ports), or "
                f"inject {caller.name}")
    return blockers


def _hosts_without_sidecar(intent: Intent, excepted: set[str]) -> list[str]:
    blockers = []
    injected_hosts = {host.name for host in intent.injected_hosts()}
    for host in intent.hosts:
        if host.name not in injected_hosts and host.service not in excepted:
            blockers.append(f"host {host.name} ({host.service}): its wave {host.wave!r} is "
                            "not injected yet: it has no sidecar")
    return blockers


def _facts_without_sidecar(intent: Intent, facts: Mapping[str, Any],
                           excepted: set[str]) -> list[str]:
    blockers = []
    namespaces = facts.get("namespaces") or {}
    on_hosts = intent.host_services
    for namespace in sorted({s.namespace for s in intent.services
                             if s.name not in on_hosts}):
        entry = namespaces.get(namespace)
        if entry is None:
            blockers.append(f"Namespace {namespace}: the cluster facts do not list it "
                            "(gathered for another catalogue?): cannot tell its pods")
            continue
        every = list(entry.get("apps_without_sidecar") or ())
        apps = [a for a in every if a not in excepted]
        pods = list(entry.get("without_sidecar") or ())
        if apps:
            blockers.append(f"Namespace {namespace}: pods of app(s) {', '.join(apps)} run "
                            f"without a sidecar ({len(pods)} pod(s) without one in the "
                            f"namespace, e.g. Pod {namespace}/{pods[0]})")
        elif pods and not every:
            blockers.append(f"Namespace {namespace}: {len(pods)} pod(s) without a sidecar "
                            f"and without an app label, e.g. Pod {namespace}/{pods[0]}")
    return blockers


def _plaintext(move: Move, evidence: Evidence, excepted: set[str]) -> tuple[list[str], str]:
    """Blockers from the plaintext observed, and a note on what was seen."""
    intent = move.intent
    observed = evidence.observations
    if observed is None:
        return [f"plaintext traffic cannot be judged: {evidence.unobserved}"], \
            "plaintext traffic not observed"
    blockers = []
    unobservable = mesh(intent.provider).gates.plaintext
    if unobservable and any(s.name not in intent.host_services for s in intent.services):
        blockers.append(unobservable)
    if not observed.seen:
        blockers.append(f"Prometheus {observed.prometheus} shows no series for {move.environment}"
                        f" in {window_text(move)}: the gate cannot see its traffic (is the "
                        "observability stage's scrape configuration loaded?)")
    for flow in observed.plaintext:
        if flow.requests <= 0 or _excepted(flow.target, excepted):
            continue
        blockers.append(f"{flow.target}: {count(flow.requests)} plaintext request(s) in "
                        f"{window_text(move)}; under STRICT they would be refused")
    seen = len(observed.seen)
    return blockers, (f"plaintext into {seen} observed workload(s) and host(s) over "
                      f"{window_text(move)} (Prometheus {observed.prometheus})")


def _excepted(target: Target, excepted: set[str]) -> bool:
    return target.service in excepted or target.name in excepted
