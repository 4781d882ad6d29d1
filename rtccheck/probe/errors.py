"""Why a probe got no usable answer: one exception type carrying a machine-readable kind.

The socket layer turns OS and TLS errors into a `ProbeError`; the protocol layer adds error
responses (``kind`` ERROR_RESPONSE with the code). Checks explain a ProbeError in plain words;
they never see OSError or ssl.SSLError themselves.
"""

from __future__ import annotations

import errno
import socket
import ssl
from enum import StrEnum


class FailureKind(StrEnum):
    TIMEOUT = "timeout"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    RESOLVE = "resolve"
    CLOSED = "closed"
    TLS_NAME_MISMATCH = "tls-name-mismatch"
    TLS_UNTRUSTED = "tls-untrusted"
    TLS_EXPIRED = "tls-expired"
    TLS_HANDSHAKE = "tls-handshake"
    ERROR_RESPONSE = "error-response"
    MALFORMED = "malformed"
    OS_ERROR = "os-error"


#: OpenSSL X509 verification codes (x509_vfy.h) and what they mean for us
_VERIFY_KINDS: dict[int, FailureKind] = {
    9: FailureKind.TLS_EXPIRED,  # certificate is not yet valid
    10: FailureKind.TLS_EXPIRED,  # certificate has expired
    18: FailureKind.TLS_UNTRUSTED,  # self-signed leaf
    19: FailureKind.TLS_UNTRUSTED,  # self-signed certificate in chain
    20: FailureKind.TLS_UNTRUSTED,  # unable to get local issuer certificate
    21: FailureKind.TLS_UNTRUSTED,  # unable to verify the first certificate
    62: FailureKind.TLS_NAME_MISMATCH,  # hostname mismatch
    64: FailureKind.TLS_NAME_MISMATCH,  # IP address mismatch
}

_UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


class ProbeError(Exception):
    """A probe failed; ``kind`` says how, ``detail`` is the underlying message."""

    def __init__(
        self,
        kind: FailureKind,
        detail: str = "",
        *,
        code: int | None = None,
        reason: str = "",
        after_challenge: bool = False,
        during_connect: bool = False,
        verify_code: int | None = None,
    ) -> None:
        super().__init__(f"{kind.value}: {detail}" if detail else kind.value)
        self.kind = kind
        self.detail = detail
        #: the STUN error code answered (ERROR_RESPONSE only)
        self.code = code
        self.reason = reason
        #: the request that got this answer carried MESSAGE-INTEGRITY (401 means "rejected")
        self.after_challenge = after_challenge
        #: the failure came while connecting (TCP connect or TLS handshake), not later
        self.during_connect = during_connect
        #: OpenSSL's X509 verification code, when the server's certificate was refused
        self.verify_code = verify_code

    @property
    def is_tls(self) -> bool:
        return self.kind.value.startswith("tls-")


def from_os_error(error: BaseException) -> ProbeError:
    """Translate what asyncio/socket/ssl raised into a ProbeError."""
    if isinstance(error, ProbeError):
        return error
    if isinstance(error, TimeoutError):
        return ProbeError(FailureKind.TIMEOUT, "timed out")
    if isinstance(error, ssl.SSLCertVerificationError):
        kind = _VERIFY_KINDS.get(error.verify_code, FailureKind.TLS_HANDSHAKE)
        return ProbeError(kind, error.verify_message or str(error), verify_code=error.verify_code)
    if isinstance(error, ssl.SSLError):
        reason = getattr(error, "reason", None)  # set by OpenSSL, absent when built by hand
        return ProbeError(FailureKind.TLS_HANDSHAKE, str(reason or error))
    if isinstance(error, socket.gaierror):
        return ProbeError(FailureKind.RESOLVE, error.strerror or str(error))
    if isinstance(error, ConnectionRefusedError):
        return ProbeError(FailureKind.REFUSED, error.strerror or "connection refused")
    if isinstance(error, ConnectionResetError | BrokenPipeError):
        return ProbeError(FailureKind.CLOSED, error.strerror or "connection reset")
    if isinstance(error, OSError) and error.errno in _UNREACHABLE_ERRNOS:
        return ProbeError(FailureKind.UNREACHABLE, error.strerror or str(error))
    if isinstance(error, OSError):
        return ProbeError(FailureKind.OS_ERROR, error.strerror or str(error))
    return ProbeError(FailureKind.OS_ERROR, repr(error))
