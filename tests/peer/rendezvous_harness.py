"""An in-process rendezvous (the route group on an aiohttp test server) with a hand-set clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from turn_relay.api.rendezvous import RendezvousRoutes, RendezvousSettings
from turn_relay.api.rooms import RoomLimits, Seat, mint_room_token, new_room_code
from turn_relay.api.settings import ApiSettings
from turn_relay.config import Secrets
from turn_relay.reports.store import ReportStore

PAIRING_SECRET = "pairing-secret-for-tests"
API_KEY = "api-key-for-the-tests"
URLS = (
    "turn:127.0.0.1:9?transport=udp",
    "turn:127.0.0.1:9?transport=tcp",
    "turns:127.0.0.1:443?transport=tcp",
)
START = 1_800_000_000.0


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Rendezvous:
    routes: RendezvousRoutes
    server: TestServer
    session: aiohttp.ClientSession
    clock: Clock
    store: ReportStore | None
    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def token(self, room: str, seat: Seat, ttl: float = 600, secret: str = PAIRING_SECRET) -> str:
        return mint_room_token(secret, room, seat, int(self.clock.now + ttl), self.clock.now)

    def room(self) -> tuple[str, str, str]:
        room = new_room_code()
        return room, self.token(room, Seat.A), self.token(room, Seat.B)

    async def join(self, token: str) -> aiohttp.ClientWebSocketResponse:
        ws = await self.session.ws_connect(self.url(f"/rendezvous/{token}"))
        self.sockets.append(ws)
        return ws


async def receive_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> Any:
    message = await ws.receive(timeout=timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data, ws.close_code)
    return message.json()


async def closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> int | None:
    """Read until the socket is closed; its close code."""
    async with asyncio.timeout(timeout):
        while not ws.closed:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
    return ws.close_code


@asynccontextmanager
async def rendezvous(
    limits: RoomLimits | None = None, state_dir: Path | None = None
) -> AsyncIterator[Rendezvous]:
    clock = Clock()
    secrets = Secrets(
        rest_secrets=("rest-secret",), api_key=API_KEY, pairing_secrets=(PAIRING_SECRET,)
    )
    store = ReportStore(state_dir) if state_dir is not None else None
    routes = RendezvousRoutes(
        RendezvousSettings(limits or RoomLimits(), 600, "test"),
        ApiSettings(urls=URLS),
        lambda: secrets,
        store,
        clock,
    )
    app = web.Application()
    routes.add_to(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    harness = Rendezvous(routes, server, session, clock, store)
    try:
        yield harness
    finally:
        for ws in harness.sockets:
            await ws.close()
        await session.close()
        await server.close()
        if store is not None:
            store.close()
