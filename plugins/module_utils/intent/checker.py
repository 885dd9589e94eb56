"""The intent checker: collects every problem of one intent, each with its field path and value.

The value checks (names, labels, durations, quantities, URLs) that every part of the parser
shares, and the helpers that walk optional fields."""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ..errors import IntentError
from .model import (
    Service,
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s))+$")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")


_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


GIT_URL = re.compile(r"^(http|https|ssh)://\S+$")  # what Flux's GitRepository accepts


HTTP_URL = re.compile(r"^https?://[^\s/]+\S*$")


HELM_REPOSITORY = re.compile(r"^(https|oci)://\S+$")


CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


ABSOLUTE_PATH = re.compile(r"^/[^\s]*$")


RETRY_ON = re.compile(r"^[a-z0-9-]+(,[a-z0-9-]+)*$")


PROBE_PATH = re.compile(r"^/[^\s*?#]*$")


# A host name a gateway receives requests for: DNS labels, optionally a leading "*." wildcard.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
INGRESS_HOST = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


# A gateway by name, or namespace/name (DNS labels and subdomains).
GATEWAY_REF = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


HOST_PORT = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[0-9]{1,5}$")


_SERVICE_ITEM = re.compile(r"^mesh_services\[(\d+)\](?! \()")


# C0 and C1 controls, and the Unicode line and paragraph separators YAML reads as breaks.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Characters go-yaml (kubectl kustomize, Argo CD, Flux) refuses in a document: the byte
# order mark inside a text, and the noncharacters U+FFFE and U+FFFF.
_UNREADABLE_CHARS = re.compile("[\ufeff\ufffe\uffff]")

# The largest value of a protobuf int32 and uint32 field (Istio's connection pool and
# outlier detection counts; the CRDs say format: int32, or maximum: 4294967295).
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
# The longest duration Kubernetes and the meshes parse (Go's time.Duration, int64
# nanoseconds: about 2562047h); the CRDs' CEL rules (duration(self) >= ...) fail beyond it.
_LONGEST_DURATION = (2**63 - 1) / 1e9


T = TypeVar("T")


class Checker:
    """Collects every problem of one intent, each with its path and value."""

    def __init__(self) -> None:
        self.errors: list[IntentError] = []
        self.warnings: list[str] = []
        # Services written in mesh_services but refused for errors of their own, and their
        # namespaces: naming them elsewhere is not reported again as "not a service".
        self.refused_services: set[str] = set()
        self.refused_namespaces: set[str] = set()
        # the name of each mesh_services item, once read: errors name the service too
        self.service_names: dict[int, str] = {}

    def named(self, path: str) -> str:
        """``mesh_services[2].calls[0]`` as ``mesh_services[2] (reviews).calls[0]``."""
        found = _SERVICE_ITEM.match(path)
        if found is None or int(found.group(1)) not in self.service_names:
            return path
        return (f"{found.group(0)} ({self.service_names[int(found.group(1))]})"
                + path[found.end():])

    def error(self, path: str, value: Any, problem: str) -> None:
        self.errors.append(IntentError(self.named(path), value, problem))

    def warn(self, path: str, value: Any, problem: str) -> None:
        self.warnings.append(str(IntentError(self.named(path), value, problem)))

    def unknown_service(self, name: str, path: str, by_name: Mapping[str, Service],
                        problem: str = "is not a service in mesh_services") -> bool:
        """True when ``name`` is no service of the catalogue (recorded unless refused), with
        the closest name there is as a "did you mean"."""
        if name in by_name:
            return False
        if name not in self.refused_services:
            self.error(path, name, problem + suggestion(name, by_name))
        return True

    def mapping(
        self,
        value: Any,
        path: str,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> dict[str, Any] | None:
        """A dict with only the allowed keys, or None after recording why not."""
        if not isinstance(value, Mapping):
            self.error(path, value, "is not a mapping")
            return None
        allowed = set(required) | set(optional)
        ok = True
        for key in value:
            if key not in allowed:
                self.error(join_path(path, str(key)), value[key], unknown_key(key, allowed))
                ok = False
        for key in required:
            if key not in value:
                self.error(join_path(path, key), None, "is required")
                ok = False
        return dict(value) if ok else None

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            self.error(path, value, "is not a list")
            return []
        return list(value)

    def string(self, value: Any, path: str, pattern: re.Pattern[str] | None = None,
               what: str = "") -> str | None:
        if not isinstance(value, str) or value == "":
            self.error(path, value, "is not a non-empty string")
            return None
        if _CONTROL_CHARS.search(value):
            self.error(path, value, "contains a newline or control character")
            return None
        if _UNREADABLE_CHARS.search(value):
            self.error(path, value, "contains U+FEFF, U+FFFE or U+FFFF, which kubectl "
                       "kustomize (go-yaml) cannot read back")
            return None
        if pattern is not None and not pattern.match(value):
            self.error(path, value, f"is not {what}")
            return None
        return value

    def quantity(self, value: Any, path: str) -> str | None:
        return self.string(value, path, _QUANTITY,
                           "a Kubernetes quantity (e.g. 100m, 0.5, 128Mi, 1Gi)")

    def dns_label(self, value: Any, path: str) -> str | None:
        text = self.string(value, path)
        if text is not None and (len(text) > 63 or not _DNS_LABEL.match(text)):
            self.error(path, value, "is not a valid DNS-1123 label "
                       "(lower case letters, digits and '-', at most 63, starting and "
                       "ending with a letter or digit)")
            return None
        return text

    def dns_subdomain(self, value: Any, path: str) -> str | None:
        text = self.string(value, path)
        if text is not None and (len(text) > 253 or not _DNS_SUBDOMAIN.match(text)):
            self.error(path, value, "is not a valid DNS-1123 subdomain")
            return None
        return text

    def integer(self, value: Any, path: str, low: int, high: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, value, "is not an integer")
            return None
        if value < low:
            self.error(path, value, f"is under {low}")
            return None
        if high is not None and value > high:
            self.error(path, value, f"is over {high}")
            return None
        return value

    def number(self, value: Any, path: str, low: float, high: float) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(path, value, "is not a number")
            return None
        if not low <= value <= high:
            self.error(path, value, f"is not between {low:g} and {high:g}")
            return None
        return float(value)

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.error(path, value, "is not a boolean (true or false)")
            return None
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...]) -> str | None:
        if value not in choices:
            self.error(path, value, "is not one of " + ", ".join(choices))
            return None
        return str(value)

    def duration(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str) or not _DURATION.match(value):
            self.error(path, value, "is not a duration (e.g. 10s, 1.5s, 250ms, 1m)")
            return None
        if duration_seconds(value) < 0.001:
            self.error(path, value, "is shorter than 1ms, the least Istio accepts")
            return None
        if duration_seconds(value) > _LONGEST_DURATION:
            self.error(path, value, "is longer than 2562047h, the longest duration "
                       "Kubernetes and the meshes parse")
            return None
        return value

    def labels(self, value: Any, path: str) -> dict[str, str] | None:
        if not isinstance(value, Mapping) or not value:
            self.error(path, value, "is not a non-empty mapping of labels")
            return None
        result: dict[str, str] = {}
        for key, val in value.items():
            key_path = join_path(path, str(key))
            if not isinstance(key, str) or not _valid_label_key(key):
                self.error(key_path, key, "is not a valid Kubernetes label key")
                continue
            if not isinstance(val, str) or len(val) > 63 or not _LABEL_VALUE.match(val):
                self.error(key_path, val, "is not a valid Kubernetes label value (at most 63 "
                           "letters, digits, '-', '_' or '.', starting and ending with a "
                           "letter or digit)")
                continue
            result[key] = val
        return result


def is_dns_label(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(_DNS_LABEL.match(value))


def join_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def unknown_key(key: Any, allowed: set[str]) -> str:
    by_lower = {name.lower(): name for name in allowed}
    close = difflib.get_close_matches(str(key).lower(), sorted(by_lower), n=1, cutoff=0.8)
    hint = f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
    return "is not a known key here; known: " + ", ".join(sorted(allowed)) + hint


def suggestion(name: Any, known: Iterable[str]) -> str:
    """`` (did you mean 'reviews'?)`` for the known name closest to ``name``, or ``""``."""
    close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _valid_label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


@functools.lru_cache(maxsize=1024)
def duration_seconds(text: str) -> float:
    """Seconds in a Go-style duration such as ``1m30s`` or ``250ms``. Remembered: an estate
    writes the same few durations over and over (60,000 checks at 5,000 services)."""
    return sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))


def optional(check: Checker, data: Mapping[str, Any], key: str, path: str,
             parse: Callable[[Any, str], T | None], default: T) -> T:
    if key not in data or data[key] is None:
        return default
    parsed = parse(data[key], join_path(path, key))
    return default if parsed is None else parsed


def at_least_seconds(check: Checker, value: Any, path: str, least: float) -> str | None:
    text = check.duration(value, path)
    if text is not None and duration_seconds(text) < least:
        check.error(path, value, f"is shorter than {least:g}s")
        return None
    return text


def parse_simple(check: Checker, value: Any, path: str, kind: type[T],
                 fields: Mapping[str, Callable[[Any, str], Any]],
                 none_if_absent: bool = False) -> Any:
    """A flat mapping whose keys are the dataclass ``kind``'s fields."""
    if value is None:
        return None if none_if_absent else kind()
    data = check.mapping(value, path, optional=tuple(fields))
    if data is None:
        return None if none_if_absent else kind()
    values = {}
    for key, parse in fields.items():
        if key in data and data[key] is not None:
            parsed = parse(data[key], join_path(path, key))
            if parsed is not None:
                values[key] = parsed
    return kind(**values)


def parse_networks(check: Checker, value: Any, path: str) -> tuple[str, ...]:
    items = check.sequence(value, path)
    if not items and isinstance(value, list | tuple):
        check.error(path, value, "is not a non-empty list of CIDRs")
    networks: list[str] = []
    for index, item in enumerate(items):
        item_path = join_path(path, index)
        text = check.string(item, item_path)
        if text is None:
            continue
        try:
            networks.append(str(ipaddress.ip_network(text, strict=True)))
        except ValueError:
            check.error(item_path, item, "is not a CIDR (e.g. 10.0.0.0/8, fd00::/8)")
    return tuple(dict.fromkeys(networks))


def ip_address(check: Checker, value: Any, path: str) -> str | None:
    text = check.string(value, path)
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        check.error(path, value, "is not an IP address")
        return None
