"""Why an ICE agent got no relay candidate, or no data through its relay: probes that repeat one
step with aioice's TURN client and keep the error that aioice's gathering swallows.

``allocation_problem`` allocates once; ``permission_problem`` allocates and asks the relay to let
one peer in (a ChannelBind, as aioice does before sending). Both return a Diagnosis, or None
when the step works. Error answers are explained by `rtccheck.explain.turn_errors` and refused
certificates by `rtccheck.tlsinfo.trust`, as in the turn and tls checks, and socket errors get
the ids the probes give them, so a cause id means the same in every family.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from aioice import stun
from aioice.turn import TurnTransport, create_turn_endpoint

from rtccheck.causes import CauseId
from rtccheck.checks.base import CheckContext
from rtccheck.diagnosis import Diagnosis
from rtccheck.explain.turn_errors import Rejected, explain_error, explain_rejected_credentials
from rtccheck.probe.errors import FailureKind, from_os_error
from rtccheck.tlsinfo.trust import verification_diagnosis
from rtccheck.uri import IceServer

#: how long a probe waits for a refused permission once the allocation exists
PERMISSION_WAIT_S = 1.0
#: gathering that took this share of the timeout ran into it
TIMED_OUT_SHARE = 0.9


class _Recorder(asyncio.DatagramProtocol):
    """Receives the relayed transport's events: aioice reports a failed send here, and the end
    of the transport once the allocation is deleted."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.failed: asyncio.Future[Exception] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def error_received(self, exc: Exception) -> None:
        if not self.failed.done():
            self.failed.set_result(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _release(transport: TurnTransport, recorder: _Recorder, timeout: float) -> None:
    """Delete the probe's allocation (so it counts against no quota), waiting a bounded time."""
    transport.close()
    try:
        async with asyncio.timeout(timeout):
            await recorder.closed
    except TimeoutError:
        pass


async def no_relay_problem(
    server: IceServer, gathering_s: float, tls: ssl.SSLContext | None, ctx: CheckContext
) -> Diagnosis:
    """Why gathering on ``server`` gave no relay candidate: repeat the allocation to see the
    error, unless gathering already ran into the timeout (the probe would only wait again)."""
    if gathering_s >= TIMED_OUT_SHARE * ctx.timeout:
        return timeout_problem(server, ctx.timeout)
    problem = await allocation_problem(server, tls, ctx)
    if problem is not None:
        return problem
    return Diagnosis(
        CauseId.ALLOCATION_INTERMITTENT,
        "the allocation failed while gathering but worked when repeated",
        "The TURN server refused or lost the first allocation only: overload, a quota, or "
        "packet loss on the way.",
        "Run the check again; if it recurs, look at the relay's log and load.",
    )


def timeout_problem(server: IceServer, timeout: float) -> Diagnosis:
    """Nothing answered in time; over TCP aioice cannot tell a connection that was never
    accepted from one that got no answer, hence ``tcp-no-answer`` rather than the probes'
    ``connect-timeout`` or ``stream-no-answer``."""
    transport = "TLS" if server.secure else server.transport.upper()
    udp = server.transport == "udp" and not server.secure
    return Diagnosis(
        CauseId.UDP_NO_ANSWER if udp else CauseId.TCP_NO_ANSWER,
        f"no answer from {server.host}:{server.port} over {transport} within {timeout:g} s",
        "Nothing answered: the server is down, the port is wrong, or a firewall drops "
        f"{transport} to it.",
        "Check that the server listens on this port and transport, and that the path is open "
        "(UDP 3478 and TCP 3478/443/5349 are the usual ports).",
    )


async def allocation_problem(
    server: IceServer, tls: ssl.SSLContext | None, ctx: CheckContext
) -> Diagnosis | None:
    """Allocate once on ``server``; what went wrong, or None if the allocation works."""
    try:
        async with asyncio.timeout(ctx.timeout):
            transport, recorder = await _allocate(server, tls)
    except Exception as error:
        return problem_from_error(error, server, ctx)
    await _release(transport, recorder, ctx.timeout)
    return None


async def permission_problem(
    server: IceServer, tls: ssl.SSLContext | None, peer: tuple[str, int], ctx: CheckContext
) -> Diagnosis | None:
    """Allocate and bind a channel to ``peer``; what went wrong, or None if the relay agrees."""
    try:
        async with asyncio.timeout(ctx.timeout):
            transport, recorder = await _allocate(server, tls)
    except Exception as error:
        return problem_from_error(error, server, ctx)
    try:
        transport.sendto(b"rtccheck permission probe", peer)
        try:
            async with asyncio.timeout(min(ctx.timeout, PERMISSION_WAIT_S)):
                refusal = await recorder.failed
        except TimeoutError:
            return None
        return _peer_refused(refusal, peer, server, ctx)
    finally:
        await _release(transport, recorder, ctx.timeout)


async def _allocate(
    server: IceServer, tls: ssl.SSLContext | None
) -> tuple[TurnTransport, _Recorder]:
    transport, recorder = await create_turn_endpoint(
        _Recorder,
        server_addr=(server.host, server.port),
        username=server.username,
        password=server.credential,
        ssl=tls if server.secure else None,
        transport=server.transport,
    )
    return transport, recorder


def _peer_refused(
    error: Exception, peer: tuple[str, int], server: IceServer, ctx: CheckContext
) -> Diagnosis:
    problem = problem_from_error(error, server, ctx)
    if problem.cause_id is not CauseId.FORBIDDEN:
        return problem.prefixed(f"the relay did not let peer {peer[0]}:{peer[1]} in")
    return Diagnosis(
        CauseId.RELAY_PEER_FORBIDDEN,
        f"the relay refuses peer {peer[0]} (403 to CreatePermission/ChannelBind)",
        f"Allocation works but no data flows: the relay's peer policy denies {peer[0]}, the "
        "other agent's relayed address.",
        "Allow that range as a peer (turn-relay --allowed-peer CIDR; coturn "
        "--allow-loopback-peers for 127.0.0.0/8, --allowed-peer-ip for private ranges).",
    )


def problem_from_error(error: BaseException, server: IceServer, ctx: CheckContext) -> Diagnosis:
    """A plain explanation of an exception from aioice's TURN client or the socket below it."""
    where = f"{server.host}:{server.port} ({server.transport.upper()}"
    where += "+TLS)" if server.secure else ")"
    if isinstance(error, stun.TransactionFailed):
        return _error_response(error.response, server, ctx)
    if isinstance(error, stun.TransactionTimeout | TimeoutError):
        return timeout_problem(server, ctx.timeout)
    if isinstance(error, ssl.SSLCertVerificationError):
        return verification_diagnosis(error, server.host, ctx.options.ca_file)
    if isinstance(error, ssl.SSLError):
        return _tls_failed(error, where)
    if isinstance(error, OSError):
        return _socket_problem(error, server, where)
    return Diagnosis(
        CauseId.TURN_CLIENT_ERROR,
        f"TURN failed: {type(error).__name__}: {error}",
        "aioice's TURN client gave up (e.g. an answer without a required attribute).",
        "Run `rtccheck turn` for the allocation step by step.",
    )


def _error_response(response: stun.Message, server: IceServer, ctx: CheckContext) -> Diagnosis:
    """An error answer, explained as the turn check explains it (same cause ids)."""
    code, reason = response.attributes.get("ERROR-CODE", (0, "no ERROR-CODE"))
    if code == 401 and server.username is not None:
        realm = response.attributes.get("REALM")
        rejected = Rejected(server.username, server.credential, realm, server.uri)
        return explain_rejected_credentials(rejected, ctx.options, ctx.now())
    return explain_error(code, f"{code} {reason}", "Allocate")


#: socket errors the probes name more precisely than "socket-error"
_SOCKET_CAUSES = {
    FailureKind.UNREACHABLE: CauseId.UNREACHABLE,
    FailureKind.CLOSED: CauseId.CONNECTION_CLOSED,
}


def _socket_problem(error: OSError, server: IceServer, where: str) -> Diagnosis:
    if isinstance(error, ConnectionRefusedError):
        udp = server.transport == "udp" and not server.secure
        return Diagnosis(
            CauseId.UDP_PORT_UNREACHABLE if udp else CauseId.CONNECTION_REFUSED,
            f"connection refused by {where}",
            "The host answered, but nothing listens on this port and transport.",
            "Start the server's listener for this transport, or fix the port in the URI.",
        )
    reason = error.strerror or str(error)
    return Diagnosis(
        _SOCKET_CAUSES.get(from_os_error(error).kind, CauseId.SOCKET_ERROR),
        f"cannot reach {where}: {reason}",
        f"The operating system could not reach the server ({reason}).",
        "Check the address, routing and local firewall.",
    )


def _tls_failed(error: ssl.SSLError, where: str) -> Diagnosis:
    return Diagnosis(
        CauseId.TLS_HANDSHAKE_FAILED,
        f"TLS handshake with {where} failed: {error.reason or error}",
        "The port may not speak TLS (a plain TURN port given as turns:), or client and server "
        "share no TLS version or cipher.",
        "Point turns: at the server's TLS port (often 443 or 5349) and run `rtccheck tls`.",
    )


async def route_problem(server: IceServer) -> Diagnosis | None:
    """Whether this host can send UDP to ``server`` at all, asked of the routing table (a
    connected UDP socket sends nothing). aioice would only notice by timing out."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.connect(address)
    except socket.gaierror as error:
        return Diagnosis(
            CauseId.DNS_FAILURE,
            f"cannot resolve {server.host}: {error.strerror or error}",
            "The server's name has no address.",
            "Fix the DNS name (`rtccheck dns` shows the records).",
        )
    except OSError as error:
        reason = error.strerror or str(error)
        return Diagnosis(
            CauseId.UNREACHABLE,
            f"cannot reach {server.host}:{server.port}: {reason}",
            f"This host has no route to the server ({reason}).",
            "Check the address, the host's routes and its network connection.",
        )
    return None
