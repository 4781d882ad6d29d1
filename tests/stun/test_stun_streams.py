"""TCP/TLS connection limits in the asyncio shell: caps per source and in total, timeouts,
aggregated warnings, and TLS closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from stun_testkit import binding_request, client_context, stream_binding
from turnkit_testing import second_loopback_available, self_signed_certificate

from stun_server.config import ServerConfig
from stun_server.limits import DEFAULT_PER_SOURCE
from stun_server.server import StunServer
from stun_server.wire import MessageClass, parse

needs_127_0_0_2 = pytest.mark.skipif(not second_loopback_available(), reason="127.0.0.2 unusable")

StartServer = Callable[..., Awaitable[StunServer]]


@pytest_asyncio.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    servers: list[StunServer] = []
    cert, key = self_signed_certificate(tmp_path)

    async def start(**settings: object) -> StunServer:
        settings.setdefault("listen", (("127.0.0.1", 0),))
        settings.setdefault("rate_limit", 0)
        settings.update(tls_cert=cert, tls_key=key, tls_port=0)
        server = StunServer(ServerConfig(**settings))  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def address_of(server: StunServer, transport: str) -> tuple[str, int]:
    return next(item.address for item in server.listeners if item.transport == transport)


def tls_client(tmp_path: Path) -> ssl.SSLContext:
    return client_context(tmp_path / "cert.pem")


async def hold_idle(target: tuple[str, int], count: int) -> list[socket.socket]:
    """``count`` connected TCP sockets from 127.0.0.1 that never send a byte."""

    def connect_all() -> list[socket.socket]:
        return [socket.create_connection(target, timeout=5) for _ in range(count)]

    return await asyncio.to_thread(connect_all)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def read_message(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readexactly(20), 2)
    return head + await asyncio.wait_for(reader.readexactly(int.from_bytes(head[2:4], "big")), 2)


async def until_stable(value: Callable[[], int], quiet: float = 0.5) -> None:
    """Wait until ``value()`` has not changed for ``quiet`` seconds (at most 10 s)."""
    loop = asyncio.get_running_loop()
    deadline, last, since = loop.time() + 10, value(), loop.time()
    while loop.time() - since < quiet:
        assert loop.time() < deadline, "never settled"
        await asyncio.sleep(0.05)
        if value() != last:
            last, since = value(), loop.time()


def answered(reply: bytes | None) -> bool:
    return reply is not None and parse(reply).cls == MessageClass.SUCCESS


@pytest.mark.asyncio
@needs_127_0_0_2
async def test_one_source_holding_idle_connections_does_not_lock_out_others(
    start_server: StartServer, tmp_path: Path
) -> None:
    # 400 idle connections from one address, more than its cap (256), would fill a total of 300
    server = await start_server(max_connections=300)
    tcp, tls = address_of(server, "tcp"), address_of(server, "tls")
    held = await hold_idle(tcp, 400)
    try:
        await until_stable(lambda: server.connection_count)  # all 400 accepted or refused
        other_tcp = await asyncio.to_thread(stream_binding, tcp, source="127.0.0.2")
        other_tls = await asyncio.to_thread(
            stream_binding, tls, context=tls_client(tmp_path), source="127.0.0.2"
        )
        assert answered(other_tcp) and answered(other_tls)
        assert not answered(await asyncio.to_thread(stream_binding, tcp))  # .1 is at its cap
        assert server.stream_counters["connection_cap_per_source"] == 144 + 1
        assert server.connection_count == DEFAULT_PER_SOURCE
    finally:
        for sock in held:
            sock.close()


@pytest.mark.asyncio
async def test_connections_that_never_send_a_message_are_closed(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server(first_message_timeout=0.3, idle_timeout=30)
    tcp, tls = address_of(server, "tcp"), address_of(server, "tls")
    silent_tcp = await asyncio.open_connection(*tcp)
    no_handshake = await asyncio.open_connection(*tls)
    no_message = await asyncio.open_connection(*tls, ssl=tls_client(tmp_path))
    trickle = await asyncio.open_connection(*tcp)
    started = asyncio.get_running_loop().time()
    request = binding_request()
    for byte in request[:-1]:  # one byte every 20 ms: never a complete message in time
        trickle[1].write(bytes([byte]))
        await asyncio.sleep(0.02)
    for reader, _ in (silent_tcp, no_handshake, no_message, trickle):
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            assert await asyncio.wait_for(reader.read(), 3) == b""
    assert asyncio.get_running_loop().time() - started < 2.0
    await until(lambda: server.connection_count == 0)
    assert server.stream_counters["first_message_timeout"] == 4
    for _, writer in (silent_tcp, no_handshake, no_message, trickle):
        writer.close()


@pytest.mark.asyncio
async def test_a_client_that_sent_a_message_gets_the_idle_timeout(
    start_server: StartServer,
) -> None:
    server = await start_server(first_message_timeout=0.2, idle_timeout=1.0)
    reader, writer = await asyncio.open_connection(*address_of(server, "tcp"))
    writer.write(binding_request())
    assert parse(await read_message(reader)).cls == MessageClass.SUCCESS
    await asyncio.sleep(0.5)  # past the first-message timeout, within the idle timeout
    writer.write(binding_request())
    assert parse(await read_message(reader)).cls == MessageClass.SUCCESS
    assert await asyncio.wait_for(reader.read(), 3) == b""
    assert server.stream_counters == {"idle_timeout": 1}
    writer.close()


@pytest.mark.asyncio
async def test_refusals_are_counted_and_logged_once_per_interval(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(max_connections_per_source=2)
    caplog.set_level(logging.WARNING, logger="stun_server")
    held = await hold_idle(address_of(server, "tcp"), 40)
    try:
        await until(lambda: server.stream_counters.get("connection_cap_per_source", 0) == 38)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "2 open from that source" in warnings[0].getMessage()
        assert "1 time(s) since the last report, 1 in all" in warnings[0].getMessage()
    finally:
        for sock in held:
            sock.close()
    await server.close()  # the summary of what was not reported yet
    summary = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][1:]
    assert len(summary) == 1 and "37 time(s) since the last report, 38 in all" in summary[0]


@pytest.mark.asyncio
async def test_total_cap_refuses_and_frees_on_close(start_server: StartServer) -> None:
    server = await start_server(max_connections=3)
    tcp = address_of(server, "tcp")
    held = await hold_idle(tcp, 3)
    await until(lambda: server.connection_count == 3)
    assert not answered(await asyncio.to_thread(stream_binding, tcp))
    assert server.stream_counters["connection_cap_total"] == 1
    for sock in held:
        sock.close()
    await until(lambda: server.connection_count == 0)
    assert answered(await asyncio.to_thread(stream_binding, tcp))


@pytest.mark.asyncio
async def test_tls_close_notify_is_answered(start_server: StartServer, tmp_path: Path) -> None:
    server = await start_server()
    reader, writer = await asyncio.open_connection(
        *address_of(server, "tls"), ssl=tls_client(tmp_path)
    )
    writer.write(binding_request())
    await asyncio.wait_for(reader.readexactly(20), 2)
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), 2)  # our close_notify came back
    await until(lambda: server.connection_count == 0)
