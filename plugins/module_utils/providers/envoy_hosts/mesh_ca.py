"""The mesh CA of the host sidecars: created once, issues short-lived SPIFFE certificates.

The CA lives in a directory on the controller (``mesh_ca_dir``), never in the GitOps
repository: ``ca.key`` (mode 0600) and ``ca.pem``, in a directory of mode 0700. Each host
sidecar gets a certificate whose only subject alternative name is the URI
``spiffe://<trust domain>/ns/<namespace>/sa/<service account>``, valid for a short time
(24 hours by default) and renewed by the playbook before it expires.

The certificate work is pure (``create_ca``, ``issue``, ``renewal_reason``: values in,
values out, the time passed in); ``load_or_create_ca`` is the one function that touches the
disk, under a lock so that hosts configured in parallel create one CA, not several.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..._io import atomic_write
from ...errors import MeshstageError

CA_KEY = "ca.key"
CA_CERT = "ca.pem"
CA_VALIDITY = dt.timedelta(days=3650)
# Certificates start a little in the past, so clocks that differ slightly still accept them.
BACKDATE = dt.timedelta(minutes=5)


class CertificateError(MeshstageError):
    """The CA cannot be read or created, or a certificate cannot be issued."""


@dataclass(frozen=True)
class MeshCA:
    """The CA's certificate and key, as PEM text."""

    cert_pem: str
    key_pem: str

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem.encode())

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError("the mesh CA key is not an EC key")
        return key


@dataclass(frozen=True)
class IssuedCertificate:
    cert_pem: str
    key_pem: str
    not_after: dt.datetime


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """``spiffe://<trust domain>/ns/<namespace>/sa/<service account>``."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def create_ca(trust_domain: str, now: dt.datetime) -> MeshCA:
    """A new self-signed mesh CA for ``trust_domain`` (EC P-256, ten years)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshstage"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, trust_domain),
        x509.NameAttribute(NameOID.COMMON_NAME, "meshstage mesh CA"),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return MeshCA(cert.public_bytes(serialization.Encoding.PEM).decode(), _pem(key))


def issue(ca: MeshCA, identity: str, now: dt.datetime,
          validity: dt.timedelta = dt.timedelta(hours=24)) -> IssuedCertificate:
    """A certificate and key whose only SAN is the URI ``identity`` (a SPIFFE ID)."""
    if not identity.startswith("spiffe://"):
        raise CertificateError(f"identity {identity!r} is not a SPIFFE ID (spiffe://...)")
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = ca.certificate
    not_after = now + validity
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshstage")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]),
                       critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=False, key_cert_sign=False,
            crl_sign=False, content_commitment=False, data_encipherment=False,
            key_agreement=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.private_key().public_key()), critical=False)
        .sign(ca.private_key(), hashes.SHA256())
    )
    return IssuedCertificate(cert.public_bytes(serialization.Encoding.PEM).decode(),
                             _pem(key), not_after)


def uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(sans.get_values_for_type(x509.UniformResourceIdentifier))


def renewal_reason(cert_pem: str | None, ca: MeshCA, identity: str, now: dt.datetime,
                   renew_before: dt.timedelta) -> str | None:
    """Why the certificate must be (re)issued, or None when it is good for now.

    It is renewed when missing or unreadable, not signed by this CA, for another identity,
    not yet valid, or expiring within ``renew_before``.
    """
    if not cert_pem:
        return "no certificate yet"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return "the certificate cannot be read"
    ca_cert = ca.certificate
    try:
        if cert.issuer != ca_cert.subject:
            raise InvalidSignature
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return "not issued by the current mesh CA"
    if uri_sans(cert) != [identity]:
        return f"issued for {', '.join(uri_sans(cert)) or 'no identity'}, not {identity}"
    if cert.not_valid_before_utc > now:
        return "not valid yet"
    remaining = cert.not_valid_after_utc - now
    if remaining <= renew_before:
        return f"expires at {cert.not_valid_after_utc.isoformat()}, within the renewal window"
    return None


def not_after(cert_pem: str) -> dt.datetime:
    return x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_private(path: Path, text: str) -> None:
    atomic_write(path, text, 0o600, make_dirs=False)


def trust_domain_of(identity: str) -> str:
    """The trust domain of a SPIFFE ID."""
    domain = identity.removeprefix("spiffe://").partition("/")[0]
    if not identity.startswith("spiffe://") or not domain:
        raise CertificateError(f"identity {identity!r} is not a SPIFFE ID (spiffe://...)")
    return domain


def certificate_files(ca: MeshCA | None, identity: str, reason: str | None,
                      now: dt.datetime, validity: dt.timedelta,
                      current_ca_pem: str | None) -> dict[str, str]:
    """The files a host must get: a new certificate and key when ``reason`` says so, the
    CA certificate when the host's differs. Empty when everything is current."""
    if ca is None:
        return {}
    files: dict[str, str] = {}
    if reason is not None:
        issued = issue(ca, identity, now, validity)
        files.update({"cert.pem": issued.cert_pem, "key.pem": issued.key_pem})
    if current_ca_pem != ca.cert_pem:
        files["ca.pem"] = ca.cert_pem
    return files


def ca_inside_repository(directory: str | Path, gitops_dir: str | Path | None) -> str | None:
    """Why the CA may not live in ``directory``: inside the GitOps repository, whose files
    are committed; None when it is outside."""
    if gitops_dir is None:
        return None
    repo = Path(gitops_dir).expanduser().resolve()
    where = Path(directory).expanduser().resolve()
    if where == repo or repo in where.parents:
        return (f"mesh CA directory {directory} (mesh_ca_dir) is inside the GitOps repository "
                f"{repo}: its private key must never be committed; choose a directory "
                "outside it")
    return None


def load_or_create_ca(directory: Path, trust_domain: str, now: dt.datetime,
                      create: bool = True,
                      gitops_dir: str | Path | None = None) -> tuple[MeshCA | None, bool]:
    """The CA in ``directory``, created there once (``create``); and whether it was created.

    Refuses a CA directory inside the GitOps repository ``gitops_dir``, a CA whose key is
    readable by others, and a CA for another trust domain. With ``create=False`` (check
    mode) a missing CA is returned as None.
    """
    directory = directory.expanduser()
    problem = ca_inside_repository(directory, gitops_dir)
    if problem:
        raise CertificateError(problem)
    key_path, cert_path = directory / CA_KEY, directory / CA_CERT
    if not key_path.exists() and not create:
        return None, True
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(directory):
            created = False
            if not key_path.exists():
                ca = create_ca(trust_domain, now)
                _write_private(key_path, ca.key_pem)
                _write_private(cert_path, ca.cert_pem)
                created = True
            if key_path.stat().st_mode & 0o077:
                raise CertificateError(f"{key_path}: the mesh CA key is readable by others "
                                       f"(mode {key_path.stat().st_mode & 0o777:o}); "
                                       "chmod 600 it")
            ca = MeshCA(cert_path.read_text(), key_path.read_text())
    except OSError as error:
        raise CertificateError(f"mesh CA directory {directory}: {error}") from error
    try:
        units = ca.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    except ValueError as error:
        raise CertificateError(f"{cert_path}: not a meshstage mesh CA ({error})") from error
    domains = [str(unit.value) for unit in units]
    if domains != [trust_domain]:
        raise CertificateError(
            f"{cert_path}: the mesh CA is for trust domain {', '.join(domains) or 'none'}, "
            f"not {trust_domain!r}; use another mesh_ca_dir")
    return ca, created
