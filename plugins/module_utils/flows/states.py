"""The configurations the proof judges flows through, and the estate it collects them from.

* The **estate**: the manifests given with ``mesh_check_paths`` (and, for a catalogue
  service they do not show, the intent's stand-in of it), or the stand-ins of
  ``estate/stand_in.py`` when none are given.
* The **target**: the objects this run renders, the estate's own objects (a rendered object
  replaces the estate's of the same group, kind, namespace and name, as applying it would),
  the hosts' sidecar files and the control plane's values.
* **Now**: the same, read from the environment's tree committed in the GitOps repository
  (``envs/<env>/``, ``hosts/<env>/``), which is what Argo CD or Flux and the host play
  apply. A committed file whose text is the target's is not parsed again: the target's
  object stands for it, so a run that changes little reads little.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..estate.index import MeshConfig, MeshIndex
from ..estate.manifests import SourcePath, read_manifests
from ..estate.objects import Resource, make_resource
from ..estate.stand_in import estate_objects, generated
from ..gitops.paths import INSTALL_FOLDER, env_dir
from ..intent.model import Intent
from ..yaml_io import load_yaml
from .evaluate import FlowSettings, MeshState

HOST_FILES = ("lds.yaml", "cds.yaml")


def estate_resources(intent: Intent, check_paths: Sequence[SourcePath] = (),
                     ) -> list[Resource]:
    """The estate: its manifests, with stand-ins for the catalogue services they do not
    show and for the pods istiod deploys for their Gateway API Gateways; the stand-ins alone
    without manifests."""
    on_hosts = set(intent.host_services)
    stand_ins = [r for r in (make_resource(obj, "intent", context=True)
                             for obj in estate_objects(intent))
                 if not _of(intent, r, on_hosts)]  # no pods: the hosts run them
    if not check_paths:
        return stand_ins
    resources = read_manifests(check_paths, context=True).resources
    # what istiod and prometheus-operator run for the estate's objects, unless it shows it
    resources += generated(resources)
    shown = MeshIndex(resources)
    missing = {s.name for s in intent.services
               if s.name not in intent.host_services
               and shown.service(s.namespace, s.name) is None
               and not shown.workloads_matching(s.namespace, s.selector)}
    return resources + [r for r in stand_ins if r.kind in ("Service", "Deployment")
                        and _of(intent, r, missing)]


def _of(intent: Intent, resource: Resource, names: set[str]) -> bool:
    """True when the stand-in ``resource`` is of a service named in ``names``: it carries
    the service's selector's labels, as every stand-in of a service does."""
    return any(s.name in names
               for s in intent.services_selecting(resource.namespace, resource.labels))


def _identity(resource: Resource) -> tuple[str, str, str, str]:
    return resource.group, resource.kind, resource.namespace, resource.name


def mesh_state(provider: str, settings: FlowSettings, objects: Iterable[Mapping[str, Any]],
               estate: Sequence[Resource], host_files: Mapping[str, Mapping[str, Any]],
               install_values: Mapping[str, Mapping[str, Any]], label: str) -> MeshState:
    rendered = [make_resource(obj, "rendered") for obj in objects]
    present = {_identity(r) for r in rendered}
    resources = rendered + [r for r in estate if _identity(r) not in present]
    index = MeshIndex(resources, MeshConfig(root_namespace=settings.root_namespace,
                                            trust_domain=settings.trust_domain))
    return MeshState(provider, settings, index, host_files, install_values, label)


def host_files_of(files: Mapping[str, str], environment: str,
                  parsed: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Each host's listeners and clusters, from the tree's ``hosts/<env>/<host>/`` files."""
    found: dict[str, dict[str, Any]] = {}
    prefix = f"hosts/{environment}/"
    for path, text in files.items():
        parts = path.split("/")
        if path.startswith(prefix) and len(parts) == 4 and parts[3] in HOST_FILES:
            obj = parsed.get(path) if parsed is not None else None
            found.setdefault(parts[2], {})[parts[3]] = obj if obj is not None \
                else load_yaml(text)
    return found


def install_values_of(files: Mapping[str, str], environment: str,
                      parsed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The control plane's Helm values, by release (``00-install/values/<release>.yaml``)."""
    prefix = f"{env_dir(environment)}/{INSTALL_FOLDER}/values/"
    found = {}
    for path, text in files.items():
        if path.startswith(prefix) and path.endswith(".yaml"):
            obj = parsed.get(path) if parsed is not None else None
            found[path[len(prefix):].removesuffix(".yaml")] = obj if obj is not None \
                else load_yaml(text)
    return found


def relevant(path: str, environment: str) -> bool:
    """A file of the environment's tree the flows depend on: its objects, its control
    plane's values, its hosts' listeners and clusters."""
    if path.startswith(f"hosts/{environment}/"):
        return path.count("/") == 3 and path.rsplit("/", 1)[1] in HOST_FILES
    return path.startswith(f"{env_dir(environment)}/") and path.endswith(".yaml") \
        and not path.endswith("/kustomization.yaml") and "/argocd/" not in path \
        and "/flux/" not in path


def committed_state(gitops_dir: Path, intent: Intent, provider: str,
                    owned: Mapping[str, str], target_files: Mapping[str, str],
                    parsed: Mapping[str, Any], estate: Sequence[Resource],
                    label: str) -> tuple[MeshState | None, bool]:
    """The configuration committed for the environment now (None when the repository
    holds no tree of it), and whether it is the target's, file for file. ``owned`` is what
    the repository's state file records (path -> sha256): a file the target renders the
    same is not read again, its parsed target object stands for it."""
    environment = intent.environment
    files = {path: sha for path, sha in owned.items() if relevant(path, environment)}
    if not files:
        return None, False
    wanted = {path for path in target_files if relevant(path, environment)}
    texts: dict[str, str] = {}
    objects: dict[str, Any] = {}
    unchanged = set(files) == wanted
    for path, sha in sorted(files.items()):
        text = target_files.get(path)
        if text is not None and hashlib.sha256(text.encode("utf-8")).hexdigest() == sha \
                and parsed.get(path) is not None:
            objects[path], texts[path] = parsed[path], text
            continue
        unchanged = False
        disk = Path(gitops_dir) / path
        if disk.is_file():
            texts[path] = disk.read_text(encoding="utf-8")
            objects[path] = load_yaml(texts[path])
    if unchanged and provider == intent.provider:
        return None, True
    values_prefix = f"{env_dir(environment)}/{INSTALL_FOLDER}/"
    manifests = [obj for path, obj in objects.items()
                 if not path.startswith(("hosts/", values_prefix))
                 and isinstance(obj, Mapping) and obj.get("kind")]
    hosts = host_files_of(texts, environment, objects)
    return mesh_state(provider, FlowSettings.from_intent(intent), manifests, estate, hosts,
                      install_values_of(texts, environment, objects), label), False
