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

from ...estate.estate import Estate
from ...gitops.paths import host_dir, scrape_config_path
from ...intent.model import Intent, MeshHost
from ...plan.model import StageContribution
from ...stages import Stage
from .clusters import host_callees, outbound_clusters, static_cluster
from .config import (
    IDENTITY_SECRET,
    TRUST_SECRET,
    socket_address,
    spiffe_of,
)
from .listeners import inbound_listener, outbound_listener, stats_listener


def plan_envoy(intent: Intent, estate: Estate | None = None,
               ) -> dict[Stage, StageContribution]:
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
    listeners = [inbound_listener(intent, host, service)]
    clusters = [static_cluster("inbound_app", host.app_address, host.app_port)]
    callees = host_callees(intent, service)
    if callees:
        listeners.append(outbound_listener(intent, host, callees))
        for callee in callees:
            clusters.extend(outbound_clusters(intent, host, callee))
    if intent.stage.reached(Stage.OBSERVABILITY):
        listeners.append(stats_listener(host))
        clusters.append(static_cluster("prometheus_admin", "127.0.0.1", host.admin_port))
    return {
        "bootstrap.yaml": ("envoy/bootstrap.yaml.j2", {
            "node": {"id": host.name, "cluster": service.name, "metadata": {
                "environment": intent.environment, "namespace": service.namespace,
                "service": service.name, "version": host.version,
                "identity": spiffe_of(intent, service)}},
            "admin_address": socket_address("127.0.0.1", host.admin_port),
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


# --------------------------------------------------------------------------- authorization


# --------------------------------------------------------------------------- clusters


# --------------------------------------------------------------------------- helpers


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
