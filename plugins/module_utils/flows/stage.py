"""The flow proof of one run: the pipeline's step between analysis and the write.

``prove_stage`` gathers what the proof reads (the estate, the target's rendered tree, the
tree committed now, the edges Prometheus observed), judges every flow, and refuses the run
with ``FlowProofError`` when a flow that works now would stop. The target's verdicts are
kept in the stage cache under everything they read (the rendered texts, the intent its
stand-ins come from), so a run that changes nothing judges nothing again; with manifests
(``mesh_check_paths``) the proof runs every time, as the analysis does. The edges
Prometheus observed come from the stage gates (``StageOptions.observed_calls``): the proof
itself queries nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FlowProofError, MeshstageError
from ..estate.estate import without_replaced
from ..estate.index import MeshConfig, MeshIndex
from ..estate.manifests import SourcePath
from ..gates.gate import Call
from ..gitops.repo import GitOpsRepo
from ..intent.model import Intent
from ..plan.callers import RELAXED
from ..providers.registry import mesh
from ..render.runbook import flow_section
from ..render.stage_cache import StageCache, pickled
from ..render.tree import RenderedObject
from ..stages import Stage
from .collect import collect_flows
from .evaluate import FlowSettings, MeshState
from .proof import FlowProof, prove
from .states import (
    committed_state,
    estate_resources,
    host_files_of,
    install_values_of,
    mesh_state,
    relevant,
)


@dataclass
class StageProof:
    """What the run keeps of its proof: the runbook's section, the warnings, the figures."""

    section: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    proof: FlowProof | None = None   # None when the stage cache answered


def calls_of(observed: Sequence[Mapping[str, Any]]) -> list[Call]:
    """The edges the stage gates observed (``Call`` fields, as the action returns them)."""
    fields = set(Call.__dataclass_fields__)
    found = []
    for item in observed:
        try:
            found.append(Call(**{k: v for k, v in item.items() if k in fields}))
        except TypeError:
            continue  # not an edge: judged without it
    return found


def target_state(intent: Intent, objects: Sequence[RenderedObject],
                 files: Mapping[str, str], estate: Sequence[Any]) -> tuple[MeshState,
                                                                         dict[str, Any]]:
    """The target's configuration, and every parsed file of it by path (the committed
    tree's identical files reuse them)."""
    environment = intent.environment
    parsed: dict[str, Any] = {item.path: item.obj for item in objects}
    parsed.update({f"hosts/{environment}/{host}/{name}": obj
                   for host, found in host_files_of(files, environment).items()
                   for name, obj in found.items()})
    state = mesh_state(intent.provider, FlowSettings.from_intent(intent),
                       (item.obj for item in objects), estate,
                       host_files_of(files, environment, parsed),
                       install_values_of(files, environment),
                       _label(intent.stage.value, intent.provider))
    return state, parsed


def proof_of(intent: Intent, objects: Sequence[RenderedObject],
             files: Mapping[str, str], check_paths: Sequence[SourcePath], gitops_dir: Path,
             recorded: Mapping[str, Any], owned: Mapping[str, str],
             observed: Sequence[Call] = (), every_now: bool = True) -> FlowProof:
    """Every flow of the environment judged at the target, and now (nothing raised).
    ``every_now`` False judges a flow now only where the target refuses it, and reads the
    committed tree only then (``proof.prove``): the same breaks, for a run."""
    # the objects meshstage's own replace are there now, and gone at the target
    present = estate_resources(intent, check_paths)
    estate = without_replaced(present, intent.replaced)
    target, parsed = target_state(intent, objects, files, estate)
    stage, provider = recorded.get("stage"), recorded.get("provider")
    label = _label(str(stage), str(provider)) if stage and provider else "nothing recorded"

    def read_now() -> tuple[MeshState | None, bool]:
        if not (stage and provider):
            return None, False
        return committed_state(gitops_dir, intent, str(provider), owned, files, parsed,
                               present, label)

    evaluator = mesh(intent.provider).flows
    flows = collect_flows(intent, MeshIndex(estate, MeshConfig(
        root_namespace=intent.root_namespace, trust_domain=intent.trust_domain)),
        evaluator.scrape if evaluator is not None else None, observed,
        target.settings)
    if not every_now:
        return prove(flows, target, read_now, label, every_now=False)
    committed = read_now()  # meshstage flows: the committed tree is read whatever the flows
    return prove(flows, target, lambda: committed, label)


@dataclass(frozen=True)
class ProofStart:
    """What a run's proof starts from, read once: the observed edges, the files the
    repository owns now, how the committed tree relates to the target's (``nothing``,
    ``unchanged``, ``changed``), the stage cache's key, and its answer when it may give one
    (``known``: then nothing is judged again)."""

    observed: list[Call]
    owned: dict[str, str]
    now: str
    key: str | None
    known: StageProof | None


def start_proof(intent: Intent, files: Mapping[str, str], check_paths: Sequence[SourcePath],
                gitops_dir: Path, recorded: Mapping[str, Any],
                cache: StageCache | None = None,
                observed_edges: Sequence[Mapping[str, Any]] = ()) -> ProofStart:
    """Where the proof of the run starts (``prove_stage``), and the stage cache's answer.

    The target's verdicts are kept in the stage cache under everything they read. They
    answer a later run when nothing can break: the repository records nothing yet and no
    flow is refused at the target, or the committed tree is the target's file for file
    (the state file's hashes say so without reading it)."""
    observed = calls_of(observed_edges)
    environment = intent.environment
    owned = _owned(gitops_dir, environment) if recorded.get("stage") else {}
    # each target file by its sha256, as the state file records it: hashed once, for the
    # comparison with the committed tree and for the cache's key
    target = {path: hashlib.sha256(text.encode("utf-8")).hexdigest()
              for path, text in files.items() if relevant(path, environment)}
    if not recorded.get("stage"):
        now = "nothing"
    elif recorded.get("provider") == intent.provider and {
            p: sha for p, sha in owned.items() if relevant(p, environment)} == target:
        now = "unchanged"
    else:
        now = "changed"
    key, known = None, None
    if cache is not None and not check_paths:
        # the stand-ins, the flows and the settings come from the intent (what pickle
        # refuses is proved every time)
        state = pickled(intent)
        if state is not None:
            key = cache.check_key("flows", [
                intent.provider, state, repr(sorted(map(repr, observed))),
                *(part for item in sorted(target.items()) for part in item)])
            kept = cache.passed(key)
            if isinstance(kept, dict) and (now == "unchanged" or (
                    now == "nothing" and not kept.get("refused"))):
                known = StageProof(list(kept.get("section") or []),
                                   list(kept.get("warnings") or []),
                                   dict(kept.get("counts") or {}))
    return ProofStart(observed, owned, now, key, known)


def prove_stage(intent: Intent, objects: Sequence[RenderedObject],
                files: Mapping[str, str], check_paths: Sequence[SourcePath],
                gitops_dir: Path, recorded: Mapping[str, Any],
                cache: StageCache | None = None,
                observed_edges: Sequence[Mapping[str, Any]] = (),
                start: ProofStart | None = None) -> StageProof:
    """The proof of the run; ``FlowProofError`` when a flow that works now would stop.
    ``observed_edges``: what Prometheus showed the stage gates, judged too. ``start``: what
    ``start_proof`` read already (the stage cache's answer among it), else it is read here."""
    if start is None:
        start = start_proof(intent, files, check_paths, gitops_dir, recorded, cache,
                            observed_edges)
    if start.known is not None:
        return start.known
    # a flow is judged now only where the target refuses it: a break needs both
    proof = proof_of(intent, objects, files, check_paths, gitops_dir, recorded, start.owned,
                     start.observed, every_now=False)
    breaks = proof.breaks
    if breaks:
        raise FlowProofError(f"{intent.environment} ({intent.stage.value})",
                             [row.line() for row in breaks])
    result = StageProof(flow_section(proof), proof.warnings() + uncalled(intent, proof),
                        proof.counts(), proof)
    if start.key is not None and cache is not None:
        cache.mark_passed(start.key, {"section": result.section, "warnings": result.warnings,
                                      "counts": result.counts,
                                      "refused": result.counts.get("refused", 0)})
    return result


# Flows that do not make a service a callee: the kubelet, Prometheus, its own peers
_NOT_CALLS = ("probe", "scrape", "peers")


def uncalled(intent: Intent, proof: FlowProof) -> list[str]:
    """Injected catalogue services with ports that no flow reaches: no service's ``calls``,
    ingress, external caller, estate route or observed request names them. The proof cannot
    see a caller nothing says (a caller whose configuration file the import could not read,
    a call a person never wrote down), so it is said where such a caller would break: under
    default deny, from authorization on; with Istio, from strict_mtls on already. Each
    workload's Sidecar (from traffic on) lists only the services it calls, and a sidecar
    sends a request to a host its Sidecar does not list through the passthrough cluster, as
    plaintext (istio/istio#41978), which STRICT refuses; a caller without a proxy sends
    plaintext anyway. A service whose whole workload stays PERMISSIVE or DISABLE takes it."""
    denied = intent.default_deny and intent.stage.reached(Stage.AUTHORIZATION)
    strict = intent.provider == "istio" and intent.stage.reached(Stage.STRICT_MTLS)
    if not (denied or strict):
        return []
    reached: set[tuple[str, str | None]] = set()
    workloads: dict[int, tuple[str, Any]] = {}   # the workloads flows reach, once each
    for row in proof.rows:
        destination = row.flow.destination
        if row.flow.origin in _NOT_CALLS:
            continue
        reached.add((destination.namespace, destination.service))
        if destination.workload is not None:
            workloads[id(destination.workload)] = (destination.namespace,
                                                   destination.workload.labels)
    # a service is reached when a reached workload carries its selector's labels
    for namespace, labels in workloads.values():
        reached.update((s.namespace, s.name)
                       for s in intent.services_selecting(namespace, labels))
    found = []
    for service in intent.services:
        if not service.ports or not intent.injected(service) \
                or (service.namespace, service.name) in reached:
            continue
        exemption = intent.exemption_for(service.name)
        refuses_plaintext = strict and not (exemption and exemption.mode in RELAXED)
        if not (denied or refuses_plaintext):
            continue
        why = ("default deny refuses every request to it from the authorization stage on"
               if denied else "")
        if refuses_plaintext:
            why += ("; " if why else "") + (
                "from the strict_mtls stage on it refuses plaintext, which a caller sends "
                "when its Sidecar does not list it (Istio's passthrough cluster) or it has "
                "no proxy")
        found.append(f"flow proof: nothing calls {service.namespace}/{service.name} as far "
                     "as the inventory and the estate show (no service's calls, ingress, "
                     f"external caller or observed request): {why}; if something calls it, "
                     "add it to that caller's calls")
    return found


def _owned(gitops_dir: Path, environment: str) -> dict[str, str]:
    try:
        return GitOpsRepo(gitops_dir).owned(environment)
    except MeshstageError:
        return {}


def _label(stage: str, provider: str) -> str:
    return f"{stage} ({provider})"
