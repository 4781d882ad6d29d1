"""What the sans-I/O core asks its shell to do. Plain named tuples: cheap to make per packet.

The shell runs a list of actions in order. ``OpenRelay`` always precedes the response that
announces the relay, so a shell that cannot bind the port can report ``relay_failed`` before
anything reached the client, and run the core's replacement actions instead of the rest.
"""

from __future__ import annotations

from typing import NamedTuple

from .allocation import Address, FiveTuple


class ToClient(NamedTuple):
    """Send ``data`` to the client on ``five_tuple`` (a datagram, or a frame on its stream)."""

    five_tuple: FiveTuple
    data: bytes


class ToPeer(NamedTuple):
    """Send ``data`` from the relay socket bound to ``relay`` to ``peer``."""

    relay: Address
    peer: Address
    data: bytes
    dont_fragment: bool = False


class OpenRelay(NamedTuple):
    """Bind a UDP socket to ``relay`` and feed what it receives to ``receive_from_peer``."""

    relay: Address


class CloseRelay(NamedTuple):
    relay: Address


class CloseClient(NamedTuple):
    """Close the client's TCP/TLS connection (it exceeded the 401 budget: over a stream a
    silently dropped answer would leave it waiting forever)."""

    five_tuple: FiveTuple


class RouteUp(NamedTuple):
    """Channel ``channel`` of ``five_tuple`` now relays to and from ``peer`` via ``relay``.

    A shell may keep these in dicts and forward ChannelData and peer datagrams itself (one
    lookup, one send) instead of calling the core per packet; ``RouteDown`` undoes it.
    """

    five_tuple: FiveTuple
    channel: int
    relay: Address
    peer: Address


class RouteDown(NamedTuple):
    five_tuple: FiveTuple
    channel: int
    relay: Address
    peer: Address


class PermitUp(NamedTuple):
    """``five_tuple`` has a permission for peers at ``ip`` on ``relay`` (RFC 8656 section 9).

    A shell may then relay Send indications to such peers and their datagrams back as Data
    indications itself (their framing is in `turn_relay.fastpath`) instead of calling the core
    per packet; ``PermitDown`` undoes it (expiry, or the allocation went away). Send
    indications carrying DONT-FRAGMENT or anything unusual still belong to the core.
    """

    five_tuple: FiveTuple
    relay: Address
    ip: str


class PermitDown(NamedTuple):
    five_tuple: FiveTuple
    relay: Address
    ip: str


Action = (
    ToClient
    | ToPeer
    | OpenRelay
    | CloseRelay
    | CloseClient
    | RouteUp
    | RouteDown
    | PermitUp
    | PermitDown
)
