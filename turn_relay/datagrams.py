"""UDP sockets of the relay shell: client listeners and relay sockets, with the fast path.

Both use plain non-blocking sockets watched with ``loop.add_reader`` rather than asyncio
transports: binding a relay port is then synchronous (a failure is known before the Allocate
response leaves), sends never queue (UDP: a full buffer drops, as the network would), and a
readable socket is drained in bounded batches.

Fast path: a ChannelData datagram whose (client, channel) is routed goes straight to the peer
with one dict lookup and one ``sendto``; a peer datagram on a routed (relay, peer) goes straight
to the client. Everything else is handed to the shell, which asks the sans-I/O core.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable
from typing import Protocol

from .allocation import Address, FiveTuple, Transport, family_of
from .metrics import DataPathStats

BATCH = 64  # datagrams read per readiness callback before yielding to the loop
MAX_DATAGRAM = 65536

# Linux values; Python 3.11's socket module does not export them.
_IP_MTU_DISCOVER = 10
_IP_PMTUDISC_DONT = 0
_IP_PMTUDISC_DO = 2
CAN_SET_DONT_FRAGMENT = sys.platform.startswith("linux")

Deliver = Callable[[bytes], None]


class Shell(Protocol):
    """What the sockets need from the server: the slow path into the core."""

    stats: DataPathStats

    def from_client(self, data: bytes, five_tuple: FiveTuple) -> None: ...

    def from_peer(self, data: bytes, relay: Address, peer: Address) -> None: ...


def udp_socket(address: Address) -> socket.socket:
    """A non-blocking UDP socket bound to ``address``; IPv6 sockets are IPv6-only."""
    family = socket.AF_INET6 if family_of(address[0]) == 2 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def clear_dont_fragment(sock: socket.socket) -> None:
    """RFC 8656 section 14: without DONT-FRAGMENT, relayed IPv4 datagrams go with DF=0."""
    if CAN_SET_DONT_FRAGMENT and sock.family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DONT)


def send_dont_fragment(sock: socket.socket, data: bytes, peer: Address) -> None:
    """One datagram with DF set (a Send indication with DONT-FRAGMENT), then back to DF=0."""
    if sock.family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
        try:
            sock.sendto(data, peer)
        finally:
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DONT)
        return
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 1)
    try:
        sock.sendto(data, peer)
    finally:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DONTFRAG, 0)


class UdpListener:
    """A client-facing UDP socket (port 3478 by default)."""

    def __init__(self, shell: Shell, sock: socket.socket) -> None:
        self.shell = shell
        self.sock = sock
        self.address: Address = sock.getsockname()[:2]
        # (client, channel) -> (relay socket, peer): ChannelData routes from this listener
        self.routes: dict[tuple[Address, int], tuple[socket.socket, Address]] = {}
        self._v6 = sock.family == socket.AF_INET6

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.sock.fileno(), self._readable)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def send(self, data: bytes, client: Address) -> None:
        try:
            self.sock.sendto(data, client)
        except OSError:
            self.shell.stats.dropped["client-send-failed"] += 1

    def _readable(self) -> None:
        sock, routes, stats, local = self.sock, self.routes, self.shell.stats, self.address
        for _ in range(BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # e.g. an ICMP error queued on the socket
            if self._v6:
                addr = addr[:2]
            if len(data) >= 4 and 0x40 <= data[0] <= 0x7F:  # routes hold only valid channels
                route = routes.get((addr, (data[0] << 8) | data[1]))
                if route is not None:
                    end = 4 + ((data[2] << 8) | data[3])
                    if end <= len(data):
                        try:
                            route[0].sendto(data[4:end], route[1])
                        except OSError:
                            stats.dropped["peer-send-failed"] += 1
                        stats.packets_to_peer += 1
                        stats.bytes_to_peer += end - 4
                    continue
            self.shell.from_client(data, FiveTuple(addr, local, Transport.UDP))


class RelaySocket:
    """The UDP socket of one relayed transport address, facing the peers."""

    def __init__(self, shell: Shell, sock: socket.socket, address: Address) -> None:
        self.shell = shell
        self.sock = sock
        self.address = address
        self.routes: dict[Address, Deliver] = {}  # peer -> ChannelData to the client
        self._v6 = sock.family == socket.AF_INET6

    @classmethod
    def open(cls, shell: Shell, address: Address, loop: asyncio.AbstractEventLoop) -> RelaySocket:
        sock = udp_socket(address)
        clear_dont_fragment(sock)
        relay = cls(shell, sock, address)
        loop.add_reader(sock.fileno(), relay._readable)
        return relay

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.routes.clear()

    def send(self, data: bytes, peer: Address, dont_fragment: bool = False) -> None:
        try:
            if dont_fragment:
                send_dont_fragment(self.sock, data, peer)
            else:
                self.sock.sendto(data, peer)
        except OSError:
            self.shell.stats.dropped["peer-send-failed"] += 1

    def _readable(self) -> None:
        sock, routes = self.sock, self.routes
        for _ in range(BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            if self._v6:
                addr = addr[:2]
            deliver = routes.get(addr)
            if deliver is not None:
                deliver(data)
            else:
                self.shell.from_peer(data, self.address, addr)
