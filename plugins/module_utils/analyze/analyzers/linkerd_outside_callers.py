"""MST0211, MST0212, MST0213, MST0214: Linkerd inbound policy that refuses a caller outside
the mesh: an ingress controller, the Kubernetes API server calling a webhook, Prometheus, a
client outside the cluster through a NodePort or LoadBalancer Service."""

from __future__ import annotations

from ...estate.callers import OutsideCall, outside_calls
from ...estate.index import MeshIndex
from ...estate.objects import Resource
from ..analyzer import Analyzer, Results
from ..finding import Level
from ._linkerd import SKIP_INBOUND, admits, identity_of, linkerd_injected
from .linkerd_probes import _route_matches

CODES = {"ingress": "MST0211", "webhook": "MST0212", "scrape": "MST0213",
         "exposed": "MST0214"}
_FIX = {
    "ingress": "mesh the controller in ingress mode (linkerd.io/inject: ingress), or "
               "authorize the backend port from a NetworkAuthentication (meshstage: "
               "mesh_external_callers, kind ingress-controller)",
    "webhook": "authorize the webhook port from a NetworkAuthentication (a Server with "
               "accessPolicy all-unauthenticated at strict_mtls; meshstage: "
               f"mesh_external_callers, kind kube-apiserver), or skip it ({SKIP_INBOUND})",
    "scrape": "mesh Prometheus and authorize its identity on the port, or authorize the "
              "metrics path from a NetworkAuthentication (meshstage: mesh_external_callers, "
              "kind prometheus)",
    "exposed": "authorize the port from a NetworkAuthentication of every network (a Server "
               "with accessPolicy all-unauthenticated at strict_mtls; meshstage: "
               "mesh_external_callers, kind external-clients), or take outside traffic in "
               "through a meshed ingress instead",
}


class LinkerdOutsideCallersAnalyzer(Analyzer):
    """A caller outside the catalogue that Linkerd's inbound policy refuses. The manifests
    show it: an ``Ingress`` (or a Gateway API route on a Gateway) of an ingress controller
    (MST0211), a webhook configuration the Kubernetes API server calls (MST0212), a
    ``ServiceMonitor``, ``PodMonitor`` or ``prometheus.io/*`` annotation Prometheus scrapes
    (MST0213). A caller without Linkerd's proxy has no identity: the defaults
    ``all-authenticated``, ``cluster-authenticated`` and ``deny``, and a Server whose
    policies require a mesh identity, refuse it (403, or a refused connection). The API
    server is never meshed (Linkerd's own injector opens its webhook port with
    ``default-inbound-policy: all-unauthenticated``, charts/linkerd-control-plane/templates/
    proxy-injector.yaml in linkerd/linkerd2); a meshed ingress or Prometheus has its identity
    (https://linkerd.io/2-edge/tasks/using-ingress/). A caller whose pods the input does not
    show is taken to be unmeshed. A webhook with ``failurePolicy: Ignore`` is a Warning. A
    ``NodePort`` or ``LoadBalancer`` Service (or one with ``externalIPs``) and a container's
    ``hostPort`` take connections from clients outside the cluster, which have no identity
    (MST0214; https://kubernetes.io/docs/concepts/services-networking/service/#type-nodeport).

    Fails with MST0211::

        apiVersion: v1
        kind: Namespace
        metadata:
          name: shop
          annotations: {linkerd.io/inject: enabled,
                        config.linkerd.io/default-inbound-policy: all-authenticated}
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: storefront, namespace: shop}
        spec:
          ingressClassName: nginx
          defaultBackend: {service: {name: storefront, port: {number: 80}}}
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

    Fails with MST0212::

        apiVersion: v1
        kind: Namespace
        metadata:
          name: policy
          annotations: {linkerd.io/inject: enabled,
                        config.linkerd.io/default-inbound-policy: all-authenticated}
        ---
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingWebhookConfiguration
        metadata: {name: policy-webhook}
        webhooks:
        - name: validate.policy.example.com
          admissionReviewVersions: [v1]
          sideEffects: None
          clientConfig: {service: {namespace: policy, name: policy-webhook}}
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

    Fails with MST0213::

        apiVersion: v1
        kind: Namespace
        metadata:
          name: payments
          annotations: {linkerd.io/inject: enabled, config.linkerd.io/default-inbound-policy: deny}
        ---
        apiVersion: monitoring.coreos.com/v1
        kind: PodMonitor
        metadata: {name: payment-service, namespace: payments}
        spec:
          selector: {matchLabels: {app: payment-service}}
          podMetricsEndpoints: [{port: metrics}]
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
                ports: [{name: metrics, containerPort: 9102}]

    Fails with MST0214::

        apiVersion: v1
        kind: Namespace
        metadata:
          name: shop
          annotations: {linkerd.io/inject: enabled,
                        config.linkerd.io/default-inbound-policy: all-authenticated}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: storefront-external, namespace: shop}
        spec:
          type: NodePort
          selector: {app: storefront}
          ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
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

        apiVersion: v1
        kind: Namespace
        metadata:
          name: policy
          annotations: {linkerd.io/inject: enabled,
                        config.linkerd.io/default-inbound-policy: all-authenticated}
        ---
        apiVersion: policy.linkerd.io/v1beta3
        kind: Server
        metadata: {name: policy-webhook, namespace: policy}
        spec:
          podSelector: {matchLabels: {app: policy-webhook}}
          port: 9443
          proxyProtocol: TLS
          accessPolicy: all-unauthenticated
        ---
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingWebhookConfiguration
        metadata: {name: policy-webhook}
        webhooks:
        - name: validate.policy.example.com
          admissionReviewVersions: [v1]
          sideEffects: None
          clientConfig: {service: {namespace: policy, name: policy-webhook}}
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

    name = "linkerd.OutsideCallersAnalyzer"
    provider = "linkerd"
    codes = {"MST0211": Level.ERROR, "MST0212": Level.ERROR, "MST0213": Level.ERROR,
             "MST0214": Level.ERROR}

    def analyze(self, index: MeshIndex) -> Results:
        reported: set[tuple[str, str, str, int]] = set()
        for call in outside_calls(index):
            target = call.target
            if call.port is None or not linkerd_injected(index, target)[0]:
                continue
            skipped = target.annotations.get(SKIP_INBOUND, "")
            if str(call.port) in [p.strip() for p in skipped.split(",")]:
                continue
            identity = None
            if call.callers and all(linkerd_injected(index, w)[0] for w in call.callers):
                identity = identity_of(index, call.callers[0])
            path = call.path

            def route_admits(route: Resource, path: str | None = path) -> bool | None:
                return None if path is None else _route_matches(route, path)

            verdict, blocking = admits(index, target, call.port, identity, route_admits)
            if verdict is not False:
                continue
            subject = blocking or index.namespace(target.namespace) or target.resource
            key = (call.kind, call.origin.display, target.resource.display, call.port)
            if key in reported:
                continue
            reported.add(key)
            yield self.finding(
                subject, CODES[call.kind], f"{call.origin.display} ({call.via}) reaches "
                f"{target.resource.display} on port {call.port} from {self._caller(call, identity)}"
                f": {self._reason(subject, identity)}; {_FIX[call.kind]}.",
                level=None if call.fails_closed else Level.WARNING)

    @staticmethod
    def _caller(call: OutsideCall, identity: str | None) -> str:
        if call.kind == "exposed":
            return "a client outside the cluster, which is not meshed"
        if call.from_outside:
            return "the Kubernetes API server, which is not meshed"
        if not call.callers:
            return f"{call.caller_name}, whose pods the input does not show (taken to be " \
                   "unmeshed)"
        shown = call.callers[0].resource.display
        return f"{shown} ({identity})" if identity else f"{shown}, which is not meshed"

    @staticmethod
    def _reason(subject: Resource, identity: str | None) -> str:
        if subject.kind == "Server":
            return (f"{subject.display} (accessPolicy "
                    f"{subject.spec.get('accessPolicy') or 'deny'}) and the policies on it do "
                    f"not authorize {'it' if identity else 'a client without identity'}")
        return (f"the default inbound policy ({subject.display}) does not admit "
                f"{'it' if identity else 'a client without identity'}")
