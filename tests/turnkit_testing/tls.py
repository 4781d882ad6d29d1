"""Throwaway certificates for TLS listeners in tests: one maker for every test tier."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path
    #: the CA that signed ``cert`` (the certificate itself when self-signed)
    ca: Path


def make_certificate(
    directory: Path,
    names: Sequence[str] = ("127.0.0.1",),
    *,
    self_signed: bool = False,
    valid_days: float = 90,
    expired: bool = False,
    stem: str = "",
    ca_name: str = "turnkit test CA",
    common_name: str | None = None,
) -> CertFiles:
    """An EC certificate for ``names`` (IP addresses or DNS names, the first is also the
    subject unless ``common_name`` is given) signed by a fresh CA, or by itself; files
    ``{stem}cert.pem``, ``{stem}key.pem`` and ``{stem}ca.pem`` in ``directory``.
    ``expired``: it ended yesterday; ``valid_days`` under 14 makes a soon-expiring one."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        not_before, not_after = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        not_before, not_after = (
            now - datetime.timedelta(hours=1),
            now + datetime.timedelta(days=valid_days),
        )
    files = CertFiles(
        directory / f"{stem}cert.pem", directory / f"{stem}key.pem", directory / f"{stem}ca.pem"
    )
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(common_name or names[0])
    if self_signed:
        issuer_key, issuer = key, subject
    else:
        issuer_key, issuer = _write_ca(now, _name(ca_name), files.ca)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .sign(issuer_key, hashes.SHA256())
    )
    files.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    _write_key(key, files.key)
    if self_signed:
        files.ca.write_bytes(files.cert.read_bytes())
    return files


def self_signed_certificate(
    directory: Path, host: str = "127.0.0.1", *, stem: str = ""
) -> tuple[Path, Path]:
    """A one-day self-signed certificate for ``host`` and its key: ``(cert.pem, key.pem)``."""
    files = make_certificate(directory, (host,), self_signed=True, valid_days=1, stem=stem)
    return files.cert, files.key


def write_unrelated_key(path: Path) -> Path:
    """A fresh EC key at ``path``, matching no certificate (for mismatch tests)."""
    _write_key(ec.generate_private_key(ec.SECP256R1()), path)
    return path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_ca(
    now: datetime.datetime, name: x509.Name, path: Path
) -> tuple[ec.EllipticCurvePrivateKey, x509.Name]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, name
