"""Sync units: an environment's tree cut into folders that Argo CD and Flux build one by one.

Both tools run ``kustomize build`` on what they sync, and kustomize's cost grows with the
square of the objects in one build: an environment of 1,000 services (5,000 objects) took
107 s in one build, past Argo CD's default 90 s for a manifest generation
(``ARGOCD_EXEC_TIMEOUT``, argoproj/argo-cd#7898). So each environment is cut into units::

    envs/<env>/<NN-stage>/<RR>-<namespace>[.<part>]/

A unit holds the objects of one stage folder, one place ``RR`` in the apply order
(``cluster/apply.py``'s ``APPLY_ORDER``) and one namespace (``cluster`` for cluster-scoped
objects). Its stage is the first stage that made the object (``PlannedObject.home``), so a
stage move reshapes an object where it is and never hands it from one unit to another: Argo
CD and Flux would prune it from the old unit before the new unit applies it, since the new
unit comes later. A unit over ``MAX_UNIT_OBJECTS`` objects is cut in 2, 4, 8... parts by a
hash of each object's file name; part 0 keeps the unit's name, so a cut moves only the
objects of the new parts, and they are applied before part 0 gives them up. A cut, once
made, is kept (the repository records it, ``place_units``'s ``kept``): were it undone when
the unit shrinks, the objects of the parts that go would move back into part 0 while
their old unit is deleted, and Argo CD or Flux, deleting that unit's Application or
Kustomization, would prune the objects it still owns before part 0 takes them.

The units sync in the apply order, as ``cluster/apply.py`` applies objects: by ``RR``, then
by stage, then higher parts first (``SyncUnit.position``). Units of different team
namespaces do not wait for each other (no object in one selects or routes another
namespace's workloads); the mesh-wide ones (cluster-scoped objects, the root namespace,
namespaces without services) wait for everything before them, and everything after them
waits for them (``dependencies``).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby

from ..stages import Stage

# Objects per unit at most. kustomize builds 500 objects in about a second; the cost per
# object of a unit that size is close to the cost of a tiny one.
MAX_UNIT_OBJECTS = 500
CLUSTER_SCOPE = "cluster"  # the namespace part of cluster-scoped objects, as in file names
_MAX_SPLIT_BITS = 16


@dataclass(frozen=True)
class SyncUnit:
    """One unit: the stage folder, place in the apply order, namespace, and part."""

    stage: Stage
    rank: int
    scope: str
    part: int = 0

    @property
    def folder(self) -> str:
        """Where the unit is in the environment's tree: ``04-traffic/04-bookinfo``."""
        suffix = f".{self.part}" if self.part else ""
        return f"{self.stage.folder}/{self.rank:02d}-{self.scope}{suffix}"

    @property
    def position(self) -> tuple[int, int, int]:
        """The unit's place in the sync order: apply order, stage, higher parts first."""
        return (self.rank, self.stage.number, -self.part)

    @property
    def wave(self) -> str:
        """The position as a label value: ``<RR>-<NN>-<part>``."""
        return f"{self.rank:02d}-{self.stage.number:02d}-{self.part}"

    def name(self, environment: str) -> str:
        """The name of the unit's Argo CD Application and Flux Kustomization."""
        suffix = f".{self.part}" if self.part else ""
        return (f"meshstage-{environment}-{self.stage.number:02d}-{self.rank:02d}-"
                f"{self.scope}{suffix}")


@dataclass(frozen=True)
class UnitKey:
    """What places one object in a unit: its home stage, apply rank, namespace, file name."""

    stage: Stage
    rank: int
    scope: str
    filename: str


def place_units(keys: Sequence[UnitKey], limit: int | None = None,
                kept: Mapping[str, int] | None = None
                ) -> tuple[list[SyncUnit], dict[str, int]]:
    """The unit of each object (in the order given), no unit over ``limit`` objects
    (``MAX_UNIT_OBJECTS`` by default), and the cuts made: the hash bits of each unit cut in
    parts, by its part 0's folder. ``kept`` holds the cuts recorded before; no unit is cut
    in fewer bits than it was."""
    limit = MAX_UNIT_OBJECTS if limit is None else limit
    groups: dict[tuple[Stage, int, str], list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault((key.stage, key.rank, key.scope), []).append(index)
    units: dict[int, SyncUnit] = {}
    cuts: dict[str, int] = {}
    for (stage, rank, scope), members in groups.items():
        folder = SyncUnit(stage, rank, scope).folder
        parts, bits = cut_parts([keys[index].filename for index in members], limit,
                                kept_bits(kept, folder))
        if bits:
            cuts[folder] = bits
        for index, part in zip(members, parts, strict=True):
            units[index] = SyncUnit(stage, rank, scope, part)
    return [units[index] for index in range(len(keys))], cuts


def cut_parts(names: Sequence[str], limit: int, least_bits: int = 0
              ) -> tuple[list[int], int]:
    """Each name's part, and the hash bits that make the parts: the fewest that keep every
    part within ``limit``, and never fewer than ``least_bits``."""
    hashes = [_file_hash(name) for name in names]
    bits = max(least_bits, split_bits(hashes, limit))
    mask = (1 << bits) - 1
    return [value & mask for value in hashes], bits


def kept_bits(kept: Mapping[str, int] | None, key: str) -> int:
    """The bits recorded for ``key``; 0 for none, or for a value that is no bit count
    (the record is JSON in the repository, where a hand can edit it)."""
    value = (kept or {}).get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return value if 0 <= value <= _MAX_SPLIT_BITS else 0


def split_bits(hashes: Sequence[int], limit: int) -> int:
    """The fewest hash bits that cut the objects into parts of at most ``limit`` each."""
    bits = 0
    while bits < _MAX_SPLIT_BITS and _largest_part(hashes, bits) > limit:
        bits += 1
    return bits


def _largest_part(hashes: Sequence[int], bits: int) -> int:
    mask = (1 << bits) - 1
    return max(Counter(value & mask for value in hashes).values(), default=0)


def _file_hash(filename: str) -> int:
    """A hash that is the same on every machine and every run (``hash()`` is not)."""
    return zlib.crc32(filename.encode("utf-8"))


def sync_order(units: Iterable[SyncUnit]) -> list[SyncUnit]:
    """Every unit once, in the order they sync."""
    return sorted(set(units), key=lambda unit: (unit.position, unit.scope))


def waves(units: Iterable[SyncUnit]) -> list[list[SyncUnit]]:
    """The units in sync order, grouped by position: each group syncs together."""
    return [list(group) for _position, group in
            groupby(sync_order(units), key=lambda unit: unit.position)]


def dependencies(units: Iterable[SyncUnit],
                 shared: frozenset[str]) -> dict[SyncUnit, list[SyncUnit]]:
    """What each unit waits for: the last unit before it of its own namespace and of each
    ``shared`` (mesh-wide) one; a shared unit waits for the last unit before it of every
    namespace. Together they order every two units that touch the same workloads."""
    last: dict[str, SyncUnit] = {}
    result: dict[SyncUnit, list[SyncUnit]] = {}
    for wave in waves(units):
        for unit in wave:
            result[unit] = _waits_for(unit, last, shared)
        last.update((unit.scope, unit) for unit in wave)
    return result


def _waits_for(unit: SyncUnit, last: dict[str, SyncUnit],
               shared: frozenset[str]) -> list[SyncUnit]:
    scopes = last if unit.scope in shared else [unit.scope, *sorted(shared)]
    found = {last[scope] for scope in scopes if scope in last}
    return sorted(found, key=lambda each: (each.position, each.scope))
