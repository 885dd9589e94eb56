"""Istio's API versions, and the annotation that makes an AuthorizationPolicy a dry run."""

from __future__ import annotations

NETWORKING = "networking.istio.io/v1"


NETWORKING_PROXY = "networking.istio.io/v1beta1"  # ProxyConfig is served as v1beta1 only


SECURITY = "security.istio.io/v1"


# At strict_mtls the authorization stage's policies run as a dry run: the proxies evaluate
# them and count what they would deny, and enforce nothing (the authorization gate reads it).
DRY_RUN = {"istio.io/dry-run": "true"}


TELEMETRY = "telemetry.istio.io/v1"
