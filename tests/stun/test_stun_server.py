"""The asyncio shell over real loopback sockets: UDP (both engines), TCP, TLS, RFC 5780."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from stun_testkit import binding_request, raw_message, tlv, udp_exchange
from turnkit_testing import (
    free_port_pair,
    ipv6_loopback_available,
    second_loopback_available,
    self_signed_certificate,
)

from stun_server import mmsg
from stun_server.config import ServerConfig
from stun_server.server import Listener, StunServer
from stun_server.wire import MessageClass, parse
from stun_server.wire import attributes as attrs

needs_ipv6 = pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1)")
needs_127_0_0_2 = pytest.mark.skipif(not second_loopback_available(), reason="127.0.0.2 unusable")

StartServer = Callable[..., Awaitable[StunServer]]
Answer = tuple[bytes, tuple[str, int]]


@pytest_asyncio.fixture
async def start_server() -> AsyncIterator[StartServer]:
    servers: list[StunServer] = []

    async def start(**settings: object) -> StunServer:
        settings.setdefault("listen", (("127.0.0.1", 0),))
        settings.setdefault("rate_limit", 0)
        server = StunServer(ServerConfig(**settings))  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def address_of(server: StunServer, transport: str, family: int = socket.AF_INET) -> tuple[str, int]:
    for listener in server.listeners:
        is_v6 = ":" in listener.address[0]
        if listener.transport == transport and is_v6 == (family == socket.AF_INET6):
            return listener.address
    raise LookupError(transport)


async def exchange_udp(
    server: tuple[str, int],
    data: bytes,
    *,
    timeout: float = 1.0,
    sock: socket.socket | None = None,
) -> Answer | None:
    return await asyncio.to_thread(udp_exchange, server, data, timeout=timeout, sock=sock)


def mapped_address(reply: bytes) -> tuple[str, int]:
    mapped = parse(reply).get(attrs.XorMappedAddress)
    assert mapped is not None
    return mapped.address


# ---------------------------------------------------------------- UDP


@pytest.mark.asyncio
@pytest.mark.parametrize("batch", [True, False], ids=["recvmmsg", "recvfrom"])
async def test_udp_binding_reports_the_client_address(
    start_server: StartServer, batch: bool
) -> None:
    if batch and not mmsg.available():
        pytest.skip("recvmmsg not available")
    server = await start_server(udp_batch=batch)
    target = address_of(server, "udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        result = await exchange_udp(target, binding_request(fingerprint=True), sock=client)
        assert result is not None
        reply, sender = result
        assert sender == target
        assert mapped_address(reply) == client.getsockname()
        assert parse(reply).has(attrs.Fingerprint)


@pytest.mark.asyncio
@needs_ipv6
@pytest.mark.parametrize("batch", [True, False], ids=["recvmmsg", "recvfrom"])
async def test_udp_binding_over_ipv6(start_server: StartServer, batch: bool) -> None:
    server = await start_server(listen=(("::1", 0),), udp_batch=batch)
    target = address_of(server, "udp", socket.AF_INET6)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
        client.bind(("::1", 0))
        result = await exchange_udp(target, binding_request(), sock=client)
        assert result is not None
        assert mapped_address(result[0]) == client.getsockname()[:2]


@pytest.mark.asyncio
async def test_udp_garbage_gets_silence_and_the_server_keeps_answering(
    start_server: StartServer,
) -> None:
    server = await start_server()
    target = address_of(server, "udp")
    for garbage in (b"", b"\x00", b"x" * 3000, raw_message(0x0003), b"\x17\xfe\xfd" + b"\x00" * 40):
        assert await exchange_udp(target, garbage, timeout=0.2) is None
    assert await exchange_udp(target, binding_request()) is not None


@pytest.mark.asyncio
async def test_udp_malformed_request_gets_400(start_server: StartServer) -> None:
    server = await start_server()
    result = await exchange_udp(
        address_of(server, "udp"), raw_message(0x0001, tlv(0x8022, b"\xff"))
    )
    assert result is not None
    error = parse(result[0]).get(attrs.ErrorCode)
    assert error is not None and error.code == 400


@pytest.mark.asyncio
async def test_udp_rate_limit_silences_a_flooding_source(start_server: StartServer) -> None:
    server = await start_server(rate_limit=0.5, rate_burst=3)
    target = address_of(server, "udp")
    answers = [await exchange_udp(target, binding_request(), timeout=0.3) for _ in range(5)]
    assert [a is not None for a in answers] == [True, True, True, False, False]


@pytest.mark.asyncio
@needs_127_0_0_2
async def test_rfc5780_change_request_comes_from_the_other_socket(
    start_server: StartServer,
) -> None:
    port = free_port_pair(("127.0.0.1", "127.0.0.2"))
    server = await start_server(listen=(("127.0.0.1", port),), alternate=("127.0.0.2",))
    assert len([item for item in server.listeners if item.transport == "udp"]) == 4
    request = binding_request(attrs.ChangeRequest(change_ip=True, change_port=True))
    result = await exchange_udp(("127.0.0.1", port), request)
    assert result is not None
    reply, sender = result
    assert sender == ("127.0.0.2", port + 1)
    response = parse(reply)
    assert response.get(attrs.ResponseOrigin) == attrs.ResponseOrigin("127.0.0.2", port + 1)
    assert response.get(attrs.OtherAddress) == attrs.OtherAddress("127.0.0.2", port + 1)


@pytest.mark.asyncio
@needs_127_0_0_2
async def test_rfc5780_response_port_reaches_another_socket(
    start_server: StartServer,
) -> None:
    port = free_port_pair(("127.0.0.1", "127.0.0.2"))
    server = await start_server(
        listen=(("127.0.0.1", port),), alternate=("127.0.0.2",), udp_batch=False
    )
    del server
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as asker,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener,
    ):
        asker.bind(("127.0.0.1", 0))
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(2)
        target_port = listener.getsockname()[1]
        asker.sendto(binding_request(attrs.ResponsePort(target_port)), ("127.0.0.1", port))
        reply, sender = await asyncio.to_thread(listener.recvfrom, 2048)
        assert sender == ("127.0.0.1", port)
        assert mapped_address(reply) == asker.getsockname()


# ---------------------------------------------------------------- TCP


async def tcp_connect(
    target: tuple[str, int], context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(target[0], target[1], ssl=context)


async def read_message(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readexactly(20), 2)
    length = int.from_bytes(head[2:4], "big")
    return head + await asyncio.wait_for(reader.readexactly(length), 2)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 2) == b""
    except ConnectionResetError:
        return True


@pytest.mark.asyncio
async def test_tcp_binding(start_server: StartServer) -> None:
    server = await start_server()
    reader, writer = await tcp_connect(address_of(server, "tcp"))
    writer.write(binding_request(fingerprint=True))
    reply = await read_message(reader)
    assert mapped_address(reply) == writer.get_extra_info("sockname")
    writer.close()


@pytest.mark.asyncio
async def test_tcp_udp_and_tcp_share_the_port(start_server: StartServer) -> None:
    server = await start_server()
    assert address_of(server, "udp") == address_of(server, "tcp")


@pytest.mark.asyncio
async def test_tcp_two_requests_in_one_write_and_one_byte_at_a_time(
    start_server: StartServer,
) -> None:
    server = await start_server()
    reader, writer = await tcp_connect(address_of(server, "tcp"))
    first, second = (
        binding_request(transaction_id=b"A" * 12),
        binding_request(transaction_id=b"B" * 12),
    )
    writer.write(first + second)
    assert parse(await read_message(reader)).transaction_id == b"A" * 12
    assert parse(await read_message(reader)).transaction_id == b"B" * 12
    third = binding_request(attrs.Software("slow"), transaction_id=b"C" * 12)
    for byte in third:
        writer.write(bytes([byte]))
        await writer.drain()
    assert parse(await read_message(reader)).transaction_id == b"C" * 12
    writer.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http"),
        pytest.param(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32, id="tls hello"
        ),
        pytest.param(b"\x40\x00\x00\x04data", id="channel data"),
        pytest.param(b"\x00\x01\x00\x00" + b"\x00" * 16, id="no cookie"),
        pytest.param(b"\x00\x01\xff\xfc\x21\x12\xa4\x42" + b"\x00" * 12, id="oversized frame"),
    ],
)
async def test_tcp_garbage_closes_the_connection(start_server: StartServer, garbage: bytes) -> None:
    server = await start_server()
    reader, writer = await tcp_connect(address_of(server, "tcp"))
    writer.write(garbage)
    assert await closed_by_server(reader)
    writer.close()
    await asyncio.sleep(0.05)
    assert server.connection_count == 0
    reader, writer = await tcp_connect(address_of(server, "tcp"))  # still serving
    writer.write(binding_request())
    assert parse(await read_message(reader)).cls == MessageClass.SUCCESS
    writer.close()


@pytest.mark.asyncio
async def test_tcp_truncated_frame_then_hang_up_leaves_the_server_healthy(
    start_server: StartServer,
) -> None:
    server = await start_server()
    target = address_of(server, "tcp")
    for cut in (1, 3, 19, 27):
        reader, writer = await tcp_connect(target)
        writer.write(binding_request(fingerprint=True)[:cut])
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    await asyncio.sleep(0.05)
    assert server.connection_count == 0
    reader, writer = await tcp_connect(target)
    writer.write(binding_request())
    assert parse(await read_message(reader)).cls == MessageClass.SUCCESS
    writer.close()


@pytest.mark.asyncio
async def test_tcp_random_bytes_never_break_the_server(start_server: StartServer) -> None:
    server = await start_server()
    target = address_of(server, "tcp")
    generator = random.Random(5780)
    for round_ in range(30):
        reader, writer = await tcp_connect(target)
        prefix = binding_request() if round_ % 2 else b""
        writer.write(prefix + generator.randbytes(generator.randrange(1, 300)))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
    reader, writer = await tcp_connect(target)
    writer.write(binding_request())
    assert parse(await read_message(reader)).cls == MessageClass.SUCCESS
    writer.close()


@pytest.mark.asyncio
async def test_tcp_idle_connection_is_closed(start_server: StartServer) -> None:
    server = await start_server(idle_timeout=0.3)
    reader, writer = await tcp_connect(address_of(server, "tcp"))
    writer.write(binding_request())
    await read_message(reader)
    started = asyncio.get_running_loop().time()
    assert await closed_by_server(reader)
    assert 0.2 < asyncio.get_running_loop().time() - started < 1.5
    writer.close()


@pytest.mark.asyncio
async def test_tcp_connection_cap(start_server: StartServer) -> None:
    server = await start_server(max_connections=2)
    target = address_of(server, "tcp")
    kept = [await tcp_connect(target) for _ in range(2)]
    for reader, writer in kept:
        writer.write(binding_request())
        await read_message(reader)
    reader, writer = await tcp_connect(target)
    assert await closed_by_server(reader)
    writer.close()
    for _, kept_writer in kept:
        kept_writer.close()


@pytest.mark.asyncio
async def test_no_tcp_option_leaves_only_udp(start_server: StartServer) -> None:
    server = await start_server(tcp=False)
    assert [listener.transport for listener in server.listeners] == ["udp"]


@pytest.mark.asyncio
@needs_ipv6
async def test_tcp_over_ipv6(start_server: StartServer) -> None:
    server = await start_server(listen=(("::1", 0),))
    reader, writer = await tcp_connect(address_of(server, "tcp", socket.AF_INET6))
    writer.write(binding_request())
    assert mapped_address(await read_message(reader)) == writer.get_extra_info("sockname")[:2]
    writer.close()


# ---------------------------------------------------------------- TLS


@pytest.mark.asyncio
async def test_tls_binding(start_server: StartServer, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = await start_server(tls_cert=cert, tls_key=key, tls_port=0)
    context = ssl.create_default_context(cafile=str(cert))
    reader, writer = await tcp_connect(address_of(server, "tls"), context)
    writer.write(binding_request(fingerprint=True))
    assert mapped_address(await read_message(reader)) == writer.get_extra_info("sockname")
    writer.write(b"garbage after the handshake")
    assert await closed_by_server(reader)
    writer.close()


@pytest.mark.asyncio
async def test_bad_certificate_fails_before_binding(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    config = ServerConfig(
        listen=(("127.0.0.1", 0),), tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "cert.pem"
    )
    server = StunServer(config)
    with pytest.raises(ssl.SSLError):
        await server.start()
    assert server.listeners == []


# ---------------------------------------------------------------- lifecycle


@pytest.mark.asyncio
@pytest.mark.parametrize("batch", [True, False], ids=["recvmmsg", "recvfrom"])
async def test_close_is_quick_and_releases_every_port(
    start_server: StartServer, batch: bool
) -> None:
    server = await start_server(listen=(("127.0.0.1", 0), ("127.0.0.1", 0)), udp_batch=batch)
    udp, tcp = address_of(server, "udp"), address_of(server, "tcp")
    loops = list(server._udp_loops)
    started = time.monotonic()
    await server.close()
    assert time.monotonic() - started < 1.0
    assert not any(loop._thread.is_alive() for loop in loops)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(udp)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(tcp)


@pytest.mark.asyncio
async def test_port_in_use_fails_start_and_releases_the_rest() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        server = StunServer(ServerConfig(listen=(("127.0.0.1", 0), ("127.0.0.1", port))))
        with pytest.raises(OSError):
            await server.start()
    assert server.listeners == []


def test_listener_text() -> None:
    assert str(Listener("udp", ("::1", 3478))) == "udp [::1]:3478"
    assert str(Listener("udp", ("127.0.0.2", 3479), "RFC 5780 alternate")) == (
        "udp 127.0.0.2:3479 (RFC 5780 alternate)"
    )
