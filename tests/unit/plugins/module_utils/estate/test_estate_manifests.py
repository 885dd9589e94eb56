"""Reading manifests: files, directories, stdin; what is skipped and what is refused."""

from __future__ import annotations

import io

import pytest

from ansible_collections.meshstage.mesh.plugins.module_utils.estate.manifests import (
    ManifestError,
    read_manifests,
    read_mesh_config,
)

SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\n"


def test_directories_are_read_recursively_skipping_hidden_folders_and_non_objects(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "svc.yaml").write_text(SERVICE + "---\n" + SERVICE.replace(
        "reviews", "ratings"))
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n")
    (tmp_path / "values.yml").write_text("revision: canary\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text(SERVICE)
    (tmp_path / "notes.txt").write_text("not yaml: [")
    manifests = read_manifests([tmp_path])
    assert [r.display for r in manifests.resources] == ["Service bookinfo/reviews",
                                                        "Service bookinfo/ratings"]
    assert [r.source for r in manifests.resources] == [f"{tmp_path}/a/svc.yaml#1",
                                                       f"{tmp_path}/a/svc.yaml#2"]
    assert manifests.files == 3 and manifests.skipped == 2


def test_a_list_is_expanded_and_stdin_is_read():
    text = ("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n"
            "  metadata: {name: bookinfo}\n")
    manifests = read_manifests(["-"], stdin=io.StringIO(text))
    assert [(r.display, r.source) for r in manifests.resources] == [
        ("Namespace bookinfo", "<stdin>")]


def test_objects_without_namespace_take_the_default_namespace_but_show_as_written(tmp_path):
    (tmp_path / "svc.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n")
    (resource,) = read_manifests([tmp_path], default_namespace="emojivoto").resources
    assert (resource.namespace, resource.display) == ("emojivoto", "Service web")


def test_a_missing_path_is_refused(tmp_path):
    with pytest.raises(ManifestError, match=r"/nope: no such file or directory"):
        read_manifests([tmp_path / "nope"])


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: [\n")
    with pytest.raises(ManifestError, match=r"bad.yaml: line \d+ is not valid YAML"):
        read_manifests([bad])


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"kind: Service\nmetadata: {name: caf\xe9}\n")
    with pytest.raises(ManifestError, match=r"latin1.yaml: cannot be read as UTF-8 text"):
        read_manifests([bad])


def test_mesh_config_plain_or_as_the_istio_configmap(tmp_path):
    plain = tmp_path / "mesh.yaml"
    plain.write_text("rootNamespace: mesh-root\ntrustDomain: example.org\n"
                     "defaultProviders: {accessLogging: [envoy]}\n")
    config = read_mesh_config(plain)
    assert (config.root_namespace, config.trust_domain,
            config.default_access_log_providers) == ("mesh-root", "example.org", ("envoy",))
    configmap = tmp_path / "istio.yaml"
    configmap.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\n"
                         "data:\n  mesh: |\n    trustDomain: corp.example\n")
    assert read_mesh_config(configmap).trust_domain == "corp.example"
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("- a list\n")
    with pytest.raises(ManifestError, match="is not a MeshConfig"):
        read_mesh_config(wrong)
