"""An asyncio STUN client over one channel: transactions, retransmission, matching.

`StunClient` is the channel's `Receiver`. A transaction sends a request (retransmitted over UDP
per `transmission_waits`), and completes with the success or error response that carries its
transaction ID, wherever it came from (RFC 5780 answers come from another address). Everything
else received (Data indications, ChannelData, requests such as a hairpinned probe) goes to the
``unsolicited`` queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from rtccheck.probe.errors import FailureKind, ProbeError
from rtccheck.probe.retransmit import transmission_waits
from rtccheck.probe.transport import Address, Channel
from stun_server.wire import (
    Message,
    MessageClass,
    StunDecodeError,
    is_stun,
    parse,
    split_message_type,
)

Clock = Callable[[], float]
#: frames kept for whoever reads ``unsolicited``; later ones are dropped
UNSOLICITED_LIMIT = 256


@dataclass(frozen=True)
class Exchange:
    """A response, who sent it, and how long it took."""

    response: Message
    source: Address
    rtt_s: float
    transmissions: int


@dataclass(frozen=True)
class Frame:
    data: bytes
    source: Address


class StunClient:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._channel: Channel | None = None
        self._pending: dict[bytes, asyncio.Future[Frame]] = {}
        self._failure: ProbeError | None = None
        self.unsolicited: asyncio.Queue[Frame] = asyncio.Queue(UNSOLICITED_LIMIT)

    # ------------------------------------------------------------ Receiver

    def attach(self, channel: Channel) -> None:
        self._channel = channel

    @property
    def channel(self) -> Channel:
        if self._channel is None:
            raise RuntimeError("StunClient has no channel yet")
        return self._channel

    def frame_received(self, data: bytes, source: Address) -> None:
        frame = Frame(data, source)
        waiter = self._waiter_for(data)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(frame)
            return
        with contextlib.suppress(asyncio.QueueFull):
            self.unsolicited.put_nowait(frame)

    def _waiter_for(self, data: bytes) -> asyncio.Future[Frame] | None:
        if not is_stun(data):
            return None
        waiter = self._pending.get(data[8:20])
        if waiter is None:
            return None
        _, message_class = split_message_type(int.from_bytes(data[:2], "big"))
        is_response = message_class in (MessageClass.SUCCESS, MessageClass.ERROR)
        return waiter if is_response else None  # a request with our ID: a hairpinned probe

    def channel_failed(self, error: ProbeError) -> None:
        if error.kind is FailureKind.CLOSED and self._failure is not None:
            return
        self._failure = error
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(error)

    # ------------------------------------------------------------ transactions

    async def transact(
        self,
        request: bytes,
        *,
        timeout: float,
        destination: Address | None = None,
        send: Callable[[bytes], None] | None = None,
    ) -> Exchange:
        """Send ``request`` (encoded) and wait for its response; ProbeError(TIMEOUT) if none.

        ``send`` replaces the channel's own send (the RFC 5780 lifetime probe asks from
        one socket and listens on another).
        """
        if self._failure is not None:
            raise self._failure
        transmit = send or (lambda data: self.channel.send(data, destination))
        reliable = send is None and self.channel.reliable
        transaction_id = request[8:20]
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[transaction_id] = waiter
        try:
            return await self._run(request, waiter, transmit, reliable, timeout)
        finally:
            self._pending.pop(transaction_id, None)

    async def _run(
        self,
        request: bytes,
        waiter: asyncio.Future[Frame],
        transmit: Callable[[bytes], None],
        reliable: bool,
        timeout: float,
    ) -> Exchange:
        count, sent_at = 0, self._clock()
        for wait in transmission_waits(timeout, reliable=reliable):
            sent_at = self._clock()
            transmit(request)
            count += 1
            with contextlib.suppress(TimeoutError):
                frame = await asyncio.wait_for(asyncio.shield(waiter), wait)
                return self._exchange(frame, self._clock() - sent_at, count)
        raise ProbeError(FailureKind.TIMEOUT, f"no answer after {count} transmissions")

    @staticmethod
    def _exchange(frame: Frame, rtt_s: float, transmissions: int) -> Exchange:
        try:
            message = parse(frame.data)
        except StunDecodeError as error:
            raise ProbeError(FailureKind.MALFORMED, str(error)) from None
        return Exchange(message, frame.source, rtt_s, transmissions)

    async def next_unsolicited(self, timeout: float) -> Frame | None:
        """The next frame nobody waited for, or None after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self.unsolicited.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.cancel()
