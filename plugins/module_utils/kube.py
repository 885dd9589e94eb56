"""Kubernetes facts meshstage relies on everywhere, each written once: the Kubernetes version
objects are validated for by default, the labels that mark what meshstage owns, the field
manager of its server-side applies, how a label selector selects, and how to find the
objects whose labels selector may select a pod without trying every one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# The Kubernetes version whose core schemas validate rendered objects unless told otherwise.
DEFAULT_KUBERNETES_VERSION = "1.33.0"

# Every object meshstage renders (but Namespaces) carries both labels: a prune selects by them.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "meshstage"
ENVIRONMENT_LABEL = "meshstage.io/environment"
# The field manager of every server-side apply: the cluster records meshstage's fields
# under this name (kubectl get ... --show-managed-fields).
FIELD_MANAGER = "meshstage"


def ownership_labels(environment: str) -> dict[str, str]:
    """The labels that mark an object as meshstage's, of ``environment``."""
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, ENVIRONMENT_LABEL: environment}


_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A Kubernetes LabelSelector (``matchLabels`` and ``matchExpressions``) against labels.

    An empty selector matches everything, as the API defines; a missing one (None) nothing.
    A requirement with an operator the API does not know selects nothing (the API server
    refuses such a selector). Values are compared as strings, as YAML may give numbers.
    """
    if selector is None:
        return False
    match_labels = selector.get("matchLabels")
    for key, value in (match_labels.items() if isinstance(match_labels, Mapping) else ()):
        if labels.get(str(key)) != str(value):
            return False
    expressions = selector.get("matchExpressions")
    for expression in expressions if isinstance(expressions, list | tuple) else ():
        if not isinstance(expression, Mapping):
            return False
        key, operator = str(expression.get("key")), expression.get("operator")
        raw = expression.get("values")
        values = {str(v) for v in raw} if isinstance(raw, list | tuple) else set()
        present = key in labels
        if operator not in _OPERATORS \
                or (operator == "In" and not (present and labels[key] in values)) \
                or (operator == "NotIn" and present and labels[key] in values) \
                or (operator == "Exists" and not present) \
                or (operator == "DoesNotExist" and present):
            return False
    return True


def selector_text(labels: Mapping[str, str]) -> str:
    """``app=reviews,version=v1``: a label set as Kubernetes prints a selector."""
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


class LabelPostings(Generic[T]):
    """Items that select pods by labels (``matchLabels``), each posted once: under the first
    of its selector's label pairs, or under None when it has none. The items that may
    select a pod are those under None and those under one of the pod's own pairs: every
    item that does select it is among them, and only once. ``candidates`` gives them in
    the order they were added; the caller still matches each whole selector."""

    def __init__(self) -> None:
        self._posted: dict[tuple[str, str] | None, list[tuple[int, T]]] = {}
        self._added = 0

    def add(self, selector: Mapping[str, str], item: T) -> None:
        self._posted.setdefault(min(selector.items(), default=None), []).append(
            (self._added, item))
        self._added += 1

    def candidates(self, labels: Mapping[str, str]) -> list[T]:
        found = list(self._posted.get(None, ()))
        for pair in labels.items():
            found += self._posted.get(pair, ())
        found.sort(key=_order)
        return [item for _order_, item in found]


def _order(posted: tuple[int, Any]) -> int:
    return posted[0]
