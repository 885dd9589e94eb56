"""Helm as the peer: an equivalent chart, ``helm template``, and Helm's pipeline with
meshstage's duties.

The chart (``bench/helm/meshstage-peer``) is meshstage's own templates written as Go
templates, one file per object shape, each ranging over that shape's objects in the values
(``chart_template``; ``write_chart`` regenerates it, and tests/bench checks the committed
chart is what it gives). The values are generated from the benchmark estate
(``estate.py``): for each environment, each object's template values and its path, as
meshstage's planner computed them (``run.baseline_objects``, the Ansible baseline's
values). So the chart does no planning of its own: the comparison favours Helm.

Helm is Helm v4's Go SDK, shipped by the PyPI package helm-python-sdk as a shared library
(``libhelm_c``, the chart loader and template engine ``helm template`` runs) and called with
ctypes. No PyPI package ships the ``helm`` command for Linux (helm-package carries macOS and
Windows binaries only).

* ``helm template``: load the chart and render it for each environment.
* Helm's pipeline with meshstage's duties: the same, then every document parsed and
  validated strictly against the same CRDs with meshstage's own validator
  (``SchemaRegistry``: the same jsonschema conversion), split into one file per object at
  meshstage's path, and one git commit per environment.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
CHART = BENCH / "helm" / "meshstage-peer"
PATH_COMMENT = "# meshstage-path: "
_CHART_YAML = """\
# Written by bench/helm_peer.py (write_chart): meshstage's templates as a Helm chart.
apiVersion: v2
name: meshstage-peer
description: meshstage's objects from meshstage's planner values, for the benchmark
type: application
version: 0.1.0
"""
_EXPRESSION = re.compile(r"\{\{\s*(.*?)\s*\|\s*json\s*\}\}")
_FOR = re.compile(r"\{%\s*for\s+(\w+)\s+in\s+(.*?)\s*%\}")
_ENDFOR = re.compile(r"\{%\s*endfor\s*%\}")
_COMMENT = re.compile(r"\{#.*?#\}\n?", re.DOTALL)
_SUBSCRIPT = re.compile(r"^(\w+)\['(\w+)'\]$")
_ATTRIBUTE = re.compile(r"^(\w+)((?:\.\w+)*)$")
_DEFAULT_LIST = re.compile(r"^(.+?)\s*\|\s*default\(\[(.+)\]\)$")


def go_expression(expression: str, loop_names: Sequence[str]) -> str:
    """One Jinja value expression as a Go template pipeline: a loop variable is ``$name``,
    any other name a field of the object's values (``$f.name``)."""
    if expression in ("true", "false"):
        return expression
    if expression.endswith("| default(none)"):  # undefined is null: a missing key is nil
        return go_expression(expression.removesuffix("| default(none)").strip(), loop_names)
    fallback = _DEFAULT_LIST.match(expression)
    if fallback:  # ``x | default([y])``: sprig's default, given the one-item list
        given, item = fallback.groups()
        return (f"(default (list {go_expression(item, loop_names)}) "
                f"{go_expression(given, loop_names)})")
    subscript = _SUBSCRIPT.match(expression)
    if subscript:
        base, key = subscript.groups()
        return f'(index {_go_name(base, loop_names)} "{key}")'
    attribute = _ATTRIBUTE.match(expression)
    if attribute is None:
        raise ValueError(f"no Go template for the Jinja expression {expression!r}")
    base, rest = attribute.groups()
    return _go_name(base, loop_names) + rest


def _go_name(name: str, loop_names: Sequence[str]) -> str:
    return f"${name}" if name in loop_names else f"$f.{name}"


def chart_template(source: str, shape: str) -> str:
    """A meshstage template as a chart template that renders every object of ``shape`` in
    ``.Values.objects``, each document preceded by its path as a comment."""
    body = _COMMENT.sub("", source)
    loops: list[str] = []
    lines = []
    for line in body.splitlines(keepends=True):
        opened, closed = _FOR.search(line), _ENDFOR.search(line)
        if opened:
            name, iterable = opened.groups()
            lines.append(f"{{{{- range ${name} := {go_expression(iterable, loops)} }}}}\n")
            loops.append(name)
        elif closed:
            loops.pop()
            lines.append("{{- end }}\n")
        else:
            names = tuple(loops)

            def expression(match: re.Match[str], names: tuple[str, ...] = names) -> str:
                return "{{ " + go_expression(match.group(1), names) + " | toJson }}"

            lines.append(_EXPRESSION.sub(expression, line))
    return ("{{- range $item := (index .Values.objects \"" + shape + "\") }}\n---\n"
            + PATH_COMMENT + "{{ $item.dest }}\n{{- $f := $item.fields }}\n"
            + "".join(lines) + "{{- end }}\n")


def chart_files(templates: Path, sources: Sequence[str]) -> dict[str, str]:
    """The chart's files (relative to the chart) for meshstage's templates ``sources``."""
    files = {"Chart.yaml": _CHART_YAML}
    for name in sorted(sources):
        shape = shape_of(name)
        files[f"templates/{shape}.yaml"] = chart_template((templates / name).read_text(), shape)
    return files


def shape_of(template: str) -> str:
    """``istio/virtual_service.yaml.j2`` -> ``istio-virtual_service``."""
    return template.removesuffix(".yaml.j2").replace("/", "-")


def write_chart(templates: Path, sources: Sequence[str], chart: Path = CHART) -> None:
    for relative, text in chart_files(templates, sources).items():
        (chart / relative).parent.mkdir(parents=True, exist_ok=True)
        (chart / relative).write_text(text)


def chart_values(shapes: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """The chart's values for one environment, from ``run.baseline_objects``."""
    objects: dict[str, list[dict[str, Any]]] = {}
    for items in shapes.values():
        for item in items:
            objects.setdefault(shape_of(item["template"]), []).append(
                {"dest": item["dest"], "fields": item["fields"]})
    return {"objects": objects}


def helm_template(chart: Path, values: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``helm template`` of the chart for each environment: the rendered stream of each."""
    import helm_python

    loaded = helm_python.Chart.load(chart)
    return {environment: "".join(loaded.render(dict(env_values), name="meshstage",
                                               namespace="default").values())
            for environment, env_values in values.items()}


def split_documents(stream: str) -> dict[str, str]:
    """The rendered stream cut into its documents, by the path each one names."""
    documents: dict[str, str] = {}
    for chunk in stream.split("\n---\n"):
        head, _, text = chunk.partition("\n")
        if head.startswith("---"):
            head, _, text = text.partition("\n")
        if head.startswith(PATH_COMMENT):
            documents[head[len(PATH_COMMENT):]] = text
    return documents


def write_split(documents: Mapping[str, str], repo: Path) -> int:
    """One file per object at its path; the number of files written."""
    for path, text in documents.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
    return len(documents)


def validate(documents: Mapping[str, str], registry: Any) -> list[str]:
    """Every Kubernetes object of the documents parsed and validated strictly; kustomize's
    own files and Helm values are not objects and are not validated (as in meshstage)."""
    import yaml

    objects = []
    for text in documents.values():
        obj = yaml.load(text, Loader=yaml.CSafeLoader)
        if isinstance(obj, dict) and "kind" in obj and \
                not str(obj.get("apiVersion", "")).startswith("kustomize.config.k8s.io/"):
            objects.append(_absent_nulls(obj))
    return list(registry.validate_all(objects))


def _absent_nulls(value: Any) -> Any:
    """What ``toJson`` printed as null means "absent", as in meshstage's templates: the
    rule meshstage applies when it parses a rendering back."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.render.renderer import (
        drop_nulls,
    )

    return drop_nulls(value)


def commit(repo: Path, message: str) -> None:
    for command in (["add", "-A"], ["commit", "-q", "-m", message]):
        subprocess.run(["git", "-C", str(repo), *command], check=True, capture_output=True)


def pipeline(chart: Path, values: Mapping[str, Mapping[str, Any]], repo: Path,
             crd_dir: Path, kubernetes_version: str) -> dict[str, Any]:
    """Helm's pipeline with meshstage's duties, for each environment: template, validate,
    split, commit. Returns its figures."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.schema.registry import (
        SchemaRegistry,
    )

    start = time.perf_counter()
    streams = helm_template(chart, values)
    registry = SchemaRegistry.from_crd_dirs([crd_dir], kubernetes_version)
    files = 0
    for environment, stream in streams.items():
        documents = split_documents(stream)
        violations = validate(documents, registry)
        if violations:
            raise SystemExit(f"helm pipeline, {environment}: {violations[:3]}")
        files += write_split(documents, repo)
        commit(repo, f"helm({environment}): render")
    return {"wall_s": time.perf_counter() - start, "files": files}


def same_objects(repo: Path, meshstage_repo: Path) -> bool:
    """Whether every file Helm's pipeline wrote holds the object meshstage wrote there."""
    import yaml

    for path in sorted(p for p in repo.rglob("*.yaml") if ".git" not in p.parts):
        theirs = _absent_nulls(yaml.safe_load(path.read_text()))
        mine = yaml.safe_load((meshstage_repo / path.relative_to(repo)).read_text())
        if theirs != mine:
            print(f"  helm differs: {path.relative_to(repo)}", flush=True)
            return False
    return True
