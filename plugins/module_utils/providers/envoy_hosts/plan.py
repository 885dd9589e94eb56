"""The host plan: Envoy sidecars on plain hosts, configured by the playbook.

Every injected host (its wave injected, the environment at ``injection`` or later) gets five
files under ``hosts/<env>/<host>/`` in the GitOps repository, rendered from
``templates/envoy/``:

    bootstrap.yaml      static: node, admin on 127.0.0.1 only, file-based LDS and CDS
    lds.yaml            the listeners (inbound, outbound, prometheus stats)
    cds.yaml            the clusters (the local application, the services it calls)
    sds-identity.yaml   the sidecar's certificate and key (files on the host, watched)
    sds-trust.yaml      the mesh CA that peers must be signed by

The role swaps LDS and CDS atomically, so a stage change reaches a running Envoy without a
restart; Envoy updates the inbound listener's filter chains in place and drains the old ones.

How the stages shape a sidecar (cumulative, computed from the environment's current stage):

    permissive_mtls  one inbound listener, tls_inspector: an mTLS chain (client certificate
                     requested, verified when sent) and a plaintext chain
    injection        the sidecar exists (hosts of the injected waves); outbound listener on
                     127.0.0.1 originating mTLS to the host services it calls
    observability    access logs, request ids kept across hops, trace sampling; a stats
                     listener serving only /stats/prometheus; Prometheus scrape jobs
    traffic          per-version clusters, weighted and header-matched routes, route timeout,
                     retry policy, circuit breakers, outlier detection, load balancer
    strict_mtls      client certificate required, plaintext chain gone (unless an mTLS
                     exception keeps it); the authorization rules run in shadow (dry-run)
    authorization    RBAC on SPIFFE principals, methods and paths: DENY rules, then ALLOW
                     rules, default deny

Stat prefixes, for the gates and canary analysis that read them: the inbound filter chains
are ``inbound_mtls`` and ``inbound_plaintext`` (``envoy_http_downstream_rq_total
{envoy_http_conn_manager_prefix="inbound_plaintext"}``), the outbound one ``outbound``;
upstream clusters are ``outbound_<service>`` and, per version, ``outbound_<service>_<version>``
(``envoy_cluster_upstream_rq_total{envoy_cluster_name="outbound_reviews_v2"}``); RBAC stats
carry ``authz_deny_``/``authz_allow_`` and, in shadow, ``authz_dry_run_deny_``/``_allow_``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...gitops.paths import host_dir, scrape_config_path
from ...intent.checker import duration_seconds
from ...intent.model import AuthorizationRule, Intent, MeshHost, Service
from ...plan.model import StageContribution
from ...stages import Stage

TYPE = "type.googleapis.com/"
HCM = TYPE + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = TYPE + "envoy.extensions.filters.http.router.v3.Router"
RBAC = TYPE + "envoy.extensions.filters.http.rbac.v3.RBAC"
TLS_INSPECTOR = TYPE + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
DOWNSTREAM_TLS = TYPE + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UPSTREAM_TLS = TYPE + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
HTTP_OPTIONS = TYPE + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
FILE_LOG = TYPE + "envoy.extensions.access_loggers.file.v3.FileAccessLog"
CEL_FILTER = TYPE + "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"

HOST_FILES = ("bootstrap.yaml", "lds.yaml", "cds.yaml", "sds-identity.yaml", "sds-trust.yaml")
IDENTITY_SECRET = "identity"
TRUST_SECRET = "mesh_ca"
# Retries that are safe for any request: it never reached the upstream.
SAFE_RETRY_ON = "connect-failure,refused-stream,reset-before-request"
_LB = {"ROUND_ROBIN": "ROUND_ROBIN", "LEAST_REQUEST": "LEAST_REQUEST", "RANDOM": "RANDOM",
       "PASSTHROUGH": "ROUND_ROBIN"}
_ACCESS_LOG_FORMAT = {
    "start_time": "%START_TIME%", "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%",
    "duration_ms": "%DURATION%", "request_id": "%REQ(X-REQUEST-ID)%",
    "traceparent": "%REQ(TRACEPARENT)%", "b3_trace_id": "%REQ(X-B3-TRACEID)%",
    "authority": "%REQ(:AUTHORITY)%", "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%", "peer_identity": "%DOWNSTREAM_PEER_URI_SAN%",
    "filter_chain": "%FILTER_CHAIN_NAME%", "downstream_remote": "%DOWNSTREAM_REMOTE_ADDRESS%",
}


def plan_envoy(intent: Intent) -> dict[Stage, StageContribution]:
    """Each stage's host files and runbook notes for the hosts of an environment."""
    hosts = intent.injected_hosts()
    injection = StageContribution()
    for host in hosts:
        for name, (template, context) in host_files(intent, host).items():
            injection.host_files[f"{host_dir(intent.environment, host.name)}/{name}"] = (
                template, context)
    waves = {wave.name for wave in intent.injection_waves[: intent.injected_waves]}
    pending = sorted(h.name for h in intent.hosts if h.wave not in waves)
    injection.notes.append(
        f"Host sidecars: {len(hosts)} of {len(intent.hosts)} hosts injected"
        + (f"; still to come: {', '.join(pending)}." if pending else ".")
        + " The playbook's host play installs Envoy on them and swaps in "
        f"`hosts/{intent.environment}/<host>/`; each application must listen on its "
        "`app_address:app_port` and call other host services through "
        "`127.0.0.1:<outbound_port>` with the service name as Host.")
    contributions = {
        Stage.PERMISSIVE_MTLS: StageContribution(notes=[
            "Host sidecars (from their injection wave on) accept mTLS and plaintext on one "
            "listener, told apart by TLS inspection."]),
        Stage.INJECTION: injection,
        Stage.OBSERVABILITY: StageContribution(notes=[
            "Host sidecars: access logs under `<root>/var/log/meshstage/envoy/`, request "
            "ids kept across hops; Prometheus scrapes `/stats/prometheus` on each host's "
            f"stats port (jobs in `{scrape_config_path(intent.environment)}`)."]),
        Stage.TRAFFIC: StageContribution(notes=[
            "Host sidecars route calls to host services per version (weighted clusters, "
            "header matches), with the route timeout, retries, circuit breakers and "
            "outlier detection of each service."]),
        Stage.STRICT_MTLS: StageContribution(notes=[
            "Host sidecars require a client certificate from the mesh CA; the plaintext "
            "filter chain is gone (except for mTLS exceptions). The authorization rules run "
            "in shadow: watch `authz_dry_run_*` RBAC stats before the authorization stage."]),
        Stage.AUTHORIZATION: StageContribution(notes=[
            "Host sidecars enforce RBAC on SPIFFE principals, methods and paths: DENY rules "
            "first, then ALLOW rules" + (", default deny." if intent.default_deny else ".")]),
    }
    if hosts and intent.stage.reached(Stage.OBSERVABILITY):
        contributions[Stage.OBSERVABILITY].host_files[scrape_config_path(intent.environment)] \
            = ("envoy/prometheus_scrape_configs.yaml.j2",
               {"scrape_configs": [_scrape_job(intent, hosts)]})
    return contributions


def host_files(intent: Intent, host: MeshHost) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """The five files of one host's sidecar: template and values each."""
    service = intent.service(host.service)
    certs = f"{host.config_dir}/certs"
    listeners = [_inbound_listener(intent, host, service)]
    clusters = [_static_cluster("inbound_app", host.app_address, host.app_port)]
    callees = _host_callees(intent, service)
    if callees:
        listeners.append(_outbound_listener(intent, host, callees))
        for callee in callees:
            clusters.extend(_outbound_clusters(intent, host, callee))
    if intent.stage.reached(Stage.OBSERVABILITY):
        listeners.append(_stats_listener(host))
        clusters.append(_static_cluster("prometheus_admin", "127.0.0.1", host.admin_port))
    return {
        "bootstrap.yaml": ("envoy/bootstrap.yaml.j2", {
            "node": {"id": host.name, "cluster": service.name, "metadata": {
                "environment": intent.environment, "namespace": service.namespace,
                "service": service.name, "version": host.version,
                "identity": _spiffe(intent, service)}},
            "admin_address": _address("127.0.0.1", host.admin_port),
            "lds_path": f"{host.config_dir}/lds.yaml",
            "cds_path": f"{host.config_dir}/cds.yaml",
        }),
        "lds.yaml": ("envoy/lds.yaml.j2", {"listeners": listeners}),
        "cds.yaml": ("envoy/cds.yaml.j2", {"clusters": clusters}),
        "sds-identity.yaml": ("envoy/sds_secret.yaml.j2", {
            "name": IDENTITY_SECRET, "tls_certificate": {
                "certificate_chain": {"filename": f"{certs}/cert.pem"},
                "private_key": {"filename": f"{certs}/key.pem"}},
            "validation_context": None}),
        "sds-trust.yaml": ("envoy/sds_secret.yaml.j2", {
            "name": TRUST_SECRET, "tls_certificate": None,
            "validation_context": {"trusted_ca": {"filename": f"{certs}/ca.pem"}}}),
    }


# --------------------------------------------------------------------------- listeners


def _inbound_listener(intent: Intent, host: MeshHost, service: Service) -> dict[str, Any]:
    exception = _exception_mode(intent, service)
    strict = intent.stage.reached(Stage.STRICT_MTLS) and exception is None
    chains = []
    if exception != "DISABLE":
        chains.append({
            "name": "inbound_mtls",
            "filter_chain_match": {"transport_protocol": "tls"},
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": DOWNSTREAM_TLS,
                "require_client_certificate": strict,
                "common_tls_context": _tls_context(
                    host, {"prefix": f"spiffe://{intent.trust_domain}/"}, ["h2", "http/1.1"]),
            }},
            "filters": [_hcm(intent, host, "inbound_mtls", _inbound_routes(),
                             _authorization_filters(intent, service, _workload_port(service, host)),
                             mtls=True)],
        })
    if not intent.stage.reached(Stage.STRICT_MTLS) or exception is not None:
        chains.append({
            "name": "inbound_plaintext",
            "filter_chain_match": {"transport_protocol": "raw_buffer"},
            "filters": [_hcm(intent, host, "inbound_plaintext", _inbound_routes(),
                             _authorization_filters(intent, service, _workload_port(service, host)),
                             mtls=False)],
        })
    return {
        "name": "inbound", "stat_prefix": "inbound",
        "address": _address(host.address, host.inbound_port),
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector",
                              "typed_config": {"@type": TLS_INSPECTOR}}],
        "filter_chains": chains,
    }


def _inbound_routes() -> dict[str, Any]:
    return {"name": "inbound", "virtual_hosts": [{
        "name": "inbound", "domains": ["*"],
        "routes": [{"match": {"prefix": "/"},
                    "route": {"cluster": "inbound_app", "timeout": "0s"}}]}]}


def _outbound_listener(intent: Intent, host: MeshHost,
                       callees: list[Service]) -> dict[str, Any]:
    virtual_hosts = [{
        "name": callee.name,
        "domains": sorted({callee.name, f"{callee.name}.{callee.namespace}"}),
        "routes": _outbound_routes(intent, callee),
    } for callee in callees]
    return {
        "name": "outbound", "stat_prefix": "outbound",
        "address": _address("127.0.0.1", host.outbound_port),
        "filter_chains": [{"name": "outbound", "filters": [_hcm(
            intent, host, "outbound", {"name": "outbound", "virtual_hosts": virtual_hosts},
            [], mtls=False)]}],
    }


def _outbound_routes(intent: Intent, callee: Service) -> list[dict[str, Any]]:
    traffic = callee.traffic
    shaped = intent.stage.reached(Stage.TRAFFIC)
    retries = traffic.retries if shaped else None
    common: dict[str, Any] = {
        "timeout": _duration(traffic.timeout) if shaped and traffic.timeout else None,
        "retry_policy": {
            "retry_on": ",".join(dict.fromkeys(
                [*(retries.retry_on or "5xx").split(","), "reset-before-request"])),
            "num_retries": retries.attempts,
            "per_try_timeout": _duration(retries.per_try_timeout)
            if retries.per_try_timeout else None,
        } if retries else {"retry_on": SAFE_RETRY_ON, "num_retries": 2},
    }
    routes = []
    if shaped:
        for route in traffic.header_routes:
            routes.append({
                "match": {"prefix": "/", "headers": [
                    {"name": m.header, "string_match": _string_match(m.kind, m.value)}
                    for m in route.headers]},
                "route": {"cluster": _cluster_name(callee, route.subset), **common},
            })
    if shaped and traffic.split:
        default: dict[str, Any] = {"weighted_clusters": {"clusters": [
            {"name": _cluster_name(callee, w.subset), "weight": w.weight}
            for w in traffic.split if w.weight > 0]}}
    elif shaped and traffic.header_routes and callee.versions:
        default = {"cluster": _cluster_name(callee, callee.versions[0].name)}
    else:
        default = {"cluster": _cluster_name(callee, None)}
    routes.append({"match": {"prefix": "/"}, "route": {**default, **common}})
    return routes


def _stats_listener(host: MeshHost) -> dict[str, Any]:
    """Serves only /stats/prometheus from the admin interface, which stays on 127.0.0.1."""
    return {
        "name": "prometheus_stats", "stat_prefix": "prometheus_stats",
        "address": _address(host.address, host.stats_port),
        "filter_chains": [{"name": "prometheus_stats", "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM, "stat_prefix": "prometheus_stats", "codec_type": "AUTO",
                "route_config": {"name": "prometheus_stats", "virtual_hosts": [{
                    "name": "prometheus_stats", "domains": ["*"],
                    "routes": [{"match": {"path": "/stats/prometheus"},
                                "route": {"cluster": "prometheus_admin"}}]}]},
                "http_filters": [_router()],
            }}]}],
    }


def _hcm(intent: Intent, host: MeshHost, prefix: str, route_config: Mapping[str, Any],
         http_filters: list[dict[str, Any]], mtls: bool) -> dict[str, Any]:
    observed = intent.stage.reached(Stage.OBSERVABILITY)
    telemetry = intent.telemetry
    access_log = None
    if observed and telemetry.access_log_provider:
        access_log = [{
            "name": "envoy.access_loggers.file",
            "filter": {"extension_filter": {
                "name": "envoy.access_loggers.extension_filters.cel",
                "typed_config": {"@type": CEL_FILTER,
                                 "expression": telemetry.access_log_filter}},
            } if telemetry.access_log_filter else None,
            "typed_config": {"@type": FILE_LOG, "path": f"{host.log_dir}/access.log",
                             "log_format": {"json_format": dict(_ACCESS_LOG_FORMAT)}},
        }]
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM, "stat_prefix": prefix, "codec_type": "AUTO",
            "strip_any_host_port": True,
            "generate_request_id": True,
            # a request id that arrives (from the caller's sidecar) is kept across hops
            "preserve_external_request_id": True,
            "forward_client_cert_details": "SANITIZE_SET" if mtls else "SANITIZE",
            "set_current_client_cert_details": {"uri": True} if mtls else None,
            "tracing": {"random_sampling": {"value": telemetry.sampling_percentage}}
            if observed else None,
            "access_log": access_log,
            "route_config": dict(route_config),
            "http_filters": [*http_filters, _router()],
        },
    }


def _router() -> dict[str, Any]:
    return {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}


# --------------------------------------------------------------------------- authorization


def _workload_port(service: Service, host: MeshHost) -> int | None:
    """The workload port (``target_port``, else ``port``) of the service port a host serves
    on its ``inbound_port``; the service's first port when none is that number."""
    served = [p for p in service.ports if p.port == host.inbound_port] or list(service.ports)
    return (served[0].target_port or served[0].port) if served else None


def _authorization_filters(intent: Intent, service: Service,
                           port: int | None) -> list[dict[str, Any]]:
    """RBAC filters: enforced at authorization, in shadow (dry-run) at strict_mtls."""
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return []
    enforce = intent.stage.reached(Stage.AUTHORIZATION)
    deny, allow = _policies(intent, service, port)
    filters = []
    for action, policies, name in (("DENY", deny, "deny"), ("ALLOW", allow, "allow")):
        if policies is None:
            continue
        rules = {"action": action, "policies": policies}
        filters.append({"name": "envoy.filters.http.rbac", "typed_config": {
            "@type": RBAC,
            "rules": rules if enforce else None,
            "rules_stat_prefix": f"authz_{name}_" if enforce else None,
            "shadow_rules": None if enforce else rules,
            "shadow_rules_stat_prefix": None if enforce else f"authz_dry_run_{name}_",
        }})
    return filters


def _policies(intent: Intent, service: Service, port: int | None
              ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """DENY policies and ALLOW policies (None: no filter; {} under ALLOW: deny all).

    A host sidecar serves one workload port of its service (``port`` here, see
    ``_workload_port``): a rule limited to other ``ports`` matches nothing there and is
    left out (an ALLOW policy whose every rule is left out still denies all, as an Istio
    ALLOW policy that matches nothing)."""
    explicit = {rules.service: rules for rules in intent.authorization}.get(service.name)
    deny: dict[str, Any] = {}
    allow: dict[str, Any] = {}
    if explicit is not None:
        for index, rule in enumerate(explicit.deny):
            if _on_port(rule, port):
                deny[f"deny-{index}"] = _policy(intent, rule)
        if explicit.deny_other_callers:
            allowed = _principals(intent, _allowed_sources(explicit.allow))
            deny["deny-other-callers"] = {
                "principals": [{"not_id": {"or_ids": {"ids": allowed}}}],
                "permissions": [{"any": True}]}
        for index, rule in enumerate(explicit.allow):
            if _on_port(rule, port):
                allow[f"allow-{index}"] = _policy(intent, rule)
        if explicit.allow:
            return (deny or None), allow
    else:
        callers = sorted({intent.principal(s) for s in intent.services
                          if service.name in s.calls})
        if service.ingress:
            gateway = intent.ingress_gateway
            callers.append(f"{intent.trust_domain}/ns/{gateway.namespace}/sa/"
                           f"{gateway.service_account}")
        if callers:
            allow["allow-callers"] = {
                "principals": [_principal(p) for p in sorted(set(callers))],
                "permissions": [{"any": True}]}
    return (deny or None), (allow if allow or intent.default_deny else None)


def _allowed_sources(rules: tuple[AuthorizationRule, ...]) -> list[AuthorizationRule]:
    return [rule for rule in rules if rule.source.services or rule.source.principals]


def _principals(intent: Intent, rules: list[AuthorizationRule]) -> list[dict[str, Any]]:
    principals: list[str] = []
    for rule in rules:
        principals += [intent.principal(intent.service(n)) for n in rule.source.services]
        principals += list(rule.source.principals)
    return [_principal(p) for p in dict.fromkeys(principals)]


def _on_port(rule: AuthorizationRule, port: int | None) -> bool:
    return not rule.ports or port in rule.ports


def _policy(intent: Intent, rule: AuthorizationRule) -> dict[str, Any]:
    """One rule: its principals OR-ed, its namespaces OR-ed, the two AND-ed (as an Istio
    ``source`` with both ``principals`` and ``namespaces``); methods AND paths."""
    source = rule.source
    named = _principals(intent, [rule])
    namespaces = [{"authenticated": {"principal_name": {
        "prefix": f"spiffe://{intent.trust_domain}/ns/{ns}/sa/"}}} for ns in source.namespaces]
    if named and namespaces:
        principals = [{"and_ids": {"ids": [_any_of(named), _any_of(namespaces)]}}]
    else:
        principals = named or namespaces
    conditions = []
    if rule.methods:
        conditions.append({"or_rules": {"rules": [
            {"header": {"name": ":method", "string_match": {"exact": m}}}
            for m in rule.methods]}})
    if rule.paths:
        conditions.append({"or_rules": {"rules": [
            {"url_path": {"path": _path_match(p)}} for p in rule.paths]}})
    permission = ({"and_rules": {"rules": conditions}} if len(conditions) > 1
                  else conditions[0] if conditions else {"any": True})
    return {"principals": principals or [{"any": True}], "permissions": [permission]}


def _any_of(ids: list[dict[str, Any]]) -> dict[str, Any]:
    return ids[0] if len(ids) == 1 else {"or_ids": {"ids": ids}}


def _principal(principal: str) -> dict[str, Any]:
    """An Istio-style principal (``<td>/ns/<ns>/sa/<sa>``, ``*`` as prefix or suffix)."""
    if principal == "*":
        return {"authenticated": {"principal_name": {"safe_regex": {"regex": ".+"}}}}
    if principal.endswith("*"):
        match = {"prefix": "spiffe://" + principal[:-1]}
    elif principal.startswith("*"):
        match = {"suffix": principal[1:]}
    else:
        match = {"exact": "spiffe://" + principal}
    return {"authenticated": {"principal_name": match}}


def _path_match(path: str) -> dict[str, Any]:
    if path == "*":
        return {"safe_regex": {"regex": ".*"}}
    if path.endswith("*"):
        return {"prefix": path[:-1]}
    if path.startswith("*"):
        return {"suffix": path[1:]}
    return {"exact": path}


# --------------------------------------------------------------------------- clusters


def _host_callees(intent: Intent, service: Service) -> list[Service]:
    on_hosts = intent.host_services
    return [intent.service(name) for name in service.calls if name in on_hosts]


def _outbound_clusters(intent: Intent, client: MeshHost,
                       callee: Service) -> list[dict[str, Any]]:
    hosts = intent.hosts_of(callee.name)
    clusters = [_mesh_cluster(intent, client, callee, None, hosts)]
    if intent.stage.reached(Stage.TRAFFIC) and (callee.traffic.split
                                                 or callee.traffic.header_routes):
        for version in callee.versions:
            clusters.append(_mesh_cluster(intent, client, callee, version.name,
                                          [h for h in hosts if h.version == version.name]))
    return clusters


def _mesh_cluster(intent: Intent, client: MeshHost, callee: Service, version: str | None,
                  hosts: list[MeshHost] | tuple[MeshHost, ...]) -> dict[str, Any]:
    name = _cluster_name(callee, version)
    traffic = callee.traffic if intent.stage.reached(Stage.TRAFFIC) else None
    pool = traffic.connection_pool if traffic else None
    outlier = traffic.outlier_detection if traffic else None
    injected = {h.name for h in intent.injected_hosts()}
    mtls = _exception_mode(intent, callee) != "DISABLE"
    # HTTP/2 between sidecars (a drained connection says GOAWAY, so no request is lost);
    # HTTP/1.1 when an endpoint is a host without a sidecar yet, or plaintext only
    http2 = mtls and all(h.name in injected for h in hosts)
    return {
        "name": name, "type": "STATIC",
        "connect_timeout": _duration(pool.connect_timeout) if pool and pool.connect_timeout
        else "1s",
        "lb_policy": _LB[traffic.load_balancer] if traffic and traffic.load_balancer
        else "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{
            "endpoint": {"address": _address(h.address, h.inbound_port)},
            # endpoints whose host runs a sidecar get mTLS; others plaintext
            "metadata": {"filter_metadata": {"envoy.transport_socket_match": {
                "mesh": mtls and h.name in injected}}},
        } for h in hosts]}]},
        "transport_socket_matches": [{
            "name": "mesh", "match": {"mesh": True},
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": UPSTREAM_TLS, "sni": callee.name,
                "common_tls_context": _tls_context(
                    client, {"exact": _spiffe(intent, callee)},
                    ["h2"] if http2 else ["http/1.1"]),
            }},
        }],
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_OPTIONS,
                "explicit_http_config": {"http2_protocol_options": {}} if http2
                else {"http_protocol_options": {}},
                "common_http_protocol_options": {
                    "max_requests_per_connection": pool.max_requests_per_connection}
                if pool and pool.max_requests_per_connection else None,
            }},
        "circuit_breakers": {"thresholds": [{
            "max_connections": pool.max_connections,
            "max_pending_requests": pool.http1_max_pending_requests,
            "max_requests": pool.http2_max_requests,
            "max_retries": pool.max_retries,
        }]} if pool else None,
        "outlier_detection": {
            "consecutive_5xx": outlier.consecutive_5xx_errors,
            "consecutive_gateway_failure": outlier.consecutive_gateway_errors,
            "interval": _duration(outlier.interval) if outlier.interval else None,
            "base_ejection_time": _duration(outlier.base_ejection_time)
            if outlier.base_ejection_time else None,
            "max_ejection_percent": outlier.max_ejection_percent,
        } if outlier else None,
    }


def _static_cluster(name: str, address: str, port: int) -> dict[str, Any]:
    return {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": _address(address, port)}}]}]},
    }


def _tls_context(host: MeshHost, san: Mapping[str, str], alpn: list[str]) -> dict[str, Any]:
    """Certificates from SDS files (watched, so renewal needs no restart), peer SAN checked."""
    return {
        "alpn_protocols": alpn,
        "tls_certificate_sds_secret_configs": [_sds(host, IDENTITY_SECRET, "sds-identity.yaml")],
        "combined_validation_context": {
            "default_validation_context": {"match_typed_subject_alt_names": [
                {"san_type": "URI", "matcher": dict(san)}]},
            "validation_context_sds_secret_config": _sds(host, TRUST_SECRET, "sds-trust.yaml"),
        },
    }


def _sds(host: MeshHost, name: str, filename: str) -> dict[str, Any]:
    return {"name": name, "sds_config": {
        "path_config_source": {"path": f"{host.config_dir}/{filename}"},
        "resource_api_version": "V3"}}


# --------------------------------------------------------------------------- helpers


def _exception_mode(intent: Intent, service: Service) -> str | None:
    """DISABLE or PERMISSIVE when an mTLS exception keeps the service off strict mTLS."""
    if not intent.stage.reached(Stage.STRICT_MTLS):
        return None
    for exception in intent.mtls_exceptions:
        if exception.service == service.name:
            return exception.mode
    return None


def _cluster_name(service: Service, version: str | None) -> str:
    # no dots: Envoy's default tag extraction reads the cluster name up to the first dot
    return f"outbound_{service.name}" + (f"_{version}" if version else "")


def _spiffe(intent: Intent, service: Service) -> str:
    return f"spiffe://{intent.principal(service)}"


def _address(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _string_match(kind: str, value: str) -> dict[str, Any]:
    if kind == "regex":
        return {"safe_regex": {"regex": value}}
    return {kind: value}


def _duration(text: str) -> str:
    """A Go-style duration (``1m30s``, ``250ms``) as Envoy's JSON duration (``90s``)."""
    seconds = duration_seconds(text)
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def _scrape_job(intent: Intent, hosts: tuple[MeshHost, ...]) -> dict[str, Any]:
    def target(host: MeshHost) -> str:
        address = f"[{host.address}]" if ":" in host.address else host.address
        return f"{address}:{host.stats_port}"

    return {
        "job_name": f"meshstage-hosts-{intent.environment}",
        "metrics_path": "/stats/prometheus",
        "scrape_interval": intent.telemetry.scrape_interval,
        "static_configs": [{
            "targets": [target(host)],
            "labels": {"mesh_environment": intent.environment, "mesh_host": host.name,
                       "mesh_service": host.service,
                       "mesh_namespace": intent.service(host.service).namespace,
                       **({"mesh_version": host.version} if host.version else {})},
        } for host in hosts],
    }
