"""The analysis inside every run: the rendered objects judged against the estate.

meshstage does not own the workloads: the rendered tree holds mesh objects, not the
Services and Deployments they refer to. So that the pipeline can still judge every
reference before anything is written, ``analyze_rendered`` analyzes the rendered objects
against the estate's real manifests (``mesh_check_paths``) when the run is given them, and
against stand-ins built from the intent (``estate/stand_in.py``) otherwise. Given the
manifests, the inventory itself is checked against them too (the ``IntentAnalyzer``s:
ports, protocols, versions, accounts, workloads the inventory does not know).

The world is not declared complete: what the intent describes (its services, namespaces,
service accounts, the ingress gateway) is judged, and a reference beyond it (a namespace
of the mesh's own extensions, say) is noted as unchecked rather than refused.

An object of the estate with the identity (API group, kind, namespace, name) of a rendered
one would have two writers on the cluster, each undoing the other's change: that is an
Error (MST0001) naming both files. Namespaces are the exception meshstage is built for: it
renders the catalogue's Namespaces to set a few labels and annotations on them, which an
estate's own Namespace may hold too; only a key both set to different values is an Error,
and the shared object is a Warning (MST0002).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..estate.estate import without_replaced
from ..estate.index import MeshConfig
from ..estate.manifests import SourcePath, read_manifests
from ..estate.objects import Resource, make_resource
from ..estate.stand_in import estate_objects, generated
from ..intent.model import Intent
from .analysis import Report, analyze, analyze_intent
from .finding import Finding, Level

ANALYZER = "meshstage.EstateOverlap"
# The codes of this module, with their levels (docs/analyzers.md lists them).
CODES: Mapping[str, Level] = {"MST0001": Level.ERROR, "MST0002": Level.WARNING}


def _identity(resource: Resource) -> tuple[str, str, str, str]:
    return resource.group, resource.kind, resource.namespace, resource.name


def analyze_rendered(intent: Intent, rendered: Iterable[Mapping[str, Any]],
                     check_paths: Sequence[SourcePath] = (),
                     estate: Sequence[Resource] | None = None,
                     sources: Sequence[str] | None = None) -> Report:
    """Analyze an environment's rendered objects against its estate: ``estate`` (the
    manifests the run read), or the manifests at ``check_paths``, or the intent's
    stand-ins. ``sources`` names the file of each rendered object (its tree path)."""
    listed = list(rendered)
    names = list(sources) if sources is not None else ["rendered"] * len(listed)
    objects = [make_resource(obj, source) for obj, source in zip(listed, names, strict=True)]
    if estate is None and check_paths:
        estate = without_replaced(read_manifests(check_paths, context=True).resources,
                                  intent.replaced)
    if estate is not None:
        # what istiod and prometheus-operator run for the estate's objects, unless it
        # shows it
        context = list(estate) + generated(estate)
    else:
        context = [make_resource(obj, "intent", context=True) for obj in estate_objects(intent)]
    present = {_identity(r): r for r in objects}
    overlaps = []
    for resource in context:
        mine = present.get(_identity(resource))
        if mine is None:
            present[_identity(resource)] = resource
            objects.append(resource)
        elif estate is not None and not mine.context:
            overlaps.append(_overlap(mine, resource))
    native = True if intent.native_sidecars else (
        False if intent.proxy.native_sidecars == "disabled" else None)
    mesh = MeshConfig(root_namespace=intent.root_namespace, trust_domain=intent.trust_domain,
                      native_sidecars=native, opaque_ports=intent.server_first_ports(),
                      never_inject=tuple({"matchLabels": dict(service.selector)}
                                         for service in intent.kept_from_injection()))
    report = analyze(objects, mesh, providers=[intent.provider])
    found = [finding for finding in overlaps if finding is not None]
    if estate is not None:  # the inventory against the estate's own manifests
        found += analyze_intent(intent, context, mesh)
    if found:
        report.findings = sorted(report.findings + found,
                                 key=lambda f: (f.level.rank, f.resource, f.code, f.path,
                                                f.message))
    return report


def _overlap(mine: Resource, theirs: Resource) -> Finding | None:
    """The finding for a rendered object that the estate holds too."""
    where = f"the estate's {theirs.source}" if theirs.source else "the estate"
    if mine.kind != "Namespace":
        return Finding(
            "MST0001", Level.ERROR, mine.display,
            f"{mine.display} is rendered to {mine.source} and also defined in {where}: two "
            "writers would overwrite each other on the cluster; remove it from the estate's "
            "manifests (meshstage owns it from this stage on), or leave its part of the "
            "intent out", ANALYZER, source=mine.source, subject=mine)
    clashes = []
    for field in ("labels", "annotations"):
        ours, other = getattr(mine, field), getattr(theirs, field)
        clashes += [f"{field[:-1]} {key}: {ours[key]!r} here, {other[key]!r} there"
                    for key in sorted(ours) if key in other and other[key] != ours[key]]
    if clashes:
        return Finding(
            "MST0001", Level.ERROR, mine.display,
            f"{mine.display} is rendered to {mine.source} and also defined in {where}, "
            f"which sets the same keys otherwise ({'; '.join(clashes)}): two writers would "
            "overwrite each other; drop those keys from the estate's Namespace",
            ANALYZER, source=mine.source, subject=mine)
    return Finding(
        "MST0002", Level.WARNING, mine.display,
        f"{mine.display} is also defined in {where}: meshstage sets only its own labels and "
        f"annotations on it ({mine.source}); both can be applied as long as the estate's "
        "copy does not set those keys", ANALYZER,
        source=mine.source, subject=mine)
