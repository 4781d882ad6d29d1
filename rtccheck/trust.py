"""TLS client settings shared by every check that speaks TLS, and certificate errors explained.

``client_context`` trusts the system store, or with ``--ca-file`` only the CAs in that file, and
always checks the host name, as a browser does for ``turns:``. ``verification_problem`` turns
OpenSSL's verification error into a plain cause and fix.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from rtccheck.problem import Problem

# OpenSSL X509_V_ERR_* codes that have a plain explanation
_EXPIRED = 10
_NOT_YET_VALID = 9
_SELF_SIGNED = 18
_SELF_SIGNED_IN_CHAIN = 19
_UNTRUSTED_ISSUER = (2, 20, 21)
_NAME_MISMATCH = (62, 64)

_TRUST_FIX = (
    "Use a certificate from a CA that clients trust (e.g. Let's Encrypt) and serve the full "
    "chain; to check a private CA, pass it with --ca-file."
)


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verifying client context: the system trust store, or only the CAs in ``ca_file``."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)


def trust_source(ca_file: Path | None) -> str:
    return f"--ca-file {ca_file}" if ca_file is not None else "the system trust store"


def verification_problem(
    error: ssl.SSLCertVerificationError, host: str, ca_file: Path | None
) -> Problem:
    """Why the server's certificate was refused, from OpenSSL's verify code."""
    code = error.verify_code
    message = error.verify_message or str(error)
    if code in _NAME_MISMATCH:
        return name_mismatch_problem(host)
    if code == _EXPIRED:
        return expired_problem()
    if code == _NOT_YET_VALID:
        return Problem(
            "not-yet-valid",
            "the certificate is not valid yet",
            "Its notBefore date is in the future: the certificate was issued with a wrong "
            "date, or this machine's (or the server's) clock is wrong.",
            "Check the clocks (NTP) and reissue the certificate if its dates are wrong.",
        )
    if code == _SELF_SIGNED:
        return Problem(
            "self-signed",
            "the certificate is self-signed",
            f"The server presents a self-signed certificate, which {trust_source(ca_file)} "
            "does not trust; browsers refuse such turns: servers (Chrome error 701).",
            _TRUST_FIX,
        )
    if code == _SELF_SIGNED_IN_CHAIN or code in _UNTRUSTED_ISSUER:
        return Problem(
            "untrusted",
            f"the certificate chain is not trusted ({message})",
            f"No CA in {trust_source(ca_file)} vouches for the certificate: it comes from a "
            "private CA, or the server does not send its intermediate certificates.",
            _TRUST_FIX,
        )
    return Problem(
        "verify-failed",
        f"certificate verification failed: {message}",
        f"OpenSSL refused the certificate (verify error {code}: {message}).",
        _TRUST_FIX,
    )


def name_mismatch_problem(host: str) -> Problem:
    return Problem(
        "name-mismatch",
        f"the certificate does not match {host}",
        f"Clients check that the certificate names the host in the URI; none of its names "
        f"(subjectAltName) is {host}.",
        "Use the name the certificate was issued for in the turns: URI, or reissue the "
        "certificate with this name in its subjectAltName.",
    )


def expired_problem() -> Problem:
    return Problem(
        "expired",
        "the certificate has expired",
        "Its notAfter date has passed: every client refuses it.",
        "Renew the certificate and reload the server (automate renewal, e.g. certbot/ACME).",
    )
