"""What the input's control-plane installs say about how the mesh injects its proxy.

A rendered tree (and a cluster's dump) holds the control plane's install: a Flux HelmRelease
or an Argo CD Application of the mesh's chart with its values written inline, an
IstioOperator, istiod's Deployment, Linkerd's ``linkerd-config`` ConfigMap. Analyzers that
ask whether pods get a native sidecar read the answer here when no pod or namespace says.

- Istio: istiod's ``ENABLE_NATIVE_SIDECARS`` (chart value ``pilot.env``; the Deployment's
  ``discovery`` container's env). https://istio.io/latest/blog/2023/native-sidecars/
- Linkerd: ``proxy.nativeSidecar`` of the linkerd-control-plane chart, which
  ``linkerd-config``'s ``values`` holds as installed.
  https://linkerd.io/2-edge/reference/helm-chart-reference/
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

from .objects import Resource, as_list, as_mapping

ISTIOD_CHARTS = frozenset({"istiod"})
LINKERD_CHARTS = frozenset({"linkerd-control-plane", "linkerd2"})
ISTIO_NATIVE_ENV = "ENABLE_NATIVE_SIDECARS"


def _yaml(text: Any) -> Mapping[str, Any]:
    if not isinstance(text, str):
        return {}
    try:
        return as_mapping(yaml.safe_load(text))
    except yaml.YAMLError:
        return {}


def _deep(values: Mapping[str, Any], *path: str) -> Any:
    for key in path[:-1]:
        values = as_mapping(values.get(key))
    return values.get(path[-1])


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).lower() if value is not None else ""
    return {"true": True, "false": False}.get(text)


def chart_values(resource: Resource) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(chart, values written in the object) of a HelmRelease, an Argo CD Application (each
    of its sources) or an IstioOperator (istiod's values); values kept in files the object
    names are not in the input."""
    spec = resource.spec
    if resource.kind == "HelmRelease" and resource.group.startswith("helm.toolkit.fluxcd.io"):
        chart = _deep(spec, "chart", "spec", "chart")
        yield str(chart or ""), as_mapping(spec.get("values"))
    elif resource.kind == "Application" and resource.group == "argoproj.io":
        for source in [spec.get("source"), *as_list(spec.get("sources"))]:
            source = as_mapping(source)
            helm = as_mapping(source.get("helm"))
            values = dict(_yaml(helm.get("values")))
            values.update(as_mapping(helm.get("valuesObject")))
            yield str(source.get("chart") or source.get("path") or ""), values
    elif resource.kind == "IstioOperator":
        yield "istiod", as_mapping(spec.get("values"))


def native_sidecars(resources: Sequence[Resource]) -> bool | None:
    """Whether the input's control plane injects native sidecars (None: it does not say)."""
    for resource in resources:
        for chart, values in chart_values(resource):
            name = chart.rstrip("/").rpartition("/")[2]
            if name in ISTIOD_CHARTS:
                found = _flag(_deep(values, "pilot", "env", ISTIO_NATIVE_ENV))
            elif name in LINKERD_CHARTS:
                found = _flag(_deep(values, "proxy", "nativeSidecar"))
            else:
                continue
            if found is not None:
                return found
        found = _installed(resource)
        if found is not None:
            return found
    return None


def _installed(resource: Resource) -> bool | None:
    if resource.kind == "ConfigMap" and resource.name == "linkerd-config":
        values = _yaml(as_mapping(resource.obj.get("data")).get("values"))
        return _flag(_deep(values, "proxy", "nativeSidecar"))
    if resource.kind == "Deployment" and resource.name.startswith("istiod"):
        template = as_mapping(resource.spec.get("template"))
        for container in as_list(as_mapping(template.get("spec")).get("containers")):
            for env in as_list(as_mapping(container).get("env")):
                env = as_mapping(env)
                if env.get("name") == ISTIO_NATIVE_ENV:
                    return _flag(env.get("value"))
    return None
