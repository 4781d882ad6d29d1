"""What a server certificate says: names, issuer, validity, and whether it names a host.

Parsed with ``cryptography`` from the DER bytes of the handshake, so the facts are available even
when OpenSSL refused the certificate (the tls check then shows every problem, not only the first
one OpenSSL reports).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from rtccheck.results import JsonValue

DAY_S = 86400.0


@dataclass(frozen=True)
class CertificateFacts:
    subject: str
    issuer: str
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: float
    not_after: float
    self_signed: bool

    def days_left(self, now: float) -> float:
        return (self.not_after - now) / DAY_S

    def names_host(self, host: str) -> bool:
        """Whether the subjectAltName covers ``host`` as clients check it (RFC 6125: no
        fallback to the common name; a wildcard stands for exactly one left-most label)."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return any(_dns_match(name, host) for name in self.dns_names)
        return any(ipaddress.ip_address(ip) == address for ip in self.ip_addresses)

    def view(self, now: float) -> dict[str, JsonValue]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "not_before": self.not_before,
            "not_after": self.not_after,
            "days_left": round(self.days_left(now), 1),
            "self_signed": self.self_signed,
        }


def _dns_match(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if not pattern.startswith("*."):
        return pattern == host
    label, dot, rest = host.partition(".")
    return bool(label and dot) and rest == pattern[2:]


def parse_certificate(der: bytes) -> CertificateFacts:
    cert = x509.load_der_x509_certificate(der)
    dns_names: list[str] = []
    ip_addresses: list[str] = []
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        pass
    else:
        if isinstance(san, x509.SubjectAlternativeName):
            dns_names = san.get_values_for_type(x509.DNSName)
            ip_addresses = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return CertificateFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=str(common_names[0].value) if common_names else None,
        dns_names=tuple(dns_names),
        ip_addresses=tuple(ip_addresses),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        self_signed=cert.subject == cert.issuer,
    )
