"""Plain-language explanations of probe failures that are not protocol answers.

`explain_failure` turns a `ProbeError` from the socket layer (timeouts, refused connections,
TLS errors, garbage) into an `Explanation`: a stable ``cause_id`` for machines plus summary,
cause and fix for people. The stun, turn, nat and policy checks share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rtccheck.probe.connect import ServerEndpoint
from rtccheck.probe.errors import FailureKind, ProbeError


@dataclass(frozen=True)
class Explanation:
    cause_id: str
    summary: str
    cause: str
    fix: str


def explain_failure(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Explanation:
    """Why ``endpoint`` gave no usable answer, for any kind except ERROR_RESPONSE."""
    explain = _EXPLAINERS.get(error.kind, _other)
    return explain(error, endpoint, timeout)


def _where(endpoint: ServerEndpoint) -> str:
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    return f"{host}:{endpoint.port}"


def _timeout(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Explanation:
    where = _where(endpoint)
    if endpoint.transport == "udp":
        return Explanation(
            "udp-no-answer",
            f"UDP to {where} got no answer within {timeout:g} s",
            f"UDP to {where} got no answer: a firewall drops UDP (here, on the way, or at the "
            "server) or nothing listens on that port.",
            f"Check that the server listens on UDP port {endpoint.port} and that every firewall "
            "in between lets UDP through (cloud security groups too); if this network blocks "
            "UDP, use TURN over TCP or TLS (turns: on port 443).",
        )
    if error.during_connect:
        return Explanation(
            "connect-timeout",
            f"{endpoint.transport.upper()} connection to {where} timed out after {timeout:g} s",
            f"The connection to {where} was neither accepted nor refused: a firewall silently "
            "drops it, or the host is down.",
            f"Open TCP port {endpoint.port} towards the server, or check that the host is up.",
        )
    return Explanation(
        "stream-no-answer",
        f"connected to {where} over {endpoint.transport.upper()}, but no STUN answer within "
        f"{timeout:g} s",
        f"Something accepts connections on {where} but does not answer STUN: another service "
        "listens there, or a proxy holds the connection.",
        "Point the URI at the STUN/TURN port (3478 for TCP, 5349 or 443 for TLS).",
    )


def _refused(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Explanation:
    where = _where(endpoint)
    if endpoint.transport == "udp":
        return Explanation(
            "udp-port-unreachable",
            f"UDP to {where}: port unreachable (ICMP)",
            f"The host {endpoint.host} answered that nothing listens on UDP port {endpoint.port}.",
            "Start the server's UDP listener on that port, or fix the port in the URI.",
        )
    return Explanation(
        "connection-refused",
        f"{endpoint.transport.upper()} connection to {where} refused",
        f"The host {endpoint.host} is reachable but nothing listens on TCP port "
        f"{endpoint.port} (or a firewall rejects the connection).",
        f"Start the server's {'TLS' if endpoint.transport == 'tls' else 'TCP'} listener on port "
        f"{endpoint.port}, or fix the port in the URI.",
    )


def _unreachable(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Explanation:
    return Explanation(
        "unreachable",
        f"{_where(endpoint)} is unreachable ({error.detail})",
        "This machine has no route to the server's address.",
        "Check the address in the URI and this machine's network connection and routes.",
    )


def _resolve(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Explanation:
    return Explanation(
        "dns-failure",
        f"cannot resolve {endpoint.host} ({error.detail})",
        f"The name {endpoint.host} has no address this machine can find.",
        "Check the host name (run `rtccheck dns` for details) and this machine's DNS.",
    )


def _closed(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Explanation:
    if endpoint.transport == "tls" and error.during_connect:
        return Explanation(
            "tls-handshake-failed",
            f"{_where(endpoint)} closed the connection during the TLS handshake",
            f"The server on {_where(endpoint)} hung up on the TLS ClientHello: the port does "
            "not speak TLS (a plain TCP STUN/TURN port?) or refuses every protocol version "
            "offered.",
            "Use the server's TLS port in the turns:/stuns: URI (5349 or 443), or turn:/stun: "
            "for a plain port.",
        )
    return Explanation(
        "connection-closed",
        f"{_where(endpoint)} closed the connection without answering",
        "The server accepted the connection, then closed it: it does not speak STUN/TURN on "
        "this port, rejected the request, or crashed.",
        "Check that the URI's port and transport match the server's listener and look at the "
        "server's log for this connection.",
    )


def _tls(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Explanation:
    texts = _TLS_TEXTS[error.kind]
    return Explanation(
        error.kind.value if error.kind is not FailureKind.TLS_HANDSHAKE else "tls-handshake-failed",
        f"TLS to {_where(endpoint)} failed: {error.detail}",
        texts[0].format(host=endpoint.host),
        texts[1].format(host=endpoint.host),
    )


_TLS_TEXTS: dict[FailureKind, tuple[str, str]] = {
    FailureKind.TLS_NAME_MISMATCH: (
        "The server's certificate is not valid for {host}: browsers refuse the turns: "
        "connection (Chrome error 701).",
        "Serve a certificate whose subjectAltName includes {host}, or use the name the "
        "certificate was issued for in the URI.",
    ),
    FailureKind.TLS_UNTRUSTED: (
        "The server's certificate is not signed by a CA this machine trusts (self-signed, or the "
        "intermediate certificates are missing).",
        "Use a certificate from a public CA and serve the full chain (leaf + intermediates).",
    ),
    FailureKind.TLS_EXPIRED: (
        "The server's certificate has expired (or is not valid yet by this machine's clock).",
        "Renew the certificate (and check the server's and this machine's clocks).",
    ),
    FailureKind.TLS_HANDSHAKE: (
        "The TLS handshake with {host} failed: no common protocol version or cipher, or the "
        "port does not speak TLS.",
        "Serve TLS 1.2 or 1.3 on this port, or use turn: (without TLS) if it is a plain port.",
    ),
}


def _malformed(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Explanation:
    return Explanation(
        "malformed-answer",
        f"{_where(endpoint)} answered with something that is not valid STUN ({error.detail})",
        "The answer could not be decoded: another protocol listens on this port, or the "
        "server has a bug.",
        "Check that the URI points at a STUN/TURN port; report a server bug with the capture.",
    )


def _other(error: ProbeError, endpoint: ServerEndpoint, timeout: float) -> Explanation:
    return Explanation(
        "socket-error",
        f"{endpoint.label}: {error.detail or error.kind.value}",
        "The operating system refused the probe's socket operation.",
        "Check this machine's network configuration (addresses, firewall, limits).",
    )


_EXPLAINERS: dict[FailureKind, Callable[[ProbeError, ServerEndpoint, float], Explanation]] = {
    FailureKind.TIMEOUT: _timeout,
    FailureKind.REFUSED: _refused,
    FailureKind.UNREACHABLE: _unreachable,
    FailureKind.RESOLVE: _resolve,
    FailureKind.CLOSED: _closed,
    FailureKind.TLS_NAME_MISMATCH: _tls,
    FailureKind.TLS_UNTRUSTED: _tls,
    FailureKind.TLS_EXPIRED: _tls,
    FailureKind.TLS_HANDSHAKE: _tls,
    FailureKind.MALFORMED: _malformed,
}
