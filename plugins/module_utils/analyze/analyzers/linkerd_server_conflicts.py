"""MST0215, MST0216: Linkerd Servers that take the same pod port."""

from __future__ import annotations

import json
from collections.abc import Mapping

from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._linkerd import linkerd_objects, server_port_numbers, server_workloads


def _selector(server: Resource) -> str:
    """The podSelector as comparable text; ``{}`` for one that selects every pod."""
    selector = server.spec.get("podSelector")
    if not isinstance(selector, Mapping) or not any(selector.values()):
        return "{}"
    return json.dumps(selector, sort_keys=True)


class LinkerdServerConflictAnalyzer(Analyzer):
    """Linkerd Servers that take the same port of the same pods. Two with the same
    ``port`` and ``podSelector`` (or one whose selector selects every pod) are refused at
    admission: the policy controller's webhook denies the second with "identical server
    spec already exists" (``policy-controller/src/admission.rs``), so the apply fails
    (Error). Two whose selectors differ but select the same workload's pods on the same
    port are admitted, and the policy controller serves that port with one of them: the
    authorizations of the other do not apply to it (Warning). Several Services over one
    workload (a chart's Service and its headless twin) each with its own Server are the
    common way to get there; one Server per pod port, with the authorizations of each,
    keeps both.

    Fails with MST0215::

        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: web-http, namespace: shop}
        spec:
          podSelector: {matchLabels: {app: web}}
          port: 8080
        ---
        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: web-headless-http, namespace: shop}
        spec:
          podSelector: {matchLabels: {app: web}}
          port: 8080

    Fails with MST0216::

        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: web-http, namespace: shop}
        spec:
          podSelector: {matchLabels: {app: web}}
          port: 8080
        ---
        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: web-v2-http, namespace: shop}
        spec:
          podSelector: {matchLabels: {app: web, version: v2}}
          port: 8080
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web-v2, namespace: shop}
        spec:
          selector: {matchLabels: {app: web, version: v2}}
          template:
            metadata: {labels: {app: web, version: v2}}
            spec: {containers: [{name: web, image: web, ports: [{containerPort: 8080}]}]}

    Passes::

        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: web-http, namespace: shop}
        spec:
          podSelector: {matchLabels: {app: web}}
          port: 8080
        ---
        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: web-admin, namespace: shop}
        spec:
          podSelector: {matchLabels: {app: web}}
          port: 9090
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web, namespace: shop}
        spec:
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec: {containers: [{name: web, image: web, ports: [{containerPort: 8080}]}]}
    """

    name = "linkerd.ServerConflictAnalyzer"
    provider = "linkerd"
    codes = {"MST0215": Level.ERROR, "MST0216": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        by_namespace: dict[str, list[Resource]] = {}
        for server in linkerd_objects(index, "Server"):
            if "podSelector" in server.spec:  # not externalWorkloadSelector
                by_namespace.setdefault(server.namespace, []).append(server)
        for servers in by_namespace.values():
            servers.sort(key=lambda s: s.name)
            refused: set[tuple[str, str]] = set()
            for number, later in enumerate(servers):
                for earlier in servers[:number]:
                    if earlier.name == later.name:
                        continue  # one object, listed twice (the apply keeps the last)
                    same = _selector(earlier) == _selector(later) or "{}" in (
                        _selector(earlier), _selector(later))
                    if same and earlier.spec.get("port") == later.spec.get("port"):
                        refused.add((earlier.name, later.name))
                        yield self.finding(
                            later, "MST0215", f"Server {earlier.name} has the same port "
                            f"({later.spec.get('port')!r}) and a podSelector that selects the "
                            "same pods: Linkerd's admission refuses whichever of the two is "
                            "created second (\"identical server spec already exists\"), so "
                            "the apply fails; merge them into one Server per pod port, with "
                            "the authorizations of each.", "spec.podSelector")
            yield from self._overlaps(index, servers, refused)

    def _overlaps(self, index: MeshIndex, servers: list[Resource],
                  refused: set[tuple[str, str]]) -> Results:
        taken: dict[tuple[str, str, int], list[Resource]] = {}
        for server in servers:
            workloads = server_workloads(index, server)
            for workload in workloads:
                for port in server_port_numbers(server, [workload]):
                    taken.setdefault((workload.kind, workload.resource.name, port),
                                   []).append(server)
        reported: set[tuple[str, str]] = set(refused)
        for (kind, name, port), found in taken.items():
            for number, later in enumerate(found):
                for earlier in found[:number]:
                    if earlier.name == later.name or (earlier.name, later.name) in reported:
                        continue
                    reported.add((earlier.name, later.name))
                    yield self.finding(
                        later, "MST0216", f"Server {earlier.name} also takes port {port} of "
                        f"the pods of {kind} {later.namespace}/{name}: the policy controller "
                        "serves the port with one of them, and the authorizations of the "
                        "other do not apply there; give each pod port one Server.",
                        "spec.podSelector")
