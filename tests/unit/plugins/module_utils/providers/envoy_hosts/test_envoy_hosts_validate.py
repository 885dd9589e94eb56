"""Host sidecar configs are checked with the real ``envoy --mode validate``, on the controller
before anything is written, and on the host before a file is swapped in."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
import yaml

from ansible_collections.meshstage.mesh.plugins.module_utils.hosts.envoy_swap import (
    changed_files,
    swap_in,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.hosts.envoy_validate import (
    EnvoyConfigError,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.envoy_hosts.mesh_ca import (
    create_ca,
    issue,
)
from ansible_collections.meshstage.mesh.plugins.module_utils.providers.envoy_hosts.validate import (
    check_rendered,
    find_envoy,
    staged_validation,
    validation_bootstrap,
)

BOOTSTRAP = {
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
    "node": {"id": "h", "cluster": "c"},
    "dynamic_resources": {"lds_config": {"path_config_source": {"path": "/cfg/lds.yaml"}}},
}
LISTENER = {
    "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
    "name": "inbound",
    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}},
    "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions."
                                                 "filters.network.tcp_proxy.v3.TcpProxy",
                                        "stat_prefix": "in", "cluster": "app"}}]}],
}
CLUSTER = {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "app",
           "type": "STATIC", "connect_timeout": "1s",
           "load_assignment": {"cluster_name": "app", "endpoints": [{"lb_endpoints": [
               {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                            "port_value": 2}}}}]}]},
           "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                        "UpstreamTlsContext",
               "common_tls_context": {"tls_certificate_sds_secret_configs": [{
                   "name": "identity", "sds_config": {
                       "path_config_source": {"path": "/cfg/sds-identity.yaml"},
                       "resource_api_version": "V3"}}]}}}}
SECRET = {"resources": [{
    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
    "name": "identity", "tls_certificate": {
        "certificate_chain": {"filename": "/cfg/certs/cert.pem"},
        "private_key": {"filename": "/cfg/certs/key.pem"}}}]}


def test_validation_bootstrap_inlines_lds_and_cds_and_moves_paths():
    result = validation_bootstrap(BOOTSTRAP, {"resources": [LISTENER]},
                                  {"resources": [CLUSTER]}, {"/cfg": "/tmp/x"})
    assert "dynamic_resources" not in result
    assert result["static_resources"]["listeners"][0]["name"] == "inbound"
    assert "@type" not in result["static_resources"]["listeners"][0]
    path = result["static_resources"]["clusters"][0]["transport_socket"]["typed_config"][
        "common_tls_context"]["tls_certificate_sds_secret_configs"][0]["sds_config"][
        "path_config_source"]["path"]
    assert path == "/tmp/x/sds-identity.yaml"
    assert BOOTSTRAP["dynamic_resources"]  # the input is left alone


def rendered() -> dict:
    return {"bootstrap.yaml": BOOTSTRAP, "lds.yaml": {"resources": [LISTENER]},
            "cds.yaml": {"resources": [CLUSTER]}, "sds-identity.yaml": SECRET}


def test_real_envoy_accepts_a_valid_host_config():
    check_rendered("dev/h", "/cfg", "/var/log/x", rendered(), find_envoy())


def test_real_envoy_refusal_names_the_host_and_the_field():
    files = rendered()
    files["cds.yaml"] = {"resources": [{**CLUSTER, "lb_policy": "FASTEST"}]}
    with pytest.raises(EnvoyConfigError, match=r"host dev/h: envoy --mode validate refused "
                       r"it: .*unknown enum value: 'FASTEST'"):
        check_rendered("dev/h", "/cfg", "/var/log/x", files, find_envoy())


def test_missing_envoy_is_a_clear_error(tmp_path):
    with pytest.raises(EnvoyConfigError, match=r"mesh_envoy_binary: '.*nope' is not a file"):
        find_envoy(str(tmp_path / "nope"))


# --------------------------------------------------------------------------- on the host


def host_texts(dest: Path) -> dict[str, str]:
    moved = json.loads(json.dumps(rendered()).replace("/cfg", str(dest)))
    return {name: yaml.safe_dump(data) for name, data in moved.items()}


def certificates(dest: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    leaf = issue(create_ca("t.test", now), "spiffe://t.test/ns/a/sa/b", now)
    (dest / "certs").mkdir(parents=True)
    (dest / "certs" / "cert.pem").write_text(leaf.cert_pem)
    (dest / "certs" / "key.pem").write_text(leaf.key_pem)


def test_swap_checks_then_renames_only_changed_files_in_order(tmp_path):
    dest = tmp_path / "cfg"
    certificates(dest)
    texts = host_texts(dest)
    assert changed_files(dest, texts) == ["sds-identity.yaml", "cds.yaml", "lds.yaml",
                                          "bootstrap.yaml"]
    swap_in(dest, texts, staged_validation(texts, str(dest)), find_envoy(),
            changed_files(dest, texts))
    assert changed_files(dest, texts) == []
    assert not (dest / ".staged").exists()
    assert stat.S_IMODE((dest / "lds.yaml").stat().st_mode) == 0o644


def test_a_config_envoy_refuses_is_never_swapped_in(tmp_path):
    dest = tmp_path / "cfg"
    certificates(dest)
    good = host_texts(dest)
    swap_in(dest, good, staged_validation(good, str(dest)), find_envoy(),
            changed_files(dest, good))
    bad = dict(good)
    bad["cds.yaml"] = good["cds.yaml"].replace("STATIC", "NOT_A_TYPE")
    before = {p.name: p.read_bytes() for p in dest.iterdir() if p.is_file()}
    with pytest.raises(EnvoyConfigError, match="refused it"):
        swap_in(dest, bad, staged_validation(bad, str(dest)), find_envoy(),
                changed_files(dest, bad))
    assert {p.name: p.read_bytes() for p in dest.iterdir() if p.is_file()} == before
    assert not (dest / ".staged").exists()
