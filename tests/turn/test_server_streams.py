"""TURN over TCP and TLS through the real shell: framing, padding, close, garbage, no leaks."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from relay_harness import (
    WireClient,
    echo_peer,
    eventually,
    free_port,
    insecure_client_context,
    port_is_free,
    relay_config,
    running,
    write_self_signed,
)

from stun_server.wire import Message, MessageClass, Method, encode, parse
from stun_server.wire import attributes as attrs
from turn_relay.core.allocation import Transport
from turn_relay.shell.datagrams import BATCH

pytestmark = pytest.mark.asyncio


async def test_tcp_allocation_with_padded_channel_data() -> None:
    async with running(relay_config()) as server, echo_peer() as (peer, _):
        client = await WireClient.over_stream(server.listening(Transport.TCP)[0])
        await client.allocate()
        assert (await client.bind(0x4000, peer)).cls is MessageClass.SUCCESS
        client.channel_data(0x4000, b"abcde", pad=True)  # 5 bytes + 3 padding
        assert await client.receive() == b"\x40\x00\x00\x0aecho:abcde\x00\x00"
        client.channel_data(0x4000, b"wxyz", pad=True)
        assert await client.receive() == b"\x40\x00\x00\x09echo:wxyz\x00\x00\x00"
        assert server.stats.packets_to_peer == 2  # the stream fast path
        await client.close()


async def test_frames_split_byte_by_byte_and_coalesced() -> None:
    async with running(relay_config()) as server, echo_peer() as (peer, _):
        client = await WireClient.over_stream(server.listening(Transport.TCP)[0])
        await client.allocate()
        await client.permit(peer)
        send = Message(Method.SEND, MessageClass.INDICATION)
        send.add(attrs.XorPeerAddress(*peer), attrs.Data(b"split"))
        assert client.writer is not None
        for byte in encode(send):
            client.writer.write(bytes([byte]))
            await client.writer.drain()
        assert parse(await client.receive()).get(attrs.Data) == attrs.Data(b"echo:split")
        client.send_raw(encode(send) * 3)  # three frames in one write
        for _ in range(3):
            assert parse(await client.receive()).get(attrs.Data) == attrs.Data(b"echo:split")
        await client.close()


class _CountingTransport:
    """Wraps a transport (uvloop's cannot take attributes) and counts write calls."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self._transport.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        self.writes += 1
        self._transport.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def test_stream_channel_data_uses_the_route_dicts_and_batches_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stream data path: routed ChannelData never reaches the core (one dict lookup on the
    connection's routes, one sendto), a burst bigger than the per-iteration read budget loses
    nothing, and the peer's answers are written per relay-socket batch, not one by one."""
    frames = 1000  # 16 bytes each: 16 KiB, twice the read budget
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer_socket:
        peer_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        peer_socket.bind(("127.0.0.1", 0))
        peer_socket.setblocking(False)
        peer = peer_socket.getsockname()
        async with running(relay_config()) as server:
            client = await WireClient.over_stream(server.listening(Transport.TCP)[0])
            relayed = await client.allocate()
            await client.bind(0x4002, peer)
            (connection,) = server.connections.values()
            relay = server.relays[relayed]
            assert connection.routes == {0x4002: (relay.sock, peer)}
            assert set(relay.routes) == {peer}
            assert relay.after_batch == connection.flush
            counting = _CountingTransport(connection.transport)
            connection.transport = counting  # type: ignore[assignment]
            seen_by_core: list[bytes] = []
            receive = server.core.receive

            def spy(data: bytes, five_tuple: Any, now: float) -> Any:
                seen_by_core.append(data)
                return receive(data, five_tuple, now)

            monkeypatch.setattr(server.core, "receive", spy)
            payloads = [b"m%010d\x00" % i for i in range(frames)]
            client.send_raw(b"".join(b"\x40\x02\x00\x0c" + p for p in payloads))
            received: list[bytes] = []
            deadline = time.monotonic() + 5
            while len(received) < frames:
                assert time.monotonic() < deadline, f"the peer got {len(received)} of {frames}"
                try:
                    data, source = peer_socket.recvfrom(100)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                    continue
                assert source == relayed
                received.append(data)
            assert received == payloads
            assert seen_by_core == []
            assert server.stats.packets_to_peer == frames
            for data in received:  # all answers queued at the relay socket before it reads
                peer_socket.sendto(b"echo:" + data, relayed)
            replies = [await client.receive() for _ in range(frames)]
            assert replies == [b"\x40\x02\x00\x11echo:" + p + b"\x00\x00\x00" for p in payloads]
            assert server.stats.packets_to_client == frames
            assert 0 < counting.writes <= 2 * frames // BATCH  # one write per batch read
            await client.close()


async def test_closing_the_connection_deletes_the_allocation() -> None:
    async with running(relay_config()) as server:
        client = await WireClient.over_stream(server.listening(Transport.TCP)[0])
        relayed = await client.allocate()
        assert len(server.connections) == 1 and len(server.relays) == 1
        await client.close()
        await eventually(lambda: not server.connections and not server.relays)
        assert len(server.core.table) == 0
        assert server.core.stats.allocations_removed["connection-closed"] == 1
        assert port_is_free(relayed[1])


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xff\xff\xff", b"\x80\x00\x00\x00", b"\xc0" + bytes(100)],
    ids=["ff", "80", "c0"],
)
async def test_garbage_on_the_stream_closes_only_that_connection(garbage: bytes) -> None:
    async with running(relay_config()) as server:
        address = server.listening(Transport.TCP)[0]
        good = await WireClient.over_stream(address)
        await good.allocate()
        bad = await WireClient.over_stream(address)
        await bad.allocate()
        bad.send_raw(garbage)
        assert await bad.receive() == b""  # the relay hung up
        await eventually(lambda: len(server.connections) == 1 and len(server.relays) == 1)
        response = await good.refresh(600)
        assert response.cls is MessageClass.SUCCESS
        await good.close()
        await bad.close()


async def test_truncated_frame_then_close_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with running(relay_config()) as server:
        address = server.listening(Transport.TCP)[0]
        for claim in (
            b"\x00\x03\xff\xfc\x21\x12\xa4\x42" + bytes(1000),
            b"\x40\x00\xff\xff" + bytes(7),
        ):
            client = await WireClient.over_stream(address)
            client.send_raw(claim)  # promises 64 KiB, sends a little, goes away
            await asyncio.sleep(0.05)
            await client.close()
        await eventually(lambda: not server.connections)
        assert server.relays == {}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_maximum_size_frames_are_accepted() -> None:
    async with running(relay_config()) as server, echo_peer() as (peer, echo):
        client = await WireClient.over_stream(server.listening(Transport.TCP)[0])
        await client.allocate()
        await client.bind(0x4000, peer)
        client.channel_data(0x4000, bytes(60000), pad=True)
        reply = await client.receive()
        assert reply[:4] == b"\x40\x00" + (60005).to_bytes(2, "big")
        assert echo.received[-1][0] == bytes(60000)
        await client.close()


async def test_tls_listener(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    config = relay_config(tls_port=free_port(), cert=cert, key=key)
    async with running(config) as server, echo_peer() as (peer, _):
        (address,) = server.listening(Transport.TLS)
        client = await WireClient.over_stream(address, tls=insecure_client_context())
        await client.allocate()
        await client.bind(0x4000, peer)
        client.channel_data(0x4000, b"secure", pad=True)
        assert await client.receive() == b"\x40\x00\x00\x0becho:secure\x00"
        (five_tuple,) = server.connections
        assert five_tuple.transport is Transport.TLS
        await client.close()
        await eventually(lambda: not server.relays)


async def test_tls_handshake_garbage_does_not_hurt(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    config = relay_config(tls_port=free_port(), cert=cert, key=key)
    async with running(config) as server:
        (address,) = server.listening(Transport.TLS)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"\x16\x03\x01\x00\x05hello-not-tls" * 10)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) is not None
        writer.close()
        client = await WireClient.over_stream(address, tls=insecure_client_context())
        await client.allocate()
        await client.close()
        await eventually(lambda: not server.connections)


async def test_stop_closes_every_socket() -> None:
    config = relay_config()
    async with running(config) as server:
        udp = await WireClient.over_udp(server.listening(Transport.UDP)[0])
        tcp = await WireClient.over_stream(server.listening(Transport.TCP)[0])
        relays = [await udp.allocate(), await tcp.allocate()]
        listen_port = config.listen.udp_port
    assert server.relays == {} and server.connections == {} and server.udp_listeners == {}
    assert all(port_is_free(port) for _, port in relays)
    assert port_is_free(listen_port)
    assert await tcp.receive() == b""  # the relay closed the TCP connection
    await udp.close()
    await tcp.close()
