"""Parsing ``mesh_external_callers``: the callers of the catalogue's services that are not
services of it. An ingress controller outside the mesh, the Kubernetes API server calling
an admission webhook, Prometheus scraping an application port, clients outside the cluster
reaching a NodePort or LoadBalancer Service: none presents a mesh identity unless it runs
with the mesh's proxy, so STRICT mTLS and default deny refuse them unless the stages say
otherwise.
https://github.com/istio/istio/issues/39290 (the API server cannot do Istio mTLS),
https://istio.io/latest/docs/ops/integrations/prometheus/#tls-settings,
https://linkerd.io/2-edge/tasks/using-ingress/
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..stages import Stage
from .checker import PROBE_PATH, Checker, join_path, optional
from .model import (
    EXTERNAL_CALLER_KINDS,
    OUTSIDE_CALLER_KINDS,
    ExternalCaller,
    Intent,
    Service,
)


def parse_external_callers(check: Checker, value: Any,
                           by_name: Mapping[str, Service]) -> list[ExternalCaller]:
    callers: list[ExternalCaller] = []
    seen: set[str] = set()
    catalogue = {service.namespace for service in by_name.values()}
    for index, item in enumerate(check.sequence(value, "mesh_external_callers")):
        path = join_path("mesh_external_callers", index)
        data = check.mapping(item, path, required=("name", "kind", "calls"),
                             optional=("namespace", "service_account", "inject",
                                       "metrics_path"))
        if data is None:
            continue
        name = check.dns_label(data["name"], join_path(path, "name"))
        kind = check.choice(data["kind"], join_path(path, "kind"), EXTERNAL_CALLER_KINDS)
        if name is not None and name in seen:
            check.error(join_path(path, "name"), name, "is a duplicate caller")
            continue
        if name is None or kind is None:
            continue
        seen.add(name)
        metrics_path = "/metrics"
        if data.get("metrics_path") is not None:
            if kind != "prometheus":
                check.error(join_path(path, "metrics_path"), data["metrics_path"],
                            f"is for Prometheus (kind: {kind})")
            else:
                metrics_path = check.string(data["metrics_path"], join_path(path, "metrics_path"),
                                            PROBE_PATH, "an exact path starting with '/' (no "
                                            "'*', '?', '#' or spaces)") or metrics_path
        if kind in OUTSIDE_CALLER_KINDS:
            who = ("the Kubernetes API server, which runs outside the cluster's pods and "
                   "never has the mesh's proxy") if kind == "kube-apiserver" else (
                "clients outside the cluster (through a NodePort or LoadBalancer Service), "
                "which never have the mesh's proxy")
            for key in ("namespace", "service_account", "inject"):
                if data.get(key) is not None:
                    check.error(join_path(path, key), data[key], f"is not for {who}")
            namespace = account = None
            inject = in_catalogue = False
        else:
            if data.get("namespace") is None:
                check.error(join_path(path, "namespace"), None, "is required")
                continue
            namespace = check.dns_label(data["namespace"], join_path(path, "namespace"))
            account = optional(check, data, "service_account", path, check.dns_subdomain, name)
            inject = optional(check, data, "inject", path, check.boolean, False)
            if namespace in catalogue and data.get("inject") is not None:
                check.error(join_path(path, "inject"), data["inject"], f"is not for a caller "
                            f"in {namespace}, a namespace of mesh_services: the injection "
                            "waves decide whether its pods get the proxy")
            in_catalogue = namespace in catalogue
        paths: dict[tuple[str, int], str] = {}
        calls = _calls(check, data["calls"], join_path(path, "calls"), by_name,
                       paths if kind == "prometheus" else None)
        if namespace is None and kind not in OUTSIDE_CALLER_KINDS:
            continue
        callers.append(ExternalCaller(name=name, kind=kind, namespace=namespace,
                                      service_account=account, inject=inject,
                                      in_catalogue=in_catalogue,
                                      calls=tuple(calls), metrics_path=metrics_path,
                                      scrape_paths=tuple((n, p, found) for (n, p), found
                                                         in paths.items())))
    return callers


def _calls(check: Checker, value: Any, path: str, by_name: Mapping[str, Service],
           paths: dict[tuple[str, int], str] | None) -> list[tuple[str, tuple[int, ...]]]:
    """``service`` (every port) or ``service:port`` (a workload port of it), each followed
    by the path a scrape GETs there when it is not ``metrics_path`` (Prometheus only:
    ``paths`` collects them)."""
    items = check.sequence(value, path)
    if not items and value is not None:
        check.error(path, value, "is not a non-empty list of services (or service:port)")
    calls: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        item_path = join_path(path, index)
        text = check.string(item, item_path)
        if text is None:
            continue
        text, slash, rest = text.partition("/")
        scrape_path = slash + rest if slash else None
        if scrape_path is not None:
            if paths is None:
                check.error(item_path, item, "names a path: a path is what a scrape GETs "
                            "(kind: prometheus only)")
                continue
            if check.string(scrape_path, item_path, PROBE_PATH, "<service>[:<port>] and an "
                            "exact path starting with '/' (no '*', '?', '#' or spaces)") is None:
                continue
        name, _, port_text = text.partition(":")
        if check.unknown_service(name, item_path, by_name):
            continue
        service = by_name[name]
        ports = calls.setdefault(name, [])
        if not port_text:
            ports.extend(p for p in service.workload_ports() if p not in ports)
            if scrape_path is not None and paths is not None:
                for port in service.workload_ports():
                    paths[(name, port)] = scrape_path
            continue
        known = {*service.workload_ports(),
                 *(p.port for p in (*service.peer_ports, *service.pod_ports))}
        if not port_text.isdigit() or int(port_text) not in known:
            shown = ", ".join(str(p) for p in sorted(known)) or "none declared"
            check.error(item_path, text, f"names no workload port of {name} (ports: {shown})")
            continue
        if int(port_text) not in ports:
            ports.append(int(port_text))
        if scrape_path is not None and paths is not None:
            paths[(name, int(port_text))] = scrape_path
    return [(name, tuple(ports)) for name, ports in calls.items()]


def with_catalogue_callers(intent: Intent) -> Intent:
    """The intent whose callers in a namespace of the catalogue (a Prometheus beside
    Grafana) run with the proxy exactly when the stage has injected their pods: their
    namespace's wave, unless the catalogue keeps their own service out of it (its
    ``inject: false``, or a wave not injected yet)."""
    if not any(caller.in_catalogue for caller in intent.external_callers):
        return intent
    callers = []
    for caller in intent.external_callers:
        if caller.in_catalogue:
            own = [s for s in intent.services if s.namespace == caller.namespace
                   and s.service_account == caller.service_account]
            injected = all(intent.injected(s) for s in own) if own else (
                intent.stage.reached(Stage.INJECTION)
                and intent.is_injected(str(caller.namespace)))
            caller = replace(caller, inject=injected)
        callers.append(caller)
    return replace(intent, external_callers=tuple(callers))
