"""RFC 5780 NAT behaviour discovery over UDP: the probes that fill `NatObservations`.

Socket A runs mapping tests I-III (Binding to the primary address, to the alternate address
with the primary port, to the alternate address and port) and then sends a Binding request to
its own mapped address (hairpinning: does it come back?). Socket B, fresh so that A's tests
have opened no filter for the alternate address, runs the filtering tests (CHANGE-REQUEST
change IP and port, then change port). Without OTHER-ADDRESS the mapped address seen by a
second server stands in for test II. When no server answers over UDP, TCP and TLS on 443 are
tried to say which transport gets out. The mapping lifetime is estimated only when asked
(it takes up to a few minutes): fresh sockets are probed after growing delays with
RESPONSE-PORT sent from another socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from rtccheck.nat import Endpoint, NatObservations, endpoint
from rtccheck.probe import messages
from rtccheck.probe.client import Clock, StunClient
from rtccheck.probe.connect import ServerEndpoint, connect
from rtccheck.probe.errors import ProbeError
from rtccheck.probe.messages import BindingAnswer
from rtccheck.probe.transport import Address, TlsSettings, open_stream, open_udp, resolve
from stun_server.wire import Message, MessageClass, StunDecodeError, parse

#: delays (s) after which the mapping-lifetime estimate checks a mapping is still there
LIFETIME_STEPS = (2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0)
#: wait at least this long for answers that may legitimately never come
MIN_QUIET_WAIT_S = 1.0
#: and at least this many round-trip times
QUIET_WAIT_RTTS = 10
TLS_PORT = 443


@dataclass(frozen=True)
class NatServer:
    """A STUN server to probe (by URI), as host and UDP port."""

    uri: str
    host: str
    port: int


@dataclass(frozen=True)
class NatProbeSettings:
    timeout: float
    lifetime: bool = False
    lifetime_max_s: float = 120.0
    lifetime_steps: tuple[float, ...] = LIFETIME_STEPS
    min_quiet_wait_s: float = MIN_QUIET_WAIT_S
    #: other places to try TLS when UDP is blocked (turns:/stuns: servers given)
    tls_endpoints: tuple[ServerEndpoint, ...] = ()


@dataclass
class NatTrace:
    """What happened, for the report's details."""

    primary: str | None = None
    second: str | None = None
    rtt_ms: float | None = None
    lifetime_bounds_s: tuple[float | None, float | None] | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MappingFindings:
    alternate_address: Endpoint | None = None
    alternate_both: Endpoint | None = None
    hairpin: bool | None = None


@dataclass(frozen=True)
class FilteringFindings:
    change_ip_and_port: bool | None = None
    change_port: bool | None = None


@dataclass(frozen=True)
class _Answered:
    server: NatServer
    address: Address
    answer: BindingAnswer
    rtt_s: float


async def observe(
    servers: list[NatServer], settings: NatProbeSettings, clock: Clock
) -> tuple[NatObservations, NatTrace]:
    """Run every probe against ``servers`` (the first answering one is primary)."""
    trace = NatTrace()
    family = socket.AF_INET6 if servers and ":" in servers[0].host else socket.AF_INET
    async with _udp_client(clock, family) as client_a:
        answered = await _first_tests(client_a, servers, settings, trace)
        if not answered:
            return await _udp_blocked(servers, settings, clock, trace), trace
        return await _behind_udp(client_a, answered, settings, clock, trace), trace


async def _behind_udp(
    client_a: StunClient,
    answered: list[_Answered],
    settings: NatProbeSettings,
    clock: Clock,
    trace: NatTrace,
) -> NatObservations:
    """Test I was answered: run the mapping, hairpin, filtering (and lifetime) probes."""
    primary = _pick_primary(answered)
    trace.primary, trace.rtt_ms = primary.server.uri, round(primary.rtt_s * 1000, 2)
    quiet = _quiet_wait(primary.rtt_s, settings)
    mapped, filtered, lived = await asyncio.gather(
        _mapping_tests(client_a, primary, settings, quiet, trace),
        _filtering_tests(primary, settings, quiet, clock, trace),
        _lifetime(primary, settings, quiet, clock, trace),
    )
    return NatObservations(
        local=(_local_endpoint(primary.address, client_a),),
        udp_answered=True,
        mapped=endpoint(*primary.answer.mapped),
        other_address=_endpoint_or_none(primary.answer.other_address),
        mapped_alternate_address=mapped.alternate_address,
        mapped_alternate_both=mapped.alternate_both,
        answered_change_ip_and_port=filtered.change_ip_and_port,
        answered_change_port=filtered.change_port,
        hairpin=mapped.hairpin,
        mapped_second_server=_second_mapping(answered, primary, trace),
        mapping_lifetime_s=lived,
    )


@contextlib.asynccontextmanager
async def _udp_client(clock: Clock, family: int = socket.AF_INET) -> AsyncIterator[StunClient]:
    client = StunClient(clock)
    local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
    client.attach(await open_udp(client, local=local))
    try:
        yield client
    finally:
        client.close()


async def _binding(
    client: StunClient,
    destination: Address,
    timeout: float,
    request: Message | None = None,
) -> tuple[BindingAnswer, float]:
    wire = messages.encode_plain(request or messages.binding_request())
    exchange = await client.transact(wire, timeout=timeout, destination=destination)
    return messages.binding_answer(exchange.response), exchange.rtt_s


async def _first_tests(
    client: StunClient, servers: list[NatServer], settings: NatProbeSettings, trace: NatTrace
) -> list[_Answered]:
    """Mapping test I against every server at once (from the same socket)."""

    async def ask(server: NatServer) -> _Answered | None:
        try:
            address = await resolve(server.host, server.port, stream=False)
            answer, rtt = await _binding(client, address, settings.timeout)
        except ProbeError as error:
            trace.errors[f"test-i {server.uri}"] = str(error)
            return None
        return _Answered(server, address, answer, rtt)

    found = await asyncio.gather(*(ask(server) for server in servers))
    return [answer for answer in found if answer is not None]


def _pick_primary(answered: list[_Answered]) -> _Answered:
    with_rfc5780 = [a for a in answered if a.answer.other_address is not None]
    return (with_rfc5780 or answered)[0]


def _second_mapping(
    answered: list[_Answered], primary: _Answered, trace: NatTrace
) -> Endpoint | None:
    """The mapping a server at another IP saw (the fallback for mapping test II)."""
    for other in answered:
        if other is not primary and other.address[0] != primary.address[0]:
            trace.second = other.server.uri
            return endpoint(*other.answer.mapped)
    return None


def _local_endpoint(destination: Address, client: StunClient) -> Endpoint:
    """This host's address on the route to ``destination`` and socket A's port."""
    family = socket.AF_INET6 if ":" in destination[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect(destination)  # no packet is sent: it only picks the route
        local_ip = str(probe.getsockname()[0])
    return endpoint(local_ip, client.channel.local_address[1])


def _endpoint_or_none(address: Address | None) -> Endpoint | None:
    return endpoint(*address) if address is not None else None


def _quiet_wait(rtt_s: float, settings: NatProbeSettings) -> float:
    return min(settings.timeout, max(settings.min_quiet_wait_s, QUIET_WAIT_RTTS * rtt_s))


# ---------------------------------------------------------------- mapping and hairpinning


async def _mapping_tests(
    client: StunClient,
    primary: _Answered,
    settings: NatProbeSettings,
    quiet: float,
    trace: NatTrace,
) -> MappingFindings:
    found = MappingFindings()
    other = primary.answer.other_address
    if other is not None:
        found = await _tests_ii_iii(client, primary, other, settings, trace)
    return replace(found, hairpin=await hairpin(client, primary.answer.mapped, quiet))


async def _tests_ii_iii(
    client: StunClient,
    primary: _Answered,
    other: Address,
    settings: NatProbeSettings,
    trace: NatTrace,
) -> MappingFindings:
    mapped_i = endpoint(*primary.answer.mapped)
    alternate_ip = (other[0], primary.address[1])
    test_ii = await _try_mapping(client, alternate_ip, settings, "test-ii", trace)
    if test_ii is None or test_ii == mapped_i:
        return MappingFindings(alternate_address=test_ii)
    test_iii = await _try_mapping(client, other, settings, "test-iii", trace)
    return MappingFindings(alternate_address=test_ii, alternate_both=test_iii)


async def _try_mapping(
    client: StunClient, destination: Address, settings: NatProbeSettings, name: str, trace: NatTrace
) -> Endpoint | None:
    try:
        answer, _ = await _binding(client, destination, settings.timeout)
    except ProbeError as error:
        trace.errors[name] = str(error)
        return None
    return endpoint(*answer.mapped)


async def hairpin(client: StunClient, mapped: Address, quiet: float) -> bool:
    """Send a Binding request to our own mapped address: does the NAT loop it back to us?"""
    wire = messages.encode_plain(messages.binding_request())
    transaction_id = wire[8:20]
    deadline = asyncio.get_running_loop().time() + quiet
    client.channel.send(wire, mapped)
    resend_at = quiet / 2
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        frame = await client.next_unsolicited(min(left, resend_at))
        if frame is not None and _is_own_request(frame.data, transaction_id):
            return True
        if frame is None and left > resend_at:
            client.channel.send(wire, mapped)  # one retransmission halfway
    return False


def _is_own_request(data: bytes, transaction_id: bytes) -> bool:
    try:
        message = parse(data)
    except StunDecodeError:
        return False
    return message.cls is MessageClass.REQUEST and message.transaction_id == transaction_id


# ---------------------------------------------------------------- filtering


async def _filtering_tests(
    primary: _Answered,
    settings: NatProbeSettings,
    quiet: float,
    clock: Clock,
    trace: NatTrace,
) -> FilteringFindings:
    if primary.answer.other_address is None:
        return FilteringFindings()
    async with _udp_client(clock, _family(primary.address)) as client_b:
        try:
            await _binding(client_b, primary.address, settings.timeout)
        except ProbeError as error:
            trace.errors["filtering test-i"] = str(error)
            return FilteringFindings()
        both = await _answered(client_b, primary.address, quiet, change_ip=True)
        if both:
            return FilteringFindings(change_ip_and_port=True)
        port = await _answered(client_b, primary.address, quiet, change_ip=False)
        return FilteringFindings(change_ip_and_port=False, change_port=port)


async def _answered(
    client: StunClient, destination: Address, quiet: float, *, change_ip: bool
) -> bool:
    request = messages.binding_request(change_ip=change_ip, change_port=True)
    try:
        await _binding(client, destination, quiet, request)
    except ProbeError:
        return False
    return True


def _family(address: Address) -> int:
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET


# ---------------------------------------------------------------- UDP blocked


async def _udp_blocked(
    servers: list[NatServer], settings: NatProbeSettings, clock: Clock, trace: NatTrace
) -> NatObservations:
    first = servers[0]
    tcp = ServerEndpoint(first.host, first.port, "tcp")
    tls_targets = [*settings.tls_endpoints, ServerEndpoint(first.host, TLS_PORT, "tls")]
    tcp_ok, tls_ok = await asyncio.gather(
        _tcp_answers(tcp, settings.timeout, clock, trace),
        _any_tls_443(tls_targets, settings.timeout, trace),
    )
    return NatObservations(udp_answered=False, tcp_answered=tcp_ok, tls_443_answered=tls_ok)


async def _tcp_answers(
    target: ServerEndpoint, timeout: float, clock: Clock, trace: NatTrace
) -> bool:
    try:
        async with connect(target, clock=clock, timeout=timeout) as connection:
            wire = messages.encode_plain(messages.binding_request())
            exchange = await connection.client.transact(wire, timeout=timeout)
            messages.binding_answer(exchange.response)
    except ProbeError as error:
        trace.errors["tcp"] = str(error)
        return False
    return True


async def _any_tls_443(targets: list[ServerEndpoint], timeout: float, trace: NatTrace) -> bool:
    """Whether a TLS handshake completes with any server on port 443 (certificate unchecked:
    this is about what the network lets out)."""
    on_443 = {(t.host, t.port) for t in targets if t.port == TLS_PORT}
    results = await asyncio.gather(
        *(_tls_handshake(host, port, timeout, trace) for host, port in on_443)
    )
    return any(results)


async def _tls_handshake(host: str, port: int, timeout: float, trace: NatTrace) -> bool:
    class _Ignore:
        def frame_received(self, data: bytes, source: Address) -> None:
            return None

        def channel_failed(self, error: ProbeError) -> None:
            return None

    try:
        remote = await resolve(host, port, stream=True)
        channel = await open_stream(
            _Ignore(), remote, timeout=timeout, tls=TlsSettings(host, verify=False)
        )
    except ProbeError as error:
        trace.errors[f"tls {host}:{port}"] = str(error)
        return False
    channel.close()
    return True


# ---------------------------------------------------------------- mapping lifetime


async def _lifetime(
    primary: _Answered,
    settings: NatProbeSettings,
    quiet: float,
    clock: Clock,
    trace: NatTrace,
) -> float | None:
    if not settings.lifetime or primary.answer.other_address is None:
        return None
    delays = [d for d in settings.lifetime_steps if d <= settings.lifetime_max_s]
    async with _udp_client(clock, _family(primary.address)) as asker:
        alive = await asyncio.gather(
            *(_alive_after(d, primary.address, asker, quiet, clock) for d in delays)
        )
    lower, upper = lifetime_bounds(delays, alive)
    trace.lifetime_bounds_s = (lower, upper)
    return lower


def lifetime_bounds(delays: list[float], alive: list[bool]) -> tuple[float | None, float | None]:
    """(longest delay survived before the first loss, first delay lost); None when unknown."""
    lower: float | None = None
    for delay, survived in zip(delays, alive, strict=True):
        if not survived:
            return lower, delay
        lower = delay
    return lower, None


async def _alive_after(
    delay: float, server: Address, asker: StunClient, quiet: float, clock: Clock
) -> bool:
    """Make a mapping, leave it idle ``delay`` s, then have the server answer to its port."""
    async with _udp_client(clock, _family(server)) as holder:
        try:
            answer, _ = await _binding(holder, server, quiet)
        except ProbeError:
            return False
        await asyncio.sleep(delay)
        request = messages.binding_request(response_port=answer.mapped[1])

        def from_asker(data: bytes) -> None:
            asker.channel.send(data, server)

        try:
            await holder.transact(messages.encode_plain(request), timeout=quiet, send=from_asker)
        except ProbeError:
            return False
        return True
