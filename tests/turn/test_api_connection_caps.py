"""The HTTP API caps the connections one source holds: a host that opens many idle
connections is refused past the cap while other addresses are served as usual."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest
from test_relay_admin import relay_process

from turn_relay.shell.api_site import API_MAX_CONNECTIONS_PER_SOURCE

pytestmark = pytest.mark.asyncio


async def _open_idle(host: str, port: int, count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=5)
        sock.setblocking(False)
        held.append(sock)
    await asyncio.sleep(0.5)  # the relay has accepted (or refused) them all
    return held


def _refused(sock: socket.socket) -> bool:
    """True when the relay closed this connection (EOF or reset), False while it stays open."""
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


async def healthz_from(api: str, source: str) -> int:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{api}/healthz") as reply,
    ):
        return reply.status


async def test_one_source_cannot_hold_every_api_connection(tmp_path: Path) -> None:
    async with relay_process(tmp_path) as relay:
        port = int(relay.api.rsplit(":", 1)[1])
        extra = 12
        held = await _open_idle("127.0.0.1", port, API_MAX_CONNECTIONS_PER_SOURCE + extra)
        try:
            refused = [_refused(sock) for sock in held]
            assert refused.count(True) == extra
            assert not any(refused[:API_MAX_CONNECTIONS_PER_SOURCE])
            assert await healthz_from(relay.api, "127.0.0.2") == 200  # others are served
        finally:
            for sock in held:
                sock.close()
        await asyncio.sleep(0.5)
        assert await healthz_from(relay.api, "127.0.0.1") == 200  # and it again, once released
