"""The rendezvous route group: WebSocket signaling rooms for two-party peer tests.

``POST /rendezvous`` ``{"tokens": [seat a, seat b]}`` registers a room (what ``rtccheck pair``
does with the tokens it signed) so its short code works; ``POST /rendezvous/from-check/<check
token>`` opens one for the check page's "test with another person": the check link is the
authority (verified with the check-link secrets, never handed a pairing secret), the relay signs
both seats itself, answers the page its own seat's token and a link and code for the other
person (the code hands out only that other seat); ``GET /rendezvous/code/<CODE>`` hands a
newcomer the token of a free seat; ``GET /rendezvous/<token>`` (WebSocket) joins. ``/peer/`` is
the browser party (plain files, strict CSP). ``GET /rendezvous/stats`` (API key) counts rooms,
parties and open sockets, for operators and leak checks.

On a join the relay sends ``{"type": "joined", "role": "leader"|"follower", "ice_servers":
[...], "legs": {...}, ...}`` with TURN credentials of this room; the first to join leads.
Messages of the types in `turn_relay.api.rooms.CLIENT_MESSAGE_TYPES` pass to the other party
verbatim; the leader's final ``result`` is turned into a verdict (`turn_relay.api.peer_verdict`),
stored as a report (source ``"peer"``) when a store is configured and sent to both as
``{"type": "verdict", ...}``. When a party leaves, the other gets ``peer-left`` and is closed;
refusals are ``{"type": "error", "code": ..., "message": ...}`` and a 44xx close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata, resources
from typing import Any

from aiohttp import WSMsgType, web

from turn_relay.auth.credentials import issue
from turn_relay.auth.links import Refusal, verify
from turn_relay.config import TurnConfig
from turn_relay.reports.store import ReportStore
from turn_relay.reports.validation import ReportRejectedError

from .access import error_response, key_matches, presented_key
from .peer_verdict import build_report
from .rooms import (
    Joined,
    MessageBucket,
    RefusalCode,
    Role,
    Room,
    RoomLimits,
    RoomRefusal,
    RoomTable,
    Seat,
    format_code,
    mint_room_token,
    new_room_code,
    parse_message,
    verify_room_token,
)
from .settings import ApiSettings, SecretsProvider
from .shared_reports import Reports

logger = logging.getLogger(__name__)

PAGE_FILES = {"": ("index.html", "text/html"), "peer.js": ("peer.js", "text/javascript")}
PAGE_FILES["peer.css"] = ("peer.css", "text/css")
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HTTP_STATUS = {
    RefusalCode.MALFORMED: 400,
    RefusalCode.FORGED: 403,
    RefusalCode.UNKNOWN: 404,
    RefusalCode.SEAT_TAKEN: 409,
    RefusalCode.EXPIRED: 410,
    RefusalCode.ENDED: 410,
    RefusalCode.TOO_LARGE: 413,
    RefusalCode.RATE_LIMITED: 429,
    RefusalCode.TOO_MANY_ROOMS: 503,
}
_CLOSE_TIMEOUT_S = 2.0
RENDEZVOUS_KEY: web.AppKey[RendezvousRoutes] = web.AppKey("rendezvous")
_HEARTBEAT_S = 15.0
#: a room opened from a check page lives this long at most (the check link's expiry too)
CHECK_ROOM_TTL_S = 900


@dataclass(frozen=True)
class RendezvousSettings:
    limits: RoomLimits
    turn_ttl: int
    tool_version: str

    @classmethod
    def from_config(cls, config: TurnConfig) -> RendezvousSettings:
        section = config.rendezvous
        limits = RoomLimits(
            max_rooms=section.max_rooms,
            max_room_ttl=float(section.max_room_ttl),
            max_message_bytes=section.max_message_bytes,
            messages_per_second=section.messages_per_second,
            message_burst=section.message_burst,
            joins_per_minute=section.joins_per_minute,
        )
        return cls(limits, section.turn_ttl, _tool_version())


def _tool_version() -> str:
    try:
        return metadata.version("turnkit")
    except metadata.PackageNotFoundError:
        return "unknown"


def leg_urls(urls: tuple[str, ...]) -> dict[str, str]:
    """The relay's URL for each relay-only leg (the first of each transport)."""
    legs: dict[str, str] = {}
    for url in urls:
        if url.startswith("turns:"):
            legs.setdefault("relay-tls", url)
        elif url.startswith("turn:"):
            transport = "tcp" if url.endswith("transport=tcp") else "udp"
            legs.setdefault(f"relay-{transport}", url)
    return legs


def stun_urls(urls: tuple[str, ...]) -> list[str]:
    """``stun:`` URLs of the relay's UDP listeners (a TURN server answers Binding too)."""
    found = []
    for url in urls:
        if url.startswith("turn:") and not url.endswith("transport=tcp"):
            found.append("stun:" + url[len("turn:") :].split("?", 1)[0])
    return list(dict.fromkeys(found))


@dataclass
class Party:
    ws: web.WebSocketResponse
    room: str
    seat: Seat
    role: Role
    bucket: MessageBucket


@dataclass
class _Stats:
    joined: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    verdicts: int = 0


class RendezvousRoutes:
    """Rooms, the parties' sockets and the browser page."""

    def __init__(
        self,
        settings: RendezvousSettings,
        api: ApiSettings,
        secrets: SecretsProvider,
        store: ReportStore | None = None,
        clock: Callable[[], float] = time.time,
        *,
        on_stored: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._api = api
        self._secrets = secrets
        self._store = store
        self._on_stored = on_stored  # a verdict was stored under this id (fleet: publish it)
        self._clock = clock
        self.rooms = RoomTable(settings.limits)
        self.parties: dict[tuple[str, Seat], Party] = {}
        self._started: dict[str, float] = {}
        self._stats = _Stats()

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/rendezvous", self.register)
        app.router.add_post("/rendezvous/from-check/{token}", self.from_check)
        app.router.add_get("/rendezvous/stats", self.stats)
        app.router.add_get("/rendezvous/code/{code}", self.lookup)
        app.router.add_get("/rendezvous/{token}", self.join)
        app.router.add_get("/peer/{name:(|peer\\.js|peer\\.css)}", self.page)
        app.on_shutdown.append(self._close_all)

    # ------------------------------------------------------------ HTTP

    async def register(self, request: web.Request) -> web.Response:
        refused = self.rooms.allow_source(request.remote or "", self._clock())
        if refused is not None:
            return self._refusal_response(refused)
        try:
            body = await request.json()
        except ValueError:
            body = None
        tokens = body.get("tokens") if isinstance(body, dict) else None
        if not isinstance(tokens, list) or not 1 <= len(tokens) <= 2:
            return error_response(400, 'expected {"tokens": [one or two room tokens]}')
        room: Room | None = None
        for token in tokens:
            opened = self._open(token)
            if isinstance(opened, RoomRefusal):
                return self._refusal_response(opened)
            if room is not None and opened is not room:
                return error_response(400, "the tokens name different rooms")
            room = opened
        assert room is not None
        return web.json_response(
            {"room": room.code, "code": format_code(room.code), "expires_at": room.expires_at},
            headers={"Cache-Control": "no-store"},
        )

    async def from_check(self, request: web.Request) -> web.Response:
        """A room for a check-page user and the person they test with (see the docstring)."""
        now = self._clock()
        refused = self.rooms.allow_source(request.remote or "", now)
        if refused is not None:
            return self._refusal_response(refused)
        secrets = self._secrets()
        claims = verify(secrets.check_link_secrets or (), request.match_info["token"], now)
        if isinstance(claims, Refusal):
            return error_response(403, f"this check link is refused: {claims.reason.value}")
        if not secrets.pairing_secrets:
            return error_response(404, "the rendezvous is not configured")
        room_code = new_room_code()
        expires_at = int(min(claims.expires_at, now + CHECK_ROOM_TTL_S))
        if expires_at - now < 60:
            return error_response(403, "this check link is refused: it expires within a minute")
        signer = secrets.pairing_secrets[0]
        own, other = (
            mint_room_token(signer, room_code, seat, expires_at, now) for seat in (Seat.A, Seat.B)
        )
        room = self._open(other)  # only the other seat is handed out by the code
        if isinstance(room, RoomRefusal):
            return self._refusal_response(room)
        base = f"{request.scheme}://{request.host}"
        code = format_code(room.code)
        body = {
            "room": room.code,
            "code": code,
            "expires_at": room.expires_at,
            "token": own,
            "link": f"{base}/peer/#{other}",
            "code_page": f"{base}/peer/",
            "command": f"rtccheck peer {code} --relay {base}",
        }
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    def _open(self, token: object) -> Room | RoomRefusal:
        now = self._clock()
        claims = verify_room_token(self._secrets().pairing_secrets, token, now)
        if isinstance(claims, RoomRefusal):
            return claims
        assert isinstance(token, str)
        return self.rooms.open(claims, token, now)

    async def lookup(self, request: web.Request) -> web.Response:
        now = self._clock()
        refused = self.rooms.allow_source(request.remote or "", now)
        if refused is not None:
            return self._refusal_response(refused)
        found = self.rooms.lookup(request.match_info["code"], now)
        if isinstance(found, RoomRefusal):
            return self._refusal_response(found)
        room, seat = found
        body = {"room": room.code, "seat": str(seat), "token": room.tokens[seat]}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def stats(self, request: web.Request) -> web.Response:
        if not key_matches(presented_key(request), self._secrets().api_key):
            return error_response(401, "missing or wrong API key")
        return web.json_response(self.snapshot(), headers={"Cache-Control": "no-store"})

    def snapshot(self) -> dict[str, Any]:
        return {
            "rooms": len(self.rooms),
            "live_rooms": self.rooms.live,
            "occupied_rooms": self.rooms.occupied,
            "parties": self.rooms.parties,
            "sockets": len(self.parties),
            "tasks": len(asyncio.all_tasks()),
            "joined_total": self._stats.joined,
            "refused_total": dict(self._stats.refused),
            "verdicts_total": self._stats.verdicts,
        }

    async def page(self, request: web.Request) -> web.Response:
        name, content_type = PAGE_FILES[request.match_info["name"]]
        body = resources.files(__package__).joinpath("static", "peer", name).read_bytes()
        headers = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"}
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        return web.Response(body=body, content_type=content_type, headers=headers)

    def _refusal_response(self, refusal: RoomRefusal) -> web.Response:
        self._count_refusal(refusal)
        return error_response(_HTTP_STATUS[refusal.code], refusal.message)

    def _count_refusal(self, refusal: RoomRefusal) -> None:
        code = str(refusal.code)
        self._stats.refused[code] = self._stats.refused.get(code, 0) + 1

    # ------------------------------------------------------------ WebSocket

    async def join(self, request: web.Request) -> web.StreamResponse:
        limits = self.settings.limits
        ws = web.WebSocketResponse(
            max_msg_size=4 * limits.max_message_bytes, heartbeat=_HEARTBEAT_S
        )
        if not ws.can_prepare(request).ok:
            return error_response(400, "a WebSocket upgrade is expected here")
        await ws.prepare(request)
        joined = self._admit(request.remote or "", request.match_info["token"])
        if isinstance(joined, RoomRefusal):
            await self._refuse(ws, joined)
            return ws
        party = Party(ws, joined.room.code, joined.seat, joined.role, MessageBucket(limits))
        self.parties[(party.room, party.seat)] = party
        self._stats.joined += 1
        self._started.setdefault(party.room, self._clock())
        try:
            await self._welcome(party, joined.room, joined.peer_present)
            await self._serve(party, joined.room)
        finally:
            await self._leave(party)
        return ws

    def _admit(self, source: str, token: str) -> Joined | RoomRefusal:
        now = self._clock()
        refused = self.rooms.allow_source(source, now)
        if refused is not None:
            return refused
        claims = verify_room_token(self._secrets().pairing_secrets, token, now)
        if isinstance(claims, RoomRefusal):
            return claims
        return self.rooms.join(claims, token, now)

    async def _refuse(self, ws: web.WebSocketResponse, refusal: RoomRefusal) -> None:
        self._count_refusal(refusal)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_json(refusal.as_message())
        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await ws.close(code=refusal.code.close_code, message=refusal.message[:120].encode())

    async def _welcome(self, party: Party, room: Room, peer_present: bool) -> None:
        now = self._clock()
        secrets = self._secrets()
        ice_servers: list[dict[str, Any]] = []
        if secrets.rest_secrets:
            ttl = max(1, min(self.settings.turn_ttl, int(room.expires_at - now) + 60))
            credential = issue(
                secrets.rest_secrets[0], f"peer-{room.code}", ttl, now, self._api.separator
            )
            ice_servers.append(
                {
                    "urls": list(self._api.urls),
                    "username": credential.username,
                    "credential": credential.password,
                }
            )
        limits = self.settings.limits
        await party.ws.send_json(
            {
                "type": "joined",
                "room": format_code(room.code),
                "seat": str(party.seat),
                "role": str(party.role),
                "peer_present": peer_present,
                "expires_at": room.expires_at,
                "ice_servers": ice_servers,
                "stun_urls": stun_urls(self._api.urls),
                "legs": leg_urls(self._api.urls),
                "limits": {
                    "max_message_bytes": limits.max_message_bytes,
                    "messages_per_second": limits.messages_per_second,
                    "message_burst": limits.message_burst,
                },
            }
        )
        other = self.parties.get((party.room, party.seat.other))
        if other is not None:
            await self._send(other, {"type": "peer-joined", "seat": str(party.seat)})

    async def _serve(self, party: Party, room: Room) -> None:
        remaining = room.expires_at - self._clock()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                async for message in party.ws:
                    refusal = await self._handle(party, message)
                    if refusal is not None:
                        await self._refuse(party.ws, refusal)
                        return
        except TimeoutError:
            refusal = RoomRefusal(RefusalCode.EXPIRED, f"room {format_code(room.code)} expired")
            await self._refuse(party.ws, refusal)

    async def _handle(self, party: Party, message: Any) -> RoomRefusal | None:
        if message.type == WSMsgType.ERROR:
            return None
        if not party.bucket.allow(self._clock()):
            limits = self.settings.limits
            return RoomRefusal(
                RefusalCode.RATE_LIMITED,
                f"more than {limits.messages_per_second:g} messages a second"
                f" (burst {limits.message_burst})",
            )
        data = message.data if message.type in (WSMsgType.TEXT, WSMsgType.BINARY) else b""
        parsed = parse_message(data, self.settings.limits)
        if isinstance(parsed, RoomRefusal):
            return parsed
        assert isinstance(data, str)  # parse_message refuses binary frames
        if parsed["type"] == "result" and parsed.get("final") is True:
            if party.role is Role.LEADER:
                await self._verdict(party, parsed)
            return None
        other = self.parties.get((party.room, party.seat.other))
        if other is not None:
            await other.ws.send_str(data)
        if parsed["type"] == "bye":
            await party.ws.close(code=1000, message=b"bye")
        return None

    async def _verdict(self, party: Party, message: dict[str, object]) -> None:
        started = self._started.get(party.room, self._clock())
        now = self._clock()
        report, verdict = build_report(
            message,
            self._api.urls,
            room=format_code(party.room),
            started_at=datetime.fromtimestamp(started, UTC).replace(microsecond=0).isoformat(),
            duration_s=now - started,
            tool_version=self.settings.tool_version,
        )
        result_id, store_error = await self._store_report(report, now)
        self._stats.verdicts += 1
        body = {
            "type": "verdict",
            "verdict": verdict.text,
            "status": verdict.status,
            "cause": verdict.cause,
            "met": verdict.met,
            "result_id": result_id,
            "store_error": store_error,
            "report": report,
        }
        for seat in Seat:
            other = self.parties.get((party.room, seat))
            if other is not None:
                await self._send(other, body)

    async def _store_report(
        self, report: dict[str, Any], now: float
    ) -> tuple[str | None, str | None]:
        if self._store is None:
            return None, "the relay keeps no reports (server.state_dir is not set)"
        body = json.dumps(report).encode("utf-8")
        try:
            ident = await asyncio.to_thread(self._store.put, body, now)
        except ReportRejectedError as error:
            logger.warning("peer report refused by the store: %s", error)
            return None, str(error)
        if self._on_stored is not None:
            self._on_stored(ident)
        return ident, None

    async def _send(self, party: Party, body: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await party.ws.send_json(body)

    async def _leave(self, party: Party) -> None:
        self.parties.pop((party.room, party.seat), None)
        other_present = self.rooms.leave(party.room, party.seat)
        if not party.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await party.ws.close()
        other = self.parties.get((party.room, party.seat.other))
        if other_present and other is not None:
            await self._send(other, {"type": "peer-left", "seat": str(party.seat)})
            with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await other.ws.close(code=1000, message=b"peer left")
        if not any(key[0] == party.room for key in self.parties):
            self._started.pop(party.room, None)

    async def _close_all(self, app: web.Application) -> None:
        del app
        for party in list(self.parties.values()):
            with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await party.ws.close(code=1001, message=b"relay shutting down")


def add_rendezvous(
    app: web.Application,
    config: TurnConfig,
    api: ApiSettings,
    secrets: SecretsProvider,
    reports: Reports | None = None,
) -> RendezvousRoutes:
    """The route group of ``config`` on ``app``. Verdicts go to ``reports`` (the check page's,
    published for the fleet like its reports), else to a store of its own in
    server.state_dir (closed with the app), else nowhere."""
    state_dir = config.server.state_dir
    own = reports is None and state_dir is not None
    shared = reports.store if reports is not None else None
    store = shared or (ReportStore(state_dir) if state_dir is not None else None)
    settings = RendezvousSettings.from_config(config)
    on_stored = reports.stored if reports is not None else None
    routes = RendezvousRoutes(settings, api, secrets, store, on_stored=on_stored)
    routes.add_to(app)
    app[RENDEZVOUS_KEY] = routes
    if own and store is not None:

        async def close_store(_: web.Application) -> None:
            store.close()

        app.on_cleanup.append(close_store)
    return routes
