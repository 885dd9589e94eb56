"""The host sidecars' files of a mesh state, as the rules look them up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ....estate.objects import as_list, as_mapping
from ....flows.evaluate import MeshState


def _named(document: Any) -> dict[str, Mapping[str, Any]]:
    return {str(as_mapping(r).get("name")): as_mapping(r)
            for r in as_list(as_mapping(document).get("resources"))}


class HostView:
    def __init__(self, state: MeshState) -> None:
        self.trust_domain = state.settings.trust_domain
        self.hosts = {host.name: host for host in state.settings.hosts}
        self.listeners = {name: _named(files.get("lds.yaml"))
                          for name, files in state.host_files.items()}
        self.clusters = {name: _named(files.get("cds.yaml"))
                         for name, files in state.host_files.items()}

    def has_sidecar(self, host: str) -> bool:
        return host in self.listeners

    def listener(self, host: str, name: str) -> Mapping[str, Any] | None:
        return self.listeners.get(host, {}).get(name)

    def cluster(self, host: str, name: str) -> Mapping[str, Any] | None:
        return self.clusters.get(host, {}).get(name)

    def where(self, host: str, file: str) -> str:
        return f"{file} of host {host}"
