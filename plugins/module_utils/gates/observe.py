"""What Prometheus observed over the gates' window: the only part of the gates that queries.

``observe(client, intent, needs)`` runs the PromQL below for one environment and returns
plain ``Observations``. Istio workloads are read from Istio's standard metrics and the
sidecars' Envoy RBAC stats; plain hosts from their sidecars' Envoy stats, whose scrape job
labels them ``mesh_environment``, ``mesh_host``, ``mesh_service`` and ``mesh_namespace``
(docs/architecture.md, "Stat prefixes"):

==============  ===========================================================================
plaintext       Istio: ``istio_requests_total`` and ``istio_tcp_connections_opened_total``,
                ``reporter="destination"``, ``connection_security_policy!="mutual_tls"``, by
                destination workload. Hosts: ``envoy_http_downstream_rq_total`` of the
                ``inbound_plaintext`` filter chain, by host.
dry run         Istio: ``envoy_http_inbound_<address>_<port>_rbac`` with
                ``authz_dry_run_result="denied"`` (the ``istio.io/dry-run`` policies' shadow
                rules; the ``namespace`` and ``app`` labels come from the scrape job).
                Hosts: ``envoy_http_rbac_shadow_denied`` with ``envoy_rbac_http_prefix``
                ``authz_dry_run_allow_`` or ``authz_dry_run_deny_``. A dry run covers the
                window when its series existed at the window's start (``offset``).
callers         Istio: the requests above by ``source_principal`` and destination service.
                Hosts: each caller sidecar's ``envoy_cluster_upstream_rq_total`` of its
                ``outbound_<service>[_<version>]`` clusters, by its ``mesh_service``.
==============  ===========================================================================

Every figure is ``increase()`` over the window, evaluated at ``at`` (now by default).

``observe_edges(client, window)`` asks for every edge of an estate no intent describes yet
(``meshstage import``), whichever mesh carries it: Istio's requests and TCP connections by
source workload and destination service (the larger of what the source's and the
destination's proxies report: either may be outside the mesh); Linkerd's ``request_total``
and ``tcp_open_total`` of the callers' proxies, outbound, by the caller's pod labels
(``deployment``, ``statefulset``, ``daemonset``, as the ``linkerd-proxy`` scrape job maps
``linkerd.io/proxy-<kind>``) and ``dst_namespace``/``dst_service``
(https://linkerd.io/2-edge/reference/proxy-metrics/); and the host sidecars' outbound
clusters as above, in any environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..intent.checker import duration_seconds
from ..intent.model import Intent
from ..prometheus import PrometheusClient, Sample
from ..providers.registry import mesh
from .gate import (
    CALLS,
    DRY_RUN,
    PLAINTEXT,
    Call,
    DryRun,
    Flow,
    Observations,
    Target,
    promql_duration,
)

ISTIO_HTTP, ISTIO_TCP = "istio_requests_total", "istio_tcp_connections_opened_total"
ISTIO_DRY_RUN = '{__name__=~"envoy_http_inbound_.+_rbac", authz_dry_run_result="denied"'
HOST_PLAINTEXT = "envoy_http_downstream_rq_total"
HOST_DRY_RUN = "envoy_http_rbac_shadow_denied"
HOST_CLIENT = "envoy_cluster_upstream_rq_total"


class _Scope:
    """The environment's cluster namespaces and hosts, as label matchers."""

    def __init__(self, intent: Intent, window: str) -> None:
        self.intent = intent
        self.window = window
        on_hosts = intent.host_services
        # the cluster's workloads are queried where the gates can observe the mesh's
        self.cluster = mesh(intent.provider).gates.plaintext is None and any(
            s.name not in on_hosts for s in intent.services)
        namespaces = sorted({s.namespace for s in intent.services if s.name not in on_hosts})
        self.namespaces = "|".join(namespaces) or "^$"
        self.hosts = bool(intent.injected_hosts())
        self.env = f'mesh_environment="{intent.environment}"'


def observe(client: PrometheusClient, intent: Intent, needs: frozenset[str],
            at: float | None = None) -> Observations:
    """Run the queries the gates need over ``intent.gates.window``; plain data out."""
    window = promql_duration(duration_seconds(intent.gates.window))
    scope = _Scope(intent, window)
    queries: dict[str, str] = {}
    plaintext: list[Flow] = []
    dry_run: list[DryRun] = []
    calls: list[Call] = []
    seen: set[Target] = set()

    def query(key: str, promql: str) -> list[Sample]:
        queries[key] = promql
        return client.query(promql, at)

    if scope.cluster:
        seen |= _istio_seen(query, scope)
    if scope.hosts:
        seen |= _hosts_seen(query, scope)
    if PLAINTEXT in needs:
        plaintext += _istio_plaintext(query, scope) if scope.cluster else []
        plaintext += _hosts_plaintext(query, scope) if scope.hosts else []
    if DRY_RUN in needs:
        dry_run += _istio_dry_run(query, scope) if scope.cluster else []
        dry_run += _hosts_dry_run(query, scope) if scope.hosts else []
    if CALLS in needs:
        calls += _istio_calls(query, scope) if scope.cluster else []
        calls += _hosts_calls(query, scope) if scope.hosts else []
    return Observations(prometheus=client.url, window=intent.gates.window,
                        plaintext=tuple(plaintext), dry_run=tuple(dry_run),
                        calls=tuple(sorted(calls, key=_call_key)), seen=frozenset(seen),
                        queries=queries)


def _call_key(call: Call) -> tuple[str, str, str]:
    return call.callee_namespace, call.callee, call.caller


# --------------------------------------------------------------------------- Istio


def _istio_selector(scope: _Scope, extra: str = "") -> str:
    return (f'reporter="destination", destination_workload_namespace=~"{scope.namespaces}"'
            + (f", {extra}" if extra else ""))


def _workload(labels: Mapping[str, str]) -> Target:
    return Target("Workload", labels.get("destination_workload_namespace", ""),
                  labels.get("destination_workload", ""),
                  labels.get("destination_app") or labels.get("destination_canonical_service"))


_BY_WORKLOAD = "destination_workload_namespace, destination_workload, destination_app"


def _istio_seen(query: Any, scope: _Scope) -> set[Target]:
    found = set()
    for metric in (ISTIO_HTTP, ISTIO_TCP):
        promql = (f"count by ({_BY_WORKLOAD}) (last_over_time({metric}"
                  f"{{{_istio_selector(scope)}}}[{scope.window}]))")
        found |= {_workload(s.labels) for s in query(f"seen {metric}", promql)}
    return found


def _istio_plaintext(query: Any, scope: _Scope) -> list[Flow]:
    flows: dict[Target, float] = {}
    for metric in (ISTIO_HTTP, ISTIO_TCP):
        selector = _istio_selector(scope, 'connection_security_policy!="mutual_tls"')
        promql = (f"sum by ({_BY_WORKLOAD}) (increase({metric}{{{selector}}}"
                  f"[{scope.window}]))")
        for sample in query(f"plaintext {metric}", promql):
            target = _workload(sample.labels)
            flows[target] = flows.get(target, 0.0) + sample.value
    return [Flow(t, v) for t, v in sorted(flows.items(), key=lambda i: str(i[0]))]


def _istio_dry_run(query: Any, scope: _Scope) -> list[DryRun]:
    """Per listener metric name: ``increase()`` drops the name, and a pod's listeners
    differ by nothing else."""
    selector = f'{ISTIO_DRY_RUN}, namespace=~"{scope.namespaces}"'
    names = sorted({s.labels.get("__name__", "") for at in ("", f" offset {scope.window}")
                    for s in query(f"dry run istio, metrics{at}",
                                   f"group by (__name__) ({selector}}}{at})")})
    denied: dict[tuple[str, str], float] = {}
    covered: set[tuple[str, str]] = set()
    for name in names:
        one = f'{selector}, __name__="{name}"}}'
        for sample in query(f"dry run istio {name}", f"sum by (namespace, app) "
                            f"(increase({one}[{scope.window}]))"):
            key = (sample.labels.get("namespace", ""), sample.labels.get("app", ""))
            denied[key] = denied.get(key, 0.0) + sample.value
        covered |= {(s.labels.get("namespace", ""), s.labels.get("app", "")) for s in query(
            f"dry run istio {name}, at the window's start",
            f"count by (namespace, app) ({one} offset {scope.window})")}
    return [DryRun(Target("Service", ns, app, app), value, (ns, app) in covered)
            for (ns, app), value in sorted(denied.items())]


def _istio_calls(query: Any, scope: _Scope) -> list[Call]:
    found: dict[tuple[str, str, str, str], float] = {}
    by = ("source_principal, destination_service_namespace, destination_service_name, "
          "request_protocol")
    for metric in (ISTIO_HTTP, ISTIO_TCP):
        promql = (f"sum by ({by}) (increase({metric}{{{_istio_selector(scope)}}}"
                  f"[{scope.window}]))")
        for sample in query(f"callers {metric}", promql):
            labels = sample.labels
            principal = labels.get("source_principal", "")
            if sample.value <= 0 or not principal or principal == "unknown":
                continue  # a plaintext peer has no identity an ALLOW rule could name
            key = (principal.removeprefix("spiffe://"),
                   labels.get("destination_service_name", ""),
                   labels.get("destination_service_namespace", ""),
                   labels.get("request_protocol") or "tcp")
            found[key] = found.get(key, 0.0) + sample.value
    services = {(s.namespace, s.service_account): s.name for s in scope.intent.services}
    calls = []
    for (principal, callee, namespace, protocol), value in found.items():
        parts = principal.split("/")
        caller = services.get((parts[2], parts[4])) if len(parts) == 5 else None
        calls.append(Call(principal, callee, namespace, value, caller, "istio", protocol))
    return calls


# --------------------------------------------------------------------------- hosts


def _host(labels: Mapping[str, str]) -> Target:
    return Target("host", labels.get("mesh_namespace", ""), labels.get("mesh_host", ""),
                  labels.get("mesh_service"))


_BY_HOST = "mesh_host, mesh_service, mesh_namespace"


def _hosts_seen(query: Any, scope: _Scope) -> set[Target]:
    promql = f"count by ({_BY_HOST}) (max_over_time(up{{{scope.env}}}[{scope.window}]) == 1)"
    return {_host(s.labels) for s in query("seen hosts", promql)}


def _hosts_plaintext(query: Any, scope: _Scope) -> list[Flow]:
    selector = f'{scope.env}, envoy_http_conn_manager_prefix="inbound_plaintext"'
    promql = (f"sum by ({_BY_HOST}) (increase({HOST_PLAINTEXT}{{{selector}}}"
              f"[{scope.window}]))")
    return sorted((Flow(_host(s.labels), s.value) for s in query("plaintext hosts", promql)),
                  key=lambda f: str(f.target))


def _hosts_dry_run(query: Any, scope: _Scope) -> list[DryRun]:
    selector = f'{HOST_DRY_RUN}{{{scope.env}, envoy_rbac_http_prefix=~"authz_dry_run_.*"}}'
    denied = query("dry run hosts", f"sum by ({_BY_HOST}) (increase({selector}"
                   f"[{scope.window}]))")
    present = query("dry run hosts, at the window's start",
                    f"count by ({_BY_HOST}) ({selector} offset {scope.window})")
    covered = {_host(s.labels) for s in present}
    return sorted((DryRun(_host(s.labels), s.value, _host(s.labels) in covered)
                   for s in denied), key=lambda r: str(r.target))


def _hosts_calls(query: Any, scope: _Scope) -> list[Call]:
    intent = scope.intent
    selector = f'{scope.env}, envoy_cluster_name=~"outbound_.+"'
    promql = (f"sum by ({_BY_HOST}, envoy_cluster_name) (increase({HOST_CLIENT}{{{selector}}}"
              f"[{scope.window}]))")
    found: dict[tuple[str, str, str], float] = {}
    for sample in query("callers hosts", promql):
        labels = sample.labels
        caller = labels.get("mesh_service", "")
        callee = labels.get("envoy_cluster_name", "").split("_")[1:2]
        if sample.value <= 0 or caller not in intent.by_name or not callee \
                or callee[0] not in intent.by_name:
            continue
        key = (caller, callee[0], labels.get("mesh_host", ""))
        found[key] = found.get(key, 0.0) + sample.value
    calls = []
    for (caller, callee, host), value in found.items():
        service = intent.service(callee)
        calls.append(Call(intent.principal(intent.service(caller)), callee, service.namespace,
                          value, caller, f"host {host}", "http"))
    return calls


# --------------------------------------------------------------------------- every edge

_ISTIO_EDGE = ("source_workload, source_workload_namespace, source_principal, "
               "destination_service_name, destination_service_namespace, request_protocol")
_LINKERD_EDGE = "namespace, deployment, statefulset, daemonset, pod, dst_namespace, dst_service"
LINKERD_HTTP, LINKERD_TCP = "request_total", "tcp_open_total"


def observe_edges(client: PrometheusClient, window: str,
                  at: float | None = None) -> list[Call]:
    """Every caller-callee edge Prometheus saw over ``window`` (a PromQL duration), from
    Istio's, Linkerd's and the host sidecars' metrics; ``caller_workload`` names the caller's
    workload where the metric does."""
    calls: list[Call] = []
    for metric in (ISTIO_HTTP, ISTIO_TCP):
        promql = (f"max by ({_ISTIO_EDGE}) (sum by ({_ISTIO_EDGE}, reporter) "
                  f"(increase({metric}[{window}])))")
        for sample in client.query(promql, at):
            labels = sample.labels
            workload = labels.get("source_workload", "")
            if sample.value <= 0 or not labels.get("destination_service_name"):
                continue
            calls.append(Call(
                labels.get("source_principal", "").removeprefix("spiffe://"),
                labels["destination_service_name"],
                labels.get("destination_service_namespace", ""), sample.value,
                seen_by="istio", protocol=labels.get("request_protocol") or "tcp",
                caller_workload=(f"{labels.get('source_workload_namespace', '')}/{workload}"
                                 if workload and workload != "unknown" else None)))
    for metric, protocol in ((LINKERD_HTTP, "http"), (LINKERD_TCP, "tcp")):
        promql = (f'sum by ({_LINKERD_EDGE}) (increase({metric}{{direction="outbound", '
                  f'dst_service!=""}}[{window}]))')
        for sample in client.query(promql, at):
            labels = sample.labels
            name = labels.get("deployment") or labels.get("statefulset") or \
                labels.get("daemonset") or labels.get("pod", "")
            if sample.value <= 0 or not name:
                continue
            calls.append(Call(f"{labels.get('namespace', '')}/{name}",
                              labels.get("dst_service", ""), labels.get("dst_namespace", ""),
                              sample.value, seen_by="linkerd", protocol=protocol,
                              caller_workload=f"{labels.get('namespace', '')}/{name}"))
    selector = 'envoy_cluster_name=~"outbound_.+"'
    promql = (f"sum by ({_BY_HOST}, envoy_cluster_name) (increase({HOST_CLIENT}{{{selector}}}"
              f"[{window}]))")
    for sample in client.query(promql, at):
        labels = sample.labels
        callee = labels.get("envoy_cluster_name", "").split("_")[1:2]
        if sample.value <= 0 or not callee:
            continue
        calls.append(Call(f"host {labels.get('mesh_host', '')}", callee[0], "", sample.value,
                          caller_service=labels.get("mesh_service") or None,
                          seen_by=f"host {labels.get('mesh_host', '')}", protocol="http"))
    return sorted(calls, key=lambda c: (c.callee_namespace, c.callee, c.caller))
