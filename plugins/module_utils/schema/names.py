"""Kubernetes name rules (DNS-1123 and DNS-1035 labels, subdomains, qualified names,
label values, path segments) and the field paths violations print.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


_PLAIN_PATH_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


VERSION = re.compile(r"^v[0-9][a-z0-9]*$")


GROUP = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$")


ANNOTATIONS_MAX_BYTES = 256 * 1024


DNS1123_SUBDOMAIN_RULE = (
    "a DNS-1123 subdomain: at most 253 characters, lowercase alphanumerics, '-' and '.', "
    "starting and ending alphanumeric"
)


DNS1123_LABEL_RULE = (
    "a DNS-1123 label: at most 63 characters, lowercase alphanumerics and '-', "
    "starting and ending alphanumeric"
)


DNS1035_LABEL_RULE = (
    "a DNS-1035 label: at most 63 characters, lowercase alphanumerics and '-', "
    "starting with a letter and ending alphanumeric"
)


PATH_SEGMENT_RULE = "a path segment: not '.' or '..' and without '/' or '%'"


QUALIFIED_NAME_RULE = (
    "an optional DNS-1123 subdomain prefix and '/', then a name of at most 63 characters: "
    "alphanumerics, '-', '_' and '.', starting and ending alphanumeric"
)


LABEL_VALUE_RULE = (
    "at most 63 characters, empty or alphanumerics, '-', '_' and '.', "
    "starting and ending alphanumeric"
)


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(value) is not None


def is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def is_dns1035_label(value: str) -> bool:
    return len(value) <= 63 and _DNS1035_LABEL.fullmatch(value) is not None


def is_path_segment(value: str) -> bool:
    return value not in (".", "..") and "/" not in value and "%" not in value


def is_qualified_name(value: str) -> bool:
    """A label or annotation key: ``[prefix/]name``."""
    prefix, slash, name = value.rpartition("/")
    if slash and not (prefix and is_dns1123_subdomain(prefix)):
        return False
    return 0 < len(name) <= 63 and _QUALIFIED_NAME.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and _QUALIFIED_NAME.fullmatch(value) is not None)


def format_path(parts: Iterable[str | int]) -> str:
    """``["spec", "http", 0, "route"]`` -> ``spec.http[0].route``; odd keys are quoted."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_PATH_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text
