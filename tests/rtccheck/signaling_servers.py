"""Local signaling servers for the signaling check's tests: a WebSocket echo server and a
Socket.IO server on loopback (aiohttp), each with routes that fail on purpose."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import WSMsgType, web
from turnkit_testing.tls import CertFiles

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Running:
    port: int
    scheme: str

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


async def echo(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            await ws.send_str(message.data)
    return ws


async def greet_only(request: web.Request) -> web.StreamResponse:
    """Answers every message with the same fixed text (not an echo)."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for _ in ws:
        await ws.send_str("hello from the server")
    return ws


async def silent(request: web.Request) -> web.StreamResponse:
    """Accepts the upgrade, reads everything and never answers."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for _ in ws:
        pass
    return ws


async def forbidden(request: web.Request) -> web.StreamResponse:
    return web.Response(status=403, text="no")


def websocket_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/greet", greet_only)
    app.router.add_get("/silent", silent)
    app.router.add_get("/forbidden", forbidden)
    return app


def socketio_app(*, answer: bool = True, refuse_engineio: bool = False) -> web.Application:
    """A Socket.IO server whose "message" event is echoed back as an event and acknowledged
    (``answer``); ``refuse_engineio`` puts a 403 in front of its Engine.IO path."""
    server = socketio.AsyncServer(async_mode="aiohttp")
    if answer:

        async def message(sid: str, data: Any) -> Any:
            await server.emit("message", data, to=sid)
            return data

        server.on("message", message)
    middlewares = [_forbid_socketio] if refuse_engineio else []
    app = web.Application(middlewares=middlewares)
    server.attach(app)
    return app


@web.middleware
async def _forbid_socketio(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/socket.io"):
        return web.Response(status=403, text="forbidden")
    return await handler(request)


@asynccontextmanager
async def serving(app: web.Application, certs: CertFiles | None = None) -> AsyncIterator[Running]:
    context = None
    if certs is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs.cert, certs.key)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = int(runner.addresses[0][1])
    try:
        yield Running(port, "wss" if certs is not None else "ws")
    finally:
        await runner.cleanup()


@asynccontextmanager
async def mute_server() -> AsyncIterator[int]:
    """Accepts TCP connections and never sends a byte: no HTTP answer to anything."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def connect_proxy(status: int = 200) -> AsyncIterator[tuple[int, list[str]]]:
    """An HTTP CONNECT proxy on loopback that records each request line; with another
    ``status`` it refuses every tunnel with that status."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line = head.split("\r\n", 1)[0]
            seen.append(request_line)
            method, authority, _ = request_line.split(" ", 2)
            if method != "CONNECT" or status != 200:
                writer.write(f"HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
                return
            host, _, port = authority.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1]), seen
    finally:
        server.close()
        await server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
