"""Real data between two connected ICE agents, bounded in packets and time.

The caller sends, the responder echoes every datagram back unchanged. Two phases:

* pings: ``count`` small packets (160 bytes, an audio frame) paced 2 ms apart; round-trip time
  p50/p95 and loss come from them;
* burst: 1200-byte packets (a video packet) with at most 32 in flight for 0.3 s; the echoed bytes
  per second give the throughput the path carries both ways (a goodput, not a link capacity).

After each phase the caller waits for the last echoes: four times the slowest round trip seen so
far, at least 0.2 s and at most 1 s; what has not come back by then counts as lost.

Each packet starts with two bytes whose top bits are 11, so no STUN parser takes it for a STUN
message, then the phase and a sequence number. Late echoes of one phase are ignored in the next.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

PING, BURST = 1, 2
PING_SIZE = 160
PING_INTERVAL_S = 0.002
BURST_SIZE = 1200
BURST_WINDOW = 32
BURST_MAX_PACKETS = 4000
BURST_TIME_S = 0.3
#: how long to wait for the last echoes of a phase: DRAIN_RTTS x the slowest RTT, within bounds
DRAIN_MIN_S = 0.2
DRAIN_MAX_S = 1.0
DRAIN_RTTS = 4
MAGIC = b"\xfe\x52"
HEADER = struct.Struct("!2sBI")


class Datagrams(Protocol):
    """What the measurement needs of a connected agent (an aioice Connection has it)."""

    async def send(self, data: bytes) -> None: ...

    async def recv(self) -> bytes: ...


@dataclass(frozen=True)
class Measurement:
    pings_sent: int
    pings_received: int
    rtts_s: tuple[float, ...]
    burst_sent: int
    burst_received: int
    burst_bytes: int
    burst_s: float
    error: str | None = None

    @property
    def loss_pct(self) -> float:
        return _loss(self.pings_sent, self.pings_received)

    @property
    def burst_loss_pct(self) -> float:
        return _loss(self.burst_sent, self.burst_received)

    @property
    def throughput_mbps(self) -> float:
        if self.burst_s <= 0:
            return 0.0
        return self.burst_bytes * 8 / self.burst_s / 1e6

    def rtt_ms(self, quantile: float) -> float | None:
        if not self.rtts_s:
            return None
        return percentile(self.rtts_s, quantile) * 1000


def _loss(sent: int, received: int) -> float:
    return 100.0 * (sent - received) / sent if sent else 100.0


def percentile(values: Sequence[float], quantile: float) -> float:
    """Nearest-rank percentile (``quantile`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(quantile * len(ordered)))
    return ordered[rank - 1]


def packet(phase: int, seq: int, size: int) -> bytes:
    header = HEADER.pack(MAGIC, phase, seq)
    return header + bytes(max(0, size - len(header)))


async def measure(
    caller: Datagrams, responder: Datagrams, clock: Callable[[], float], pings: int
) -> Measurement:
    """Pings then a burst from ``caller``, echoed by ``responder`` (both in this process)."""
    echoing = asyncio.create_task(echo(responder))
    try:
        return await probe(caller, clock, pings)
    finally:
        echoing.cancel()
        await asyncio.gather(echoing, return_exceptions=True)


async def probe(agent: Datagrams, clock: Callable[[], float], pings: int) -> Measurement:
    """Pings then a burst to a peer that runs `echo` (here or in another process); never
    raises for a lost connection (the measurement then carries ``error``)."""
    prober = _Probe(agent, clock)
    reading = asyncio.create_task(prober.read())
    error = None
    try:
        await prober.pings(pings)
        await prober.burst()
    except ConnectionError as lost:
        error = str(lost) or "connection lost"
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
    return prober.result(error)


async def echo(agent: Datagrams) -> None:
    """Send every datagram back unchanged, until the connection closes."""
    while True:
        try:
            data = await agent.recv()
            await agent.send(data)
        except ConnectionError:
            return


class _Probe:
    """The caller's side: sends, matches echoes to sequence numbers, times them."""

    def __init__(self, agent: Datagrams, clock: Callable[[], float]) -> None:
        self.agent = agent
        self.clock = clock
        self.phase = PING
        self.sent_at: dict[int, float] = {}
        self.sent = {PING: 0, BURST: 0}
        self.received = {PING: 0, BURST: 0}
        self.rtts: list[float] = []
        self.burst_bytes = 0
        self.burst_started = 0.0
        self.last_echo = 0.0
        self.progress = asyncio.Event()

    async def read(self) -> None:
        while True:
            try:
                data = await self.agent.recv()
            except ConnectionError:
                return
            self._on_echo(data)

    def _on_echo(self, data: bytes) -> None:
        if len(data) < HEADER.size:
            return
        magic, phase, seq = HEADER.unpack_from(data)
        sent = self.sent_at.pop(seq, None) if magic == MAGIC and phase == self.phase else None
        if sent is None:
            return
        self.last_echo = self.clock()
        self.received[phase] += 1
        if phase == PING:
            self.rtts.append(self.last_echo - sent)
        else:
            self.burst_bytes += len(data)
        self.progress.set()

    async def _send(self, phase: int, seq: int, size: int) -> None:
        self.sent_at[seq] = self.clock()
        self.sent[phase] += 1
        await self.agent.send(packet(phase, seq, size))

    async def pings(self, count: int) -> None:
        for seq in range(count):
            await self._send(PING, seq, PING_SIZE)
            await asyncio.sleep(PING_INTERVAL_S)
        await self._drain()

    async def burst(self) -> None:
        self.phase = BURST
        self.sent_at.clear()
        self.burst_started = self.last_echo = self.clock()
        try:
            async with asyncio.timeout(BURST_TIME_S):
                for seq in range(BURST_MAX_PACKETS):
                    await self._window_open()
                    await self._send(BURST, seq, BURST_SIZE)
        except TimeoutError:
            pass
        await self._drain()

    async def _window_open(self) -> None:
        while len(self.sent_at) >= BURST_WINDOW:
            self.progress.clear()
            await self.progress.wait()

    def drain_limit(self) -> float:
        if not self.rtts:
            return DRAIN_MAX_S
        return min(DRAIN_MAX_S, max(DRAIN_MIN_S, DRAIN_RTTS * max(self.rtts)))

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(self.drain_limit()):
                while self.sent_at:
                    self.progress.clear()
                    await self.progress.wait()
        except TimeoutError:
            pass

    def result(self, error: str | None) -> Measurement:
        return Measurement(
            pings_sent=self.sent[PING],
            pings_received=self.received[PING],
            rtts_s=tuple(self.rtts),
            burst_sent=self.sent[BURST],
            burst_received=self.received[BURST],
            burst_bytes=self.burst_bytes,
            burst_s=max(0.0, self.last_echo - self.burst_started),
            error=error,
        )
