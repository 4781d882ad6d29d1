"""The admin API: sessions, kick, revoke, drain and status, behind their own key.

Every route needs the admin key (``api.admin_key_file`` / ``api.admin_key_env``) as
``Authorization: Bearer <key>``; the credentials API key is never accepted here, and the
configuration refuses an admin key equal to it. Compared in constant time.

::

    GET  /admin/sessions[?user=U]      {"sessions": [{"id", "user", "client", ...}, ...]}
    POST /admin/kick     {"target": USER or SESSION}        {"ended": N}     (404 if 0)
    POST /admin/revoke   {"user": U, "until": UNIX or null} {"user", "until", "ended"}
    POST /admin/unrevoke {"user": U}                        {"user", "lifted": true} (404)
    GET  /admin/revocations            {"revocations": {"alice": 1714564800.0 | null}}
    POST /admin/drain    {"seconds": N or null}             the status after it
    GET  /admin/status                 {"uptime", "sessions", "workers", "offload", ...}

The shell hands `create_app` an `AdminView`; the API imports nothing of the shell.
"""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

from aiohttp import web

from turn_relay.auth.credentials import check_user

from .access import ApiCounters, error_response, key_matches, presented_key
from .settings import SecretsProvider

Record = dict[str, Any]


class AdminError(Exception):
    """A refusal the view explains: the HTTP status and a message for the operator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class AdminView(Protocol):
    """What the admin API asks of the relay (one process, or the parent of the workers)."""

    def draining(self) -> bool: ...

    async def sessions(self, user: str | None) -> list[Record]: ...

    async def kick(self, target: str) -> int: ...

    async def revoke(self, user: str, until: float) -> int: ...

    async def unrevoke(self, user: str) -> bool: ...

    async def revocations(self) -> dict[str, float]: ...

    async def drain(self, seconds: float | None) -> Record: ...

    async def status(self) -> Record: ...


def _until_json(until: float) -> float | None:
    return None if math.isinf(until) else until


class AdminRoutes:
    def __init__(self, view: AdminView, secrets: SecretsProvider, counters: ApiCounters) -> None:
        self._view = view
        self._secrets = secrets
        self._counters = counters

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/admin/sessions", self.sessions)
        app.router.add_post("/admin/kick", self.kick)
        app.router.add_post("/admin/revoke", self.revoke)
        app.router.add_post("/admin/unrevoke", self.unrevoke)
        app.router.add_get("/admin/revocations", self.revocations)
        app.router.add_post("/admin/drain", self.drain)
        app.router.add_get("/admin/status", self.status)

    def _allowed(self, request: web.Request) -> bool:
        if key_matches(presented_key(request), self._secrets().admin_key):
            return True
        self._counters.unauthorized += 1
        return False

    async def sessions(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return _refused()
        user = request.query.get("user") or None
        return await _answer(self._sessions(user))

    async def _sessions(self, user: str | None) -> Record:
        return {"sessions": await self._view.sessions(user)}

    async def kick(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return _refused()
        body = await _body(request)
        target = body.get("target")
        if not isinstance(target, str) or not target:
            return error_response(400, "target: a user name or a session id (ip:port)")
        return await _answer(self._kick(target))

    async def _kick(self, target: str) -> Record:
        ended = await self._view.kick(target)
        if not ended:
            raise AdminError(404, f"no session of user or id {target!r}")
        return {"target": target, "ended": ended}

    async def revoke(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return _refused()
        body = await _body(request)
        user, until = body.get("user"), body.get("until")
        if not isinstance(user, str) or not _valid_user(user):
            return error_response(400, "user: 1-64 characters of letters, digits and ._@+-")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int | float)):
            return error_response(400, "until: Unix seconds, or null for until unrevoked")
        return await _answer(self._revoke(user, math.inf if until is None else float(until)))

    async def _revoke(self, user: str, until: float) -> Record:
        ended = await self._view.revoke(user, until)
        return {"user": user, "until": _until_json(until), "ended": ended}

    async def unrevoke(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return _refused()
        user = (await _body(request)).get("user")
        if not isinstance(user, str) or not user:
            return error_response(400, "user: required")
        return await _answer(self._unrevoke(user))

    async def _unrevoke(self, user: str) -> Record:
        if not await self._view.unrevoke(user):
            raise AdminError(404, f"{user!r} is not revoked")
        return {"user": user, "lifted": True}

    async def revocations(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return _refused()
        return await _answer(self._revocations())

    async def _revocations(self) -> Record:
        found = await self._view.revocations()
        return {"revocations": {user: _until_json(u) for user, u in sorted(found.items())}}

    async def drain(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return _refused()
        seconds = (await _body(request)).get("seconds")
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0
        ):
            return error_response(400, "seconds: a number >= 0, or null for the default")
        return await _answer(self._view.drain(None if seconds is None else float(seconds)))

    async def status(self, request: web.Request) -> web.Response:
        if not self._allowed(request):
            return _refused()
        return await _answer(self._view.status())


def _valid_user(user: str) -> bool:
    try:
        check_user(user)
    except ValueError:
        return False
    return True


def _refused() -> web.Response:
    return error_response(401, "missing or wrong admin key")


async def _body(request: web.Request) -> Record:
    if not request.can_read_body:
        return {}
    try:
        found = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"": "not JSON"}
    return found if isinstance(found, dict) else {}


async def _answer(work: Any) -> web.Response:
    try:
        body = await work
    except AdminError as exc:
        return error_response(exc.status, exc.message)
    return web.json_response(body, headers={"Cache-Control": "no-store"})
