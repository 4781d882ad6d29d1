"""UDP sockets of the relay shell: client listeners and relay sockets, with the fast path.

Both use plain non-blocking sockets watched with ``loop.add_reader`` rather than asyncio
transports: binding a relay port is then synchronous (a failure is known before the Allocate
response leaves), sends never queue (UDP: a full buffer drops, as the network would), and a
readable socket is drained in bounded batches.

Fast path: a ChannelData datagram whose (client, channel) is routed goes straight to the peer
with one dict lookup; a peer datagram on a routed (relay, peer) goes straight to the client.
Likewise a Send indication in the common shape whose (client, peer IP) is permitted, and a
datagram from a permitted peer IP without a channel (as a Data indication). Everything else
is handed to the shell, which asks the sans-I/O core. Reads stay ``recvfrom``: recvmmsg (the
STUN server's `stun_server.mmsg`) measured no cheaper per datagram here.

Sending: consecutive datagrams of one batch that go to the same destination from the same
socket are sent together (`send_many`): with UDP segmentation offload (Linux UDP_SEGMENT, the
way QUIC servers batch), a run of equal-sized datagrams is one ``sendmsg`` whose segments the
kernel (or the NIC) splits into separate datagrams. The receivers see ordinary datagrams; the
relay pays the network stack once per run instead of once per datagram (per packet, the send
cost measured 4.1 us alone and 0.8-1.0 us in runs of 8-32 on this machine's loopback). A run of
one, or a platform without UDP_SEGMENT, uses plain ``sendto``; the first datagram of each
wake-up leaves at once (latency at low rates), only what follows it in the same batch waits.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from turn_relay.core.allocation import Address, FiveTuple, Traffic, Transport, family_of
from turn_relay.core.fastpath import DataIndicationEncoder, SendIndicationReader

from .metrics import DataPathStats

BATCH = 256  # datagrams read per readiness callback before yielding to the loop
MAX_DATAGRAM = 65536
# Receive buffer of a relay socket, bytes asked for (the kernel doubles it and caps it at
# net.core.rmem_max). The default (208 KiB) holds about 200 small datagrams: fewer than a
# peer's answers to one stream client's read budget. Memory is used only while queued.
RELAY_RECEIVE_BUFFER = 1 << 20
IDLE_RECEIVE_BUFFER = 1  # before the first permission: the kernel's minimum (about 2.3 KiB)

# Linux values; Python 3.11's socket module does not export them.
_IP_MTU_DISCOVER = 10
_IP_PMTUDISC_DONT = 0
_IP_PMTUDISC_DO = 2
CAN_SET_DONT_FRAGMENT = sys.platform.startswith("linux")
_SOCK_NONBLOCK: int = getattr(socket, "SOCK_NONBLOCK", 0)  # non-blocking from socket(): no fcntl

_MAX_INDICATED_PEERS = 1024  # per relay socket: peer addresses with a cached sender

# UDP segmentation offload (Linux 4.18+): SOL_UDP / UDP_SEGMENT, not in Python 3.11's socket.
_SOL_UDP = 17
_UDP_SEGMENT = 103
_GSO_MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS of older kernels (newer ones allow 128)
_GSO_MAX_BYTES = 60000  # one run stays well below the 64 KiB of a UDP datagram
_GSO_UNSUPPORTED = (errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.ENOSYS)


class _Gso:
    enabled = sys.platform.startswith("linux")


Deliver = Callable[[list[bytes]], None]  # a run of payloads from one peer, in order


def send_many(
    sock: socket.socket,
    address: Address,
    payloads: Sequence[bytes | memoryview],
    header: bytes = b"",
) -> int:
    """Send ``payloads`` to ``address`` in order, each behind ``header`` + its 2-byte length
    when ``header`` (a channel number) is given; returns how many could not be sent."""
    count = len(payloads)
    if count == 1:  # the common case at call rates: one datagram per wake-up
        return send_one(sock, address, payloads[0], header)
    failed = index = 0
    while index < count:
        first = payloads[index]
        size = len(first)
        segment = size + 4 if header else size
        end = index + 1
        if _Gso.enabled and segment:
            limit = min(count, index + min(_GSO_MAX_SEGMENTS, _GSO_MAX_BYTES // segment))
            while end < limit and len(payloads[end]) == size:
                end += 1
        if end - index == 1:
            failed += send_one(sock, address, first, header)
        else:
            run = payloads[index:end]
            if header:
                prefix = header + size.to_bytes(2, "big")
                run = [part for payload in run for part in (prefix, payload)]
            failed += _send_segments(sock, address, run, segment, header)
        index = end
    return failed


def send_one(
    sock: socket.socket, address: Address, payload: bytes | memoryview, header: bytes = b""
) -> int:
    """`send_many` for one payload: 1 if it could not be sent, else 0."""
    try:
        if header:
            sock.sendto(header + len(payload).to_bytes(2, "big") + payload, address)
        else:
            sock.sendto(payload, address)
    except OSError:
        return 1
    return 0


def _send_segments(
    sock: socket.socket,
    address: Address,
    parts: Sequence[bytes | memoryview],
    segment: int,
    header: bytes,
) -> int:
    try:
        sock.sendmsg(
            parts, [(_SOL_UDP, _UDP_SEGMENT, segment.to_bytes(2, sys.byteorder))], 0, address
        )
        return 0
    except OSError as exc:
        if exc.errno in _GSO_UNSUPPORTED:
            _Gso.enabled = False
    # not for this route (e.g. a segment above the path MTU, no checksum offload): one by one
    failed = 0
    step = 2 if header else 1
    for index in range(0, len(parts), step):
        try:
            sock.sendto(b"".join(parts[index : index + step]), address)
        except OSError:
            failed += 1
    return failed


class Shell(Protocol):
    """What the sockets need from the server: the slow path into the core."""

    stats: DataPathStats

    def from_client(self, data: bytes, five_tuple: FiveTuple) -> None: ...

    def from_peer(self, data: bytes, relay: Address, peer: Address) -> None: ...


def udp_socket(address: Address, *, reuse_port: bool = False) -> socket.socket:
    """A non-blocking UDP socket bound to ``address``; IPv6 sockets are IPv6-only.

    ``reuse_port``: share the address with the other worker processes (SO_REUSEPORT).
    """
    family = socket.AF_INET6 if family_of(address[0]) == 2 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM | _SOCK_NONBLOCK)
    try:
        if not _SOCK_NONBLOCK:
            sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
        # (client, channel) -> (relay socket, peer, the allocation's traffic): ChannelData
        # routes from this listener
        self.routes: dict[tuple[Address, int], tuple[socket.socket, Address, Traffic]] = {}
        # (client, peer IP) -> (relay socket, traffic): where Send indications may go
        # without the core
        self.permits: dict[tuple[Address, str], tuple[socket.socket, Traffic]] = {}
        self.send_indications = SendIndicationReader()
        self.data_indications = DataIndicationEncoder()
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
        sock, routes, permits, local = self.sock, self.routes, self.permits, self.address
        send_target = self.send_indications.target
        # the run being collected: consecutive payloads from one relay socket to one peer
        out: socket.socket | None = None
        to: Address | None = None
        run: list[bytes] = []
        packets = octets = 0
        try:
            for _ in range(BATCH):
                try:
                    data, addr = sock.recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    continue  # e.g. an ICMP error queued on the socket
                if self._v6:
                    addr = addr[:2]
                first = data[0] if data else 0xFF
                if 0x40 <= first <= 0x7F and len(data) >= 4:  # routes hold valid channels only
                    route = routes.get((addr, (first << 8) | data[1]))
                    if route is not None:
                        end = 4 + ((data[2] << 8) | data[3])
                        if end <= len(data):
                            traffic = route[2]
                            traffic.packets_to_peer += 1
                            traffic.bytes_to_peer += end - 4
                            if not packets:  # the first of this wake-up leaves at once
                                self._send_one(route[0], data[4:end], route[1])
                                packets, octets = 1, end - 4
                                continue
                            if route[0] is not out or route[1] != to:
                                if run:
                                    self._forward(out, to, run)
                                out, to, run = route[0], route[1], []
                            run.append(data[4:end])
                            packets += 1
                            octets += end - 4
                        continue
                elif first == 0 and permits and len(data) >= 36 and data[1] == 0x16:  # Send
                    target = send_target(data)
                    if target is not None:
                        peer, start, end = target
                        permit = permits.get((addr, peer[0]))
                        if permit is not None:
                            relay, traffic = permit
                            traffic.packets_to_peer += 1
                            traffic.bytes_to_peer += end - start
                            if not packets:  # the first of this wake-up leaves at once
                                self._send_one(relay, data[start:end], peer)
                                packets, octets = 1, end - start
                                continue
                            if relay is not out or peer != to:
                                if run:
                                    self._forward(out, to, run)
                                out, to, run = relay, peer, []
                            run.append(data[start:end])
                            packets += 1
                            octets += end - start
                            continue
                if run:  # keep the order: what the core does may change the routes
                    self._forward(out, to, run)
                    out, to, run = None, None, []
                self.shell.from_client(data, FiveTuple(addr, local, Transport.UDP))
        finally:
            if run:
                self._forward(out, to, run)
            if packets:
                stats = self.shell.stats
                stats.packets_to_peer += packets
                stats.bytes_to_peer += octets

    def _send_one(self, sock: socket.socket, payload: bytes, peer: Address) -> None:
        if send_one(sock, peer, payload):
            self.shell.stats.dropped["peer-send-failed"] += 1

    def _forward(self, sock: socket.socket | None, peer: Address | None, run: list[bytes]) -> None:
        assert sock is not None and peer is not None
        failed = send_many(sock, peer, run)
        if failed:
            self.shell.stats.dropped["peer-send-failed"] += failed


class RelaySocket:
    """The UDP socket of one relayed transport address, facing the peers.

    Opening binds the port (with the kernel's smallest receive buffer) and nothing else. Until
    the allocation's first permission the socket is not read: RFC 8656 drops whatever a peer
    sends before then, and most allocations (relay candidates a WebRTC client gathers but never
    uses) never get one. `activate`, on the first permission, sizes the receive buffer, clears
    DF, discards what queued up meanwhile and starts reading.
    """

    def __init__(
        self,
        shell: Shell,
        sock: socket.socket,
        address: Address,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.shell = shell
        self.sock = sock
        self.address = address
        self._idle_loop = loop  # set until `activate`: the loop that will read the socket
        self.routes: dict[Address, Deliver] = {}  # peer -> ChannelData to the client
        self.traffic: Traffic | None = None  # the allocation's: what the fast path delivered
        self.after_batch: Callable[[], None] | None = None  # e.g. write a stream's queued frames
        # Data indications without the core: permitted peer IPs, a sender per peer seen
        self.permitted: set[str] = set()
        self.indicated: dict[Address, Deliver] = {}
        self._indications: Callable[[Address], Deliver] | None = None
        self._v6 = sock.family == socket.AF_INET6

    @classmethod
    def open(cls, shell: Shell, address: Address, loop: asyncio.AbstractEventLoop) -> RelaySocket:
        """Bind ``address`` with the smallest receive buffer; reading starts with `activate`.

        The small buffer bounds what strangers can park in the kernel for allocations nobody
        uses (one or two datagrams each, instead of the default 208 KiB).
        """
        sock = udp_socket(address)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, IDLE_RECEIVE_BUFFER)
        return cls(shell, sock, address, loop)

    @property
    def active(self) -> bool:
        return self._idle_loop is None

    def activate(self) -> None:
        """Start relaying (the first permission): buffer, DF, stale datagrams out, read."""
        loop = self._idle_loop
        if loop is None:
            return
        self._idle_loop = None
        sock = self.sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RELAY_RECEIVE_BUFFER)
        clear_dont_fragment(sock)
        stale = 0
        for _ in range(BATCH):  # sent before any permission existed: dropped (RFC 8656 9);
            try:  # the idle buffer holds a few at most, far fewer than BATCH
                sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. a queued ICMP error
                continue
            stale += 1
        if stale:
            self.shell.stats.dropped["peer-before-permission"] += stale
        loop.add_reader(sock.fileno(), self._readable)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._idle_loop is None:
            loop.remove_reader(self.sock.fileno())
        self._idle_loop = None
        self.sock.close()
        self.routes.clear()
        self.permitted.clear()
        self.indicated.clear()

    def permit(self, ip: str, indications: Callable[[Address], Deliver]) -> None:
        """Datagrams from ``ip`` go to the client as Data indications made by a sender from
        ``indications`` (unless a channel route for the peer takes them)."""
        self.permitted.add(ip)
        self._indications = indications

    def revoke(self, ip: str) -> None:
        self.permitted.discard(ip)
        self.indicated = {peer: d for peer, d in self.indicated.items() if peer[0] != ip}

    def send(self, data: bytes, peer: Address, dont_fragment: bool = False) -> None:
        self.activate()  # the core sends only to permitted peers: this is a no-op then
        try:
            if dont_fragment:
                send_dont_fragment(self.sock, data, peer)
            else:
                self.sock.sendto(data, peer)
        except OSError:
            self.shell.stats.dropped["peer-send-failed"] += 1

    def _readable(self) -> None:
        sock, routes = self.sock, self.routes
        current: Deliver | None = None  # the run being collected: consecutive, one peer
        run: list[bytes] = []
        waited = True  # nothing delivered yet in this wake-up: the first goes at once
        delivered = delivered_bytes = 0
        try:
            for _ in range(BATCH):
                try:
                    data, addr = sock.recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    continue
                if self._v6:
                    addr = addr[:2]
                deliver = routes.get(addr) or self.indicated.get(addr)
                if deliver is None and addr[0] in self.permitted:
                    deliver = self._indicate(addr)
                if deliver is not None:
                    delivered += 1
                    delivered_bytes += len(data)
                    if waited:
                        waited = False
                        deliver([data])
                        continue
                    if deliver is not current:
                        if current is not None:
                            current(run)
                        current, run = deliver, []
                    run.append(data)
                    continue
                if current is not None:
                    current(run)
                    current, run = None, []
                self.shell.from_peer(data, self.address, addr)
        finally:
            if current is not None:
                current(run)
            if self.after_batch is not None:
                self.after_batch()
            traffic = self.traffic
            if delivered and traffic is not None:
                traffic.packets_to_client += delivered
                traffic.bytes_to_client += delivered_bytes

    def _indicate(self, peer: Address) -> Deliver | None:
        if self._indications is None:
            return None
        deliver = self._indications(peer)
        if len(self.indicated) < _MAX_INDICATED_PEERS:
            self.indicated[peer] = deliver
        return deliver
