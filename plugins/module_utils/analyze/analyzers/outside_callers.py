"""MST0113, MST0114, MST0115, MST0121: STRICT mTLS or authorization that refuses a caller
outside the mesh: an ingress controller, the Kubernetes API server calling a webhook,
Prometheus, a client outside the cluster through a NodePort or LoadBalancer Service."""

from __future__ import annotations

from ...estate.callers import OutsideCall, outside_calls
from ...estate.index import MeshIndex
from ...providers.istio.ports import EXCLUDE_INBOUND, uncaptured_inbound
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._authz import Caller, PolicyIndex, admission_at, caller_of
from ._mtls import effective_mode

CODES = {"ingress": "MST0113", "webhook": "MST0114", "scrape": "MST0115",
         "exposed": "MST0121"}
MERGE_METRICS = "prometheus.istio.io/merge-metrics"
_FIX = {
    "ingress": "inject the controller (its requests then carry its identity), or give the "
               "backend port a PERMISSIVE exception and an ALLOW rule for it (meshstage: "
               "mesh_external_callers, kind ingress-controller)",
    "webhook": "give the webhook port a PERMISSIVE exception (portLevelMtls) and an ALLOW "
               "rule for it (meshstage: mesh_external_callers, kind kube-apiserver), or "
               f"exclude it from the sidecar ({EXCLUDE_INBOUND})",
    "scrape": "let Istio merge the metrics (scrape the prometheus.io annotations), scrape "
              "with Istio certificates, or give the port a PERMISSIVE exception and an ALLOW "
              "rule for its path (meshstage: mesh_external_callers, kind prometheus)",
    "exposed": "give the port a PERMISSIVE exception (portLevelMtls) and an ALLOW rule for it "
               "without a source (meshstage: mesh_external_callers, kind external-clients), "
               "or take outside traffic in through the ingress gateway instead",
}


class OutsideCallersAnalyzer(Analyzer):
    """A caller outside the catalogue that the mesh's policies refuse. The manifests show
    it: an ``Ingress`` (or a Gateway API route on a Gateway) of an ingress controller
    (MST0113), a webhook configuration the Kubernetes API server calls (MST0114), a
    ``ServiceMonitor``, ``PodMonitor`` or ``prometheus.io/*`` annotation Prometheus scrapes
    (MST0115). A caller without a sidecar sends plaintext with no identity: STRICT mTLS on
    the port refuses it, and so does default deny unless an ALLOW rule admits the port
    without a principal. The API server never has a sidecar ("The api server is not capable
    of doing Istio mTLS", https://github.com/istio/istio/issues/39290); Prometheus scraping
    through its sidecar sends plaintext too
    (https://istio.io/latest/docs/ops/integrations/prometheus/#tls-settings), unless it
    scrapes with Istio certificates (a ``tlsConfig`` naming them) or Istio merges the
    metrics (``prometheus.io`` annotations, the default). An ingress controller whose pods
    the input does not show is taken to have no sidecar. A webhook with ``failurePolicy:
    Ignore`` is a Warning: it fails open, silently. A ``NodePort`` or ``LoadBalancer``
    Service (or one with ``externalIPs``) and a container's ``hostPort`` take connections
    from clients outside the cluster, forwarded to the pods by kube-proxy
    (https://kubernetes.io/docs/concepts/services-networking/service/#type-nodeport): they
    are plaintext without identity (MST0121). A port the target's sidecar does not capture
    (``traffic.sidecar.istio.io/includeInboundPorts`` without it, or
    ``excludeInboundPorts`` with it: https://istio.io/latest/docs/reference/config/
    annotations/) is not judged: the caller reaches the application directly.

    Fails with MST0113::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop, labels: {istio-injection: enabled}}
        ---
        apiVersion: networking.k8s.io/v1
        kind: IngressClass
        metadata: {name: nginx}
        spec: {controller: k8s.io/ingress-nginx}
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: storefront, namespace: shop}
        spec:
          ingressClassName: nginx
          rules:
          - host: shop.example.com
            http:
              paths:
              - {path: /, pathType: Prefix,
                 backend: {service: {name: storefront, port: {number: 80}}}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: storefront, namespace: shop}
        spec: {selector: {app: storefront}, ports: [{name: http, port: 80, targetPort: 8080}]}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: storefront, namespace: shop}
        spec:
          selector: {matchLabels: {app: storefront}}
          template:
            metadata: {labels: {app: storefront}}
            spec: {containers: [{name: web, image: storefront, ports: [{containerPort: 8080}]}]}

    Fails with MST0114::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: policy, labels: {istio-injection: enabled}}
        ---
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingWebhookConfiguration
        metadata: {name: policy-webhook}
        webhooks:
        - name: validate.policy.example.com
          admissionReviewVersions: [v1]
          sideEffects: None
          failurePolicy: Fail
          clientConfig: {service: {namespace: policy, name: policy-webhook, path: /validate}}
          rules: [{apiGroups: [apps], apiVersions: [v1], operations: [CREATE],
                   resources: [deployments]}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: policy-webhook, namespace: policy}
        spec:
          selector: {app: policy-webhook}
          ports: [{name: https, port: 443, targetPort: 9443}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: policy-webhook, namespace: policy}
        spec:
          selector: {matchLabels: {app: policy-webhook}}
          template:
            metadata: {labels: {app: policy-webhook}}
            spec:
              containers:
              - {name: webhook, image: policy-webhook, ports: [{containerPort: 9443}]}

    Fails with MST0115::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: payments, labels: {istio-injection: enabled}}
        ---
        apiVersion: monitoring.coreos.com/v1
        kind: ServiceMonitor
        metadata: {name: payment-service, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          endpoints: [{port: metrics, interval: 30s}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: payment-service, namespace: payments, labels: {app: payment-service}}
        spec:
          selector: {app: payment-service}
          ports: [{name: http, port: 8080}, {name: metrics, port: 9102}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: payment-service, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          template:
            metadata: {labels: {app: payment-service}}
            spec:
              containers:
              - name: app
                image: payment-service
                ports: [{containerPort: 8080}, {containerPort: 9102}]

    Fails with MST0121::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: shop, labels: {istio-injection: enabled}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: storefront-external, namespace: shop}
        spec:
          type: LoadBalancer
          selector: {app: storefront}
          ports: [{name: http, port: 80, targetPort: 8080}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: storefront, namespace: shop}
        spec:
          selector: {matchLabels: {app: storefront}}
          template:
            metadata: {labels: {app: storefront}}
            spec: {containers: [{name: web, image: storefront, ports: [{containerPort: 8080}]}]}

    Passes::

        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: istio-system}
        spec: {mtls: {mode: STRICT}}
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: policy-webhook, namespace: policy}
        spec:
          selector: {matchLabels: {app: policy-webhook}}
          mtls: {mode: STRICT}
          portLevelMtls: {9443: {mode: PERMISSIVE}}
        ---
        apiVersion: v1
        kind: Namespace
        metadata: {name: policy, labels: {istio-injection: enabled}}
        ---
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingWebhookConfiguration
        metadata: {name: policy-webhook}
        webhooks:
        - name: validate.policy.example.com
          admissionReviewVersions: [v1]
          sideEffects: None
          failurePolicy: Fail
          clientConfig: {service: {namespace: policy, name: policy-webhook, path: /validate}}
          rules: [{apiGroups: [apps], apiVersions: [v1], operations: [CREATE],
                   resources: [deployments]}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: policy-webhook, namespace: policy}
        spec:
          selector: {app: policy-webhook}
          ports: [{name: https, port: 443, targetPort: 9443}]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: policy-webhook, namespace: policy}
        spec:
          selector: {matchLabels: {app: policy-webhook}}
          template:
            metadata: {labels: {app: policy-webhook}}
            spec:
              containers:
              - {name: webhook, image: policy-webhook, ports: [{containerPort: 9443}]}
    """

    name = "meshstage.OutsideCallersAnalyzer"
    provider = "istio"
    codes = {"MST0113": Level.ERROR, "MST0114": Level.ERROR, "MST0115": Level.ERROR,
             "MST0121": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        policies: PolicyIndex | None = None
        reported: set[tuple[str, str, str, int]] = set()
        for call in outside_calls(index):
            target = call.target
            if call.port is None or not index.has_sidecar(target) or self._bypassed(call):
                continue
            identity = self._identity(index, call)
            if identity is False:
                continue  # carries an identity the analysis cannot name: not judged
            caller = identity if isinstance(identity, Caller) else None
            mode, policy = effective_mode(index, target.labels, target.namespace, call.port)
            if caller is None and mode == "STRICT" and policy is not None:
                blocking, reason = policy, (f"{policy.display} makes port {call.port} STRICT, "
                                            "which refuses plaintext")
            else:
                policies = policies or PolicyIndex(index)
                verdict = admission_at(policies, target, caller, call.port, call.path,
                                       tcp=call.kind == "webhook")
                if verdict.admitted is not False or verdict.blocking is None:
                    continue
                blocking = verdict.blocking
                reason = (f"{blocking.display} refuses it" if
                          blocking.spec.get("action") == "DENY" else
                          f"no ALLOW rule of {blocking.display} (or of the other policies of "
                          f"the workload) admits {'it' if caller else 'a request without identity'}"
                          f" on port {call.port}")
            key = (call.kind, call.origin.display, target.resource.display, call.port)
            if key in reported:
                continue
            reported.add(key)
            yield self.finding(
                blocking, CODES[call.kind], f"{call.origin.display} ({call.via}) reaches "
                f"{target.resource.display} on port {call.port} from "
                f"{self._caller(index, call, caller)}: {reason}; {_FIX[call.kind]}.",
                level=None if call.fails_closed else Level.WARNING)

    @staticmethod
    def _bypassed(call: OutsideCall) -> bool:
        """The port skips the sidecar (``ports.uncaptured_inbound``), or Istio serves the
        scrape itself (merged metrics on port 15020, outside the capture)."""
        if call.port is not None and uncaptured_inbound(call.target.annotations, call.port):
            return True
        return call.kind == "scrape" and call.origin is call.target.resource and \
            call.target.annotations.get(MERGE_METRICS, "true").lower() != "false"

    @staticmethod
    def _identity(index: MeshIndex, call: OutsideCall) -> Caller | bool | None:
        """The caller's identity; None: plaintext, no identity; False: it presents Istio
        certificates the analysis cannot name."""
        if call.kind == "scrape":
            tls = " ".join(str(v) for v in (call.tls or {}).values())
            return False if "istio" in tls or "prom-certs" in tls else None
        if call.callers and all(index.has_sidecar(w) for w in call.callers):
            return caller_of(index, call.callers[0])
        return None

    @staticmethod
    def _caller(index: MeshIndex, call: OutsideCall, caller: Caller | None) -> str:
        if call.kind == "exposed":
            return "a client outside the cluster, which has no sidecar"
        if call.from_outside:
            return "the Kubernetes API server, which has no sidecar"
        if not call.callers:
            return f"{call.caller_name}, whose pods the input does not show (taken to have " \
                   "no sidecar)"
        shown = call.callers[0].resource.display
        if caller is not None:
            return f"{shown} ({caller.principal})"
        what = "whose scrapes carry no Istio identity" if call.kind == "scrape" \
            else "which has no sidecar"
        return f"{shown}, {what}"
