"""The rendezvous client: look a code up, join a room over WebSocket, route its messages.

Messages for one leg (``offer``, ``answer``, ``candidate`` and ``result`` with a ``leg``) go to
that leg's queue; everything else (``ready``, ``peer-joined``, ``peer-left``, ``verdict``,
``error``) to the control queue. A closed socket ends every queue with a `SignalingClosed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

LEG_MESSAGES = frozenset({"offer", "answer", "candidate", "result"})


class PeerTestError(Exception):
    """The test cannot go on; the message says why (for the user)."""


@dataclass(frozen=True)
class SignalingClosed:
    reason: str


Message = dict[str, Any]
Item = Message | SignalingClosed


def ws_url(relay: str, token: str) -> str:
    base = relay.rstrip("/")
    scheme, _, rest = base.partition("://")
    ws_scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    return f"{ws_scheme}://{rest}/rendezvous/{quote(token, safe='')}"


async def token_for_code(session: aiohttp.ClientSession, relay: str, code: str) -> str:
    """The room token of a free seat of the room ``code`` names."""
    url = f"{relay.rstrip('/')}/rendezvous/code/{quote(code, safe='')}"
    try:
        async with session.get(url) as response:
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, ValueError) as error:
        raise PeerTestError(f"cannot look up code {code} at {relay}: {error}") from None
    if response.status != 200 or not isinstance(body, dict) or "token" not in body:
        problem = body.get("error") if isinstance(body, dict) else None
        raise PeerTestError(f"code {code}: {problem or f'HTTP {response.status}'}")
    return str(body["token"])


@dataclass
class Rendezvous:
    ws: aiohttp.ClientWebSocketResponse
    joined: Message
    control: asyncio.Queue[Item] = field(default_factory=asyncio.Queue)
    legs: dict[str, asyncio.Queue[Item]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None
    closed_reason: str | None = None

    @classmethod
    async def join(cls, session: aiohttp.ClientSession, relay: str, token: str) -> Rendezvous:
        try:
            ws = await session.ws_connect(ws_url(relay, token), heartbeat=15.0)
        except aiohttp.ClientError as error:
            raise PeerTestError(f"cannot reach the rendezvous at {relay}: {error}") from None
        first = await ws.receive()
        message = _decode(first.data) if first.type == aiohttp.WSMsgType.TEXT else None
        if message is None or message.get("type") != "joined":
            reason = _refusal(message, ws)
            await ws.close()
            raise PeerTestError(f"the rendezvous refused to join: {reason}")
        rendezvous = cls(ws, message)
        rendezvous._reader = asyncio.create_task(rendezvous._read())
        return rendezvous

    @property
    def role(self) -> str:
        return str(self.joined["role"])

    def leg_queue(self, leg: str) -> asyncio.Queue[Item]:
        return self.legs.setdefault(leg, asyncio.Queue())

    async def send(self, message: Message) -> None:
        if self.ws.closed:
            raise PeerTestError(f"the rendezvous connection is closed ({self.closed_reason})")
        await self.ws.send_str(json.dumps(message))

    async def control_message(self, timeout: float) -> Message:
        return await next_message(self.control, timeout, "the other party")

    async def _read(self) -> None:
        reason = "closed by the relay"
        try:
            async for frame in self.ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                message = _decode(frame.data)
                if message is None:
                    continue
                if message.get("type") == "error":
                    reason = f"{message.get('code')}: {message.get('message')}"
                leg = message.get("leg")
                # the leader runs each leg in its own task; the follower serves all in one loop
                routed = self.role == "leader" and message.get("type") in LEG_MESSAGES
                if routed and isinstance(leg, str):
                    self.leg_queue(leg).put_nowait(message)
                else:
                    self.control.put_nowait(message)
        finally:
            if self.ws.close_code not in (None, 1000) and reason == "closed by the relay":
                reason = f"closed by the relay (code {self.ws.close_code})"
            self.closed_reason = reason
            for queue in (self.control, *self.legs.values()):
                queue.put_nowait(SignalingClosed(reason))

    async def close(self) -> None:
        with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def next_message(queue: asyncio.Queue[Item], timeout: float, waiting_for: str) -> Message:
    try:
        async with asyncio.timeout(timeout):
            item = await queue.get()
    except TimeoutError:
        raise PeerTestError(f"{waiting_for} sent nothing for {timeout:g} s") from None
    if isinstance(item, SignalingClosed):
        queue.put_nowait(item)  # every later reader sees the end too
        raise PeerTestError(f"the rendezvous connection ended: {item.reason}")
    return item


def _decode(data: object) -> Message | None:
    try:
        message = json.loads(data) if isinstance(data, str) else None
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _refusal(message: Message | None, ws: aiohttp.ClientWebSocketResponse) -> str:
    if message is not None and message.get("type") == "error":
        return f"{message.get('code')}: {message.get('message')}"
    return f"the connection closed (code {ws.close_code})"
