"""The eBPF program forwards ChannelData for bound channels in the kernel, both ways, IPv4 and
IPv6, with exact payloads, addresses, checksums, TTLs and counters; everything else, and every
route after it goes down, reaches userspace sockets in the relay namespace unchanged."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Final, NamedTuple

import pytest

from turn_relay.offload import KernelOffload, Route, RouteCounters, Traffic

from .topology import (
    CLIENT4,
    CLIENT6,
    LISTENER4,
    LISTENER6,
    PEER4,
    PEER6,
    RELAYED4,
    RELAYED6,
    Topology,
    inside,
)

COUNT: Final = 1000
WINDOW: Final = 100
CHANNEL: Final = 0x4001
TIMEOUT: Final = 2.0
QUIET: Final = 0.3  # how long "nothing arrives" is watched for
IP_RECVTTL: Final = 12  # Linux <netinet/in.h>; not in Python's socket module before 3.12


class Ends(NamedTuple):
    """The four sockets of a route: client and peer, and the relay's own two (userspace)."""

    route: Route
    client: socket.socket
    peer: socket.socket
    listener: socket.socket
    relayed: socket.socket


def _route(family: int) -> Route:
    if family == socket.AF_INET:
        return Route(
            (CLIENT4, 40000), (LISTENER4, 3478), CHANNEL, (RELAYED4, 50000), (PEER4, 60000)
        )
    return Route((CLIENT6, 40000), (LISTENER6, 3478), CHANNEL, (RELAYED6, 50000), (PEER6, 60000))


def _udp(namespace: str, family: int, address: tuple[str, int]) -> socket.socket:
    with inside(namespace):
        sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(address)
    sock.settimeout(TIMEOUT)
    return sock


@contextlib.contextmanager
def ends(lab: Topology, family: int) -> Iterator[Ends]:
    route = _route(family)
    socks = (
        _udp(lab.client, family, route.client),
        _udp(lab.peer, family, route.peer),
        _udp(lab.relay, family, route.listener),
        _udp(lab.relay, family, route.relayed),
    )
    try:
        yield Ends(route, *socks)
    finally:
        for sock in socks:
            sock.close()


def payload(index: int) -> bytes:
    """Lengths 0-1200, odd and even, distinct contents (index first)."""
    length = (index * 37) % 1201
    body = struct.pack("!I", index) * (length // 4 + 1)
    return body[:length]


def channel_data(channel: int, data: bytes) -> bytes:
    return struct.pack("!HH", channel, len(data)) + data


def transfer(
    sender: socket.socket,
    destination: tuple[str, int],
    datagrams: list[bytes],
    receiver: socket.socket,
) -> list[tuple[bytes, tuple[str, int]]]:
    """Send in windows of WINDOW and collect every datagram; raises TimeoutError on a loss."""
    received: list[tuple[bytes, tuple[str, int]]] = []
    for start in range(0, len(datagrams), WINDOW):
        window = datagrams[start : start + WINDOW]
        for datagram in window:
            sender.sendto(datagram, destination)
        received.extend(receive(receiver) for _ in window)
    return received


def receive(sock: socket.socket) -> tuple[bytes, tuple[str, int]]:
    data, source = sock.recvfrom(4096)
    return data, (source[0], source[1])


def nothing_arrives(*socks: socket.socket) -> bool:
    for sock in socks:
        sock.settimeout(QUIET)
        try:
            sock.recvfrom(4096)
        except TimeoutError:
            continue
        finally:
            sock.settimeout(TIMEOUT)
        return False
    return True


FAMILIES = [pytest.param(socket.AF_INET, id="ipv4"), pytest.param(socket.AF_INET6, id="ipv6")]

#: (client and peer veths, relay veths): tx checksumming on = CHECKSUM_PARTIAL left for later.
CHECKSUMS = [
    pytest.param((True, True), id="partial-end-to-end"),
    pytest.param((False, False), id="full-checksums"),
    pytest.param((True, False), id="partial-resolved-at-relay-egress"),
]


@pytest.mark.parametrize("checksums", CHECKSUMS)
@pytest.mark.parametrize("family", FAMILIES)
def test_bound_channel_is_forwarded_both_ways_without_loss(
    lab: Topology, offload: KernelOffload, family: int, checksums: tuple[bool, bool]
) -> None:
    ends_tx, relay_tx = checksums
    lab.tx_checksumming(lab.client, "c0", ends_tx)
    lab.tx_checksumming(lab.peer, "p0", ends_tx)
    lab.tx_checksumming(lab.relay, "r0", relay_tx)
    lab.tx_checksumming(lab.relay, "r1", relay_tx)
    with ends(lab, family) as e:
        assert offload.route_up(e.route) is True
        data = [payload(i) for i in range(COUNT)]

        to_peer = transfer(
            e.client, e.route.listener, [channel_data(CHANNEL, d) for d in data], e.peer
        )
        assert to_peer == [(d, e.route.relayed) for d in data]

        to_client = transfer(e.peer, e.route.relayed, data, e.client)
        assert to_client == [(channel_data(CHANNEL, d), e.route.listener) for d in data]

        assert nothing_arrives(e.listener, e.relayed)
        total = sum(len(d) for d in data)
        assert offload.counters() == {
            e.route: RouteCounters(Traffic(COUNT, total), Traffic(COUNT, total))
        }


def _received_ttl(sock: socket.socket, family: int) -> tuple[bytes, int]:
    level, option = (
        (socket.IPPROTO_IP, socket.IP_TTL)
        if family == socket.AF_INET
        else (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)
    )
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(4))
    for cmsg_level, cmsg_type, cmsg_data in ancillary:
        if (cmsg_level, cmsg_type) == (level, option):
            return data, int.from_bytes(cmsg_data[:4], "little")
    raise AssertionError("no TTL / hop limit received")


def _ask_for_ttl(sock: socket.socket, family: int) -> None:
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)


def _set_ttl(sock: socket.socket, family: int, ttl: int) -> None:
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)


@pytest.mark.parametrize("family", FAMILIES)
def test_ttl_is_decremented_and_ttl_one_goes_to_userspace(
    lab: Topology, offload: KernelOffload, family: int
) -> None:
    with ends(lab, family) as e:
        offload.route_up(e.route)
        _ask_for_ttl(e.peer, family)
        _ask_for_ttl(e.client, family)
        _set_ttl(e.client, family, 9)
        e.client.sendto(channel_data(CHANNEL, b"ttl"), e.route.listener)
        assert _received_ttl(e.peer, family) == (b"ttl", 8)
        _set_ttl(e.peer, family, 20)
        e.peer.sendto(b"back", e.route.relayed)
        assert _received_ttl(e.client, family) == (channel_data(CHANNEL, b"back"), 19)

        _set_ttl(e.client, family, 1)
        e.client.sendto(channel_data(CHANNEL, b"last hop"), e.route.listener)
        assert receive(e.listener) == (channel_data(CHANNEL, b"last hop"), e.route.client)
        assert nothing_arrives(e.peer)


@pytest.mark.parametrize("family", FAMILIES)
def test_after_route_down_userspace_gets_everything(
    lab: Topology, offload: KernelOffload, family: int
) -> None:
    with ends(lab, family) as e:
        offload.route_up(e.route)
        transfer(e.client, e.route.listener, [channel_data(CHANNEL, b"x" * 10)] * 3, e.peer)
        transfer(e.peer, e.route.relayed, [b"y" * 7] * 2, e.client)

        final = offload.route_down(e.route)
        assert final == RouteCounters(Traffic(3, 30), Traffic(2, 14))
        assert offload.counters() == {}
        assert offload.route_down(e.route) is None

        messages = [channel_data(CHANNEL, payload(i)) for i in range(50)]
        assert transfer(e.client, e.route.listener, messages, e.listener) == [
            (m, e.route.client) for m in messages
        ]
        datagrams = [payload(i) for i in range(50)]
        assert transfer(e.peer, e.route.relayed, datagrams, e.relayed) == [
            (d, e.route.peer) for d in datagrams
        ]
        assert nothing_arrives(e.peer, e.client)


def _stun_binding_request() -> bytes:
    return struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, b"offloadtest!")


def _send_indication() -> bytes:
    return struct.pack("!HHI12s", 0x0016, 0, 0x2112A442, b"indication!!")


@pytest.mark.parametrize("family", FAMILIES)
def test_everything_else_passes_to_userspace_unchanged(
    lab: Topology, offload: KernelOffload, family: int
) -> None:
    with ends(lab, family) as e:
        offload.route_up(e.route)
        from_client = [
            _stun_binding_request(),
            _send_indication(),
            channel_data(CHANNEL + 1, b"an unbound channel"),
            channel_data(CHANNEL, b"padded") + b"\0\0",  # padding: left to userspace
            channel_data(CHANNEL, b"truncated")[:-2],  # shorter than its length field
            channel_data(CHANNEL, b"two") + channel_data(CHANNEL, b"messages"),
            b"\x40",  # too short for a header
        ]
        assert transfer(e.client, e.route.listener, from_client, e.listener) == [
            (m, e.route.client) for m in from_client
        ]
        # the same peer from another port is another peer: no route
        with inside(lab.peer):
            other = socket.socket(family, socket.SOCK_DGRAM)
        with other:
            other.bind((e.route.peer[0], e.route.peer[1] + 1))
            other.sendto(b"not bound", e.route.relayed)
            assert receive(e.relayed) == (b"not bound", (e.route.peer[0], e.route.peer[1] + 1))
        assert nothing_arrives(e.peer, e.client)
        assert offload.counters() == {e.route: RouteCounters()}


@pytest.mark.parametrize("family", FAMILIES)
def test_tcp_to_the_listener_is_untouched(
    lab: Topology, offload: KernelOffload, family: int
) -> None:
    route = _route(family)
    offload.route_up(route)
    with inside(lab.relay):
        server = socket.socket(family, socket.SOCK_STREAM)
    with inside(lab.client):
        client = socket.socket(family, socket.SOCK_STREAM)
    with server, client:
        server.bind(route.listener)
        server.listen(1)
        server.settimeout(TIMEOUT)
        client.settimeout(TIMEOUT)
        client.bind((route.client[0], 0))
        client.connect(route.listener)
        accepted, _ = server.accept()
        with accepted:
            client.sendall(channel_data(CHANNEL, b"over tcp"))
            assert accepted.recv(100) == channel_data(CHANNEL, b"over tcp")


def test_ipv4_client_with_ipv6_peer_is_not_offloaded(offload: KernelOffload) -> None:
    route = Route((CLIENT4, 40000), (LISTENER4, 3478), CHANNEL, (RELAYED6, 50000), (PEER6, 60000))
    assert offload.route_up(route) is False
    assert offload.counters() == {}


def test_route_up_again_keeps_counters(lab: Topology, offload: KernelOffload) -> None:
    with ends(lab, socket.AF_INET) as e:
        offload.route_up(e.route)
        transfer(e.client, e.route.listener, [channel_data(CHANNEL, b"abc")] * 4, e.peer)
        offload.route_up(e.route)
        transfer(e.client, e.route.listener, [channel_data(CHANNEL, b"abc")] * 1, e.peer)
        assert offload.counters()[e.route] == RouteCounters(Traffic(5, 15), Traffic())


def test_channel_outside_the_range_is_refused(offload: KernelOffload) -> None:
    route = _route(socket.AF_INET)._replace(channel=0x8000)
    with pytest.raises(ValueError, match="outside"):
        offload.route_up(route)


def test_close_detaches_from_every_interface(lab: Topology, bpf_object: Path) -> None:
    with inside(lab.relay):
        kernel = KernelOffload.open(["r0", "r1"], bpf_object)
        kernel.route_up(_route(socket.AF_INET))
        kernel.close()
    with ends(lab, socket.AF_INET) as e:
        e.client.sendto(channel_data(CHANNEL, b"after close"), e.route.listener)
        assert receive(e.listener) == (channel_data(CHANNEL, b"after close"), e.route.client)
        assert nothing_arrives(e.peer)


LOOPBACK_ROUTES = [
    pytest.param(
        Route(
            ("127.0.0.2", 40000),
            ("127.0.0.1", 3478),
            CHANNEL,
            ("127.0.0.1", 50000),
            ("127.0.0.3", 60000),
        ),
        id="ipv4",
    ),
    pytest.param(
        Route(("::1", 40000), ("::1", 3478), CHANNEL, ("::1", 50000), ("::1", 60000)), id="ipv6"
    ),
]


@pytest.mark.parametrize("route", LOOPBACK_ROUTES)
def test_on_loopback_the_rewritten_packet_is_delivered_locally(
    lab: Topology, bpf_object: Path, route: Route
) -> None:
    """Relay, client and peer on one host: the program hands the packet back to the stack."""
    family = socket.AF_INET6 if ":" in route.client[0] else socket.AF_INET
    with inside(lab.relay):
        kernel = KernelOffload.open(["lo"], bpf_object)
    try:
        client, peer, listener, relayed = (
            _udp(lab.relay, family, address)
            for address in (route.client, route.peer, route.listener, route.relayed)
        )
        with client, peer, listener, relayed:
            assert kernel.route_up(route) is True
            data = [payload(i) for i in range(COUNT)]
            messages = [channel_data(CHANNEL, d) for d in data]
            assert transfer(client, route.listener, messages, peer) == [
                (d, route.relayed) for d in data
            ]
            assert transfer(peer, route.relayed, data, client) == [
                (m, route.listener) for m in messages
            ]
            assert nothing_arrives(listener, relayed)
            total = sum(len(d) for d in data)
            assert kernel.counters() == {
                route: RouteCounters(Traffic(COUNT, total), Traffic(COUNT, total))
            }
    finally:
        kernel.close()
