"""Data through one TURN server between two of our own allocations (no third party involved).

Allocation A gives allocation B's relayed address a permission and vice versa; then A sends a
Send indication to B, binds a channel and sends ChannelData to B, and B answers with a Send
indication that comes back to A on the channel. That exercises CreatePermission, ChannelBind,
Send and both Data paths of the relay. Only our own relayed addresses are used as peers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from rtccheck.probe.client import Clock
from rtccheck.probe.errors import FailureKind, ProbeError
from rtccheck.probe.retransmit import transmission_waits
from rtccheck.probe.transport import Address
from rtccheck.probe.turn import RelayedData, TurnSession

CHANNEL = 0x4000
#: how long one piece of data may take through the relay before it counts as lost
MAX_DELIVERY_WAIT_S = 2.0


@dataclass(frozen=True)
class Leg:
    session: TurnSession
    relayed: Address


@dataclass(frozen=True)
class LoopOutcome:
    """Which paths carried data, and the round trip A -> B -> A through the relay."""

    send_indication: bool
    channel_data: bool
    reply: bool
    rtt_s: float | None

    @property
    def complete(self) -> bool:
        return self.send_indication and self.channel_data and self.reply


async def run_loop(first: Leg, second: Leg, *, timeout: float, clock: Clock) -> LoopOutcome:
    """Permissions both ways, then the three deliveries; ProbeError if a request fails."""
    await first.session.create_permission([second.relayed])
    await second.session.create_permission([first.relayed])
    token = os.urandom(6).hex().encode()
    timeout = min(timeout, MAX_DELIVERY_WAIT_S)
    by_send = await deliver(
        lambda data: first.session.send(second.relayed, data), second, b"S" + token, timeout
    )
    if by_send is None:  # nothing gets through: do not wait for the other two as well
        return LoopOutcome(False, False, False, None)
    await first.session.channel_bind(CHANNEL, second.relayed)
    started = clock()
    by_channel = await deliver(
        lambda data: first.session.send_channel_data(CHANNEL, data),
        second,
        b"C" + token,
        timeout,
    )
    reply = await deliver(
        lambda data: second.session.send(first.relayed, data), first, b"R" + token, timeout
    )
    rtt = clock() - started if by_channel and reply else None
    return LoopOutcome(by_send is not None, by_channel is not None, reply is not None, rtt)


async def deliver(
    send: Callable[[bytes], None], receiver: Leg, payload: bytes, timeout: float
) -> RelayedData | None:
    """Send ``payload`` (again after each RTO, UDP may lose it) until ``receiver`` gets it."""
    for wait in transmission_waits(timeout):
        send(payload)
        received = await _wait_for_payload(receiver.session, payload, wait)
        if received is not None:
            return received
    return None


async def _wait_for_payload(
    session: TurnSession, payload: bytes, wait: float
) -> RelayedData | None:
    received = await session.receive(wait)
    while received is not None and received.data != payload:
        received = await session.receive(wait / 2)
    return received


def is_forbidden(error: ProbeError) -> bool:
    """The relay refused the permission: its peer policy forbids our own relayed address."""
    return error.kind is FailureKind.ERROR_RESPONSE and error.code in (403, 443)
