"""meshstage import against rendering the same estate, in one run.

    .venv/bin/python bench/import_estate.py --services 1000

The estate is the benchmark's (``estate.py``: N services each calling 3 others, two versions
with a canary, explicit authorization rules; its environments dev at ``authorization``,
staging at ``strict_mtls``, prod at ``traffic``, as ``run.py`` renders them). The export is
what ``kubectl get -A -o yaml`` would show of the dev cluster running it: the objects
meshstage renders for dev, and the workloads (a Service, a ServiceAccount and a Deployment
per service and version), each Deployment with its ReplicaSet and an injected Pod, every
object with what the API server adds (uid, resourceVersion, managedFields, status).
Measured alternately, best of ``--repeat`` rounds, in CPU seconds of this one process (the
machine's other load does not count; neither side starts a subprocess):

* import: ``meshstage import`` of the export (read it, import it, write the commented
  inventory into a fresh directory), as ``inventory.run.import_inventory`` does;
* render: ``pipeline.render_stage`` of each environment of the estate (parse, plan,
  render, validate against ../shared/reference/crds, analyze), as every run does before it
  writes; the estate's figure is their sum, dev's is reported too.

The target: the import takes no longer than rendering the estate. It ends with one line::

    services=1000 import_s=… render_s=… import_render_ratio=… dev_render_s=… target=met
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CRD_DIR = REPO.parent / "shared" / "reference" / "crds"
RATIO_MAX = 1.0  # the import takes no longer than rendering the same estate

sys.path.insert(0, str(BENCH))
from estate import environments  # noqa: E402


def _served(obj: dict[str, Any], number: int) -> dict[str, Any]:
    """``obj`` as the API server shows it."""
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    meta["uid"] = f"00000000-0000-4000-8000-{number:012d}"
    meta["resourceVersion"] = str(1000 + number)
    meta["creationTimestamp"] = "2026-08-01T10:00:00Z"
    meta["managedFields"] = [{"apiVersion": obj.get("apiVersion"), "fieldsType": "FieldsV1",
                              "manager": "argocd-controller", "operation": "Apply",
                              "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:spec": {}}}]
    obj["status"] = {"observedGeneration": 1}
    return obj


def export(services: int) -> tuple[dict[str, Any], str]:
    """The cluster export of the estate's dev environment, and the variables' text."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.estate.stand_in import (
        estate_objects,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.intent.parse import (
        parse_intent,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
        StageOptions,
        render_stage,
    )

    variables = environments(services)["dev"]
    intent, _ = parse_intent(variables)
    with tempfile.TemporaryDirectory() as gitops:
        rendered = render_stage(variables, StageOptions(gitops_dir=Path(gitops)))
    items: list[dict[str, Any]] = []
    for obj in [*(item.obj for item in rendered.objects), *estate_objects(intent)]:
        served = _served(dict(obj), len(items))
        served["metadata"].get("annotations", {}).pop("meshstage.io/stand-in", None)
        items.append(served)
        if obj["kind"] != "Deployment":
            continue
        template = copy.deepcopy(obj["spec"]["template"])
        replicaset = _served({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
            "name": f"{obj['metadata']['name']}-5d8f7c9b4", "namespace":
                obj["metadata"]["namespace"], "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment", "controller": True,
                    "name": obj["metadata"]["name"], "uid": served["metadata"]["uid"]}]},
            "spec": {"template": template}}, len(items))
        items.append(replicaset)
        spec = template["spec"]
        spec["containers"] = [*spec["containers"], {"name": "istio-proxy",
                                                    "image": "proxyv2:1.29.2"}]
        items.append(_served({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"{replicaset['metadata']['name']}-x7k2q",
            "namespace": obj["metadata"]["namespace"], "labels": template["metadata"]["labels"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "controller": True, "name": replicaset["metadata"]["name"],
                                 "uid": replicaset["metadata"]["uid"]}]},
            "spec": spec}, len(items)))
    # no object shared between two places: kubectl's output has no YAML anchor or alias,
    # and one alias sends a whole stream to the safe loader (``yaml_io.load_manifests``)
    return json.loads(json.dumps({"apiVersion": "v1", "kind": "List", "items": items})), \
        variables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from ansible_collections.meshstage.mesh.plugins.module_utils.collector import (
        fewer_collections,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.run import (
        import_inventory,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
        StageOptions,
        render_stage,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.yaml_io import dump_plain

    clock = time.process_time
    with tempfile.TemporaryDirectory() as work, fewer_collections():
        root = Path(work)
        listing, _ = export(args.services)
        source = root / "export.yaml"
        source.write_text(dump_plain(listing))
        size = source.stat().st_size
        imports: list[float] = []
        renders: dict[str, list[float]] = {}
        result = None
        for round_ in range(args.repeat):
            start = clock()
            result = import_inventory([str(source)], root / f"inventory-{round_}",
                                      environment="dev")
            imports.append(clock() - start)
            for name, variables in environments(args.services).items():
                start = clock()
                render_stage(variables, StageOptions(gitops_dir=root / f"{name}-{round_}",
                                                     crd_dirs=[CRD_DIR]))
                renders.setdefault(name, []).append(clock() - start)
    assert result is not None
    best_import = min(imports)
    best = {name: min(times) for name, times in renders.items()}
    estate_render = sum(best.values())
    ratio = best_import / estate_render
    print(f"export: {len(listing['items'])} objects, {size / 1e6:.1f} MB")
    print(f"import: {best_import:.2f}s CPU ({result.services} services, {result.calls} calls, "
          f"stage {result.stage})")
    print("render: " + ", ".join(f"{name} {value:.2f}s" for name, value in best.items())
          + f" CPU; the estate {estate_render:.2f}s")
    print(f"import / render of the estate: {ratio:.2f}; import / render of dev alone: "
          f"{best_import / best['dev']:.2f}")
    print(f"services={args.services} import_s={best_import:.2f} render_s={estate_render:.2f} "
          f"import_render_ratio={ratio:.2f} dev_render_s={best['dev']:.2f} "
          f"target={'met' if ratio <= RATIO_MAX else 'MISSED'}")


if __name__ == "__main__":
    main()
