"""TLS of turns: and stuns: servers: host name, chain, expiry, protocol version and cipher.

For each turns:/stuns: server: connects over TCP, completes a TLS handshake trusting the system
store (or only the CAs in --ca-file), and reports whether the chain verifies, whether the
certificate names the host in the URI, how many days it has left (warn under 14, fail when
expired), the protocol version (warn below TLS 1.2) and the cipher. When verification fails,
a second handshake without verification fetches the certificate so that every problem is shown
(name mismatch, self-signed, untrusted, expired), not only the first one OpenSSL reports.

\b
Examples:
  rtccheck tls turns:turn.example.com:443 stuns:stun.example.com
  rtccheck tls turns:10.0.0.5:5349 --ca-file private-ca.pem
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from rtccheck.causes import CauseId
from rtccheck.checks.base import CheckContext
from rtccheck.diagnosis import Diagnosis, diagnosed
from rtccheck.probe.errors import FailureKind, from_os_error
from rtccheck.results import CheckResult, JsonValue, Metrics, Status
from rtccheck.tlsinfo.certificate import CertificateFacts, parse_certificate
from rtccheck.tlsinfo.trust import (
    client_context,
    expired_diagnosis,
    name_mismatch_diagnosis,
    trust_source,
    verification_diagnosis,
)
from rtccheck.uri import IceServer

CAPABILITY = ("tls",)
EXPIRY_WARN_DAYS = 14
MODERN_VERSIONS = ("TLSv1.2", "TLSv1.3")
_WARNINGS = (CauseId.TLS_EXPIRES_SOON, CauseId.TLS_OLD_PROTOCOL)


@dataclass(frozen=True)
class Handshake:
    """What one completed handshake showed."""

    version: str
    cipher: str
    certificate: CertificateFacts | None
    connect_s: float
    handshake_s: float


class ConnectFailedError(Exception):
    """The TCP connection or the handshake failed; carries the diagnosis."""

    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(diagnosis.summary)
        self.diagnosis = diagnosis


async def run(ctx: CheckContext) -> list[CheckResult]:
    servers = [server for server in ctx.targets if server.secure]
    if not servers:
        return [CheckResult("tls", "-", Status.SKIP, "no turns: or stuns: server to check")]
    context = client_context(ctx.options.ca_file)
    return list(await asyncio.gather(*(check_server(s, context, ctx) for s in servers)))


async def check_server(
    server: IceServer, context: ssl.SSLContext, ctx: CheckContext
) -> CheckResult:
    try:
        shown = await handshake(server, context, ctx)
    except ssl.SSLCertVerificationError as refused:
        return await _unverified(server, refused, ctx)
    except (ssl.SSLError, ConnectionError) as failed:
        return await _handshake_failed(server, _reason(failed), ctx)
    except ConnectFailedError as failed:
        return diagnosed("tls.handshake", server.uri, failed.diagnosis, capabilities=CAPABILITY)
    return _verdict(server, shown, [], ctx, verified=True)


async def handshake(server: IceServer, context: ssl.SSLContext, ctx: CheckContext) -> Handshake:
    """TCP connect, then TLS; raises ConnectFailedError or the ssl error of the handshake."""
    started = ctx.monotonic()
    _, writer = await _connect(server, ctx.timeout)
    connected = ctx.monotonic()
    try:
        try:
            async with asyncio.timeout(ctx.timeout):
                await writer.start_tls(context, server_hostname=server.host)
        except TimeoutError:
            raise ConnectFailedError(_handshake_timeout(server, ctx.timeout)) from None
        done = ctx.monotonic()
        return _shown(writer, connected - started, done - connected)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(ctx.timeout):
                await writer.wait_closed()


async def _connect(
    server: IceServer, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.open_connection(server.host, server.port)
    except TimeoutError:
        raise ConnectFailedError(_connect_timeout(server, timeout)) from None
    except socket.gaierror as error:
        raise ConnectFailedError(_unresolved(server, error)) from None
    except ConnectionRefusedError:
        raise ConnectFailedError(_refused(server)) from None
    except OSError as error:
        raise ConnectFailedError(_unreachable(server, error)) from None


def _shown(writer: asyncio.StreamWriter, connect_s: float, handshake_s: float) -> Handshake:
    tls = writer.get_extra_info("ssl_object")
    assert isinstance(tls, ssl.SSLObject)
    der = tls.getpeercert(binary_form=True)
    cipher = tls.cipher()
    return Handshake(
        version=tls.version() or "unknown",
        cipher=cipher[0] if cipher else "unknown",
        certificate=parse_certificate(der) if der else None,
        connect_s=connect_s,
        handshake_s=handshake_s,
    )


def inspection_context() -> ssl.SSLContext:
    """No verification and old protocols allowed: only to look at what the server offers."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        context.set_ciphers("ALL:@SECLEVEL=0")
    return context


async def _unverified(
    server: IceServer, refused: ssl.SSLCertVerificationError, ctx: CheckContext
) -> CheckResult:
    """Verification failed: look again without it, and name every problem found."""
    first = verification_diagnosis(refused, server.host, ctx.options.ca_file)
    try:
        shown = await handshake(server, inspection_context(), ctx)
    except (ssl.SSLError, ConnectionError, ConnectFailedError):
        return diagnosed("tls.handshake", server.uri, first, capabilities=CAPABILITY)
    verify_error: dict[str, JsonValue] = {
        "verify_code": refused.verify_code,
        "verify_message": refused.verify_message,
    }
    return _verdict(server, shown, [first], ctx, verified=False, extra=verify_error)


def _reason(error: ssl.SSLError | ConnectionError) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    return str(error) or type(error).__name__


async def _handshake_failed(server: IceServer, reason: str, ctx: CheckContext) -> CheckResult:
    """The verifying handshake failed for another reason: an old protocol, or not TLS at all."""
    try:
        shown = await handshake(server, inspection_context(), ctx)
    except (ssl.SSLError, ConnectionError, ConnectFailedError):
        shown = None
    if shown is not None and shown.version not in MODERN_VERSIONS:
        problems = [_old_protocol(shown.version)]
        return _verdict(server, shown, problems, ctx, verified=False)
    problem = _not_tls(server, reason)
    return diagnosed("tls.handshake", server.uri, problem, capabilities=CAPABILITY)


def _verdict(
    server: IceServer,
    shown: Handshake,
    problems: list[Diagnosis],
    ctx: CheckContext,
    *,
    verified: bool,
    extra: dict[str, JsonValue] | None = None,
) -> CheckResult:
    now = ctx.now()
    problems = [*problems, *_certificate_problems(server, shown, problems, now)]
    if shown.version not in MODERN_VERSIONS and not _has(problems, CauseId.TLS_OLD_PROTOCOL):
        problems.append(_old_protocol(shown.version))
    details = _details(
        server, shown, problems=problems, ca_file=ctx.options.ca_file, now=now, verified=verified
    )
    metrics = _metrics(shown, now)
    if not problems:
        return CheckResult(
            "tls.handshake",
            server.uri,
            Status.PASS,
            _pass_summary(shown, now, ctx.options.ca_file),
            metrics,
            details=details,
            capabilities=CAPABILITY,
        )
    status = Status.WARN if all(p.cause_id in _WARNINGS for p in problems) else Status.FAIL
    first = _first_failure(problems)
    return diagnosed(
        "tls.handshake",
        server.uri,
        first,
        status=status,
        metrics=metrics,
        details={**details, **(extra or {})},
        capabilities=CAPABILITY,
    )


def _certificate_problems(
    server: IceServer, shown: Handshake, known: list[Diagnosis], now: float
) -> list[Diagnosis]:
    cert = shown.certificate
    if cert is None:
        return []
    found: list[Diagnosis] = []
    if not cert.names_host(server.host) and not _has(known, CauseId.TLS_NAME_MISMATCH):
        found.append(name_mismatch_diagnosis(server.host))
    days = cert.days_left(now)
    if days < 0 and not _has(known, CauseId.TLS_EXPIRED):
        found.append(expired_diagnosis())
    elif 0 <= days < EXPIRY_WARN_DAYS:
        found.append(_expires_soon(days))
    return found


def _has(problems: list[Diagnosis], cause_id: CauseId) -> bool:
    return any(problem.cause_id is cause_id for problem in problems)


def _first_failure(problems: list[Diagnosis]) -> Diagnosis:
    failures = [p for p in problems if p.cause_id not in _WARNINGS]
    return (failures or problems)[0]


def _details(
    server: IceServer,
    shown: Handshake,
    *,
    problems: list[Diagnosis],
    ca_file: Path | None,
    now: float,
    verified: bool,
) -> dict[str, JsonValue]:
    cert = shown.certificate
    return {
        "cause_ids": [p.cause_id.value for p in problems],
        "verified": verified,
        "trust": trust_source(ca_file),
        "name_match": cert.names_host(server.host) if cert is not None else None,
        "protocol": shown.version,
        "cipher": shown.cipher,
        "certificate": cert.view(now) if cert is not None else None,
    }


def _metrics(shown: Handshake, now: float) -> Metrics:
    cert = shown.certificate
    return {
        "protocol": shown.version,
        "cipher": shown.cipher,
        "days_left": round(cert.days_left(now), 1) if cert is not None else None,
        "connect_ms": round(shown.connect_s * 1000, 1),
        "handshake_ms": round(shown.handshake_s * 1000, 1),
    }


def _pass_summary(shown: Handshake, now: float, ca_file: Path | None) -> str:
    summary = f"{shown.version} {shown.cipher}; chain trusted by {trust_source(ca_file)}"
    if shown.certificate is not None:
        summary += f"; valid {shown.certificate.days_left(now):.0f} more days"
    return summary


def _expires_soon(days: float) -> Diagnosis:
    return Diagnosis(
        CauseId.TLS_EXPIRES_SOON,
        f"the certificate expires in {days:.1f} days",
        f"Less than {EXPIRY_WARN_DAYS} days left: when it expires every client refuses it.",
        "Renew it now and check that renewal is automated.",
    )


def _old_protocol(version: str) -> Diagnosis:
    return Diagnosis(
        CauseId.TLS_OLD_PROTOCOL,
        f"the server negotiates {version}, older than TLS 1.2",
        "TLS 1.0 and 1.1 are deprecated (RFC 8996) and many clients refuse them.",
        "Enable TLS 1.2 and 1.3 on the server (coturn: drop --no-tlsv1_2).",
    )


def _not_tls(server: IceServer, reason: str) -> Diagnosis:
    return Diagnosis(
        CauseId.TLS_HANDSHAKE_FAILED,
        f"TLS handshake with {server.host}:{server.port} failed: {reason}",
        "The port may not speak TLS (a plain TURN/STUN port given as turns:/stuns:), or "
        "client and server share no protocol version or cipher.",
        "Point the URI at the server's TLS port (often 443 or 5349) and check its TLS setup.",
    )


def _handshake_timeout(server: IceServer, timeout: float) -> Diagnosis:
    return Diagnosis(
        CauseId.TLS_HANDSHAKE_TIMEOUT,
        f"TCP connects to {server.host}:{server.port} but no TLS handshake within {timeout:g} s",
        "The port accepts connections but does not answer TLS: it may be a plain TURN/STUN "
        "port (which waits for a STUN message), or a middlebox stalls the handshake.",
        "Point the URI at the server's TLS port, and check that TLS is enabled on it.",
    )


def _connect_timeout(server: IceServer, timeout: float) -> Diagnosis:
    return Diagnosis(
        CauseId.CONNECT_TIMEOUT,
        f"no TCP connection to {server.host}:{server.port} within {timeout:g} s",
        "Nothing answered the TCP connection: the host is down or a firewall drops the traffic.",
        "Open the port in the firewall (TURN over TLS often uses 443 or 5349).",
    )


def _refused(server: IceServer) -> Diagnosis:
    return Diagnosis(
        CauseId.CONNECTION_REFUSED,
        f"connection refused by {server.host}:{server.port}",
        "The host answered, but nothing listens on this TCP port.",
        "Start the server's TLS listener, or fix the port in the URI.",
    )


def _unresolved(server: IceServer, error: socket.gaierror) -> Diagnosis:
    return Diagnosis(
        CauseId.DNS_FAILURE,
        f"cannot resolve {server.host}: {error.strerror or error}",
        "The server's name has no address.",
        "Fix the DNS name (`rtccheck dns` shows the records).",
    )


def _unreachable(server: IceServer, error: OSError) -> Diagnosis:
    """No route (as the probes say ``unreachable``), or another OS error (``socket-error``)."""
    reason = error.strerror or str(error)
    unreachable = from_os_error(error).kind is FailureKind.UNREACHABLE
    return Diagnosis(
        CauseId.UNREACHABLE if unreachable else CauseId.SOCKET_ERROR,
        f"cannot reach {server.host}:{server.port}: {reason}",
        f"The operating system could not connect ({reason}).",
        "Check the address, routing and local firewall.",
    )
