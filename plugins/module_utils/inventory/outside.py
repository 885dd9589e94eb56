"""Callers of the catalogue that are not services of it, as ``mesh_external_callers``: the
ones the estate's manifests show (``estate/callers.py``, the same reading the analyzers and
the flow proof use), each with what it was found from.

- An ``Ingress`` whose controller runs in the estate (an IngressClass's controller, started
  with ``--ingress-class`` or ``--controller-class``, or labelled with its well-known name),
  or a Gateway API route on a Gateway that is not the mesh's: ``kind: ingress-controller``,
  named after the IngressClass (or the Gateway), in its pods' namespace and service account.
  Its pods leave the catalogue (a caller is not a service of it). An Ingress whose
  controller the estate does not show is listed: its namespace and identity are unknown.
  https://kubernetes.io/docs/concepts/services-networking/ingress/
- A ``ValidatingWebhookConfiguration`` or ``MutatingWebhookConfiguration`` whose webhook is
  a catalogue Service: ``kube-apiserver``, which calls the webhook's workload port.
  https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/
- A ``ServiceMonitor``, a ``PodMonitor`` or ``prometheus.io/scrape`` on a catalogue
  service's pods: ``prometheus``, in the namespace and account of the Prometheus the estate
  shows, else a Prometheus it does not show (its namespace and account to fill in). Written
  for either mesh, so that the inventory stays right when ``mesh_provider`` changes:
  Linkerd's inbound policy refuses a scraper without identity
  (https://linkerd.io/2-edge/tasks/restricting-access/), while Istio's metrics merging (on
  by default) serves annotation scrapes itself, on the agent's port 15020
  (https://istio.io/latest/docs/ops/integrations/prometheus/#option-1-metrics-merging), so
  there the entry only matters where merging is off or a monitor scrapes the port itself.
- A ``NodePort`` or ``LoadBalancer`` Service (or one with ``externalIPs``) over a catalogue
  service's pods, or a container's ``hostPort``: ``external-clients``, named after the
  Service (or the workload), calling the ports it exposes: clients outside the cluster,
  never with the mesh's proxy.
  https://kubernetes.io/docs/concepts/services-networking/service/#type-nodeport

Ports are the workload ports a call reaches (a Service port's ``targetPort``). A scrape of a
pod port that no port of the service declares (nor its ``peer_ports``), or a ``hostPort``
that none does, makes it one of the service's ``pod_ports``, reached at the pods' own
addresses; a call of any other kind to such a port (through a Service, which does not
declare it) is listed, not written.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..analyze.analyzers.port_name import port_protocol
from ..estate.callers import OutsideCall, ingress_class, outside_calls, scrapers
from ..estate.objects import Workload
from ..intent.model import OUTSIDE_CALLER_KINDS
from ..providers.registry import MESHES
from .draft import Draft, ExternalCallerDraft, ServiceDraft
from .services import guess_protocol_name
from .workload_fields import PROXY_PORTS

_GATEWAY_NAME = "gateway.networking.k8s.io/gateway-name"
# Where a Prometheus the estate does not show is assumed to run (to be filled in)
PROMETHEUS_PLACEHOLDER = ("monitoring", "prometheus")


def workload_ports(service: ServiceDraft) -> set[int]:
    """The ports a caller reaches the service's pods on: each port's ``target_port`` (else
    its ``port``), its ``peer_ports`` and its ``pod_ports``."""
    return {int(p.get("target_port", p["port"])) for p in service.fields.get("ports") or []
            } | _peer_ports(service) | _own_ports(service, "pod_ports")


def find_external_callers(draft: Draft) -> None:
    """Fill ``draft.external`` from the estate's ingresses, webhooks and monitors; the
    callers' own pods leave the catalogue."""
    by_pod: dict[int, list[ServiceDraft]] = {}
    for each in sorted(draft.services.values(), key=lambda s: s.name):
        for pod in each.pods():
            by_pod.setdefault(id(pod), []).append(each)
    shown = scrapers(draft.index)
    for call in outside_calls(draft.index):
        service = _callee(by_pod.get(id(call.target), []), call)
        if service is None:
            continue
        caller = _caller(draft, call, shown)
        if caller is None:
            continue
        port = call.port
        if port is not None and port not in workload_ports(service) and \
                call.kind in ("scrape", "exposed") and call.service is None and \
                not any(port in r for r in PROXY_PORTS):
            _pod_port(service, call, port)
        if port is None or port not in workload_ports(service):
            if port is not None and not any(port in r for r in PROXY_PORTS):
                caller.notes.append(f"{call.origin.display} ({call.via}) reaches port {port} "
                                    f"of {service.name}, which is none of its ports: not "
                                    "written")
            continue
        caller.calls.setdefault(service.name, set()).add(port)
        source = f"{call.origin.display} ({call.via})"
        if source not in caller.sources:
            caller.sources.append(source)
        if call.kind == "scrape":
            caller.paths[(service.name, port)] = call.path or "/metrics"
    for name in [n for n, c in draft.external.items() if not c.calls]:
        del draft.external[name]
    _leave_catalogue(draft)


def _callee(over: list[ServiceDraft], call: OutsideCall) -> ServiceDraft | None:
    """Of the services over the pods a call reaches, the one it calls: the Service it goes
    through, else the first that declares its port, else the first by name."""
    named = next((s for s in over if s.name == call.service), None)
    if named is not None:
        return named
    return next((s for s in over if call.port in workload_ports(s)),
                over[0] if over else None)


def _caller(draft: Draft, call: OutsideCall,
            shown: tuple[Workload, ...]) -> ExternalCallerDraft | None:
    if call.kind == "webhook":
        return draft.external.setdefault("kube-apiserver", ExternalCallerDraft(
            "kube-apiserver", "kube-apiserver"))
    if call.kind == "exposed":
        name = call.service or f"{call.target.resource.name}-host-port"
        found = draft.external.get(name)
        if found is not None and found.kind != "external-clients":
            name = f"{name}-outside"  # the name of another caller (an IngressClass)
        return draft.external.setdefault(name, ExternalCallerDraft(name, "external-clients"))
    if call.kind == "ingress":
        if not call.callers:
            draft.outside.append(f"{call.origin.display} ({call.via}): its controller's pods "
                                 "are not in the estate; describe it in "
                                 "mesh_external_callers (kind ingress-controller)")
            return None
        if call.origin.kind == "Ingress":
            name = ingress_class(draft.index, call.origin)[0] or "ingress"
        else:
            name = call.callers[0].labels.get(_GATEWAY_NAME) or "gateway"
        return _with_pods(draft, name, "ingress-controller", call.callers)
    if shown:
        return _with_pods(draft, "prometheus", "prometheus", shown)
    caller = draft.external.get("prometheus")
    if caller is None:
        namespace, account = PROMETHEUS_PLACEHOLDER
        caller = draft.external["prometheus"] = ExternalCallerDraft(
            "prometheus", "prometheus", namespace, account)
        caller.notes.append(f"WARNING: the estate shows no Prometheus: {namespace} and "
                            f"{account} are placeholders; write its namespace and "
                            "service_account, and inject: true if it runs with the mesh's "
                            "proxy")
    return caller


def _with_pods(draft: Draft, name: str, kind: str,
               pods: tuple[Workload, ...]) -> ExternalCallerDraft:
    caller = draft.external.get(name)
    if caller is None:
        account = Counter(w.service_account for w in pods).most_common(1)[0][0]
        caller = draft.external[name] = ExternalCallerDraft(
            name, kind, pods[0].namespace, account, pods)
        caller.notes.append("runs as " + ", ".join(sorted({
            f"{w.resource.kind} {w.namespace}/{w.resource.name}" for w in pods
            if not w.resource.owners()})))
    return caller


def _leave_catalogue(draft: Draft) -> None:
    """The callers' pods are no services of the catalogue (nor the Services in front of
    them, such as an ingress controller's load balancer), unless they run in a namespace of
    the catalogue: those pods get the proxy with their namespace's wave, so the catalogue
    describes them too (a Prometheus beside Grafana, which Grafana calls), and the caller
    stays a caller (its scrapes)."""
    pods = {id(w) for c in draft.external.values() for w in c.pods}
    gone = [s for s in draft.services.values()
            if s.workloads and all(id(g.root) in pods for g in s.workloads)]
    # a Job beside them (an ingress controller's admission Jobs) makes no namespace of the
    # catalogue: it runs to completion, and is left out unless it calls the catalogue
    namespaces = {s.namespace for s in draft.services.values() if s not in gone
                  and not (s.service is None and s.workloads and all(
                      w.runs_to_completion for g in s.workloads for w in g.running))}
    for service in gone:
        if service.namespace in namespaces:
            service.note("", "its pods are a caller's too (mesh_external_callers), in a "
                         "namespace of the catalogue: it stays a service of it")
            continue
        del draft.services[service.name]
        draft.held.discard(service.name)


def external_entries(draft: Draft, notes: dict[str, list[str]]) -> list[dict[str, Any]]:
    """``mesh_external_callers``, and the notes on each entry."""
    entries: list[dict[str, Any]] = []
    sidecar = MESHES[draft.provider].sidecar
    catalogue = {s.namespace for s in draft.services.values()}
    for caller in sorted(draft.external.values(), key=lambda c: (c.kind, c.name)):
        calls = []
        metrics_path = caller.metrics_path
        for name, ports in sorted(caller.calls.items()):
            service = draft.services.get(name)
            if service is None:
                continue
            every = workload_ports(service) - _peer_ports(service) - _own_ports(
                service, "pod_ports")
            other = {p: caller.paths[(name, p)] for p in ports
                     if caller.paths.get((name, p), metrics_path) != metrics_path}
            calls += [name] if ports == every and not other else [
                f"{name}:{p}{other.get(p, '')}" for p in sorted(ports)]
        if not calls:
            continue
        entry: dict[str, Any] = {"name": caller.name, "kind": caller.kind}
        texts = [f"found from {'; '.join(caller.sources)}"]
        if caller.kind not in OUTSIDE_CALLER_KINDS:
            entry["namespace"] = caller.namespace
            if caller.service_account != caller.name:
                entry["service_account"] = caller.service_account
            why = [f"its namespace: {draft.injected[caller.namespace]}"] \
                if caller.namespace in draft.injected else []
            if sidecar is not None:
                why += [f"{w.resource.display} runs {sidecar.container}" for w in caller.pods
                        if sidecar.container in w.container_names][:1]
            if caller.namespace in catalogue:
                texts.append(f"it runs in {caller.namespace}, a namespace of the catalogue: "
                             "the injection waves decide its proxy")
            elif why:
                entry["inject"] = True
                texts.append("it runs with the mesh's proxy: " + "; ".join(why))
        entry["calls"] = calls
        if caller.kind == "prometheus" and metrics_path != "/metrics":
            entry["metrics_path"] = metrics_path
        notes[f"mesh_external_callers[{len(entries)}]"] = texts + caller.notes
        entries.append(entry)
    return entries


def principal_of(draft: Draft, namespace: str | None, account: str | None) -> str:
    """``<trust domain>/ns/<namespace>/sa/<account>``."""
    return f"{draft.trust_domain}/ns/{namespace}/sa/{account}"


def _peer_ports(service: ServiceDraft) -> set[int]:
    return _own_ports(service, "peer_ports")


def _own_ports(service: ServiceDraft, key: str) -> set[int]:
    """The numbers of the service's ``peer_ports`` or ``pod_ports`` being written."""
    return {int(p["port"] if isinstance(p, dict) else p) for p in service.fields.get(key) or []}


def _pod_port(service: ServiceDraft, call: OutsideCall, port: int) -> None:
    """Make ``port``, which a scrape or a ``hostPort`` reaches at the pods' own addresses
    and no port of the service declares, one of its ``pod_ports``: HTTP for a scrape, else
    what the container port's name tells (TCP when it tells nothing)."""
    names = [n for n, number in call.target.container_ports(native_sidecars=True)
             if number == port and n]
    protocol = "HTTP" if call.kind == "scrape" else next(
        (found for found in (guess_protocol_name(port_protocol({"name": n})) for n in names)
         if found), "TCP")
    written = list(service.fields.get("pod_ports") or [])
    written.append(port if protocol == "HTTP" else {"port": port, "protocol": protocol})
    service.fields["pod_ports"] = sorted(written, key=lambda p: p["port"]
                                         if isinstance(p, dict) else p)
    what = "Prometheus scrapes it" if call.kind == "scrape" else \
        "clients outside the cluster reach it (hostPort)"
    service.note("pod_ports", f"from {call.origin.display} ({call.via}): {what} at the pods' "
                 f"own addresses, on port {port}"
                 + (f" ({', '.join(names)})" if names else "") + ", which no port of its "
                 "Service declares")

def external_principals(draft: Draft, service: ServiceDraft) -> set[str]:
    """The principals meshstage's rules admit to ``service`` besides its callers': its
    external callers' (those in a namespace), and its own on its peer ports."""
    found = {principal_of(draft, c.namespace, c.service_account)
             for c in draft.external.values() if service.name in c.calls and c.namespace}
    if _peer_ports(service):
        found.add(principal_of(draft, service.namespace,
                             service.fields.get("service_account", service.name)))
    return found


def forget_external_rules(draft: Draft) -> None:
    """Leave out of the estate's explicit rules the ones meshstage derives from
    ``mesh_external_callers`` and ``peer_ports`` (a port its external callers reach, by
    their principals or without a source, GET of the metrics path; its own principal on its
    peer ports). What is left of the derived form (one rule of principals) stays derived."""
    for service in draft.services.values():
        entry = draft.authorization.get(service.name)
        if service.keeps_own_policies or entry is None or not entry.get("allow"):
            continue
        callers = [c for c in draft.external.values() if service.name in c.calls]
        called = {p for c in callers for p in c.calls[service.name]}
        paths = {c.paths.get((service.name, p), c.metrics_path) for c in callers
                 if c.kind == "prometheus" for p in c.calls[service.name]}
        principals = {principal_of(draft, c.namespace, c.service_account) for c in callers
                      if c.namespace}
        peers = _peer_ports(service)
        own = workload_ports(service) - peers - _own_ports(service, "pod_ports")

        rules = [r for r in entry["allow"] if not _derived(
            r, service.name, own, called, paths, principals, peers)]
        if len(rules) == len(entry["allow"]):
            continue
        source = "; ".join(draft.notes.get(f"mesh_authorization.{service.name}", []))
        alone = set(entry) == {"service", "allow"}
        if alone and not rules:
            del draft.authorization[service.name]
            draft.admit(service, [], source)
        elif alone and len(rules) == 1 and set(rules[0]) <= {"from", "principals", "ports"} \
                and set(rules[0].get("ports") or own) == own:
            del draft.authorization[service.name]
            named = [draft.services[n] for n in rules[0].get("from", [])]
            draft.admit(service, [principal_of(draft, s.namespace, s.fields.get(
                "service_account", s.name)) for s in named] + list(
                    rules[0].get("principals", [])), source)
        else:
            entry["allow"] = rules


def _derived(rule: dict[str, Any], name: str, own: set[int], called: set[int],
             paths: set[str], principals: set[str], peers: set[int]) -> bool:
    """True when meshstage derives ``rule`` of service ``name`` from its external callers
    (ports they reach, with their principals or without a source; GET of the metrics path)
    or its peer ports (its own identity on them). A rule without ports is on ``own``."""
    keys = set(rule)
    ports = set(rule.get("ports") or ()) or own
    if keys <= {"ports", "methods", "paths"} and ports <= called:
        return set(rule.get("methods") or ()) <= {"GET"} and set(
            rule.get("paths") or ()) <= paths
    if keys <= {"principals", "ports"} and rule.get("principals") and set(
            rule["principals"]) <= principals:
        return ports <= called
    return keys <= {"from", "ports"} and rule.get("from") == [name] and \
        bool(rule.get("ports")) and set(rule["ports"]) <= peers
