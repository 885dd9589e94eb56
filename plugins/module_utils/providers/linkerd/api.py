"""Linkerd's API versions and annotations, the names meshstage gives its policy objects, and
how a stage's mTLS mode reads as an inbound policy."""

from __future__ import annotations

from typing import Any

from ...intent.model import SERVER_FIRST_PROTOCOLS, Intent, Service
from ...plan.model import Gap
from ...stages import Stage

PROVIDER = "linkerd"


POLICY_GROUP = "policy.linkerd.io"


SERVER = "policy.linkerd.io/v1beta3"


POLICY = "policy.linkerd.io/v1alpha1"


SPLIT = "split.smi-spec.io/v1alpha1"


INBOUND_POLICY = "config.linkerd.io/default-inbound-policy"


INJECT = "linkerd.io/inject"


TRACE_COLLECTOR = "config.linkerd.io/trace-collector"


TRACE_ACCOUNT = "config.alpha.linkerd.io/trace-collector-service-account"


ACCESS_LOG = "config.linkerd.io/access-log"


# The proxy as a native sidecar, per namespace or workload (https://linkerd.io/2-edge/
# features/native-sidecars/)
NATIVE_SIDECAR = "config.beta.linkerd.io/proxy-enable-native-sidecar"


VALUES_FILE = "00-install/values/linkerd-control-plane.yaml"


# Names meshstage gives the objects it shares in a namespace; no service-derived name
# (<service>-<port>...) starts with "meshstage-" unless a service does.
ADMIN_SERVER = "meshstage-proxy-admin"


ALL_NETWORKS = "meshstage-all-networks"


PROBE_NETWORKS = "meshstage-probe-networks"


SCRAPERS = "meshstage-prometheus"


PROXY_PROTOCOL = {"HTTP": "HTTP/1", "HTTP2": "HTTP/2", "GRPC": "gRPC", "TCP": "opaque",
                  "MONGO": "opaque", "REDIS": "opaque", "TLS": "TLS", "HTTPS": "TLS",
                  **{protocol: "opaque" for protocol in SERVER_FIRST_PROTOCOLS}}


# proxy.opaquePorts, the control plane chart's default: the ports whose protocol the proxies
# never detect (charts/linkerd-control-plane/values.yaml in linkerd/linkerd2)
DEFAULT_OPAQUE_PORTS: tuple[int, ...] = (25, 587, 3306, 4444, 5432, 6379, 9300, 11211)


EXCEPTION_POLICY = {"DISABLE": "all-unauthenticated", "PERMISSIVE": "all-unauthenticated",
                    "STRICT": "all-authenticated"}


# Istio retry conditions Linkerd's retry.linkerd.io/http takes as they are.
RETRY_CONDITIONS = ("5xx", "gateway-error")


# The gRPC statuses retry.linkerd.io/grpc takes (https://linkerd.io/2/reference/retries), under
# the names Istio's retryOn gives them too.
GRPC_RETRY_CONDITIONS = ("cancelled", "deadline-exceeded", "internal", "resource-exhausted",
                         "unavailable")


def linkerd_gap(path: str, value: Any, reason: str, service: Service | None = None) -> Gap:
    subject = f"service {service.namespace}/{service.name}" if service else ""
    return Gap(path, value, PROVIDER, reason, subject)


def inbound_policy(intent: Intent, namespace: str | None = None) -> str:
    """The default inbound policy at the environment's stage (a namespace's, when given)."""
    if namespace and intent.default_deny and intent.stage.reached(Stage.AUTHORIZATION):
        return "deny"
    if intent.stage.reached(Stage.STRICT_MTLS):
        return "all-authenticated"
    return "all-unauthenticated"
