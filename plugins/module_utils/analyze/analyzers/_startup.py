"""Private helpers for the start-up analyzers of both meshes: which workloads are jobs that
must complete, whether the proxy of a pod runs as a native sidecar, whether the job stops
the proxy itself, and which init containers reach the network.

A classic sidecar is a regular container: it keeps running after a job's containers exit,
so the pod never completes, and it starts after every init container, whose requests leave
without it (in plaintext, before the capture is set up; with a CNI plugin, captured towards
a proxy that does not run yet). A native sidecar (an init container with
``restartPolicy: Always``) starts before the later init containers and stops when the app
containers end. https://kubernetes.io/docs/concepts/workloads/pods/sidecar-containers/
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...estate.index import MeshIndex
from ...estate.objects import Resource, Workload, as_list, as_mapping

# Tools and schemes that mean a command talks to another host
_NETWORK_TOOLS = frozenset({
    "curl", "wget", "nc", "ncat", "netcat", "telnet", "nslookup", "dig", "host", "psql",
    "pg_isready", "pg_dump", "pg_restore", "mysql", "mysqladmin", "mysqldump", "redis-cli",
    "mongo", "mongosh", "kubectl", "helm", "vault", "aws", "gsutil", "gcloud", "az", "git",
    "flyway", "liquibase", "migrate", "wait-for", "wait-for-it", "wait-for-it.sh",
    "dockerize", "grpcurl", "grpc_health_probe", "consul", "etcdctl",
})
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"]+", re.IGNORECASE)
_HOST_PORT = re.compile(r"\b[a-z0-9][-a-z0-9]*(\.[-a-z0-9]+)*:[0-9]{2,5}\b")
_WORD = re.compile(r"[A-Za-z0-9_.+-]+")


def _texts(container: Mapping[str, Any]) -> list[str]:
    """A container's command, args and env values, as text."""
    texts = [str(v) for v in as_list(container.get("command")) + as_list(container.get("args"))]
    texts += [str(as_mapping(e).get("value")) for e in as_list(container.get("env"))
              if as_mapping(e).get("value") is not None]
    return texts


def mentions(workload: Workload, *needles: str) -> bool:
    """True when a container's command, args or env holds one of the strings."""
    return any(needle in text for container in workload.containers
               for text in _texts(container) for needle in needles)


def reaches_network(container: Mapping[str, Any]) -> str | None:
    """What shows an init container talks to another host (a network tool it runs, a URL
    or ``host:port`` it is given), or None."""
    for text in _texts(container):
        url = _URL.search(text)
        if url:
            return url.group(0)
        for word in _WORD.findall(text):
            if word.rsplit("/", 1)[-1] in _NETWORK_TOOLS:
                return word
        found = _HOST_PORT.search(text)
        if found and not found.group(0).startswith(("localhost:", "127.0.0.1:")):
            return found.group(0)
    return None


def runs_as(container: Mapping[str, Any], workload: Workload) -> int | None:
    """The user an init container runs as (its own securityContext, else the pod's)."""
    for context in (container.get("securityContext"), workload.pod_spec.get("securityContext")):
        user = as_mapping(context).get("runAsUser")
        if isinstance(user, int):
            return user
    return None


def app_init_containers(workload: Workload, proxy: str) -> list[Mapping[str, Any]]:
    """The init containers that run before the proxy: all of them with a classic sidecar,
    those listed before it when the pod spec shows it as a native sidecar (meshes put it
    first). The mesh's own init containers (``istio-init``, ``linkerd-init``...) are left
    out by the caller's ``own`` names."""
    containers = workload.init_containers
    for position, container in enumerate(containers):
        if container.get("name") == proxy:
            return containers[:position]
    return containers


def networked_init(workload: Workload, proxy: str, own: set[str],
                   proxy_user: int) -> tuple[str, str] | None:
    """(name, evidence) of the first init container that reaches the network before the
    proxy runs: not the mesh's own (``own``), not run as the proxy's user (whose traffic
    the capture leaves alone)."""
    for container in app_init_containers(workload, proxy):
        if container.get("name") in own or runs_as(container, workload) == proxy_user:
            continue
        reached = reaches_network(container)
        if reached:
            return str(container.get("name")), reached
    return None


def subject(index: MeshIndex, workload: Workload, pod_level: bool) -> Resource:
    """The object that makes the workload injected: the workload itself when its own
    template says so, else its Namespace (the input's, or the workload)."""
    if pod_level:
        return workload.resource
    return index.namespace(workload.namespace) or workload.resource
