"""The providers meshstage renders for, in one explicit dict: a new mesh is a package of
``providers/`` that builds a ``Provider``, and one line here."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import MeshstageError
from .envoy_hosts.provider import ENVOY_HOSTS
from .istio.provider import ISTIO
from .linkerd.provider import LINKERD
from .provider import Provider

# The meshes an environment's cluster can run (``mesh_provider``).
MESHES: dict[str, Provider] = {
    "istio": ISTIO,
    "linkerd": LINKERD,
}
# The plain hosts' Envoy sidecars: they run beside the cluster's mesh, for the services the
# environment's hosts carry.
HOSTS: Provider = ENVOY_HOSTS
# What ``mesh_traffic_api`` may say with each mesh, the default first (the intent's parser
# takes it: the intent imports no provider).
TRAFFIC_APIS: Mapping[str, tuple[str, ...]] = {
    name: provider.traffic_apis for name, provider in MESHES.items()}


def mesh(name: str) -> Provider:
    """The mesh called ``name``, or an error that lists the meshes there are."""
    found = MESHES.get(name)
    if found is None:
        raise MeshstageError(f"mesh_provider {name!r} has no renderer yet (available: "
                             f"{', '.join(MESHES)})")
    return found
