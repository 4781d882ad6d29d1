"""Plain-language explanations of probe failures that are not protocol answers.

`explain_failure` turns a `ProbeError` from the socket layer (timeouts, refused connections,
TLS errors, garbage) into a `Diagnosis`. The stun, turn and policy checks share it; a refused
certificate is explained by `rtccheck.tlsinfo.trust`, as in the tls check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rtccheck.causes import CauseId
from rtccheck.diagnosis import Diagnosis
from rtccheck.probe.connect import ServerEndpoint
from rtccheck.probe.errors import FailureKind, ProbeError
from rtccheck.tlsinfo import trust


def explain_failure(
    error: ProbeError, endpoint: ServerEndpoint, timeout: float, *, ca_file: Path | None = None
) -> Diagnosis:
    """Why ``endpoint`` gave no usable answer, for any kind except ERROR_RESPONSE.

    ``ca_file`` is the --ca-file the TLS connection trusted (named in certificate causes)."""
    if error.verify_code is not None or error.kind in _CERTIFICATE_KINDS:
        return _certificate(error, endpoint, ca_file)
    explain = _EXPLAINERS.get(error.kind, _other)
    return explain(error, endpoint, timeout)


def _where(endpoint: ServerEndpoint) -> str:
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    return f"{host}:{endpoint.port}"


def _timeout(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Diagnosis:
    where = _where(endpoint)
    if endpoint.transport == "udp":
        return Diagnosis(
            CauseId.UDP_NO_ANSWER,
            f"UDP to {where} got no answer within {timeout:g} s",
            f"UDP to {where} got no answer: a firewall drops UDP (here, on the way, or at the "
            "server) or nothing listens on that port.",
            f"Check that the server listens on UDP port {endpoint.port} and that every firewall "
            "in between lets UDP through (cloud security groups too); if this network blocks "
            "UDP, use TURN over TCP or TLS (turns: on port 443).",
        )
    if error.during_connect:
        return Diagnosis(
            CauseId.CONNECT_TIMEOUT,
            f"{endpoint.transport.upper()} connection to {where} timed out after {timeout:g} s",
            f"The connection to {where} was neither accepted nor refused: a firewall silently "
            "drops it, or the host is down.",
            f"Open TCP port {endpoint.port} towards the server, or check that the host is up.",
        )
    return Diagnosis(
        CauseId.STREAM_NO_ANSWER,
        f"connected to {where} over {endpoint.transport.upper()}, but no STUN answer within "
        f"{timeout:g} s",
        f"Something accepts connections on {where} but does not answer STUN: another service "
        "listens there, or a proxy holds the connection.",
        "Point the URI at the STUN/TURN port (3478 for TCP, 5349 or 443 for TLS).",
    )


def _refused(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Diagnosis:
    where = _where(endpoint)
    if endpoint.transport == "udp":
        return Diagnosis(
            CauseId.UDP_PORT_UNREACHABLE,
            f"UDP to {where}: port unreachable (ICMP)",
            f"The host {endpoint.host} answered that nothing listens on UDP port {endpoint.port}.",
            "Start the server's UDP listener on that port, or fix the port in the URI.",
        )
    return Diagnosis(
        CauseId.CONNECTION_REFUSED,
        f"{endpoint.transport.upper()} connection to {where} refused",
        f"The host {endpoint.host} is reachable but nothing listens on TCP port "
        f"{endpoint.port} (or a firewall rejects the connection).",
        f"Start the server's {'TLS' if endpoint.transport == 'tls' else 'TCP'} listener on port "
        f"{endpoint.port}, or fix the port in the URI.",
    )


def _unreachable(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Diagnosis:
    return Diagnosis(
        CauseId.UNREACHABLE,
        f"{_where(endpoint)} is unreachable ({error.detail})",
        "This machine has no route to the server's address.",
        "Check the address in the URI and this machine's network connection and routes.",
    )


def _resolve(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Diagnosis:
    return Diagnosis(
        CauseId.DNS_FAILURE,
        f"cannot resolve {endpoint.host} ({error.detail})",
        f"The name {endpoint.host} has no address this machine can find.",
        "Check the host name (run `rtccheck dns` for details) and this machine's DNS.",
    )


def _closed(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Diagnosis:
    if endpoint.transport == "tls" and error.during_connect:
        return Diagnosis(
            CauseId.TLS_HANDSHAKE_FAILED,
            f"{_where(endpoint)} closed the connection during the TLS handshake",
            f"The server on {_where(endpoint)} hung up on the TLS ClientHello: the port does "
            "not speak TLS (a plain TCP STUN/TURN port?) or refuses every protocol version "
            "offered.",
            "Use the server's TLS port in the turns:/stuns: URI (5349 or 443), or turn:/stun: "
            "for a plain port.",
        )
    return Diagnosis(
        CauseId.CONNECTION_CLOSED,
        f"{_where(endpoint)} closed the connection without answering",
        "The server accepted the connection, then closed it: it does not speak STUN/TURN on "
        "this port, rejected the request, or crashed.",
        "Check that the URI's port and transport match the server's listener and look at the "
        "server's log for this connection.",
    )


def _tls_handshake(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Diagnosis:
    return Diagnosis(
        CauseId.TLS_HANDSHAKE_FAILED,
        f"TLS to {_where(endpoint)} failed: {error.detail}",
        f"The TLS handshake with {endpoint.host} failed: no common protocol version or cipher, "
        "or the port does not speak TLS.",
        "Serve TLS 1.2 or 1.3 on this port, or use turn: (without TLS) if it is a plain port.",
    )


#: what OpenSSL's verify code would have been, for errors made without one
_CERTIFICATE_KINDS: dict[FailureKind, int] = {
    FailureKind.TLS_NAME_MISMATCH: trust.NAME_MISMATCH[0],
    FailureKind.TLS_UNTRUSTED: trust.UNTRUSTED_ISSUER[1],
    FailureKind.TLS_EXPIRED: trust.EXPIRED,
}


def _certificate(error: ProbeError, endpoint: ServerEndpoint, ca_file: Path | None) -> Diagnosis:
    """The server's certificate was refused: explained as the tls check explains it."""
    code = error.verify_code
    if code is None:
        code = _CERTIFICATE_KINDS[error.kind]
    found = trust.certificate_diagnosis(code, error.detail, endpoint.host, ca_file)
    return found.prefixed(f"TLS to {_where(endpoint)} failed")


def _malformed(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Diagnosis:
    return Diagnosis(
        CauseId.MALFORMED_ANSWER,
        f"{_where(endpoint)} answered with something that is not valid STUN ({error.detail})",
        "The answer could not be decoded: another protocol listens on this port, or the "
        "server has a bug.",
        "Check that the URI points at a STUN/TURN port; report a server bug with the capture.",
    )


def _other(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Diagnosis:
    return Diagnosis(
        CauseId.SOCKET_ERROR,
        f"{endpoint.label}: {error.detail or error.kind.value}",
        "The operating system refused the probe's socket operation.",
        "Check this machine's network configuration (addresses, firewall, limits).",
    )


_EXPLAINERS: dict[FailureKind, Callable[[ProbeError, ServerEndpoint, float], Diagnosis]] = {
    FailureKind.TIMEOUT: _timeout,
    FailureKind.REFUSED: _refused,
    FailureKind.UNREACHABLE: _unreachable,
    FailureKind.RESOLVE: _resolve,
    FailureKind.CLOSED: _closed,
    FailureKind.TLS_HANDSHAKE: _tls_handshake,
    FailureKind.MALFORMED: _malformed,
}
