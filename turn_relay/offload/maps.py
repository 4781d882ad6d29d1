"""Routes, counters, and their byte layout in the eBPF program's maps.

The layouts mirror the structs in ``channel_forward.bpf.c`` (``channel_key``, ``channel_route``,
``peer_key``, ``peer_route``): addresses take 16 bytes (IPv4 in the first four, the rest zero),
ports and channel numbers are in network order, interface index, MTU and counters in host order.
A route is written as two entries, one per direction, and read back with its counters.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final, NamedTuple

__all__ = [
    "CHANNEL_KEY",
    "CHANNEL_ROUTE",
    "PEER_KEY",
    "PEER_ROUTE",
    "Address",
    "Egress",
    "Route",
    "RouteCounters",
    "Traffic",
    "channel_entry",
    "family_of",
    "peer_entry",
    "read_channel_counters",
    "read_peer_counters",
]

Address = tuple[str, int]
"""An IP address (IPv4 or IPv6 text) and a UDP port, as the relay's sockets give them."""

#: Channel numbers the program accepts (RFC 5766's range; RFC 8656 narrows it to 0x4FFF, which
#: the relay core enforces when it binds channels).
CHANNEL_MIN: Final = 0x4000
CHANNEL_MAX: Final = 0x7FFF

CHANNEL_KEY: Final = struct.Struct("!16s16sHHHBx")
CHANNEL_ROUTE: Final = struct.Struct("=16s16s2s2sIQQ")
PEER_KEY: Final = struct.Struct("!16s16sHHB3x")
PEER_ROUTE: Final = struct.Struct("=16s16s2s2sI2sH4xQQ")


class Route(NamedTuple):
    """A bound channel: ChannelData ``channel`` from ``client`` to ``listener`` goes to ``peer``
    from ``relayed``; datagrams from ``peer`` to ``relayed`` go back to ``client`` from
    ``listener`` as ChannelData on ``channel``."""

    client: Address
    listener: Address
    channel: int
    relayed: Address
    peer: Address


class Traffic(NamedTuple):
    """Datagrams the kernel forwarded and their application bytes (the ChannelData payload)."""

    packets: int = 0
    bytes: int = 0


class RouteCounters(NamedTuple):
    """Both directions of one route, counted since it went up."""

    to_peer: Traffic = Traffic()
    to_client: Traffic = Traffic()


class Egress(NamedTuple):
    """Where a direction leaves: an interface index and its MTU, or ``(0, 0)`` for a local
    destination (the rewritten packet goes back to the stack and is delivered on this host)."""

    ifindex: int
    mtu: int


LOCAL: Final = Egress(0, 0)
NOTHING: Final = Traffic()


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def family_of(host: str) -> int:
    """4 or 6 (an IPv4-mapped IPv6 address counts as IPv4, as the kernel sees it on the wire)."""
    return _ip(host).version


def _addr(host: str) -> bytes:
    return _ip(host).packed.ljust(16, b"\0")


def _port(port: int) -> bytes:
    return port.to_bytes(2, "big")


def _check_channel(channel: int) -> None:
    if not CHANNEL_MIN <= channel <= CHANNEL_MAX:
        raise ValueError(f"channel {channel:#06x} is outside {CHANNEL_MIN:#06x}-{CHANNEL_MAX:#06x}")


def channel_entry(route: Route, egress: Egress, kept: Traffic = NOTHING) -> tuple[bytes, bytes]:
    """Key and value of the client -> peer entry (``kept``: counters to carry over)."""
    _check_channel(route.channel)
    key = CHANNEL_KEY.pack(
        _addr(route.client[0]),
        _addr(route.listener[0]),
        route.client[1],
        route.listener[1],
        route.channel,
        family_of(route.client[0]),
    )
    value = CHANNEL_ROUTE.pack(
        _addr(route.relayed[0]),
        _addr(route.peer[0]),
        _port(route.relayed[1]),
        _port(route.peer[1]),
        egress.ifindex,
        kept.packets,
        kept.bytes,
    )
    return key, value


def peer_entry(route: Route, egress: Egress, kept: Traffic = NOTHING) -> tuple[bytes, bytes]:
    """Key and value of the peer -> client entry (``kept``: counters to carry over)."""
    _check_channel(route.channel)
    key = PEER_KEY.pack(
        _addr(route.peer[0]),
        _addr(route.relayed[0]),
        route.peer[1],
        route.relayed[1],
        family_of(route.peer[0]),
    )
    value = PEER_ROUTE.pack(
        _addr(route.listener[0]),
        _addr(route.client[0]),
        _port(route.listener[1]),
        _port(route.client[1]),
        egress.ifindex,
        _port(route.channel),
        egress.mtu,
        kept.packets,
        kept.bytes,
    )
    return key, value


def read_channel_counters(value: bytes) -> Traffic:
    *_, packets, count = CHANNEL_ROUTE.unpack(value)
    return Traffic(packets, count)


def read_peer_counters(value: bytes) -> Traffic:
    *_, packets, count = PEER_ROUTE.unpack(value)
    return Traffic(packets, count)
