"""What `serve --check` (and every start and SIGHUP reload) finds wrong with the TLS certificate
and key, and with files holding secrets that others may read.

Each finding is one line naming the config key and the file. Errors stop `serve` (exit 2) and
make a reload keep the previous certificate: a file that is not a PEM certificate or key, a
key that does not belong to the certificate, a certificate that expired or is not valid yet,
or one OpenSSL refuses. Warnings do not stop it: a certificate that expires in under
`EXPIRY_WARNING_DAYS`, and a key or secret file readable by its group or by others (a warning,
as coturn and eturnal users expect: a group-readable key is how some distributions share
certificates, e.g. Debian's ssl-cert group).

The certificate is parsed with ``cryptography`` to say precisely what is wrong; OpenSSL
(``ssl``) then loads the pair exactly as the listener will.
"""

from __future__ import annotations

import datetime
import ssl
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from .model import TurnConfig

EXPIRY_WARNING_DAYS = 14
_CERT_KEY, _KEY_KEY = "listen.tls_cert_file", "listen.tls_key_file"


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    message: str  # "<config key>: <file>: <what is wrong>"

    def __str__(self) -> str:
        return f"{self.severity.value}: {self.message}"


@dataclass(frozen=True, slots=True)
class CertificateSummary:
    """What a loaded certificate is, for the log line of a start or reload."""

    subject: str
    serial: int
    not_after: datetime.datetime

    def __str__(self) -> str:
        return f"{self.subject}, serial {self.serial:x}, expires {self.not_after:%Y-%m-%d %H:%M}Z"


def _error(key: str, path: Path, what: str) -> Finding:
    return Finding(Severity.ERROR, f"{key}: {path}: {what}")


def _warning(key: str, path: Path, what: str) -> Finding:
    return Finding(Severity.WARNING, f"{key}: {path}: {what}")


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]


def check_config_files(config: TurnConfig, now: datetime.datetime) -> list[Finding]:
    """Every finding for the files ``config`` names: the TLS pair (when TLS listens) and the
    modes of the key and secret files."""
    listen = config.listen
    findings: list[Finding] = []
    cert, key = listen.tls_cert_file, listen.tls_key_file
    if listen.tls_port and cert is not None and key is not None:
        findings += check_certificate_pair(cert, key, now)
    for name, path in _private_files(config):
        finding = _readable_by_others(name, path)
        if finding is not None:
            findings.append(finding)
    return findings


def _private_files(config: TurnConfig) -> Iterator[tuple[str, Path]]:
    candidates = (
        (_KEY_KEY, config.listen.tls_key_file if config.listen.tls_port else None),
        ("auth.rest_secrets_file", config.auth.rest_secrets_file),
        ("auth.users_file", config.auth.users_file),
        ("api.api_key_file", config.api.api_key_file if config.api.enabled else None),
    )
    for key, path in candidates:
        if path is not None and path.exists():
            yield key, path


def _readable_by_others(key: str, path: Path) -> Finding | None:
    mode = stat.S_IMODE(path.stat().st_mode)
    who = [name for bit, name in ((stat.S_IRGRP, "group"), (stat.S_IROTH, "others")) if mode & bit]
    if not who:
        return None
    return _warning(key, path, f"readable by {' and '.join(who)} (mode {mode:04o}); chmod 600 it")


def check_certificate_pair(
    cert_path: Path, key_path: Path, now: datetime.datetime
) -> list[Finding]:
    """The findings for one certificate chain and key, errors first; [] when all is well."""
    chain, found = _read_chain(cert_path)
    key, key_error = _read_key(key_path)
    findings = [f for f in (found, key_error) if f is not None]
    if chain is None or key is None:
        return findings
    if not _same_public_key(chain[0], key):
        return [_error(_KEY_KEY, key_path, f"does not match the certificate in {cert_path}")]
    findings += _validity(cert_path, chain[0], now)
    if not errors(findings):
        refused = _openssl_refuses(cert_path, key_path)
        if refused:
            findings.insert(0, _error(_CERT_KEY, cert_path, f"OpenSSL refuses it: {refused}"))
    return findings


def summarize(cert_path: Path) -> CertificateSummary | None:
    """Subject, serial and expiry of the first certificate in ``cert_path`` (None if unreadable)."""
    chain, _ = _read_chain(cert_path)
    if chain is None:
        return None
    leaf = chain[0]
    return CertificateSummary(leaf.subject.rfc4514_string(), leaf.serial_number, _not_after(leaf))


def _read_chain(path: Path) -> tuple[list[x509.Certificate] | None, Finding | None]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, _error(_CERT_KEY, path, f"cannot read it: {exc.strerror or exc}")
    try:
        return x509.load_pem_x509_certificates(data), None
    except ValueError:
        return None, _error(_CERT_KEY, path, "not a PEM certificate (no parsable CERTIFICATE)")


def _read_key(path: Path) -> tuple[PrivateKeyTypes | None, Finding | None]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, _error(_KEY_KEY, path, f"cannot read it: {exc.strerror or exc}")
    try:
        return serialization.load_pem_private_key(data, password=None), None
    except TypeError:
        return None, _error(_KEY_KEY, path, "the key is encrypted; the relay needs it unencrypted")
    except (ValueError, UnsupportedAlgorithm):
        return None, _error(_KEY_KEY, path, "not a PEM private key")


def _public_der(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        return b""
    der: bytes = public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _same_public_key(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    return _public_der(cert.public_key()) == _public_der(key.public_key())


def _not_after(cert: x509.Certificate) -> datetime.datetime:
    return cert.not_valid_after_utc


def _validity(path: Path, cert: x509.Certificate, now: datetime.datetime) -> list[Finding]:
    not_before, not_after = cert.not_valid_before_utc, _not_after(cert)
    if not_after <= now:
        days = (now - not_after).days
        return [_error(_CERT_KEY, path, f"expired on {not_after:%Y-%m-%d} ({days} days ago)")]
    if not_before > now:
        return [_error(_CERT_KEY, path, f"not valid before {not_before:%Y-%m-%d %H:%M}Z")]
    left = not_after - now
    if left < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        return [
            _warning(
                _CERT_KEY,
                path,
                f"expires on {not_after:%Y-%m-%d} (in {left.days} days, under"
                f" {EXPIRY_WARNING_DAYS}): renew it, then SIGHUP the relay",
            )
        ]
    return []


def _openssl_refuses(cert_path: Path, key_path: Path) -> str | None:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, OSError) as exc:
        return str(getattr(exc, "reason", None) or exc)
    return None
