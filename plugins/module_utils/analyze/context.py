"""The analysis inside every run: the rendered objects judged against the estate.

meshstage does not own the workloads: the rendered tree holds mesh objects, not the
Services and Deployments they refer to. So that the pipeline can still judge every
reference before anything is written, ``analyze_rendered`` analyzes the rendered objects
against the estate's real manifests (``mesh_check_paths``) when the run is given them, and
against stand-ins built from the intent (``estate/stand_in.py``) otherwise.

The world is not declared complete: what the intent describes (its services, namespaces,
service accounts, the ingress gateway) is judged, and a reference beyond it (a namespace
of the mesh's own extensions, say) is noted as unchecked rather than refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..estate.index import MeshConfig
from ..estate.manifests import read_manifests
from ..estate.objects import Resource, make_resource
from ..estate.stand_in import estate_objects
from ..intent.model import Intent
from .analysis import Report, analyze


def _identity(resource: Resource) -> tuple[str, str, str, str]:
    return resource.group, resource.kind, resource.namespace, resource.name


def analyze_rendered(intent: Intent, rendered: Iterable[Mapping[str, Any]],
                     check_paths: Sequence[Path] = ()) -> Report:
    """Analyze an environment's rendered objects against its estate: the manifests at
    ``check_paths`` when given, the intent's stand-ins otherwise."""
    objects = [make_resource(obj, "rendered") for obj in rendered]
    if check_paths:
        context = read_manifests(check_paths, context=True).resources
    else:
        context = [make_resource(obj, "intent", context=True) for obj in estate_objects(intent)]
    present = {_identity(r) for r in objects}
    objects += [r for r in context if _identity(r) not in present]
    native = True if intent.native_sidecars else (
        False if intent.proxy.native_sidecars == "disabled" else None)
    mesh = MeshConfig(root_namespace=intent.root_namespace, trust_domain=intent.trust_domain,
                      native_sidecars=native, opaque_ports=intent.server_first_ports())
    return analyze(objects, mesh, providers=[intent.provider])
