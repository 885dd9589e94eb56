"""An estate's VirtualServices and DestinationRules as the intent's versions, canaries, splits,
header routes, timeouts, retries, pools, outlier detection and load balancer
(https://istio.io/latest/docs/reference/config/networking/virtual-service/,
https://istio.io/latest/docs/reference/config/networking/destination-rule/).

A VirtualService becomes intent only whole: one host (a service of its namespace), mesh
routes whose matches are headers (and the port), each to a subset of that service, with the
same timeout and retries on every route. Anything else (fault injection, rewrites, mirrors,
URI matches, TCP routes, gateways) keeps it as it is, and the service gets no routes from it
(meshstage renders none of its own, so nothing clashes). Gateway routes mark their
destinations ``ingress: true``.

A DestinationRule's subsets are the service's versions; its traffic policy becomes the
intent's fields one by one, and the fields the intent cannot say are listed (meshstage's
DestinationRule of the service takes the object's place).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...estate.objects import Resource, as_list, as_mapping, as_strings
from ...intent.model import LOAD_BALANCERS
from ...inventory.draft import Draft, ServiceDraft
from ...stages import Stage

_POOL = {("tcp", "maxConnections"): "max_connections",
         ("tcp", "connectTimeout"): "connect_timeout",
         ("http", "http1MaxPendingRequests"): "http1_max_pending_requests",
         ("http", "http2MaxRequests"): "http2_max_requests",
         ("http", "maxRequestsPerConnection"): "max_requests_per_connection",
         ("http", "maxRetries"): "max_retries"}
_OUTLIER = {"consecutive5xxErrors": "consecutive_5xx_errors",
            "consecutiveGatewayErrors": "consecutive_gateway_errors", "interval": "interval",
            "baseEjectionTime": "base_ejection_time",
            "maxEjectionPercent": "max_ejection_percent"}
_ROUTE_KEYS = {"match", "route", "timeout", "retries"}
_HEADER_KINDS = ("exact", "prefix", "regex")


def import_traffic(draft: Draft) -> None:
    driven = rollout_driven(draft.index)
    for rule in draft.index.istio("DestinationRule"):
        if _kept_for_a_rollout(draft, rule, driven):
            continue
        _destination_rule(draft, rule)
    for service in draft.index.istio("VirtualService"):
        if _kept_for_a_rollout(draft, service, driven):
            continue
        _virtual_service(draft, service)


def rollout_driven(index: Any) -> dict[tuple[str, str, str], str]:
    """The VirtualServices and DestinationRules an Argo Rollout shifts traffic with
    (``trafficRouting.istio``), by (kind, namespace, name): the Rollout that drives each.
    Its controller sets their weights and subset labels as the rollout steps
    (https://argoproj.github.io/argo-rollouts/features/traffic-management/istio/)."""
    driven: dict[tuple[str, str, str], str] = {}
    for rollout in index.of_kind("Rollout"):
        istio = as_mapping(as_mapping(rollout.spec.get("strategy")).get("canary"))
        istio = as_mapping(as_mapping(istio.get("trafficRouting")).get("istio"))
        services = [as_mapping(istio.get("virtualService")),
                    *(as_mapping(v) for v in as_list(istio.get("virtualServices")))]
        for found in services:
            if found.get("name"):
                driven[("VirtualService", rollout.namespace, str(found["name"]))] = \
                    rollout.display
        rule = as_mapping(istio.get("destinationRule"))
        if rule.get("name"):
            driven[("DestinationRule", rollout.namespace, str(rule["name"]))] = rollout.display
    return driven


def _kept_for_a_rollout(draft: Draft, resource: Resource,
                        driven: Mapping[tuple[str, str, str], str]) -> bool:
    """An object a Rollout drives stays the Rollout's: never intent, never replaced."""
    rollout = driven.get((resource.kind, resource.namespace, resource.name))
    if rollout is None:
        return False
    if resource.kind == "VirtualService":
        # who it routes from still says who calls what it routes to
        gateways = [str(g) for g in as_list(resource.spec.get("gateways")) if g != "mesh"]
        if gateways:
            draft.reached_through(resource, gateways, _destinations(resource.spec))
    draft.keep(resource, f"{rollout} shifts traffic with it (Argo Rollouts sets its weights "
               "and subsets as the rollout steps): it stays the Rollout's, and meshstage "
               "renders no routes for its hosts")
    return True


# --------------------------------------------------------------------------- DestinationRule


def _destination_rule(draft: Draft, rule: Resource) -> None:
    spec = rule.spec
    host = str(spec.get("host") or "")
    service = draft.service_for_host(rule.namespace, host)
    draft.hint_stage(Stage.TRAFFIC, f"{rule.display} shapes traffic")
    if service is None or service.namespace != rule.namespace:
        draft.keep(rule, f"its host {host!r} is no service of the catalogue in its namespace")
        return
    if draft.service_at(rule.namespace, host.split(".")[0]) is None:
        draft.became(rule, f"the traffic policy of {service.name}'s version backend")
        return
    lost = sorted(set(spec) - {"host", "subsets", "trafficPolicy"})
    subsets = [as_mapping(s) for s in as_list(spec.get("subsets"))]
    if subsets:
        versions = []
        kept = {str(v.get("name")): v for v in service.fields.get("versions") or []
                if isinstance(v, dict)}
        for subset in subsets:
            name, labels = str(subset.get("name")), as_strings(subset.get("labels"))
            lost += [f"subsets.{name}.{k}" for k in sorted(set(subset) - {"name", "labels"})]
            item: dict[str, Any] = {"name": name}
            if labels != {"version": name}:
                item["labels"] = labels
            if kept.get(name, {}).get("service"):
                item["service"] = kept[name]["service"]
            versions.append(item if len(item) > 1 else name)
        service.put("versions", versions, f"the subsets of {rule.display}")
    policy = as_mapping(spec.get("trafficPolicy"))
    traffic = service.fields.setdefault("traffic", {})
    lost += _traffic_policy(policy, traffic)
    if not traffic:
        service.fields.pop("traffic")
    tls = str(as_mapping(policy.get("tls")).get("mode") or "")
    if tls == "ISTIO_MUTUAL":
        draft.hint_stage(Stage.STRICT_MTLS, f"{rule.display} originates Istio mTLS")
    elif tls and tls != "DISABLE":
        lost.append(f"trafficPolicy.tls.mode {tls}")
    for number, setting in enumerate(as_list(policy.get("portLevelSettings"))):
        setting = as_mapping(setting)
        if set(setting) != {"port", "tls"} or as_mapping(setting["tls"]).get("mode") != \
                "DISABLE":
            lost.append(f"trafficPolicy.portLevelSettings[{number}]")
    if lost:
        draft.keep(rule, "meshstage's DestinationRule of the service replaces it, without "
                   f"{', '.join(lost)}")
    draft.became(rule, f"{service.name}: versions and traffic policy")


def _traffic_policy(policy: Mapping[str, Any], traffic: dict[str, Any]) -> list[str]:
    """The intent's pool, outlier detection and load balancer; the fields it cannot say."""
    lost = [f"trafficPolicy.{k}" for k in sorted(set(policy) - {
        "connectionPool", "outlierDetection", "loadBalancer", "tls", "portLevelSettings"})]
    pool = as_mapping(policy.get("connectionPool"))
    found = {}
    for part in sorted(pool):
        for key, value in as_mapping(pool[part]).items():
            if (part, key) in _POOL:
                found[_POOL[(part, key)]] = value
            else:
                lost.append(f"connectionPool.{part}.{key}")
    if found:
        traffic["connection_pool"] = found
    outlier = as_mapping(policy.get("outlierDetection"))
    found = {_OUTLIER[k]: v for k, v in outlier.items() if k in _OUTLIER}
    lost += [f"outlierDetection.{k}" for k in sorted(set(outlier) - set(_OUTLIER))]
    if found:
        traffic["outlier_detection"] = found
    balancer = as_mapping(policy.get("loadBalancer"))
    if balancer.get("simple") in LOAD_BALANCERS and set(balancer) == {"simple"}:
        traffic["load_balancer"] = balancer["simple"]
    elif balancer:
        lost.append("loadBalancer")
    return lost


# --------------------------------------------------------------------------- VirtualService


def _virtual_service(draft: Draft, route: Resource) -> None:
    spec = route.spec
    hosts = [str(h) for h in as_list(spec.get("hosts"))]
    gateways = [str(g) for g in as_list(spec.get("gateways"))] or ["mesh"]
    draft.hint_stage(Stage.TRAFFIC, f"{route.display} routes traffic")
    outside = [g for g in gateways if g != "mesh"]
    if outside:
        draft.routed_from_gateway(route, outside, _destinations(spec))
        if "mesh" not in gateways:
            return
    service = draft.service_for_host(route.namespace, hosts[0]) if len(hosts) == 1 else None
    if service is None or service.namespace != route.namespace:
        draft.keep(route, "the intent routes one service of the object's namespace; "
                   f"this one routes {', '.join(hosts)}")
        return
    found, why = _routes(draft, service, spec)
    if found is None:
        draft.keep(route, f"{why}: the intent cannot say it, so {service.name} keeps it and "
                   "gets no routes of meshstage's")
        return
    service.set_routes(found, route.display)
    draft.became(route, f"{service.name}: routes")


def _destinations(spec: Mapping[str, Any]) -> list[str]:
    found = []
    for kind in ("http", "tcp", "tls"):
        for rule in as_list(spec.get(kind)):
            for target in as_list(as_mapping(rule).get("route")):
                host = as_mapping(as_mapping(target).get("destination")).get("host")
                if host and host not in found:
                    found.append(str(host))
    return found


def _routes(draft: Draft, service: ServiceDraft,
            spec: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The intent's traffic fields for a VirtualService's mesh routes, or (None, why not)."""
    other = sorted(set(spec) - {"hosts", "gateways", "http", "exportTo"})
    if other or spec.get("exportTo"):
        return None, f"it has {', '.join(other or ['exportTo'])}"
    headers: list[dict[str, Any]] = []
    default: list[tuple[str | None, int | None]] | None = None
    common: list[tuple[Any, Any]] = []
    for number, rule in enumerate(_first_port_routes(spec)):
        extra = sorted(set(rule) - _ROUTE_KEYS - {"name"})
        if extra:
            return None, f"http[{number}] has {', '.join(extra)}"
        destinations, why = _subset_destinations(draft, service, rule)
        if destinations is None:
            return None, f"http[{number}] {why}"
        matches = [dict(m) for m in as_list(rule.get("match"))]
        for match in matches:
            match.pop("port", None)
        common.append((rule.get("timeout"), _retries(rule.get("retries"))))
        if not any(matches):
            default = destinations
            continue
        header, why = _header_route(matches, destinations)
        if header is None:
            return None, f"http[{number}] {why}"
        headers.append(header)
    if len({str(c) for c in common}) > 1:
        return None, "its routes have different timeouts or retries"
    return _traffic_fields(service, headers, common, default)


def _first_port_routes(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The HTTP routes; of the first port's only when they match ports (meshstage's form for
    several HTTP ports: the same routes on each)."""
    routes = [as_mapping(r) for r in as_list(spec.get("http"))]
    ports = [_match_port(r) for r in routes]
    if any(p is not None for p in ports):
        first = ports[0]
        routes = [r for r, p in zip(routes, ports, strict=True) if p == first]
    return routes


def _subset_destinations(draft: Draft, service: ServiceDraft, rule: Mapping[str, Any]
                         ) -> tuple[list[tuple[str | None, int | None]] | None, str]:
    """A route's (subset, weight) destinations, each a version of the service itself, or
    (None, why not)."""
    destinations: list[tuple[str | None, int | None]] = []
    for target in as_list(rule.get("route")):
        target = as_mapping(target)
        destination = as_mapping(target.get("destination"))
        host = draft.service_for_host(service.namespace, str(destination.get("host") or ""))
        if host is not service or set(target) - {"destination", "weight"} \
                or set(destination) - {"host", "subset", "port"}:
            return None, "routes elsewhere or rewrites the request"
        subset = destination.get("subset")
        if subset and str(subset) not in service.version_names():
            return None, f"routes to subset {subset}, no version of it"
        destinations.append((str(subset) if subset else None, target.get("weight")))
    return destinations, ""


def _header_route(matches: list[dict[str, Any]],
                  destinations: list[tuple[str | None, int | None]]
                  ) -> tuple[dict[str, Any] | None, str]:
    """A route of one header match to one subset as a header route, or (None, why not)."""
    if len(matches) != 1 or set(matches[0]) != {"headers"} or len(destinations) != 1 \
            or destinations[0][0] is None:
        return None, "matches more than headers, or splits"
    header = _headers(matches[0]["headers"])
    if header is None:
        return None, "has a header match the intent cannot say"
    return {"headers": header, "subset": destinations[0][0]}, ""


def _traffic_fields(service: ServiceDraft, headers: list[dict[str, Any]],
                    common: list[tuple[Any, Any]],
                    default: list[tuple[str | None, int | None]] | None
                    ) -> tuple[dict[str, Any] | None, str]:
    """The header routes, the routes' common timeout and retries, and the default route's
    canary or split; or (None, why not)."""
    found: dict[str, Any] = {}
    if headers:
        found["header_routes"] = headers
    if common and common[0][0]:
        found["timeout"] = common[0][0]
    if common and common[0][1]:
        found["retries"] = common[0][1]
    if default:
        split = _split(service, default, bool(headers))
        if split is None:
            return None, "its default route mixes subsets with and without weights"
        found.update(split)
    return found, ""


def _match_port(rule: Mapping[str, Any]) -> Any:
    matches = [as_mapping(m) for m in as_list(rule.get("match"))]
    return matches[0].get("port") if matches else None


def _headers(value: Any) -> dict[str, Any] | None:
    found = {}
    for name, match in as_mapping(value).items():
        match = as_mapping(match)
        if len(match) != 1 or next(iter(match)) not in _HEADER_KINDS \
                or str(name) != str(name).lower():
            return None
        found[str(name)] = dict(match)
    return found or None


def _retries(value: Any) -> dict[str, Any] | None:
    retries = as_mapping(value)
    if not retries:
        return None
    found = {"attempts": retries.get("attempts", 2)}
    if retries.get("perTryTimeout"):
        found["per_try_timeout"] = retries["perTryTimeout"]
    if retries.get("retryOn"):
        found["retry_on"] = retries["retryOn"]
    return found


def _split(service: ServiceDraft, default: list[tuple[str | None, int | None]],
           headers: bool) -> dict[str, Any] | None:
    """The default route as a canary, a split, or nothing (the whole service)."""
    if len(default) == 1 and default[0][0] is None:
        return {}
    if any(subset is None for subset, _ in default):
        return None
    if len(default) == 1:
        subset = default[0][0]
        first = _first_version(service)
        if headers and subset == first:
            return {}  # header routes send the rest to the first version anyway
        return {"split": {subset: 100}}
    weights = [weight if isinstance(weight, int) else 0 for _, weight in default]
    if sum(weights) != 100:
        return None
    if len(default) == 2:
        return {"canary": {"stable": default[0][0], "subset": default[1][0],
                           "weight": weights[1]}}
    return {"split": {subset: weight for (subset, _), weight in zip(default, weights,
                                                                       strict=True)}}


def _first_version(service: ServiceDraft) -> str | None:
    versions = service.fields.get("versions") or []
    if not versions:
        return None
    first = versions[0]
    return str(first["name"] if isinstance(first, dict) else first)
