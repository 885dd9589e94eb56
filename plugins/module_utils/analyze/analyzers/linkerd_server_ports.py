"""MST0201, MST0202: Linkerd Servers whose port or pods do not exist."""

from __future__ import annotations

from ...estate.index import MeshIndex
from ...estate.objects import POD_KINDS
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._linkerd import PROXY_PORTS, linkerd_objects, server_workloads


class LinkerdServerPortAnalyzer(Analyzer):
    """Linkerd Servers whose ``port`` names a container port none of the pods they select
    declares, so the policy meant for it protects nothing (Error), and Servers whose
    ``podSelector`` selects no pod of their namespace (Warning). A port by number applies
    whether or not a container declares it: the policy controller takes a number as it is
    and looks only a name up in the pods' ports (``Pod::select_ports`` in ``policy-controller/
    k8s/index/src/inbound/index.rs``), and the proxy has discovered the policy of ports its
    pod does not declare since Linkerd 2.12 (linkerd/linkerd2-proxy#1677, fixing
    linkerd/linkerd2#7640). Many workloads declare no ``containerPort`` at all. The
    proxy's own ports (``linkerd-admin`` 4191, ``linkerd-proxy`` 4143) exist on every
    injected pod. A selector on the labels Linkerd's injector adds to the pods it meshes
    (``linkerd.io/control-plane-ns``, as ``linkerd viz allow-scrapes`` writes) selects the
    workloads the injector will mesh (their namespace or pod template says
    ``linkerd.io/inject: enabled``), labelled or not yet.

    Fails with MST0201::

        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: authors, namespace: booksapp}
        spec:
          podSelector: {matchLabels: {app: authors}}
          port: http
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: authors, namespace: booksapp}
        spec:
          selector: {matchLabels: {app: authors}}
          template:
            metadata: {labels: {app: authors}}
            spec:
              containers:
              - {name: service, image: booksapp, ports: [{name: service, containerPort: 7001}]}

    Fails with MST0202::

        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: authors, namespace: booksapp}
        spec:
          podSelector: {matchLabels: {app: author}}
          port: service
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: authors, namespace: booksapp}
        spec:
          selector: {matchLabels: {app: authors}}
          template:
            metadata: {labels: {app: authors}}
            spec:
              containers:
              - {name: service, image: booksapp, ports: [{name: service, containerPort: 7001}]}

    Passes::

        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: authors, namespace: booksapp}
        spec:
          podSelector: {matchLabels: {app: authors}}
          port: service
        ---
        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: authors-admin-http, namespace: booksapp}
        spec:
          podSelector: {matchLabels: {app: authors}}
          port: 7002
        ---
        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: authors-admin, namespace: booksapp}
        spec:
          podSelector: {matchLabels: {app: authors}}
          port: linkerd-admin
        ---
        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: proxy-admin, namespace: booksapp}
        spec:
          podSelector:
            matchExpressions: [{key: linkerd.io/control-plane-ns, operator: Exists}]
          port: linkerd-admin
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: booksapp, annotations: {linkerd.io/inject: enabled}}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: authors, namespace: booksapp}
        spec:
          selector: {matchLabels: {app: authors}}
          template:
            metadata: {labels: {app: authors}}
            spec:
              containers:
              - {name: service, image: booksapp, ports: [{name: service, containerPort: 7001}]}
    """

    name = "linkerd.ServerPortAnalyzer"
    provider = "linkerd"
    codes = {"MST0201": Level.ERROR, "MST0202": Level.WARNING}

    def analyze(self, index: MeshIndex) -> Results:
        unchecked = False
        for server in linkerd_objects(index, "Server"):
            if "podSelector" not in server.spec:
                continue  # externalWorkloadSelector: workloads outside Kubernetes
            if not index.knows_in(server.namespace, *POD_KINDS):
                unchecked = True
                continue
            # a selector on the labels the injector adds selects the pods it will inject
            workloads = server_workloads(index, server, injected=True)
            if not workloads:
                yield self.finding(server, "MST0202", "The podSelector selects no pod in "
                                   f"namespace {server.namespace}: this Server applies to "
                                   "nothing.", "spec.podSelector")
                continue
            port = server.spec.get("port")
            declared = {p for w in workloads for p in w.container_ports()}
            if port in PROXY_PORTS or port in PROXY_PORTS.values() or isinstance(port, int) \
                    or (isinstance(port, str) and port.isdigit()):
                continue  # a number applies to the pods' port whether declared or not
            if not any(name == port for name, _ in declared):
                ports = ", ".join(sorted({f"{n}/{name}" if name else str(n)
                                          for name, n in declared})) or "none"
                yield self.finding(server, "MST0201", f"Port {port!r} matches no port of the "
                                   f"pods this Server selects (they declare: {ports}).",
                                   "spec.port")
        if unchecked:
            yield self.unchecked("Server ports", "no pod or workload in the Server's namespace")
