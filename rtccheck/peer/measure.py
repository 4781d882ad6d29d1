"""Data over a leg's channels: RTT and loss by pings, throughput by a short burst.

The wire format is shared with the browser party (turn_relay/api/static/peer/peer.js):

* probe channel (unordered, no retransmissions): ``ping <seq> <ms>`` is answered by
  ``pong <seq> <ms>`` (the leader's own clock, so RTT needs no clock sync); ``bulk <seq> <pad>``
  messages are only counted;
* control channel (reliable): ``bulk-end`` is answered by ``bulk-count <n> <bytes> <span ms>``
  (how many burst messages arrived, and between the first and the last).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCDataChannel

from .connection import CONTROL_LABEL, PROBE_LABEL, LegConnection

BULK_MESSAGE_BYTES = 1000
BULK_BUFFER_LIMIT = 64 * 1024
STRAGGLER_WAIT_S = 0.5


@dataclass
class Measured:
    pings_sent: int = 0
    rtts_ms: list[float] = field(default_factory=list)
    bulk_bytes: int = 0
    bulk_span_ms: float = 0.0
    error: str | None = None

    @property
    def pings_received(self) -> int:
        return len(self.rtts_ms)

    @property
    def loss_pct(self) -> float | None:
        if not self.pings_sent:
            return None
        return 100.0 * (self.pings_sent - self.pings_received) / self.pings_sent

    def rtt_ms(self, quantile: float) -> float | None:
        if not self.rtts_ms:
            return None
        if len(self.rtts_ms) == 1:
            return self.rtts_ms[0]
        cuts = statistics.quantiles(self.rtts_ms, n=100, method="inclusive")
        return cuts[round(quantile * 100) - 1]

    @property
    def throughput_mbps(self) -> float | None:
        if self.bulk_span_ms <= 0:
            return None
        return self.bulk_bytes * 8 / (self.bulk_span_ms * 1000)

    def metrics(self) -> dict[str, float | None]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "rtt_p50_ms": rounded(self.rtt_ms(0.5)),
            "rtt_p95_ms": rounded(self.rtt_ms(0.95)),
            "loss_pct": rounded(self.loss_pct),
            "throughput_mbps": rounded(self.throughput_mbps),
            "packets_sent": self.pings_sent,
            "packets_received": self.pings_received,
        }


class Pinger:
    """Pings on a probe channel; the pongs that come back, by sequence number."""

    def __init__(self, channel: RTCDataChannel, clock: Callable[[], float]) -> None:
        self.channel = channel
        self.clock = clock
        self.sent: dict[int, float] = {}
        self.rtts: dict[int, float] = {}
        channel.on("message", self._on_message)

    def _on_message(self, message: object) -> None:
        if not isinstance(message, str) or not message.startswith("pong "):
            return
        _, seq, _ = message.split(" ", 2)
        if seq.isdigit() and int(seq) in self.sent and int(seq) not in self.rtts:
            self.rtts[int(seq)] = (self.clock() - self.sent[int(seq)]) * 1000

    def ping(self) -> int:
        seq = len(self.sent)
        self.sent[seq] = self.clock()
        self.channel.send(f"ping {seq} {self.sent[seq] * 1000:.3f}")
        return seq

    def received_since(self, first_seq: int, last_seq: int) -> list[float]:
        return [self.rtts[s] for s in range(first_seq, last_seq) if s in self.rtts]


async def measure(leg: LegConnection, pings: int, interval_s: float, bulk_s: float) -> Measured:
    """RTT and loss from ``pings`` pings ``interval_s`` apart, then a ``bulk_s`` burst."""
    loop = asyncio.get_running_loop()
    probe, control = leg.channels[PROBE_LABEL], leg.channels[CONTROL_LABEL]
    pinger = Pinger(probe, loop.time)
    measured = Measured()
    for _ in range(pings):
        pinger.ping()
        await asyncio.sleep(interval_s)
    await asyncio.sleep(STRAGGLER_WAIT_S)
    measured.pings_sent = len(pinger.sent)
    measured.rtts_ms = pinger.received_since(0, len(pinger.sent))
    try:
        await _burst(probe, control, bulk_s, measured)
    except TimeoutError:
        measured.error = "the burst count never came back"
    return measured


async def _burst(
    probe: RTCDataChannel, control: RTCDataChannel, bulk_s: float, measured: Measured
) -> None:
    loop = asyncio.get_running_loop()
    counted: asyncio.Future[str] = loop.create_future()

    def on_control(message: object) -> None:
        if isinstance(message, str) and message.startswith("bulk-count ") and not counted.done():
            counted.set_result(message)

    control.on("message", on_control)
    pad = "x" * BULK_MESSAGE_BYTES
    deadline, seq = loop.time() + bulk_s, 0
    while loop.time() < deadline:
        if probe.bufferedAmount < BULK_BUFFER_LIMIT:
            probe.send(f"bulk {seq} {pad}")
            seq += 1
        else:
            await asyncio.sleep(0.002)
        if seq % 16 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0.3)  # the last burst messages are on their way
    control.send("bulk-end")
    async with asyncio.timeout(3.0):
        reply = await counted
    _, count, size, span = reply.split(" ")
    measured.bulk_bytes = int(size)
    measured.bulk_span_ms = float(span) if int(count) > 1 else 0.0


class Echo:
    """The follower's side of `measure` on one leg: attached to both of its channels."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.count = 0
        self.bytes = 0
        self.first = 0.0
        self.last = 0.0

    def attach(self, channel: RTCDataChannel) -> None:
        def on_message(message: object) -> None:
            if isinstance(message, str):
                with contextlib.suppress(ConnectionError, ValueError):  # a closing channel
                    self._handle(channel, message)

        channel.on("message", on_message)

    def _handle(self, channel: RTCDataChannel, message: str) -> None:
        if message.startswith("ping "):
            channel.send("pong " + message[len("ping ") :])
        elif message.startswith("bulk "):
            now = self.clock()
            self.first = self.first or now
            self.last = now
            self.count += 1
            self.bytes += len(message.encode())
        elif message == "bulk-end":
            span = (self.last - self.first) * 1000
            channel.send(f"bulk-count {self.count} {self.bytes} {span:.3f}")
