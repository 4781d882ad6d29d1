"""The signaling protocol itself: the WebSocket upgrade (aiohttp) or the Socket.IO handshake
(python-socketio's asyncio client), then the probe message and its reply.

Both libraries make their own connection (through the proxy chosen, with the same trust
settings as the TLS step), so a failure here is one of the protocol, not of the layers below.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from rtccheck.results import JsonValue
from rtccheck.signaling import diagnoses
from rtccheck.signaling.diagnoses import LayerFailedError
from rtccheck.signaling.round_trip import Expectation, reply_text
from rtccheck.signaling.target import SignalingTarget
from rtccheck.tlsinfo.trust import client_context

#: the longest reply text kept in the report
REPLY_SHOWN = 200


@dataclass(frozen=True)
class ExchangeOptions:
    timeout: float
    probe: str
    expectation: Expectation
    #: the Socket.IO event the probe is emitted as
    event: str = "message"
    ca_file: Path | None = None
    proxy_url: str | None = None
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class Upgrade:
    elapsed_s: float
    facts: dict[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Replies:
    #: seconds from sending the probe to the reply that counted; None when none counted
    rtt_s: float | None
    #: messages received after the probe, counted or not
    received: int
    reply: str | None = None
    #: the server closed the connection before a reply counted
    closed: bool = False


def _session(target: SignalingTarget, options: ExchangeOptions) -> aiohttp.ClientSession:
    ssl_setting = client_context(options.ca_file) if target.secure else False
    connector = aiohttp.TCPConnector(ssl=ssl_setting)
    return aiohttp.ClientSession(connector=connector, proxy=options.proxy_url, trust_env=False)


async def websocket_exchange(
    target: SignalingTarget, options: ExchangeOptions
) -> tuple[Upgrade, Replies]:
    async with _session(target, options) as session:
        started = options.monotonic()
        ws = await _upgrade(session, target, options)
        upgrade = Upgrade(options.monotonic() - started, {"http_status": 101})
        try:
            return upgrade, await _websocket_replies(ws, options)
        finally:
            await ws.close()


async def _upgrade(
    session: aiohttp.ClientSession, target: SignalingTarget, options: ExchangeOptions
) -> aiohttp.ClientWebSocketResponse:
    try:
        async with asyncio.timeout(options.timeout):
            return await session.ws_connect(target.url, autoping=True)
    except aiohttp.WSServerHandshakeError as error:
        diagnosis = diagnoses.upgrade_refused(
            target.url, error.status, _reason(error.message), socketio=False
        )
        raise LayerFailedError(diagnosis, http_status=error.status) from None
    except aiohttp.ClientHttpProxyError as error:
        proxy = options.proxy_url or "-"
        diagnosis = diagnoses.proxy_refused(proxy, target.authority, error.status, error.message)
        raise LayerFailedError(diagnosis, http_status=error.status) from None
    except TimeoutError:
        step = "the WebSocket upgrade"
        raise LayerFailedError(
            diagnoses.http_no_answer(target.url, step, options.timeout)
        ) from None
    except aiohttp.ClientError:
        raise LayerFailedError(diagnoses.closed(target.url, "the WebSocket upgrade")) from None


def _reason(message: str) -> str:
    """aiohttp's handshake error message is 'Invalid response status' etc.; keep it short."""
    return message.strip()


async def _websocket_replies(
    ws: aiohttp.ClientWebSocketResponse, options: ExchangeOptions
) -> Replies:
    await ws.send_str(options.probe)
    sent = options.monotonic()
    received = 0
    try:
        async with asyncio.timeout(options.timeout):
            while True:
                message = await ws.receive()
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    received += 1
                    text = reply_text(message.data)
                    if options.expectation.accepts(options.probe, text):
                        return Replies(options.monotonic() - sent, received, text[:REPLY_SHOWN])
                elif message.type in _CLOSED:
                    return Replies(None, received, closed=True)
    except TimeoutError:
        return Replies(None, received)


_CLOSED = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)


async def socketio_exchange(
    target: SignalingTarget, options: ExchangeOptions
) -> tuple[Upgrade, Replies]:
    async with _session(target, options) as session:
        client = socketio.AsyncClient(
            reconnection=False, http_session=session, request_timeout=options.timeout
        )
        inbox: asyncio.Queue[str] = asyncio.Queue()
        client.on("*", _collector(inbox))
        started = options.monotonic()
        await _handshake(client, session, target, options)
        try:
            facts: dict[str, JsonValue] = {"transport": client.transport(), "sid": client.sid}
            upgrade = Upgrade(options.monotonic() - started, facts)
            return upgrade, await _socketio_replies(client, inbox, options)
        finally:
            await client.disconnect()


def _collector(inbox: asyncio.Queue[str]) -> Callable[..., Any]:
    async def collect(event: str, *args: Any) -> None:
        inbox.put_nowait(reply_text(args[0] if len(args) == 1 else list(args)))

    return collect


async def _handshake(
    client: socketio.AsyncClient,
    session: aiohttp.ClientSession,
    target: SignalingTarget,
    options: ExchangeOptions,
) -> None:
    try:
        async with asyncio.timeout(options.timeout):
            await client.connect(
                target.http_base,
                socketio_path=target.socketio_path,
                wait_timeout=options.timeout,
            )
    except (socketio.exceptions.ConnectionError, TimeoutError) as error:
        with_reason = str(error) or type(error).__name__
        raise await _explain_handshake(session, target, with_reason, options) from None


async def _explain_handshake(
    session: aiohttp.ClientSession,
    target: SignalingTarget,
    library_reason: str,
    options: ExchangeOptions,
) -> LayerFailedError:
    """The library says only that it failed: ask for the Engine.IO handshake once more to see
    the HTTP status (the same request the client starts with)."""
    url = f"{target.http_base}/{target.socketio_path}/"
    params = {"EIO": "4", "transport": "polling"}
    try:
        async with asyncio.timeout(options.timeout), session.get(url, params=params) as answer:
            status, reason = answer.status, answer.reason or ""
    except TimeoutError:
        step = "the Engine.IO handshake"
        return LayerFailedError(diagnoses.http_no_answer(target.url, step, options.timeout))
    except aiohttp.ClientError:
        return LayerFailedError(diagnoses.closed(target.url, "the Engine.IO handshake"))
    if status != 200:
        diagnosis = diagnoses.upgrade_refused(target.url, status, reason, socketio=True)
        return LayerFailedError(diagnosis, http_status=status)
    return LayerFailedError(diagnoses.socketio_refused(target.url, library_reason))


async def _socketio_replies(
    client: socketio.AsyncClient, inbox: asyncio.Queue[str], options: ExchangeOptions
) -> Replies:
    def acknowledged(*args: Any) -> None:
        inbox.put_nowait(reply_text(args[0] if len(args) == 1 else list(args)))

    await client.emit(options.event, options.probe, callback=acknowledged)
    sent = options.monotonic()
    received = 0
    try:
        async with asyncio.timeout(options.timeout):
            while True:
                text = await inbox.get()
                received += 1
                if options.expectation.accepts(options.probe, text):
                    return Replies(options.monotonic() - sent, received, text[:REPLY_SHOWN])
    except TimeoutError:
        return Replies(None, received, closed=not client.connected)
