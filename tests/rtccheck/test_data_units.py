"""The data check's measurement over in-memory links (exact loss, bounded time), its verdicts,
and the direct path between two aioice agents on this host (loopback only in CI)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aioice import Candidate

from rtccheck.checks import data
from rtccheck.checks.base import CheckContext, CheckOptions
from rtccheck.ice.exchange import BURST_TIME_S, DRAIN_MAX_S, Measurement, measure, percentile
from rtccheck.results import Status
from rtccheck.uri import parse_uri


class Link:
    """One end of an in-memory datagram link; ``drop`` decides which sent packets vanish."""

    def __init__(self, inbox: asyncio.Queue[bytes], outbox: asyncio.Queue[bytes]) -> None:
        self.inbox, self.outbox = inbox, outbox
        self.sent = 0
        self.drop_every = 0

    async def send(self, data: bytes) -> None:
        self.sent += 1
        if self.drop_every and self.sent % self.drop_every == 0:
            return
        self.outbox.put_nowait(data)

    async def recv(self) -> bytes:
        return await self.inbox.get()


def link_pair() -> tuple[Link, Link]:
    a_to_b: asyncio.Queue[bytes] = asyncio.Queue()
    b_to_a: asyncio.Queue[bytes] = asyncio.Queue()
    return Link(b_to_a, a_to_b), Link(a_to_b, b_to_a)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0


def test_measurement_figures() -> None:
    measured = Measurement(
        pings_sent=10,
        pings_received=9,
        rtts_s=(0.001,) * 9,
        burst_sent=100,
        burst_received=100,
        burst_bytes=1_250_000,
        burst_s=0.5,
    )
    assert measured.loss_pct == pytest.approx(10.0)
    assert measured.throughput_mbps == pytest.approx(20.0)
    assert measured.rtt_ms(0.5) == pytest.approx(1.0)


@pytest.mark.asyncio
async def test_lossless_link() -> None:
    caller, responder = link_pair()
    started = time.monotonic()
    measured = await measure(caller, responder, time.monotonic, 50)
    elapsed = time.monotonic() - started
    assert (measured.pings_sent, measured.pings_received, measured.loss_pct) == (50, 50, 0.0)
    assert measured.burst_sent > 0 and measured.burst_received == measured.burst_sent
    assert measured.throughput_mbps > 0 and measured.error is None
    assert elapsed < 50 * 0.002 + BURST_TIME_S + 2 * DRAIN_MAX_S + 0.5


@pytest.mark.asyncio
async def test_lossy_link_counts_every_lost_packet() -> None:
    caller, responder = link_pair()
    responder.drop_every = 4  # the echo of every 4th packet is lost
    measured = await measure(caller, responder, time.monotonic, 100)
    assert measured.pings_received == 75
    assert measured.loss_pct == pytest.approx(25.0)
    assert len(measured.rtts_s) == 75


@pytest.mark.asyncio
async def test_dead_link_ends_in_bounded_time() -> None:
    caller, responder = link_pair()
    responder.drop_every = 1
    started = time.monotonic()
    measured = await measure(caller, responder, time.monotonic, 20)
    assert measured.pings_received == 0 and measured.loss_pct == 100.0
    assert measured.rtt_ms(0.5) is None
    assert time.monotonic() - started < 20 * 0.002 + BURST_TIME_S + 2 * DRAIN_MAX_S + 0.5


def _candidate(kind: str) -> Candidate:
    return Candidate("f", 1, "udp", 1, "127.0.0.1", 5000, kind)


def _measured(received: int) -> Measurement:
    return Measurement(100, received, (0.001,) * received, 10, 10, 12000, 0.1)


def test_relay_path_needs_relay_on_both_ends() -> None:
    path = data.relay_path(parse_uri("turn:127.0.0.1?transport=tcp"), None)
    pair = (_candidate("relay"), _candidate("host"))
    result = data.verdict(path, pair, _measured(100), 12.0)
    assert result.status is Status.FAIL and result.cause_id == "wrong-candidate-pair"


@pytest.mark.parametrize(
    ("received", "status", "cause_id"),
    [
        (100, Status.PASS, None),
        (95, Status.WARN, "packet-loss"),
        (40, Status.FAIL, "heavy-packet-loss"),
    ],
)
def test_loss_thresholds(received: int, status: Status, cause_id: str | None) -> None:
    path = data.relay_path(parse_uri("turn:127.0.0.1"), None)
    pair = (_candidate("relay"), _candidate("relay"))
    result = data.verdict(path, pair, _measured(received), 12.0)
    assert result.status is status
    assert result.cause_id == cause_id
    assert result.capabilities == ("data-relay",)
    selected = result.details["selected_pair"]
    assert isinstance(selected, dict) and isinstance(selected["local"], dict)
    assert selected["local"]["type"] == "relay" and selected["local"]["relay_protocol"] == "udp"


def test_no_data_back_is_explained() -> None:
    path = data.relay_path(parse_uri("turn:127.0.0.1"), None)
    pair = (_candidate("relay"), _candidate("relay"))
    result = data.verdict(path, pair, _measured(0), 12.0)
    assert result.status is Status.FAIL and result.cause_id == "no-data"
    assert result.summary.startswith("ICE connected through the relay but none of 100 packets")


@pytest.mark.asyncio
async def test_direct_path_between_two_local_agents() -> None:
    """Runs in CI's loopback-only namespace too: the agents gather on 127.0.0.1 there."""
    ctx = CheckContext(
        targets=(parse_uri("stuns:127.0.0.1:5349"),), timeout=3, options=CheckOptions(packets=40)
    )
    (result,) = await data.run(ctx)
    assert result.check == "data.direct" and result.status is Status.PASS, result
    assert result.metrics["packets_sent"] == 40
    assert result.metrics["loss_pct"] == 0
    selected = result.details["selected_pair"]
    assert isinstance(selected, dict) and isinstance(selected["local"], dict)
    assert selected["local"]["type"] == "host"
    assert result.capabilities == ("data-direct",)
