"""``meshstage check``: what it prints and the exit status."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from ansible_collections.meshstage.mesh.plugins.module_utils.cli import main

BROKEN = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v3}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}
"""


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), out=out, err=err, stdin=io.StringIO(stdin))
    return status, out.getvalue(), err.getvalue()


def test_an_error_prints_one_line_per_finding_and_exits_1(tmp_path):
    (tmp_path / "vs.yaml").write_text(BROKEN)
    status, out, err = run("check", str(tmp_path))
    assert status == 1
    assert out == ("Error IST0101 VirtualService bookinfo/reviews: Referenced host+subset in "
                   "destinationrule not found: 'reviews+v3'. "
                   "(spec.http[0].route[0].destination.subset)\n")
    assert "1 error(s), 0 warning(s), 0 info(s) in 2 object(s) from 1 file(s)" in err
    assert "note: not checked by virtualservice.DestinationHostAnalyzer" in err


def test_a_clean_input_exits_0():
    status, out, _ = run("check", "-", stdin=BROKEN.replace("v3", "v1"))
    assert (status, out) == (0, "")


def test_warnings_and_infos_alone_exit_0():
    text = ("apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\n"
            "spec: {ports: [{name: web, port: 80}]}\n")
    status, out, _ = run("check", "-", stdin=text)
    assert status == 0 and out.startswith("Info IST0118 Service bookinfo/reviews:")


def test_unreadable_input_exits_2_with_a_clear_message(tmp_path):
    status, out, err = run("check", str(tmp_path / "missing.yaml"))
    assert (status, out) == (2, "")
    assert err == f"meshstage check: {tmp_path}/missing.yaml: no such file or directory\n"
    (tmp_path / "bad.yaml").write_text("kind: [\n")
    status, _, err = run("check", str(tmp_path / "bad.yaml"))
    assert status == 2 and "bad.yaml: line 2 is not valid YAML" in err


def test_a_wrong_command_line_exits_2():
    assert run("check")[0] == 2
    assert run("check", "x", "--provider", "consul")[0] == 2


def test_json_output(tmp_path):
    (tmp_path / "vs.yaml").write_text(BROKEN)
    status, out, err = run("check", "--json", str(tmp_path / "vs.yaml"))
    report = json.loads(out)
    assert status == 1 and err == ""
    assert report["counts"] == {"error": 1, "warning": 0, "info": 0}
    assert report["objects"] == 2 and report["files"] == 1
    (finding,) = report["findings"]
    assert finding == {
        "level": "Error", "code": "IST0101", "resource": "VirtualService bookinfo/reviews",
        "message": "Referenced host+subset in destinationrule not found: 'reviews+v3'.",
        "analyzer": "virtualservice.DestinationRuleAnalyzer",
        "path": "spec.http[0].route[0].destination.subset",
        "source": f"{tmp_path}/vs.yaml#1"}
    assert {"analyzer": "virtualservice.DestinationHostAnalyzer",
            "what": "VirtualService destination hosts",
            "missing": "no Service or ServiceEntry in the input for "
                       "reviews.bookinfo.svc.cluster.local"} in report["unchecked"]


def test_complete_namespace_provider_and_mesh_config(tmp_path):
    text = ("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
            "metadata: {name: allow}\nspec: {rules: [{from: [{source: "
            "{principals: [corp.example/ns/shop/sa/cart]}}]}]}\n---\n"
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: shop}\n")
    (tmp_path / "ap.yaml").write_text(text)
    (tmp_path / "mesh.yaml").write_text("trustDomain: corp.example\n")
    status, out, _ = run("check", str(tmp_path / "ap.yaml"), "-n", "shop")
    assert status == 1 and "Principal 'corp.example/ns/shop/sa/cart' matches no workload: its " \
        "trust domain 'corp.example' is not the mesh's (cluster.local)." in out
    assert out.startswith("Error MST0103 AuthorizationPolicy allow:")
    status, out, _ = run("check", str(tmp_path / "ap.yaml"), "-n", "shop",
                         "--mesh-config", str(tmp_path / "mesh.yaml"))
    assert "no ServiceAccount shop/cart exists" in out
    status, out, _ = run("check", str(tmp_path / "ap.yaml"), "--provider", "linkerd")
    assert (status, out) == (0, "")
    status, out, _ = run("check", str(tmp_path / "ap.yaml"), "-n", "shop", "--complete",
                         "--analyzer", "auth.AuthorizationPoliciesAnalyzer")
    assert out.startswith("Warning IST0127 AuthorizationPolicy allow:")


def test_analyzers_lists_every_analyzer():
    status, out, _ = run("analyzers")
    assert status == 0
    assert "virtualservice.DestinationHostAnalyzer  [istio]  IST0101 Error" in out
    assert "linkerd.ProbesAnalyzer  [linkerd]  MST0205 Error" in out


def test_the_console_script_is_installed(tmp_path):
    (tmp_path / "vs.yaml").write_text(BROKEN)
    script = Path(sys.executable).parent / "meshstage"
    result = subprocess.run([str(script), "check", str(tmp_path)], capture_output=True,
                            text=True, check=False, timeout=60)
    assert result.returncode == 1 and result.stdout.startswith("Error IST0101")
