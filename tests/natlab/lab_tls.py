"""A throwaway CA and a server certificate for a lab address, for TLS listeners in ``inet``."""

from __future__ import annotations

from pathlib import Path

from turnkit_testing.tls import CertFiles, make_certificate

LabCertificates = CertFiles


def make_lab_certificates(directory: Path, address: str) -> LabCertificates:
    """A CA, and a certificate for ``address`` (an IP subjectAltName) signed by it."""
    return make_certificate(directory, (address,), valid_days=1, ca_name="natlab CA")
