"""Istio-shaped series of the example estate, for the gate tests: thirty minutes of a mesh,
every 15 s, up to 20 s before ``now``, in the shape ``PrometheusLab.backfill`` takes.

- order-service calls payment-service over mTLS all along (1 request/s);
- reviews (whom the intent does not admit) called payment-service until 8 minutes ago;
- plaintext into reviews-v1 (HTTP) and ratings-v1 (TCP) stopped 8 minutes ago; into the
  DISABLE exception legacy-billing it goes on;
- the dry run at payment-service (Envoy RBAC shadow rules of the istio.io/dry-run policies,
  ``envoy_http_inbound_<address>_<port>_rbac`` as Istio's stats tags name them) denied
  requests until 8 minutes ago, on one of its two listeners;
- the dry run of reviews started 12 minutes ago, and denied nothing.

A window of 15 minutes therefore holds the plaintext, the denials and the caller; a window
of 5 minutes holds none of them.
"""

from __future__ import annotations

from typing import Any

STEP = 15.0
SPIFFE = "spiffe://cluster.local/ns/{}/sa/{}"


def _istio(destination: str, namespace: str, app: str, source: str, policy: str,
           protocol: str = "http") -> dict[str, str]:
    return {"reporter": "destination", "destination_workload": destination,
            "destination_workload_namespace": namespace, "destination_app": app,
            "destination_service_name": app, "destination_service_namespace": namespace,
            "source_principal": source, "connection_security_policy": policy,
            "request_protocol": protocol, "response_code": "200"}


def istio_mesh_series(now: float) -> dict[str, Any]:
    end = now - 20
    points = [end - 1800 + STEP * i for i in range(int(1800 / STEP) + 1)]
    stopped = now - 480

    def rising(start: float = points[0], until: float = end, rate: float = 1.0):
        return [(t, rate * (min(t, until) - start)) for t in points if t >= start]

    order = SPIFFE.format("payments", "order-service")
    reviews = SPIFFE.format("bookinfo", "bookinfo-reviews")
    rbac = "envoy_http_inbound_0_0_0_0_{}_rbac"
    pay = {"namespace": "payments", "app": "payment-service", "pod": "payment-service-v1-1"}
    return {
        "istio_requests": ("counter", [
            (_istio("payment-service-v1", "payments", "payment-service", order, "mutual_tls"),
             rising()),
            (_istio("payment-service-v1", "payments", "payment-service", reviews,
                    "mutual_tls"), rising(until=stopped, rate=0.2)),
            (_istio("reviews-v1", "bookinfo", "reviews", "unknown", "none"),
             rising(until=stopped, rate=0.5)),
            (_istio("legacy-billing", "payments", "legacy-billing", "unknown", "none"),
             rising()),
        ]),
        "istio_tcp_connections_opened": ("counter", [
            (_istio("ratings-v1", "bookinfo", "ratings", "unknown", "none", "tcp"),
             rising(until=stopped, rate=0.1)),
        ]),
        rbac.format(8080): ("gauge", [
            ({**pay, "authz_dry_run_action": "allow", "authz_dry_run_result": "denied"},
             rising(until=stopped, rate=0.2)),
            ({**pay, "authz_dry_run_action": "allow", "authz_dry_run_result": "allowed"},
             rising()),
        ]),
        # a second listener of the same pod: increase() drops the name, so each is asked alone
        rbac.format(9090): ("gauge", [
            ({**pay, "authz_dry_run_action": "deny", "authz_dry_run_result": "denied"},
             [(t, 0.0) for t in points]),
        ]),
        "envoy_http_inbound_0_0_0_0_9080_rbac": ("gauge", [
            ({"namespace": "bookinfo", "app": "reviews", "pod": "reviews-v1-1",
              "authz_dry_run_action": "allow", "authz_dry_run_result": "denied"},
             [(t, 0.0) for t in points if t >= now - 720]),
        ]),
    }
