"""The inventory as files: comments beside (or above) the values they explain, text that reads
back as the data, the layout of ``inventories/``, nothing overwritten, and ``meshstage
import`` on the command line."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.cli import main
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.commented import (
    commented_yaml,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.layout import (
    InventoryExists,
    write_inventory,
)


def test_comments_sit_beside_short_values_and_above_long_ones():
    data = {"mesh_services": [{"name": "web", "namespace": "shop",
                               "ports": [{"name": "http", "port": 80, "protocol": "HTTP"}],
                               "calls": ["api", "db"]}],
            "mesh_default_deny": True}
    notes = {"mesh_services[0]": ["Service shop/web"],
             "mesh_services[0].ports[0].protocol": ["from the port name 'http'"],
             "mesh_services[0].calls": ["api: " + "a long reason " * 10],
             "mesh_default_deny": ["the default"]}
    text = commented_yaml(data, notes, header=["read from estate.yaml"])
    assert text.startswith("---\n# read from estate.yaml\n")
    assert "  - {name: http, port: 80, protocol: HTTP}  # from the port name 'http'" in text
    assert "mesh_default_deny: true  # the default" in text
    lines = text.splitlines()
    calls = next(n for n, line in enumerate(lines) if line.strip().startswith("calls:"))
    assert lines[calls - 1].strip().startswith("#")
    assert yaml.safe_load(text) == data


@pytest.mark.parametrize("value", ["yes", "1.0", "5xx,reset", "a: b", "*", "# not a comment",
                                   "{x}", "-", "", None, 12, 1.5, "é"])
def test_every_value_reads_back_as_written(value):
    data = {"mesh_x": {"list": [value, "b"], "scalar": value, "map": {"k": value}}}
    assert yaml.safe_load(commented_yaml(data, {"mesh_x.scalar": ["note"]})) == data


def test_nothing_is_overwritten(tmp_path):
    files = {"shared/mesh.yml": "a: 1\n", "dev/hosts.yml": "b: 2\n"}
    links = {"dev/group_vars/all/00-estate.yml": "../../../shared/mesh.yml"}
    assert sorted(write_inventory(tmp_path, files, links)) == sorted([*files, *links])
    assert os.readlink(tmp_path / "dev/group_vars/all/00-estate.yml") == \
        "../../../shared/mesh.yml"
    assert write_inventory(tmp_path, files, links) == []  # the same again: nothing to do
    (tmp_path / "dev/hosts.yml").write_text("mine\n")
    with pytest.raises(InventoryExists, match=r"dev/hosts.yml exist\(s\) with other content"):
        write_inventory(tmp_path, {**files, "dev/host_vars/dev.yml": "c: 3\n"}, links)
    assert (tmp_path / "dev/hosts.yml").read_text() == "mine\n"
    assert not (tmp_path / "dev/host_vars/dev.yml").exists()  # nothing written at all


def test_meshstage_import_writes_the_layout_of_inventories(reference_dir, tmp_path):
    estate = tmp_path / "estate"
    estate.mkdir()
    sample = reference_dir / "samples" / "linkerd" / "website" / "run.linkerd.io" / "public"
    (estate / "booksapp.yml").write_text((sample / "booksapp.yml").read_text())
    out, err = io.StringIO(), io.StringIO()
    assert main(["import", str(estate), "-o", str(tmp_path / "inventories"),
                 "--environment", "staging", "--provider", "linkerd"], out=out,
                err=err) == 0, err.getvalue()
    inventory = tmp_path / "inventories"
    assert sorted(str(p.relative_to(inventory)) for p in inventory.rglob("*")
                  if p.is_file() or p.is_symlink()) == [
        "shared/mesh.yml", "staging/group_vars/all/00-estate.yml", "staging/host_vars/staging.yml",
        "staging/hosts.yml"]
    host_vars = yaml.safe_load((inventory / "staging/host_vars/staging.yml").read_text())
    assert host_vars == {"mesh_environment": "staging", "mesh_stage": "permissive_mtls",
                         "mesh_injected_waves": 0, "mesh_check_paths": ["../../estate"]}
    shared = yaml.safe_load((inventory / "staging/group_vars/all/00-estate.yml").read_text())
    assert shared["mesh_provider"] == "linkerd"
    hosts = yaml.safe_load((inventory / "staging/hosts.yml").read_text())
    assert list(hosts["all"]["children"]) == ["mesh_environments"]  # no mesh_hosts group
    assert "4 service(s), 5 call(s), stage permissive_mtls for staging" in err.getvalue()
    # again: nothing changes; with a file of the user's in the way: exit 2, nothing written
    assert main(["import", str(estate), "-o", str(inventory), "--environment", "staging",
                 "--provider", "linkerd"], out=io.StringIO(), err=io.StringIO()) == 0
    (inventory / "staging/hosts.yml").write_text("all: {}\n")
    err = io.StringIO()
    assert main(["import", str(estate), "-o", str(inventory), "--environment", "staging"],
                out=io.StringIO(), err=err) == 2
    assert "staging/hosts.yml exist(s) with other content; meshstage import never " \
        "overwrites a file" in err.getvalue()


def test_an_unreadable_estate_is_exit_2(tmp_path):
    err = io.StringIO()
    assert main(["import", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "inv")],
                out=io.StringIO(), err=err) == 2
    assert "missing.yaml: no such file or directory" in err.getvalue()
    assert not Path(tmp_path / "inv").exists()


def test_the_estate_can_come_on_stdin(reference_dir, tmp_path):
    sample = reference_dir / "samples" / "istio-bookinfo" / "platform" / "kube"
    err = io.StringIO()
    assert main(["import", "-", "-o", str(tmp_path / "inv")], out=io.StringIO(), err=err,
                stdin=io.StringIO((sample / "bookinfo.yaml").read_text())) == 0, err.getvalue()
    host_vars = yaml.safe_load((tmp_path / "inv/dev/host_vars/dev.yml").read_text())
    assert "mesh_check_paths" not in host_vars  # nothing to name: save the export to check it
    assert "read it from stdin" in (tmp_path / "inv/shared/mesh.yml").read_text()


def _inventory_variables(inventory: Path, environment: str) -> dict:
    variables: dict = {}
    for path in (inventory / f"{environment}/group_vars/all/00-estate.yml",
                 inventory / f"{environment}/host_vars/{environment}.yml"):
        variables.update(yaml.safe_load(path.read_text()))
    return variables


def test_objects_without_a_namespace_go_where_the_import_is_told(reference_dir, tmp_path):
    """bookinfo.yaml names no namespace (``kubectl apply -n bookinfo`` puts it there): the
    import reads it in the namespace given, and writes that into mesh_check_paths, so every
    run reads the manifests the same way and finds the services' workloads."""
    from ansible_collections.meshstage.mesh.plugins.module_utils.inventory.paths import (
        relative_to_inventory,
    )
    from ansible_collections.meshstage.mesh.plugins.module_utils.pipeline import (
        StageOptions,
        render_stage,
    )
    estate = tmp_path / "estate" / "bookinfo.yaml"
    estate.parent.mkdir()
    estate.write_text((reference_dir / "samples" / "istio-bookinfo" / "platform" / "kube"
                       / "bookinfo.yaml").read_text())
    inventory = tmp_path / "inventories"
    err = io.StringIO()
    assert main(["import", str(estate), "-o", str(inventory), "--default-namespace",
                 "bookinfo"], out=io.StringIO(), err=err) == 0, err.getvalue()
    variables = _inventory_variables(inventory, "dev")
    assert {s["namespace"] for s in variables["mesh_services"]} == {"bookinfo"}
    written = variables.pop("mesh_check_paths")
    assert written == [{"path": "../../estate/bookinfo.yaml", "namespace": "bookinfo"}]
    paths, _ = relative_to_inventory(written, inventory / "dev")
    rendered = render_stage({**variables, "mesh_stage": "authorization"},
                            StageOptions(gitops_dir=tmp_path / "gitops", check_paths=paths))
    assert not [w for w in rendered.warnings if "MST03" in w], rendered.warnings
    # read as a plain path, the same manifests are in default: the run refuses, the
    # services' pods are nowhere in bookinfo
    from ansible_collections.meshstage.mesh.plugins.module_utils.errors import AnalysisError
    with pytest.raises(AnalysisError, match="Sidecar bookinfo/productpage: Referenced "
                                            "selector not found"):
        render_stage({**variables, "mesh_stage": "authorization"},
                     StageOptions(gitops_dir=tmp_path / "plain", check_paths=[estate]))


def test_a_default_namespace_that_is_no_namespace_name_writes_nothing(reference_dir,
                                                                      tmp_path):
    err = io.StringIO()
    sample = reference_dir / "samples" / "istio-bookinfo" / "platform" / "kube"
    assert main(["import", str(sample / "bookinfo.yaml"), "-o", str(tmp_path / "inv"),
                 "--default-namespace", "Book_Info"], out=io.StringIO(), err=err) == 2
    assert "default namespace 'Book_Info': not a namespace name" in err.getvalue()
    assert not (tmp_path / "inv").exists()


def test_the_import_says_when_it_put_the_estate_in_default(tmp_path):
    """Objects that name no namespace are read as default, as kubectl apply without -n puts
    them: the import says so, and names the namespace the estate's own cluster hosts give."""
    estate = tmp_path / "estate.yaml"
    estate.write_text("""
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: web
        env: [{name: SELF_URL, value: "http://web.shop.svc.cluster.local"}]
""")
    err = io.StringIO()
    assert main(["import", str(estate), "-o", str(tmp_path / "inv")], out=io.StringIO(),
                err=err) == 0, err.getvalue()
    assert "warning: 2 Service(s) and workload(s) of the estate name no namespace (e.g. " \
           "Service web): they are read as 'default'" in err.getvalue()
    assert "import with --default-namespace shop" in err.getvalue()
    assert "name no namespace" in (tmp_path / "inv/shared/mesh.yml").read_text()
    err = io.StringIO()
    assert main(["import", str(estate), "-o", str(tmp_path / "inv2"), "--default-namespace",
                 "shop"], out=io.StringIO(), err=err) == 0, err.getvalue()
    assert "name no namespace" not in err.getvalue()


def test_default_given_as_the_namespace_is_no_guess(reference_dir, tmp_path):
    err = io.StringIO()
    sample = reference_dir / "samples" / "istio-bookinfo" / "platform" / "kube"
    assert main(["import", str(sample / "bookinfo.yaml"), "-o", str(tmp_path / "inv"),
                 "--default-namespace", "default"], out=io.StringIO(), err=err) == 0
    assert "name no namespace" not in err.getvalue()
    host_vars = yaml.safe_load((tmp_path / "inv/dev/host_vars/dev.yml").read_text())
    assert host_vars["mesh_check_paths"] == [os.path.relpath(sample / "bookinfo.yaml",
                                                             tmp_path / "inv/dev")] or \
        host_vars["mesh_check_paths"] == [str(sample / "bookinfo.yaml")]
