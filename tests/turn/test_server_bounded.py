"""Bounded connections and answered exhaustion (issue 11).

Found: 1,100 idle TCP connections used up a relay's 1,024 file descriptors (no cap, kept 60 s):
TCP clients failed for 55 s and a UDP client's authenticated Allocate got no answer at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import socket
import time
from dataclasses import replace
from pathlib import Path

import pytest
from process_kit import REALM, SECRET, close_all, drive, logins, open_fds, running_relay
from relay_harness import WireClient, relay_config, running
from turnkit_testing import free_port

from stun_server.wire import (
    Message,
    MessageClass,
    Method,
    encode,
    long_term_key,
    parse,
    verify_integrity,
)
from stun_server.wire import attributes as attrs
from turn_relay.auth.credentials import issue
from turn_relay.config import ApiConfig, ListenConfig, Secrets
from turn_relay.core.allocation import Transport
from turn_relay.shell import datagrams
from turn_relay.shell import server as shell_server
from turn_relay.shell.server import RelayServer
from turn_relay.shell.stream_caps import StreamCaps


def test_caps_follow_the_open_files_limit() -> None:
    listen = ListenConfig()
    assert StreamCaps.for_limits(listen, open_files=1 << 19) == StreamCaps(20_000, 2_000)
    assert StreamCaps.for_limits(listen, open_files=1024) == StreamCaps(448, 112)
    assert StreamCaps.for_limits(listen, open_files=512) == StreamCaps(192, 48)


@pytest.mark.asyncio
async def test_an_allocate_that_cannot_get_a_socket_is_answered_508(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def out_of_fds(*args: object, **kwargs: object) -> object:
        raise OSError(errno.EMFILE, "Too many open files")

    async with running(relay_config()) as server:
        monkeypatch.setattr(datagrams.RelaySocket, "open", out_of_fds)
        clients = [await WireClient.over_udp(server.listening(Transport.UDP)[0]) for _ in range(3)]
        for client in clients:
            response = await client.request(Method.ALLOCATE, attrs.RequestedTransport(17))
            assert response.get(attrs.ErrorCode) == attrs.ErrorCode(508, "Insufficient Capacity")
            assert verify_integrity(response, client.key)
            await client.close()
        assert len(server.core.table) == 0
        assert server.core.stats.allocations_removed["no-socket"] == 3
        assert server.core.stats.error_responses[508] == 3
        warnings = [r for r in caplog.records if "out of file descriptors" in r.getMessage()]
        assert len(warnings) == 1  # aggregated: one line per 10 s


@pytest.mark.asyncio
async def test_connections_that_never_send_are_closed_after_the_setup_timeout() -> None:
    config = relay_config()
    config = replace(config, listen=replace(config.listen, stream_setup_timeout=0.5))
    async with running(config) as server:
        host, port = server.listening(Transport.TCP)[0]
        reader, writer = await asyncio.open_connection(host, port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(100), 3.0) == b""  # closed by the relay
        assert 0.4 < time.monotonic() - started < 2.0
        assert server.connections == {}
        writer.close()


def tcp_allocate(server: tuple[str, int], source_ip: str, user: str) -> Message:
    """A TURN-over-TCP Allocate from ``source_ip``: challenge, then with credentials."""
    with socket.create_connection(server, timeout=5.0, source_address=(source_ip, 0)) as sock:

        def exchange(request: bytes) -> Message:
            sock.sendall(request)
            header = sock.recv(20, socket.MSG_WAITALL)
            length = int.from_bytes(header[2:4], "big")
            return parse(header + sock.recv(length, socket.MSG_WAITALL))

        challenge = exchange(
            encode(
                Message(
                    Method.ALLOCATE, MessageClass.REQUEST, attributes=[attrs.RequestedTransport(17)]
                )
            )
        )
        nonce = challenge.get(attrs.Nonce)
        assert nonce is not None, challenge
        credential = issue(SECRET, user, 3600, time.time())
        key = long_term_key(credential.username, REALM, credential.password)
        request = Message(
            Method.ALLOCATE,
            MessageClass.REQUEST,
            attributes=[
                attrs.RequestedTransport(17),
                attrs.Username(credential.username),
                attrs.Realm(REALM),
                attrs.Nonce(nonce.value),
            ],
        )
        return exchange(encode(request, key=key))


@pytest.mark.slow
def test_eleven_hundred_idle_connections_from_one_host_leave_room_for_others(
    tmp_path: Path,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    idle: list[socket.socket] = []
    with running_relay(tmp_path, nofile=512) as relay:
        start_fds = open_fds(relay.process.pid)
        try:
            for _ in range(1100):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind(("127.0.0.2", 0))
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.connect(relay.address)
                idle.append(sock)
            time.sleep(1.0)  # the relay accepts (and refuses) them
            assert open_fds(relay.process.pid) <= start_fds + 48 + 5  # the per-source cap
            udp = logins(1, "127.0.0.3")
            try:
                drive(udp, relay.address, time.monotonic() + 5.0)
                assert udp[0].allocated_at is not None, udp[0].error
            finally:
                close_all(udp)
            response = tcp_allocate(relay.address, "127.0.0.3", "tcp-user")
            assert response.cls is MessageClass.SUCCESS, response
            assert "TCP/TLS connections: at most 192, 48 per source" in relay.log_text()
        finally:
            for sock in idle:
                sock.close()


@pytest.mark.asyncio
async def test_the_http_api_closes_idle_connections_and_logs_bad_requests_in_one_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(shell_server, "API_IDLE_TIMEOUT", 0.5)
    api_port = free_port()
    config = relay_config()
    config = replace(config, api=ApiConfig(enabled=True, port=api_port, urls=("turn:h:3478",)))
    server = RelayServer(config, Secrets(rest_secrets=("s",), api_key="k" * 20))
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", api_port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(100), 3.0) == b""
        assert time.monotonic() - started < 2.0
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", api_port)
        writer.write(b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(100), 3.0)).startswith(b"HTTP/1.0 400")
        writer.close()
    finally:
        await server.stop()
    server_logs = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(server_logs) == 1, [r.getMessage() for r in server_logs]
    (line,) = server_logs
    assert line.exc_info is None and line.levelname == "INFO"
    assert "(answered 400): Got more than 4096 bytes" in line.getMessage()
    assert "\n" not in line.getMessage()
