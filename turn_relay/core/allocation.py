"""The state of one TURN allocation (RFC 8656 section 6): relays, permissions, channel bindings.

Plain data with ``expires_at`` in the core's monotonic seconds; nothing here reads a clock. The
table (``turn_relay.table``) owns allocations and their timers; the core mutates them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from .bandwidth import TokenBucket

Address = tuple[str, int]

FAMILY_IPV4 = 0x01
FAMILY_IPV6 = 0x02


class Transport(enum.Enum):
    """How the client reaches the relay. Peers are always reached over UDP."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"

    @property
    def is_stream(self) -> bool:
        return self is not Transport.UDP


class FiveTuple(NamedTuple):
    """Client address, server (listener) address and transport: identifies one allocation."""

    client: Address
    server: Address
    transport: Transport


def format_address(address: Address) -> str:
    """``ip:port``, or ``[ip]:port`` for IPv6."""
    ip, port = address
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def family_of(ip: str) -> int:
    return FAMILY_IPV6 if ":" in ip else FAMILY_IPV4


@dataclass(slots=True)
class Permission:
    """Lets datagrams from ``ip`` (any port) in and to ``ip`` out (RFC 8656 section 9)."""

    ip: str
    expires_at: float


@dataclass(slots=True)
class Traffic:
    """What one allocation relayed, payload bytes and packets each way.

    Bumped by whoever forwards the packet: the core on its slow path, the shell on its fast
    path (a shell holds the allocation's `Traffic` in its routes), so the admin API can say
    what each session moved without the core seeing every packet.
    """

    packets_to_peer: int = 0
    bytes_to_peer: int = 0
    packets_to_client: int = 0
    bytes_to_client: int = 0


@dataclass(slots=True, eq=False)
class ChannelBinding:
    """Channel ``number`` <-> ``peer`` on one allocation (RFC 8656 section 12).

    ``routed`` is True while the binding is usable for relaying, i.e. bound and the peer's IP
    has a permission; the core announces every change of it so a shell can keep a fast path.
    """

    number: int
    peer: Address
    relay: Address
    five_tuple: FiveTuple  # the client side, for ChannelData towards the client
    expires_at: float
    header: bytes  # the 2-byte channel number, ready to prefix ChannelData
    routed: bool = False
    traffic: Traffic | None = None  # the allocation's, counted on the core's channel path


@dataclass(slots=True, eq=False)
class Credentials:
    """Who made the allocation and the key their requests and our responses are signed with."""

    username: str
    user: str  # quota key (the REST user part, or the static user name)
    key: bytes  # long-term key; the password itself is never stored (RFC 8656 section 6)
    expires_at: int | None  # Unix seconds (REST credentials); None for static users


@dataclass(slots=True, eq=False)
class Allocation:
    five_tuple: FiveTuple
    relays: dict[int, Address]  # family -> local relay address (one or two: dual allocation)
    advertised: dict[int, Address]  # family -> address told to the client (1:1 NAT)
    credentials: Credentials
    expires_at: float
    permissions: dict[str, Permission] = field(default_factory=dict)
    channels: dict[int, ChannelBinding] = field(default_factory=dict)
    peer_channels: dict[Address, ChannelBinding] = field(default_factory=dict)
    last_transaction: bytes = b""  # last authenticated request, answered again on retransmit
    last_response: bytes = b""
    bucket: TokenBucket | None = None  # bandwidth cap, when configured
    alive: bool = True
    created_at: float = 0.0  # the core's ``now`` at the Allocate
    traffic: Traffic = field(default_factory=Traffic)
    # The first relayed address at creation, ``ip:port`` (``[ip]:port`` for IPv6): unique on
    # one relay host (workers own disjoint port blocks) and kept when a relay is dropped.
    session_id: str = ""

    def __post_init__(self) -> None:
        if not self.session_id and self.relays:
            self.session_id = format_address(self.relays[min(self.relays)])

    def relay_for(self, peer_ip: str) -> Address | None:
        """The relay address that talks to ``peer_ip`` (same family), if any."""
        return self.relays.get(family_of(peer_ip))

    def has_permission(self, ip: str, now: float) -> bool:
        permission = self.permissions.get(ip)
        return permission is not None and permission.expires_at > now

    def lifetime_left(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))
