"""The check page: ``/check/<token>``, its static files, its TURN credentials, a WebSocket echo
and the report upload. Public routes (a user's browser calls them): the signed, expiring token
in the path is the only authority, so every route verifies it first (`turn_relay.auth.links`).

* ``GET /check/<token>``: the page (plain HTML + JS shipped in ``static/check/``) with a strict
  Content-Security-Policy; nothing is loaded from, or sent to, any other host.
* ``GET /check/<token>/config``: the test: its id, one short-lived TURN credential for the user
  ``check-<test id>`` (so the relay's allocations carry the test id), every TURN and STUN URL
  the relay offers, the address the API saw, the app's signaling URL when the link names one.
* ``POST /rendezvous/from-check/<token>`` (the rendezvous route group, when it is on and
  ``peer_test`` says so): "test with another person", a peer-test room for this user.
* ``GET /check/<token>/ws``: echoes a few text messages (a WebSocket round trip to the relay).
* ``POST /check/<token>/report``: the page's report, size-limited (413) and schema-checked
  (400); the relay replaces ``relay_observed`` with what it saw itself and stores it once under
  the test id (a second upload: 403).

Forged, expired, malformed and spent tokens get 403 and store nothing; page loads and uploads
are limited per source (429). Store calls run off the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from turn_relay.auth.credentials import issue
from turn_relay.auth.links import LinkClaims, Refusal, verify
from turn_relay.reports.result_id import ResultIdError, parse_result_id
from turn_relay.reports.store import ReportReusedError
from turn_relay.reports.validation import (
    ReportInvalidError,
    ReportTooLargeError,
    parse_report,
)

from .access import error_response
from .check_settings import CheckSettings, ObservedProvider, test_user
from .limits import SourceLimiter
from .settings import SecretsProvider
from .shared_reports import Reports

STATIC_PACKAGE = "turn_relay.api"
STATIC_DIR = ("static", "check")
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
PAGE_FILE = "index.html"
WS_MAX_MESSAGES = 20
WS_MAX_MESSAGE_BYTES = 1024
WS_IDLE_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Test:
    """A verified check-page token: the test it names, and its canonical result id."""

    claims: LinkClaims
    result_id: str


def content_security_policy(request: web.Request, signaling: str | None) -> str:
    """default-src 'none'; scripts, styles and images from the page's own origin only;
    connections to the own origin (fetch, and its ws:/wss: for browsers that do not count
    them as 'self') and the app's signaling origin when the link names one."""
    secure = request.scheme == "https"
    own = f"{'wss' if secure else 'ws'}://{request.host}"
    connect = ["'self'", own]
    if signaling:
        parts = urlsplit(signaling)
        connect.append(f"{parts.scheme}://{parts.netloc}")
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src {' '.join(dict.fromkeys(connect))}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def describe_url(url: str) -> dict[str, Any]:
    """``turns:[2001:db8::1]:443?transport=tcp`` -> scheme, host, port, transport, family."""
    scheme, _, rest = url.partition(":")
    address, _, query = rest.partition("?")
    if address.startswith("["):
        host, _, port_text = address[1:].partition("]")
        port_text = port_text.lstrip(":")
    else:
        host, _, port_text = address.rpartition(":") if ":" in address else (address, "", "")
    secure = scheme in ("turns", "stuns")
    port = int(port_text) if port_text.isdigit() else (5349 if secure else 3478)
    params = dict(part.partition("=")[::2] for part in query.split("&") if part)
    transport = params.get("transport", "tcp" if secure else "udp")
    kind = "tls" if secure else transport
    return {
        "url": url,
        "scheme": scheme,
        "host": host,
        "port": port,
        "transport": kind,
        "family": 6 if ":" in host else 4,
        "id": f"{kind}-{host}-{port}",
    }


def _static_files() -> dict[str, bytes]:
    folder = resources.files(STATIC_PACKAGE).joinpath(*STATIC_DIR)
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}


class CheckRoutes:
    def __init__(
        self,
        settings: CheckSettings,
        secrets: SecretsProvider,
        reports: Reports,
        observed: ObservedProvider,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self._secrets = secrets
        self._reports = reports
        self._store = reports.store
        self._observed = observed
        self._clock = clock
        self._files = _static_files()
        self.page_limit = SourceLimiter(settings.page_loads_per_minute)
        self.upload_limit = SourceLimiter(settings.uploads_per_minute)

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/check/static/{name}", self.static)
        app.router.add_get("/check/{token}", self.page)
        app.router.add_get("/check/{token}/config", self.config)
        app.router.add_get("/check/{token}/ws", self.echo)
        app.router.add_post("/check/{token}/report", self.report)

    # ------------------------------------------------------------ the token

    async def _test(self, request: web.Request) -> Test | web.Response:
        """The verified test of the request's token, or the 403 that refuses it."""
        now = self._clock()
        claims = verify(self._secrets().check_link_secrets or (), request.match_info["token"], now)
        if isinstance(claims, Refusal):
            return error_response(403, f"this check link is refused: {claims.reason.value}")
        try:
            result_id = parse_result_id(claims.test_id)
        except ResultIdError:
            return error_response(403, "this check link is refused: not a check-page test")
        if await asyncio.to_thread(self._store.was_used, result_id, now):
            return error_response(403, "this check link is refused: its report is already in")
        return Test(claims, result_id)

    async def _admitted(self, limiter: SourceLimiter, request: web.Request) -> Test | web.Response:
        """The request's verified test, or the 429 (over the source's limit) or 403 refusing it."""
        limited = self._limited(limiter, request)
        return limited if limited is not None else await self._test(request)

    def _limited(self, limiter: SourceLimiter, request: web.Request) -> web.Response | None:
        if limiter.allow(request.remote, self._clock()):
            return None
        response = error_response(429, "too many requests from your address; try again soon")
        response.headers["Retry-After"] = str(limiter.retry_after(request.remote))
        return response

    # ------------------------------------------------------------ routes

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        suffix = name[name.rfind(".") :] if "." in name else ""
        if name == PAGE_FILE or name not in self._files or suffix not in STATIC_TYPES:
            return error_response(404, "no such file")
        return web.Response(
            body=self._files[name],
            headers={
                "Content-Type": STATIC_TYPES[suffix],
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def page(self, request: web.Request) -> web.Response:
        test = await self._admitted(self.page_limit, request)
        if isinstance(test, web.Response):
            return test
        return web.Response(
            body=self._files[PAGE_FILE],
            headers={
                "Content-Type": "text/html; charset=utf-8",
                "Content-Security-Policy": content_security_policy(request, test.claims.signaling),
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def config(self, request: web.Request) -> web.Response:
        test = await self._admitted(self.page_limit, request)
        if isinstance(test, web.Response):
            return test
        rest_secrets = self._secrets().rest_secrets
        if not rest_secrets:
            return error_response(503, "the relay has no REST secret for the test's credentials")
        now = self._clock()
        ttl = max(60, min(self.settings.credential_ttl, int(test.claims.expires_at - now)))
        credential = issue(
            rest_secrets[0], test_user(test.result_id), ttl, now, self.settings.separator
        )
        body = {
            "test_id": test.result_id,
            "note": test.claims.note,
            "expires_at": test.claims.expires_at,
            "username": credential.username,
            "credential": credential.password,
            "ttl": credential.ttl,
            "turn": [describe_url(url) for url in self.settings.turn_urls],
            "stun": [describe_url(url) for url in self.settings.stun_urls],
            "signaling": test.claims.signaling,
            "seen_address": request.remote,
            "max_report_bytes": self.settings.max_report_bytes,
            "peer_test": self.settings.peer_test,
        }
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def echo(self, request: web.Request) -> web.StreamResponse:
        test = await self._admitted(self.page_limit, request)
        if isinstance(test, web.Response):
            return test
        socket = web.WebSocketResponse(max_msg_size=WS_MAX_MESSAGE_BYTES, heartbeat=None)
        await socket.prepare(request)
        for _ in range(WS_MAX_MESSAGES):
            try:
                message = await socket.receive(timeout=WS_IDLE_TIMEOUT_S)
            except TimeoutError:
                break
            if message.type is not WSMsgType.TEXT:
                break
            await socket.send_str(message.data)
        await socket.close()
        return socket

    async def report(self, request: web.Request) -> web.Response:
        test = await self._admitted(self.upload_limit, request)
        if isinstance(test, web.Response):
            return test
        limit = self.settings.max_report_bytes
        if request.content_length is not None and request.content_length > limit:
            return error_response(413, str(ReportTooLargeError(request.content_length, limit)))
        body = await request.content.read(limit + 1)
        try:
            document = parse_report(body, limit)
        except ReportTooLargeError as error:
            return error_response(413, str(error))
        except ReportInvalidError as error:
            return error_response(400, str(error))
        if document.get("source") != "browser":
            return error_response(400, '$.source: a check-page report has source "browser"')
        document["relay_observed"] = {
            "test_id": test.result_id,
            "allocations": await self._observed(test.result_id),
        }
        stored = json.dumps(document, ensure_ascii=False).encode("utf-8")
        if await self._reports.held_elsewhere(test.result_id):
            return error_response(403, "this check link is refused: its report is already in")
        try:
            ident = await asyncio.to_thread(
                self._store.put_once,
                stored,
                self._clock(),
                test.result_id,
                float(test.claims.expires_at),
            )
        except ReportReusedError:
            return error_response(403, "this check link is refused: its report is already in")
        except ReportTooLargeError as error:  # what the relay added made it too large
            return error_response(413, str(error))
        self._reports.stored(ident)
        return web.json_response(
            {"id": ident, "verdict": document["verdict"]}, headers={"Cache-Control": "no-store"}
        )
