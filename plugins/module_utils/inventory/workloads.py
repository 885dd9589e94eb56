"""The estate's workloads as people name them, and whether each can take the mesh's sidecar.

A cluster export holds a Deployment, its ReplicaSets and their Pods; a CronJob, its Jobs and
their Pods. ``workload_groups`` folds every object that another object of the estate owns
(``ownerReferences``) into its owner's group, so the catalogue names the Deployment and the
group still shows what its pods really run (an injected proxy is only in the Pods). An Argo
Rollout that runs a Deployment's template (``spec.workloadRef``) takes that Deployment in:
https://argoproj.github.io/argo-rollouts/migrating/#reference-deployment-from-rollout

``sidecar_blockers`` says why a workload cannot take the mesh's sidecar:

- ``hostNetwork``: the pods use the node's network, which the proxy's traffic redirection
  cannot take over; Istio's injector skips them (istio/istio
  ``pkg/kube/inject/webhook.go``, ``injectRequired``: "if podSpec.HostNetwork") and so does
  Linkerd's (linkerd/linkerd2 ``pkg/inject/inject.go``, ``hostNetwork`` in the report).
- another mesh's proxy already runs in the pods, or another mesh's injection is asked for
  (Consul: ``consul.hashicorp.com/connect-inject``, container ``consul-dataplane``,
  https://developer.hashicorp.com/consul/docs/k8s/annotations-and-labels; Kuma:
  ``kuma.io/sidecar-injection``, container ``kuma-sidecar``,
  https://kuma.io/docs/latest/reference/kubernetes-annotations/; Open Service Mesh:
  ``openservicemesh.io/sidecar-injection``; and Istio's or Linkerd's own proxy when the
  inventory is for the other one);
- the workload opts out of a mesh (each provider's ``Sidecar.opt_out_labels`` and
  ``opt_out_annotations``), or its namespace does: Istio's label ``istio-injection:
  disabled``, whatever the pod says ("If either label is disabled, the pod is not
  injected": https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/
  #controlling-the-injection-policy); Linkerd's annotation ``linkerd.io/inject: disabled``,
  unless the pod template asks for the proxy itself (the injector reads the workload's
  annotation before the namespace's: https://linkerd.io/2-edge/features/proxy-injection/).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..estate.index import MeshIndex
from ..estate.objects import Resource, Workload, as_mapping
from ..providers.registry import MESHES
from .draft import WorkloadGroup

# Other meshes' proxies (container names) and injection markers (pod template annotations
# or labels that ask for them), by the mesh's name.
FOREIGN_PROXIES: Mapping[str, str] = {
    "consul-dataplane": "Consul", "consul-connect-envoy-sidecar": "Consul",
    "kuma-sidecar": "Kuma", "envoy-sidecar-osm": "Open Service Mesh",
}
FOREIGN_INJECTION: Mapping[str, tuple[str, str]] = {
    "consul.hashicorp.com/connect-inject": ("true", "Consul"),
    "kuma.io/sidecar-injection": ("enabled", "Kuma"),
    "openservicemesh.io/sidecar-injection": ("enabled", "Open Service Mesh"),
}

_KIND_NAMES = {"Rollout": "Argo Rollout"}


HELM_HOOK = "helm.sh/hook"


def helm_test(resource: Resource) -> bool:
    """A Helm test hook (``helm.sh/hook: test``, or the older ``test-success`` and
    ``test-failure``): a Pod or Job ``helm test`` runs once, which no Service is for
    (https://helm.sh/docs/topics/chart_tests/)."""
    hooks = str(as_mapping(resource.metadata.get("annotations")).get(HELM_HOOK) or "")
    return any(hook.strip().startswith("test") for hook in hooks.split(","))


def workload_groups(index: MeshIndex) -> list[WorkloadGroup]:
    """Every workload of the estate that nothing else in it owns, with what it owns."""
    by_key = {(w.resource.kind, w.namespace, w.resource.name): w for w in index.workloads}
    by_uid = {w.resource.uid: w for w in index.workloads if w.resource.uid}

    def owner(workload: Workload) -> Workload | None:
        for kind, name, uid in workload.resource.owners():
            found = (by_uid.get(uid) if uid else None) or by_key.get(
                (kind, workload.namespace, name))
            if found is not None and found is not workload:
                return found
        return None

    # a Rollout that runs a Deployment's template: the Deployment is its pods' template
    referenced: dict[Workload, Workload] = {}
    for workload in index.workloads:
        ref = as_mapping(workload.resource.spec.get("workloadRef"))
        target = by_key.get((str(ref.get("kind") or ""), workload.namespace,
                             str(ref.get("name") or "")))
        if workload.resource.kind == "Rollout" and target is not None:
            referenced[workload] = target
    owned: dict[Workload, list[Workload]] = {}
    for workload in index.workloads:
        top, seen = workload, {workload}
        while (above := owner(top)) is not None and above not in seen:
            seen.add(above)
            top = above
        top = referenced.get(top, top)
        owned.setdefault(top, [])
        if workload is not top and workload not in referenced:
            owned[top].append(workload)
    rollouts = set(referenced.values())
    return [WorkloadGroup(top, "Argo Rollout" if top in rollouts
                          else _KIND_NAMES.get(top.resource.kind, top.resource.kind),
                          tuple(found))
            for top, found in owned.items()]


def sidecar_blockers(group: WorkloadGroup, provider: str,
                     namespace: Resource | None = None) -> list[str]:
    """Why the workload cannot (or must not) take ``provider``'s sidecar; [] when it can.
    ``namespace``: its Namespace object, when the estate holds it."""
    reasons = []
    if any(w.host_network for w in group.running):
        reasons.append("its pods use the node's network (hostNetwork: true), which no "
                       "sidecar can take over")
    containers = group.containers
    for name, other in MESHES.items():
        sidecar = other.sidecar
        if name == provider or sidecar is None:
            continue
        if sidecar.container in containers:
            reasons.append(f"its pods already run {name}'s proxy ({sidecar.container})")
    for container, mesh in FOREIGN_PROXIES.items():
        if container in containers:
            reasons.append(f"its pods already run {mesh}'s proxy ({container})")
    template = {**group.root.labels, **group.root.annotations}
    for key, (value, mesh) in FOREIGN_INJECTION.items():
        if template.get(key, "").lower() == value:
            reasons.append(f"it asks for {mesh}'s sidecar ({key}: {value})")
    for name, other in MESHES.items():
        sidecar = other.sidecar
        if sidecar is None:
            continue
        for key, value in (*sidecar.opt_out_labels.items(),
                           *sidecar.opt_out_annotations.items()):
            if template.get(key, "").lower() == value.lower():
                reasons.append(f"it opts out of {name}'s injection ({key}: {value})")
    if namespace is not None:
        reasons += _namespace_opt_outs(namespace, template)
    return list(dict.fromkeys(reasons))


def _namespace_opt_outs(namespace: Resource, template: Mapping[str, str]) -> list[str]:
    """How the workload's namespace keeps it out of a mesh (the module's docstring)."""
    reasons = []
    if namespace.labels.get("istio-injection") == "disabled":
        reasons.append(f"its namespace opts out of istio's injection (Namespace "
                       f"{namespace.name}: istio-injection=disabled)")
    if str(namespace.annotations.get("linkerd.io/inject", "")).lower() == "disabled" and \
            str(template.get("linkerd.io/inject", "")).lower() not in ("enabled", "ingress"):
        reasons.append(f"its namespace opts out of linkerd's injection (Namespace "
                       f"{namespace.name}: linkerd.io/inject: disabled)")
    return reasons


def injected_with(group: WorkloadGroup) -> list[str]:
    """The meshes whose proxy runs in the workload's pods."""
    containers = group.containers
    return [name for name, provider in MESHES.items()
            if provider.sidecar is not None and provider.sidecar.container in containers]
