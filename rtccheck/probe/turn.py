"""A TURN client session over one connection: Allocate, Refresh, CreatePermission,
ChannelBind, Send, and the long-term auth dance around every request.

`allocation(...)` is the way to use it: an async context manager that allocates and always
deletes the allocation again (Refresh with LIFETIME 0) when the block ends, however it ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from rtccheck.probe import messages
from rtccheck.probe.auth import Attempt, AuthCache, Credentials, Decision, LongTermAuth
from rtccheck.probe.client import Exchange, StunClient
from rtccheck.probe.errors import ProbeError
from rtccheck.probe.messages import FAMILY_IPV4, AllocateAnswer
from rtccheck.probe.transport import Address
from stun_server.wire import (
    DatagramKind,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    classify,
    encode_channel_data,
    parse,
    parse_channel_data,
)

#: requests per call: plain, signed after 401, signed again after one 438
MAX_ATTEMPTS = 3


@dataclass
class SessionLog:
    """What the session saw, for the report."""

    challenged: bool = False
    unauthenticated_success: bool = False
    integrity_failures: int = 0
    #: the allocation was deleted again (None: nothing was allocated)
    released: bool | None = None
    requests: list[str] = field(default_factory=list)


class TurnSession:
    def __init__(
        self,
        client: StunClient,
        credentials: Credentials | None,
        *,
        timeout: float,
        reliable: bool,
        cache: AuthCache | None = None,
        server: str = "",
    ) -> None:
        """``cache`` and ``server`` (a name for the server, e.g. host): share realm and nonce
        with the other sessions of a check instead of being challenged again."""
        self.client = client
        self.auth = LongTermAuth(credentials)
        self.cache, self._server = cache, server
        if cache is not None:
            cache.seed(server, self.auth)
        self.timeout = timeout
        self.reliable = reliable
        self.log = SessionLog()
        self.allocated: AllocateAnswer | None = None
        #: the exchange that created the allocation (its RTT is the Allocate RTT)
        self.allocate_exchange: Exchange | None = None

    async def request(self, build: Callable[[], Message]) -> tuple[Exchange, bool]:
        """Run the auth dance for one request; (last exchange, whether it was signed)."""
        attempt = Attempt()
        exchange: Exchange | None = None
        for _ in range(MAX_ATTEMPTS):
            message = build()
            self.log.requests.append(_method_name(message))
            wire = self.auth.encode(message, attempt)
            exchange = await self.client.transact(wire, timeout=self.timeout)
            response = exchange.response
            if response.cls is MessageClass.SUCCESS:
                self._note_success(response, attempt)
                return exchange, attempt.signed
            if self.auth.decide(response, attempt) is Decision.GIVE_UP:
                break
            self.log.challenged = True
        assert exchange is not None
        return exchange, attempt.signed

    def _note_success(self, response: Message, attempt: Attempt) -> None:
        if not attempt.signed:
            self.log.unauthenticated_success = True
        if self.auth.verifies(response) is False:
            self.log.integrity_failures += 1
        elif self.cache is not None and attempt.signed:
            self.cache.remember(self._server, self.auth)

    # ------------------------------------------------------------ TURN methods

    async def allocate(
        self, *, lifetime: int | None = None, family: int = FAMILY_IPV4
    ) -> tuple[AllocateAnswer, Exchange]:
        exchange, signed = await self.request(
            lambda: messages.allocate_request(lifetime=lifetime, family=family)
        )
        answer = messages.allocate_answer(exchange.response, after_challenge=signed)
        self.allocated, self.allocate_exchange = answer, exchange
        return answer, exchange

    async def refresh(self, lifetime: int) -> int:
        exchange, signed = await self.request(lambda: messages.refresh_request(lifetime))
        granted = messages.refresh_answer(exchange.response, after_challenge=signed)
        if lifetime == 0:
            self.allocated = None
        return granted

    async def release(self) -> bool:
        """Delete the allocation (Refresh 0); True when the server confirmed it."""
        if self.allocated is None:
            return True
        try:
            await self.refresh(0)
        except ProbeError as error:
            # 437: the allocation is gone already (expired, or the connection closed)
            return error.code == 437
        return True

    async def create_permission(self, peers: list[Address]) -> Exchange:
        exchange, signed = await self.request(lambda: messages.create_permission_request(peers))
        messages.raise_for_error(exchange.response, after_challenge=signed)
        return exchange

    async def channel_bind(self, channel: int, peer: Address) -> Exchange:
        exchange, signed = await self.request(lambda: messages.channel_bind_request(channel, peer))
        messages.raise_for_error(exchange.response, after_challenge=signed)
        return exchange

    def send(self, peer: Address, data: bytes) -> None:
        """A Send indication (no answer comes back; data arrives at the peer or not)."""
        self.client.channel.send(messages.send_indication(peer, data))

    def send_channel_data(self, channel: int, data: bytes) -> None:
        self.client.channel.send(encode_channel_data(channel, data, pad=self.reliable))

    async def receive(self, timeout: float) -> RelayedData | None:
        """The next Data indication or ChannelData frame, or None after ``timeout``."""
        loop_deadline = timeout
        while loop_deadline > 0:
            frame = await self.client.next_unsolicited(loop_deadline)
            if frame is None:
                return None
            received = relayed_data(frame.data)
            if received is not None:
                return received
            loop_deadline = timeout / 2  # ignore one stray frame, then wait less
        return None


@dataclass(frozen=True)
class RelayedData:
    data: bytes
    peer: Address | None = None
    channel: int | None = None


def relayed_data(frame: bytes) -> RelayedData | None:
    """Data relayed to us: a Data indication (peer known) or ChannelData (channel known)."""
    kind = classify(frame)
    try:
        if kind is DatagramKind.CHANNEL_DATA:
            channel, payload = parse_channel_data(frame)
            return RelayedData(payload, channel=channel)
        if kind is DatagramKind.STUN:
            found = messages.data_indication(parse(frame))
            return None if found is None else RelayedData(found[1], peer=found[0])
    except StunDecodeError:
        return None
    return None


def _method_name(message: Message) -> str:
    try:
        return Method(message.method).name
    except ValueError:
        return f"0x{message.method:03x}"


@contextlib.asynccontextmanager
async def allocation(
    session: TurnSession, *, lifetime: int | None = None, family: int = FAMILY_IPV4
) -> AsyncIterator[AllocateAnswer]:
    """Allocate on entry; on exit always try to delete it again (Refresh 0)."""
    answer, _ = await session.allocate(lifetime=lifetime, family=family)
    try:
        yield answer
    finally:
        session.log.released = await session.release()
