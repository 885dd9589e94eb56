"""The last run's intent and plan, kept for a run with the same inputs.

Parsing the inventory's variables into the intent and planning the stage are pure
functions: of the variables, of the canary runs the repository records (they shape the
intent: ``canary/shaping.py``), of the estate's manifests (``mesh_check_paths``, which the
planners read) and of the code. Neither reads a file, the clock or the environment. At
5,000 services they are 40% of a run that changes nothing. So a run keeps both, pickled,
in the environment's stage cache (``render/stage_cache.py``), and the next run with the
same inputs loads them instead: a third of the time.

* **The key** is a hash, under the renderer's fingerprint (the source of meshstage's
  module_utils, the templates, the Python and library versions), of the variables as plain
  data and of the recorded canary runs, each pickled (which tells a tuple from a list and
  ``1`` from ``"1"``). The estate's manifests have a key of their own: the intent is loaded
  when only they changed, and the plan is made again from it.
* **What is kept**: the intent, the parse's warnings, the canary state and the plan, in one
  pickle. With meshstage's own templates it is taken while the run waits for the flow
  proof: nothing after planning changes the intent or the plan
  (``tests/unit/plugins/module_utils/plan/test_plan_memo.py`` compares the pickle taken
  then with one taken right after planning, on every example inventory at every stage and
  on the estates). With templates of the user's (``mesh_template_dirs``) it is taken right
  after planning: a template could change the values it is given while it renders.
* **With meshstage's own templates, each planned object's key** in the stage cache's
  renderings is kept too, under the renderer's fingerprint: made by the run that planned,
  from the contexts before any template rendered them. A run that loads the plan looks its
  renderings up by those keys instead of pickling and hashing every context again (at
  5,000 services, 25,000 contexts an environment). The same test file checks, on every
  example inventory and estate, that they are the keys the plan read back gives.
* **The runbook's canary section**, made of the intent and the canary state alone (the
  queries and history of every canary: 5,000 of them in the benchmark's estate), is kept
  with them.
* **Reading it back** builds meshstage's own dataclasses and enums and plain data, nothing
  else (``_PlanUnpickler``: Python's documentation of ``pickle``, "Restricting Globals"):
  a class must be defined in the module the pickle names, under meshstage's module_utils.
  A pickle's BUILD can also set attributes on a class or an enum member it names; every
  such class and member is compared with what it was before, put back if it changed, and
  the pickle refused. A class or function of any other module, a damaged pickle or one of
  other code is a miss, and the run parses and plans as if there were no cache.
* Values that pickle refuses (none that an inventory holds) are never kept, and a plan
  made from an estate that pickle refuses is never taken as the same.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import io
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

from ..canary.record import CanaryState
from ..estate.estate import Estate
from ..intent.model import Intent
from ..render.stage_cache import StageCache, pickle_or_none, pickled_as
from .model import StagePlan

# meshstage's own modules: the only ones whose classes a kept plan may name
_PACKAGE = __name__.rpartition(".plan.")[0] + "."


class PlanMemo:
    """The intent and plan of one run, looked up and kept in the stage cache."""

    def __init__(self, cache: StageCache | None, variables: Mapping[str, Any],
                 recorded: Mapping[str, Any]) -> None:
        self.variables = variables  # plain data (``plain_data``'s copy)
        self._cache = cache
        self._key = None if cache is None else _key(cache, "intent", [
            variables, recorded.get("canary")])
        # (intent, warnings, canary, estate key, plan, planned objects' keys, canary section)
        self._kept: tuple[Any, ...] | None = None
        self._data: bytes | None = None
        self._estate: tuple[Estate | None, str | None] | None = None  # the last one's key
        if cache is not None and self._key is not None:
            self._data = cache.planned(self._key)
            self._kept = _load(self._data) if self._data is not None else None
            if self._kept is None:
                self._data = None

    def parsed(self) -> tuple[Intent, list[str], CanaryState] | None:
        """The intent, the parse's warnings and the canary state the last run with the same
        variables and canary record had; None when there is none."""
        if self._kept is None:
            return None
        intent, warnings, canary = self._kept[:3]
        return intent, list(warnings), canary

    def canary_section(self) -> list[str] | None:
        """The runbook's canary section the kept intent and canary state gave (it is made
        of them alone: ``canary/messages.py``); None when none was kept."""
        if self._kept is None or self._kept[6] is None:
            return None
        return list(self._kept[6])

    def identify(self, intent: Intent) -> None:
        """Let the key stand for ``intent`` in the keys of the analysis and the flow proof
        (``stage_cache.pickled``): the same for the intent parsed and for the one loaded."""
        if self._key is not None:
            pickled_as(intent, f"intent {self._key}".encode())

    def plan(self, estate: Estate | None) -> StagePlan | None:
        """The kept plan, when it was made from the same estate; None otherwise."""
        key = self._estate_key(estate)
        if self._kept is None or key is None or self._kept[3] != key:
            return None
        plan: StagePlan = self._kept[4]
        return plan

    def render_keys(self, plan: StagePlan) -> list[str | None] | None:
        """The stage-cache key of each of ``plan``'s objects, kept with it, when ``plan`` is
        the kept plan and its keys were made under this renderer; None otherwise."""
        if self._kept is None or self._kept[4] is not plan or self._cache is None:
            return None
        keys = self._kept[5]
        if keys is None or keys[0] != self._cache.renderer_key \
                or len(keys[1]) != len(plan.objects):
            return None
        return list(keys[1])

    def _estate_key(self, estate: Estate | None) -> str | None:
        if self._estate is None or self._estate[0] is not estate:
            self._estate = (estate, _estate_key(estate))
        return self._estate[1]

    def keep(self, intent: Intent, warnings: Sequence[str], canary: CanaryState,
             estate: Estate | None, plan: StagePlan,
             keys: Sequence[str | None] | None = None,
             canary_section: Sequence[str] | None = None) -> None:
        """Keep this run's intent and plan for the next run (unless they were loaded), with
        ``keys``, the stage-cache key of each of the plan's objects (``render_keys``), and
        the runbook's canary section made of ``intent`` and ``canary``."""
        if self._cache is None or self._key is None:
            return
        estate_key = self._estate_key(estate)
        kept_keys = (self._cache.renderer_key, tuple(keys)) \
            if keys is not None and len(keys) == len(plan.objects) else None
        section = tuple(canary_section) if canary_section is not None else None
        if self._data is None or self._kept is None or self._kept[3] != estate_key \
                or self._kept[4] is not plan or self._kept[5] != kept_keys \
                or self._kept[6] != section:
            try:
                self._data = pickle.dumps(
                    (intent, tuple(warnings), canary, estate_key, plan, kept_keys, section),
                    protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # anything pickle refuses is simply made every time
                return
        self._cache.keep_plan(self._key, self._data)


def _key(cache: StageCache, name: str, values: Sequence[Any]) -> str | None:
    parts: list[bytes] = []
    for value in values:
        data = pickle_or_none(value)
        if data is None:  # what pickle refuses is made every time
            return None
        parts.append(data)
    return cache.check_key(name, parts)


def _estate_key(estate: Estate | None) -> str | None:
    """The estate's manifests as the planners read them, hashed ("" for none); None when
    pickle refuses them (then no plan made from them is ever taken as the same)."""
    if estate is None:
        return ""
    data = pickle_or_none(estate.resources)
    return hashlib.sha256(data).hexdigest() if data is not None else None


class _PlanUnpickler(pickle.Unpickler):
    """Builds meshstage's own dataclasses and enums, and plain data; refuses every other
    class and function, so no code but theirs can run. Remembers each class it gave and
    its enum members as they were (``changed``)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self._given: dict[type, tuple[dict[str, Any], dict[Any, dict[str, Any]]]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_PACKAGE) and "." not in name:
            found = super().find_class(module, name)
            if isinstance(found, type) and found.__module__ == module and (
                    dataclasses.is_dataclass(found) or issubclass(found, enum.Enum)):
                if found not in self._given:
                    members = {member: dict(vars(member)) for member in found} \
                        if issubclass(found, enum.Enum) else {}
                    self._given[found] = (dict(vars(found)), members)
                return found
        if module == "builtins" and name in ("set", "frozenset"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not meshstage's intent or plan")

    def changed(self) -> bool:
        """Whether the pickle set attributes on a class or an enum member it named (BUILD
        can); each is put back as it was."""
        found = False
        for given, (attributes, members) in self._given.items():
            if not _same(vars(given), attributes):
                found = True
                for name in set(vars(given)) - set(attributes):
                    type.__delattr__(given, name)
                for name, value in attributes.items():
                    if vars(given).get(name, _same) is not value:
                        type.__setattr__(given, name, value)
            for member, state in members.items():
                if not _same(vars(member), state):
                    found = True
                    vars(member).clear()
                    vars(member).update(state)
        return found


def _same(now: Mapping[str, Any], before: Mapping[str, Any]) -> bool:
    return len(now) == len(before) and all(
        name in now and now[name] is value for name, value in before.items())


def _load(data: bytes) -> tuple[Any, ...] | None:
    """The kept (intent, warnings, canary, estate key, plan, planned objects' keys, canary
    section); None when it is not that. A pickle kept before the keys and the section were
    (five or six parts) has none of what it lacks."""
    unpickler = _PlanUnpickler(io.BytesIO(data))
    try:
        kept = unpickler.load()
    except Exception:  # a kept plan that cannot be read is ignored, whatever the reason
        kept = None
    if unpickler.changed():
        return None
    if isinstance(kept, tuple) and len(kept) in (5, 6):
        kept = (*kept, *(None,) * (7 - len(kept)))
    if not (isinstance(kept, tuple) and len(kept) == 7 and isinstance(kept[0], Intent)
            and isinstance(kept[1], tuple) and all(isinstance(w, str) for w in kept[1])
            and isinstance(kept[2], CanaryState) and isinstance(kept[4], StagePlan)
            and kept[4].intent is kept[0]):
        return None
    if not _keys(kept[5]):
        kept = (*kept[:5], None, kept[6])
    if not (isinstance(kept[6], tuple) and all(isinstance(line, str) for line in kept[6])):
        kept = (*kept[:6], None)
    return kept


def _keys(value: Any) -> bool:
    """Whether ``value`` is kept keys: (the renderer's fingerprint, a key or None each)."""
    return (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], tuple)
            and all(key is None or isinstance(key, str) for key in value[1]))
