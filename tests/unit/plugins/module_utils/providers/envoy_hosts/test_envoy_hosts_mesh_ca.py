"""The mesh CA: created once and kept outside the GitOps repository, SPIFFE certificates,
renewal before expiry."""

from __future__ import annotations

import datetime as dt
import stat

import pytest
from cryptography import x509

from ansible_collections.meshstage.mesh.plugins.module_utils.providers.envoy_hosts.mesh_ca import (
    CertificateError,
    certificate_files,
    create_ca,
    issue,
    load_or_create_ca,
    renewal_reason,
    spiffe_id,
    trust_domain_of,
    uri_sans,
)

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
ID = "spiffe://corp.test/ns/payments/sa/payment-service"


@pytest.fixture(scope="module")
def ca():
    return create_ca("corp.test", NOW)


def test_spiffe_id_and_trust_domain():
    assert spiffe_id("corp.test", "payments", "payment-service") == ID
    assert trust_domain_of(ID) == "corp.test"
    with pytest.raises(CertificateError, match="is not a SPIFFE ID"):
        trust_domain_of("corp.test/ns/a/sa/b")


def test_issued_certificate_has_only_the_spiffe_uri_san_and_24_hours(ca):
    issued = issue(ca, ID, NOW)
    cert = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    assert uri_sans(cert) == [ID]
    assert cert.not_valid_after_utc == NOW + dt.timedelta(hours=24)
    assert cert.issuer == ca.certificate.subject
    cert.verify_directly_issued_by(ca.certificate)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize(("when", "identity", "expected"), [
    (NOW + dt.timedelta(hours=1), ID, None),
    (NOW + dt.timedelta(hours=16, minutes=1), ID, "within the renewal window"),
    (NOW + dt.timedelta(hours=30), ID, "within the renewal window"),
    (NOW + dt.timedelta(hours=1), "spiffe://corp.test/ns/x/sa/y", "not spiffe://corp.test/ns/x"),
    (NOW - dt.timedelta(hours=1), ID, "not valid yet"),
])
def test_renewal_reason(ca, when, identity, expected):
    issued = issue(ca, ID, NOW)
    reason = renewal_reason(issued.cert_pem, ca, identity, when, dt.timedelta(hours=8))
    if expected is None:
        assert reason is None
    else:
        assert expected in reason


def test_renewal_of_missing_garbled_or_foreign_certificates(ca):
    other = create_ca("corp.test", NOW)
    foreign = issue(other, ID, NOW).cert_pem
    window = dt.timedelta(hours=8)
    assert renewal_reason(None, ca, ID, NOW, window) == "no certificate yet"
    assert renewal_reason("garbage", ca, ID, NOW, window) == "the certificate cannot be read"
    assert renewal_reason(foreign, ca, ID, NOW, window) == "not issued by the current mesh CA"


def test_certificate_files_only_what_changed(ca):
    assert certificate_files(ca, ID, None, NOW, dt.timedelta(hours=24), ca.cert_pem) == {}
    assert set(certificate_files(ca, ID, None, NOW, dt.timedelta(hours=24), None)) == {"ca.pem"}
    renewed = certificate_files(ca, ID, "expiring", NOW, dt.timedelta(hours=24), ca.cert_pem)
    assert set(renewed) == {"cert.pem", "key.pem"}
    assert "PRIVATE KEY" in renewed["key.pem"]


def test_ca_is_created_once_with_private_modes(tmp_path):
    directory = tmp_path / "ca"
    first, created = load_or_create_ca(directory, "corp.test", NOW)
    again, created_again = load_or_create_ca(directory, "corp.test", NOW)
    assert created and not created_again
    assert first == again
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "ca.key").stat().st_mode) == 0o600


def test_check_mode_creates_no_ca(tmp_path):
    assert load_or_create_ca(tmp_path / "ca", "corp.test", NOW, create=False) == (None, True)
    assert not (tmp_path / "ca").exists()


def test_ca_inside_the_gitops_repository_is_refused(tmp_path):
    with pytest.raises(CertificateError, match=r"inside the GitOps repository .*never be "
                       r"committed"):
        load_or_create_ca(tmp_path / "gitops" / "ca", "corp.test", NOW,
                          gitops_dir=tmp_path / "gitops")
    assert not (tmp_path / "gitops").exists()


def test_ca_key_readable_by_others_is_refused(tmp_path):
    load_or_create_ca(tmp_path / "ca", "corp.test", NOW)
    (tmp_path / "ca" / "ca.key").chmod(0o644)
    with pytest.raises(CertificateError, match=r"readable by others .*chmod 600"):
        load_or_create_ca(tmp_path / "ca", "corp.test", NOW)


def test_ca_of_another_trust_domain_is_refused(tmp_path):
    load_or_create_ca(tmp_path / "ca", "corp.test", NOW)
    with pytest.raises(CertificateError, match=r"trust domain corp\.test, not 'other\.test'"):
        load_or_create_ca(tmp_path / "ca", "other.test", NOW)
