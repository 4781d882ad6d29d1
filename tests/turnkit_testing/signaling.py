"""A small signalling relay for browser group calls: serves the mesh peer page and relays JSON
messages between the WebSocket members of a room, as a mesh app's signalling server does.

``GET /`` is ``mesh_peer.html``; ``GET /ws?room=R&peer=P`` joins peer P to room R. A member sends
``{"to": Q, ...}``; Q gets the message with ``"from": P`` added (queued until Q joins). Run it
in-process with `serve_signaling` or as a process (in a lab namespace)::

    python -m turnkit_testing.signaling --host 203.0.113.1 --port 8080
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

PAGE = Path(__file__).with_name("mesh_peer.html")


@dataclass
class Room:
    members: dict[str, web.WebSocketResponse] = field(default_factory=dict)
    waiting: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    async def deliver(self, to: str, text: str) -> None:
        member = self.members.get(to)
        if member is None or member.closed:
            self.waiting[to].append(text)
        else:
            await member.send_str(text)


@dataclass
class Signaling:
    rooms: dict[str, Room] = field(default_factory=lambda: defaultdict(Room))
    relayed: int = 0

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html")

    async def no_favicon(self, request: web.Request) -> web.Response:
        return web.Response(status=404)

    async def member(self, request: web.Request) -> web.WebSocketResponse:
        room_name, peer = request.query.get("room"), request.query.get("peer")
        if not room_name or not peer:
            raise web.HTTPBadRequest(text="room and peer are required")
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        room = self.rooms[room_name]
        room.members[peer] = ws
        for text in room.waiting.pop(peer, []):
            await ws.send_str(text)
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            body: dict[str, Any] = json.loads(message.data)
            to = str(body.pop("to"))
            body["from"] = peer
            self.relayed += 1
            await room.deliver(to, json.dumps(body))
        if room.members.get(peer) is ws:
            del room.members[peer]
        return ws

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.page)
        app.router.add_get("/ws", self.member)
        app.router.add_get("/favicon.ico", self.no_favicon)
        return app


@asynccontextmanager
async def serve_signaling(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """The relay on ``host:port`` (0: a free port) for the block; yields the page URL."""
    runner = web.AppRunner(Signaling().app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield f"http://{host}:{bound}/"
    finally:
        await runner.cleanup()


async def _serve_forever(host: str, port: int, lifetime: float) -> None:
    async with serve_signaling(host, port) as url:
        print(f"signaling: serving {url}", flush=True)
        with suppress(asyncio.CancelledError):
            await asyncio.sleep(lifetime)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m turnkit_testing.signaling",
        description="Serve the mesh peer page and relay signalling between its WebSocket rooms.",
        epilog="example: python -m turnkit_testing.signaling --host 127.0.0.1 --port 8080",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--lifetime", type=float, default=600.0, help="exit after this many seconds (600)"
    )
    args = parser.parse_args()
    asyncio.run(_serve_forever(args.host, args.port, args.lifetime))


if __name__ == "__main__":
    main()
