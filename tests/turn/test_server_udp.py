"""The asyncio shell over real loopback UDP sockets: relaying, fast path, expiry, garbage."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

import pytest
from relay_harness import (
    WireClient,
    echo_peer,
    eventually,
    port_is_free,
    relay_config,
    running,
)

from stun_server.wire import Message, MessageClass, Method, encode, parse
from stun_server.wire import attributes as attrs
from turn_relay.config import AllocationConfig
from turn_relay.core.actions import Action
from turn_relay.core.allocation import FiveTuple, Transport

pytestmark = pytest.mark.asyncio


async def test_send_indication_and_data_indication() -> None:
    async with running(relay_config()) as server, echo_peer() as (peer, echo):
        (address,) = server.listening(Transport.UDP)
        client = await WireClient.over_udp(address)
        relayed = await client.allocate()
        assert relayed[1] in range(24000, 24200)
        assert (await client.permit(peer)).cls is MessageClass.SUCCESS
        client.send_indication(peer, b"hello")
        message = parse(await client.receive())
        assert message.method == Method.DATA
        assert message.get(attrs.Data) == attrs.Data(b"echo:hello")
        assert message.get(attrs.XorPeerAddress) == attrs.XorPeerAddress(*peer)
        assert echo.received == [(b"hello", relayed)]  # the peer saw the relayed address
        await client.close()


async def test_channel_data_takes_the_fast_path_both_ways() -> None:
    async with running(relay_config()) as server, echo_peer() as (peer, _):
        client = await WireClient.over_udp(server.listening(Transport.UDP)[0])
        await client.allocate()
        assert (await client.bind(0x4001, peer)).cls is MessageClass.SUCCESS
        core_before = server.core.stats.packets_to_peer
        for index in range(20):
            client.channel_data(0x4001, b"m%d" % index)
            reply = await client.receive()
            assert (
                reply
                == b"\x40\x01" + len(b"echo:m%d" % index).to_bytes(2, "big") + b"echo:m%d" % index
            )
        assert server.core.stats.packets_to_peer == core_before  # the core saw none of them
        assert server.stats.packets_to_peer == 20
        assert server.stats.packets_to_client == 20
        metrics = server.metrics()
        assert 'turnkit_relay_relayed_packets_total{direction="to_peer"} 20' in metrics
        assert "turnkit_relay_allocations_active 1" in metrics
        await client.close()


async def test_refresh_zero_closes_the_relay_socket() -> None:
    async with running(relay_config()) as server:
        client = await WireClient.over_udp(server.listening(Transport.UDP)[0])
        relayed = await client.allocate()
        assert not port_is_free(relayed[1])
        assert (await client.refresh(0)).get(attrs.Lifetime) == attrs.Lifetime(0)
        assert server.relays == {}
        assert port_is_free(relayed[1])
        await client.close()


async def test_a_relay_socket_is_read_from_its_first_permission_on() -> None:
    """Before the first permission the relay socket is bound but unread; what a peer sent
    meanwhile is discarded then (RFC 8656 9: no permission, no relaying), never delivered late."""
    async with running(relay_config()) as server, echo_peer() as (peer, _):
        client = await WireClient.over_udp(server.listening(Transport.UDP)[0])
        relayed = await client.allocate()
        relay = server.relays[relayed]
        assert not relay.active and not port_is_free(relayed[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as early:
            early.bind(("127.0.0.1", 0))
            for index in range(50):
                early.sendto(b"too early %d" % index, relayed)
            await asyncio.sleep(0.05)
            assert server.core.stats.dropped["no-permission"] == 0  # nobody read them
            assert (await client.permit(early.getsockname())).cls is MessageClass.SUCCESS
            assert server.relays[relayed].active  # (not `relay.active`: mypy narrowed that)
            parked = server.stats.dropped["peer-before-permission"]
            assert 1 <= parked <= 4  # the idle buffer held a few, the kernel dropped the rest
            early.sendto(b"in time", relayed)
            message = parse(await client.receive())
        assert message.get(attrs.Data) == attrs.Data(b"in time")  # none of the early ones
        assert (await client.permit(peer)).cls is MessageClass.SUCCESS
        assert server.stats.dropped["peer-before-permission"] == parked  # drained once only
        await client.close()


async def test_an_unused_allocation_closes_without_ever_being_read() -> None:
    async with running(relay_config()) as server:
        client = await WireClient.over_udp(server.listening(Transport.UDP)[0])
        relayed = await client.allocate()
        assert not server.relays[relayed].active
        assert (await client.refresh(0)).get(attrs.Lifetime) == attrs.Lifetime(0)
        assert server.relays == {} and port_is_free(relayed[1])
        await client.close()


async def test_allocation_expiry_is_driven_by_the_shell_timer() -> None:
    short = AllocationConfig(default_lifetime=1, max_lifetime=1)
    async with running(relay_config(allocation=short)) as server:
        client = await WireClient.over_udp(server.listening(Transport.UDP)[0])
        relayed = await client.allocate()
        assert len(server.relays) == 1
        await eventually(lambda: not server.relays, timeout=3.0)
        assert port_is_free(relayed[1])
        assert len(server.core.table) == 0
        await client.close()


async def test_bind_failure_on_a_busy_relay_port_moves_to_another() -> None:
    config = relay_config(ports=(24300, 24301))
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 24300))
    try:
        async with running(config) as server:
            removed = server.core.stats.allocations_removed
            for _ in range(30):  # the pool is drawn at random: go on until 24300 was tried
                client = await WireClient.over_udp(server.listening(Transport.UDP)[0])
                assert await client.allocate() == ("127.0.0.1", 24301)
                await client.refresh(0)
                await client.close()
                if removed["bind-failed"]:
                    break
            assert removed["bind-failed"] == 1  # then 24300 sits in quarantine
    finally:
        busy.close()


async def test_garbage_truncated_and_oversized_datagrams(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with running(relay_config()) as server, echo_peer() as (peer, _):
        address = server.listening(Transport.UDP)[0]
        client = await WireClient.over_udp(address)
        relayed = await client.allocate()
        await client.bind(0x4000, peer)
        valid = encode(Message(Method.BINDING, MessageClass.REQUEST))
        junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            samples = [os.urandom(n) for n in (0, 1, 3, 4, 19, 20, 21, 200, 1400)]
            samples += [valid[:n] for n in range(len(valid))]
            samples += [b"\x40\x00\xff\xff", b"\x00\x01\xff\xfc" + valid[4:], bytes(65507)]
            samples += [b"\x40\x00\x00\x10" + bytes(8), b"\x7f\xff\x00\x00", b"\xff" * 64]
            for sample in samples:
                junk.sendto(sample, address)  # to the listener, from a stranger
                junk.sendto(sample, relayed)  # to the relay socket, from a non-permitted peer
                client.send_raw(sample)  # from the client, on its own 5-tuple
            await asyncio.sleep(0.2)
        finally:
            junk.close()
        response = await client.exchange(Message(Method.BINDING, MessageClass.REQUEST), sign=False)
        assert response.cls is MessageClass.SUCCESS
        assert len(server.relays) == 1 and len(server.core.table) == 1
        await client.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_core_exception_costs_one_packet(monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(relay_config()) as server:
        client = await WireClient.over_udp(server.listening(Transport.UDP)[0])
        real = server.core.receive
        calls = 0

        def flaky(data: bytes, five_tuple: FiveTuple, now: float) -> list[Action]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("simulated core bug")
            return real(data, five_tuple, now)

        monkeypatch.setattr(server.core, "receive", flaky)
        client.send_raw(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12))
        await client.allocate()
        assert server.stats.dropped["internal-error"] == 1
        await client.close()


async def test_even_port_reservation_binds_the_next_port_until_redeemed() -> None:
    async with running(relay_config()) as server:
        address = server.listening(Transport.UDP)[0]
        rtp = await WireClient.over_udp(address)
        response = await rtp.request(
            Method.ALLOCATE, attrs.RequestedTransport(17), attrs.EvenPort(reserve=True)
        )
        relayed, token = response.get(attrs.XorRelayedAddress), response.get(attrs.ReservationToken)
        assert relayed is not None and token is not None and relayed.port % 2 == 0
        assert not port_is_free(relayed.port + 1)  # held for the token
        rtcp = await WireClient.over_udp(address)
        assert await rtcp.allocate(token) == ("127.0.0.1", relayed.port + 1)
        assert len(server.relays) == 2
        await rtcp.refresh(0)
        assert port_is_free(relayed.port + 1)
        await rtp.close()
        await rtcp.close()


async def test_send_and_data_indications_take_the_fast_path_once_permitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After CreatePermission the sockets relay Send indications (XOR-PEER-ADDRESS and DATA
    in either order, as coturn's uclient sends DATA first) and Data indications back without
    the core; DONT-FRAGMENT still goes through the core; the allocation's end ends it. The
    peer is not on the relay's own address: Send indications there always go through the core,
    which checks the port (`test_own_peers`)."""
    async with running(relay_config()) as server, echo_peer("127.0.0.2") as (peer, echo):
        client = await WireClient.over_udp(server.listening(Transport.UDP)[0])
        relayed = await client.allocate()
        assert (await client.permit(peer)).cls is MessageClass.SUCCESS
        (listener,) = server.udp_listeners.values()
        allocation = server.core.table.by_relay[relayed]
        socket_and_traffic = (server.relays[relayed].sock, allocation.traffic)
        assert listener.permits == {(client.local, peer[0]): socket_and_traffic}
        assert server.relays[relayed].permitted == {peer[0]}
        to_core: list[bytes] = []
        from_peers: list[bytes] = []
        receive, receive_from_peer = server.core.receive, server.core.receive_from_peer

        def spy(data: bytes, five_tuple: FiveTuple, now: float) -> list[Action]:
            to_core.append(data)
            return receive(data, five_tuple, now)

        def spy_peer(data: bytes, relay: Any, source: Any, now: float) -> list[Action]:
            from_peers.append(data)
            return receive_from_peer(data, relay, source, now)

        monkeypatch.setattr(server.core, "receive", spy)
        monkeypatch.setattr(server.core, "receive_from_peer", spy_peer)
        for index, data_first in enumerate((False, True, False)):
            payload = b"s%d" % index
            pair: list[attrs.AnyAttribute] = [attrs.XorPeerAddress(*peer), attrs.Data(payload)]
            send = Message(Method.SEND, MessageClass.INDICATION)
            send.add(*(pair[::-1] if data_first else pair))
            client.send_raw(encode(send, fingerprint=index == 2))
            reply = parse(await client.receive())
            assert reply.get(attrs.Data) == attrs.Data(b"echo:" + payload)
            assert reply.get(attrs.XorPeerAddress) == attrs.XorPeerAddress(*peer)
        assert to_core == [] and from_peers == []
        assert [data for data, _ in echo.received] == [b"s0", b"s1", b"s2"]
        assert server.stats.packets_to_peer == 3 and server.stats.packets_to_client == 3

        df = Message(Method.SEND, MessageClass.INDICATION)
        df.add(attrs.XorPeerAddress(*peer), attrs.Data(b"df"), attrs.DontFragment())
        client.send_raw(encode(df))
        assert parse(await client.receive()).get(attrs.Data) == attrs.Data(b"echo:df")
        assert len(to_core) == 1  # the core decided (it supports DONT-FRAGMENT here)

        await client.refresh(0)
        assert listener.permits == {} and server.relays == {}
        await client.close()


async def test_without_a_permission_send_indications_still_reach_the_core_and_die() -> None:
    async with running(relay_config()) as server, echo_peer() as (peer, echo):
        client = await WireClient.over_udp(server.listening(Transport.UDP)[0])
        await client.allocate()
        client.send_indication(peer, b"nope")
        await eventually(lambda: server.core.stats.dropped["no-permission"] == 1)
        assert echo.received == []
        await client.close()


async def test_an_expired_permission_leaves_the_fast_path() -> None:
    short = AllocationConfig(permission_lifetime=1)
    async with (
        running(relay_config(allocation=short)) as server,
        echo_peer("127.0.0.2") as (peer, echo),
    ):
        client = await WireClient.over_udp(server.listening(Transport.UDP)[0])
        relayed = await client.allocate()
        await client.permit(peer)
        (listener,) = server.udp_listeners.values()
        assert listener.permits
        await eventually(lambda: not listener.permits, timeout=3.0)
        assert server.relays[relayed].permitted == set()
        client.send_indication(peer, b"late")
        await eventually(lambda: server.core.stats.dropped["no-permission"] == 1)
        assert echo.received == []
        await client.close()
