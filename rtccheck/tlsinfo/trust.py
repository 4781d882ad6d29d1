"""TLS client settings shared by every check that speaks TLS, and certificate errors explained.

``client_context`` trusts the system store, or with ``--ca-file`` only the CAs in that file, and
always checks the host name, as a browser does for ``turns:``. ``certificate_diagnosis`` turns
OpenSSL's verification error code into a plain cause and fix; the tls check, the probes (stun,
turn) and the ICE-agent checks all explain a refused certificate with it.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from rtccheck.causes import CauseId
from rtccheck.diagnosis import Diagnosis

# OpenSSL X509_V_ERR_* codes that have a plain explanation
EXPIRED = 10
NOT_YET_VALID = 9
SELF_SIGNED = 18
SELF_SIGNED_IN_CHAIN = 19
UNTRUSTED_ISSUER = (2, 20, 21)
NAME_MISMATCH = (62, 64)

_TRUST_FIX = (
    "Use a certificate from a CA that clients trust (e.g. Let's Encrypt) and serve the full "
    "chain; to check a private CA, pass it with --ca-file."
)


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verifying client context: the system trust store, or only the CAs in ``ca_file``."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)


def trust_source(ca_file: Path | None) -> str:
    return f"--ca-file {ca_file}" if ca_file is not None else "the system trust store"


def verification_diagnosis(
    error: ssl.SSLCertVerificationError, host: str, ca_file: Path | None
) -> Diagnosis:
    """Why the server's certificate was refused, from the ssl module's error."""
    message = error.verify_message or str(error)
    return certificate_diagnosis(error.verify_code, message, host, ca_file)


def certificate_diagnosis(code: int, message: str, host: str, ca_file: Path | None) -> Diagnosis:
    """Why the server's certificate was refused, from OpenSSL's verify code and message."""
    if code in NAME_MISMATCH:
        return name_mismatch_diagnosis(host)
    if code == EXPIRED:
        return expired_diagnosis()
    if code == NOT_YET_VALID:
        return Diagnosis(
            CauseId.TLS_NOT_YET_VALID,
            "the certificate is not valid yet",
            "Its notBefore date is in the future: the certificate was issued with a wrong "
            "date, or this machine's (or the server's) clock is wrong.",
            "Check the clocks (NTP) and reissue the certificate if its dates are wrong.",
        )
    if code == SELF_SIGNED:
        return Diagnosis(
            CauseId.TLS_SELF_SIGNED,
            "the certificate is self-signed",
            f"The server presents a self-signed certificate, which {trust_source(ca_file)} "
            "does not trust; browsers refuse such turns: servers (Chrome error 701).",
            _TRUST_FIX,
        )
    if code == SELF_SIGNED_IN_CHAIN or code in UNTRUSTED_ISSUER:
        return Diagnosis(
            CauseId.TLS_UNTRUSTED,
            f"the certificate chain is not trusted ({message})",
            f"No CA in {trust_source(ca_file)} vouches for the certificate: it comes from a "
            "private CA, or the server does not send its intermediate certificates.",
            _TRUST_FIX,
        )
    return Diagnosis(
        CauseId.TLS_VERIFY_FAILED,
        f"certificate verification failed: {message}",
        f"OpenSSL refused the certificate (verify error {code}: {message}).",
        _TRUST_FIX,
    )


def name_mismatch_diagnosis(host: str) -> Diagnosis:
    return Diagnosis(
        CauseId.TLS_NAME_MISMATCH,
        f"the certificate does not match {host}",
        f"Clients check that the certificate names the host in the URI; none of its names "
        f"(subjectAltName) is {host}.",
        "Use the name the certificate was issued for in the turns: URI, or reissue the "
        "certificate with this name in its subjectAltName.",
    )


def expired_diagnosis() -> Diagnosis:
    return Diagnosis(
        CauseId.TLS_EXPIRED,
        "the certificate has expired",
        "Its notAfter date has passed: every client refuses it.",
        "Renew the certificate and reload the server (automate renewal, e.g. certbot/ACME).",
    )
