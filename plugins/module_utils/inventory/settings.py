"""Settings the estate shows beside its workloads: the environment meshstage's own objects are
labelled for, the control plane's charts (Argo CD Applications, Flux HelmReleases and
HelmRepositories: their version, repository and values), the GitOps repository they read,
the cluster they sync to, and the scrape jobs of the observability stage.

The charts' values are kept by chart name (``Draft.charts``) for each provider's reader; the
rest is mesh-neutral.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..estate.objects import as_list, as_mapping
from ..kube import ENVIRONMENT_LABEL
from ..yaml_io import YAMLError, load_yaml
from .draft import Draft

SCRAPE_CONFIGS = "meshstage-scrape-configs"


def estate_environment(draft: Draft) -> str | None:
    """The environment meshstage's objects in the estate are labelled for, if any."""
    counts = Counter(r.labels[ENVIRONMENT_LABEL] for r in draft.index.resources
                     if r.labels.get(ENVIRONMENT_LABEL))
    return counts.most_common(1)[0][0] if counts else None


def read_settings(draft: Draft) -> None:
    """The install, GitOps and scrape settings, and the charts' values."""
    gitops: dict[str, Any] = {}
    install: dict[str, Any] = {}
    _argo_applications(draft, install, gitops)
    _flux_releases(draft, install, gitops)
    _helm_repositories(draft, install)
    install = {k: v for k, v in install.items() if isinstance(v, str) and v}
    if install:
        draft.shared["mesh_install"] = install
        draft.note("mesh_install", "from the control plane's Argo CD Applications or Flux "
                   "HelmReleases in the estate")
    gitops = {k: v for k, v in gitops.items() if isinstance(v, str) and v}
    if gitops:
        draft.shared["mesh_gitops"] = gitops
        draft.note("mesh_gitops", "from the Argo CD Applications and Flux objects that "
                   "install the control plane")
    _scrape_configs(draft)


def _argo_applications(draft: Draft, install: dict[str, Any], gitops: dict[str, Any]
                       ) -> None:
    """Argo CD Applications of a chart: the chart's version, repository and values; the
    GitOps repository of their ``ref`` sources; their namespace, project and cluster. The
    first one found sets each."""
    for app in draft.index.of_kind("Application"):
        if not app.group.startswith("argoproj.io"):
            continue
        sources = [as_mapping(s) for s in as_list(app.spec.get("sources"))] or [
            as_mapping(app.spec.get("source"))]
        charts = [s for s in sources if s.get("chart")]
        for chart in charts:
            install.setdefault("version", chart.get("targetRevision"))
            install.setdefault("repository", chart.get("repoURL"))
            helm = as_mapping(chart.get("helm"))
            values = helm.get("valuesObject") or _text_values(helm.get("values"))
            if values:
                draft.charts.setdefault(str(chart["chart"]), values)
        for ref in (s for s in sources if s.get("ref") and s.get("repoURL")):
            gitops.setdefault("repo_url", ref.get("repoURL"))
            gitops.setdefault("branch", ref.get("targetRevision"))
        if charts:
            gitops.setdefault("argocd_namespace", app.namespace)
            gitops.setdefault("argocd_project", app.spec.get("project"))
            server = as_mapping(app.spec.get("destination")).get("server")
            if server:
                draft.environment.setdefault("mesh_cluster", {"server": server})
            draft.became(app, "mesh_install, mesh_gitops and mesh_cluster")


def _flux_releases(draft: Draft, install: dict[str, Any], gitops: dict[str, Any]) -> None:
    """Flux HelmReleases of a chart: its version and values, their namespace and interval
    (where the Argo CD Applications set none)."""
    for release in draft.index.of_kind("HelmRelease"):
        chart = as_mapping(as_mapping(release.spec.get("chart")).get("spec"))
        if not chart.get("chart"):
            continue
        if chart.get("version"):
            install.setdefault("version", chart["version"])
        if isinstance(release.spec.get("values"), Mapping):
            draft.charts.setdefault(str(chart["chart"]), release.spec["values"])
        gitops.setdefault("flux_namespace", release.namespace)
        if release.spec.get("interval"):
            gitops.setdefault("sync_interval", release.spec["interval"])
        draft.became(release, "mesh_install and the chart values")


def _helm_repositories(draft: Draft, install: dict[str, Any]) -> None:
    """Flux HelmRepositories: the charts' repository (where none was found before)."""
    for repository in draft.index.of_kind("HelmRepository"):
        if repository.spec.get("url"):
            install.setdefault("repository", repository.spec["url"])
            draft.became(repository, "mesh_install.repository")


def _text_values(text: Any) -> Mapping[str, Any] | None:
    if not isinstance(text, str):
        return None
    try:
        values = load_yaml(text)
    except YAMLError:
        return None
    return values if isinstance(values, Mapping) else None


def _scrape_configs(draft: Draft) -> None:
    """The observability stage's scrape jobs: where Prometheus runs, and how often."""
    for config in draft.index.of_kind("ConfigMap"):
        if config.name != SCRAPE_CONFIGS:
            continue
        telemetry = draft.shared.setdefault("mesh_telemetry", {})
        telemetry["prometheus_namespace"] = config.namespace
        for text in as_mapping(config.obj.get("data")).values():
            jobs = as_list(as_mapping(_text_values(text)).get("scrape_configs"))
            intervals = {as_mapping(j).get("scrape_interval") for j in jobs} - {None}
            if len(intervals) == 1:
                telemetry["scrape_interval"] = intervals.pop()
        draft.became(config, "mesh_telemetry (prometheus_namespace, scrape_interval)")
        draft.note("mesh_telemetry", f"Prometheus' namespace and scrape interval from "
                   f"{config.display}")
