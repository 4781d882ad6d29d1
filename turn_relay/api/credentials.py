"""``GET /credentials``: one time-limited TURN REST credential as an ``RTCIceServer`` object.

``GET /credentials?user=alice&ttl=3600`` (API key as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``) answers::

    {"urls": ["turn:turn.example.com:3478?transport=udp", ...],
     "username": "1700003600:alice", "credential": "<base64 HMAC>", "ttl": 3600}

It reads the wall clock (injectable as ``clock``) and the current secrets through a callable, so a
SIGHUP reload is seen by the next request.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from turn_relay.auth.credentials import DEFAULT_SEPARATOR, check_user, issue

from .access import ApiCounters, error_response, key_matches, presented_key
from .settings import ApiSettings, SecretsProvider


class QueryParameterError(ValueError):
    """A query parameter that cannot be served; the message names the parameter."""


def validate_user(user: str | None, separator: str = DEFAULT_SEPARATOR) -> str:
    if not user:
        raise QueryParameterError("user: required")
    try:
        return check_user(user, separator)
    except ValueError as exc:
        raise QueryParameterError(f"user: {exc}") from None


def validate_ttl(ttl: str | None, default: int, maximum: int) -> int:
    if ttl is None:
        return default
    well_formed = ttl.isascii() and ttl.isdigit() and len(ttl) <= 10
    if not well_formed or not 1 <= int(ttl) <= maximum:
        raise QueryParameterError(f"ttl: a whole number of seconds from 1 to {maximum}")
    return int(ttl)


class CredentialRoutes:
    """The credentials handler, with the settings, secrets and clock it reads."""

    def __init__(
        self,
        settings: ApiSettings,
        secrets: SecretsProvider,
        counters: ApiCounters,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self._secrets = secrets
        self._counters = counters
        self._clock = clock

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/credentials", self.credentials)

    async def credentials(self, request: web.Request) -> web.Response:
        if not key_matches(presented_key(request), self._secrets().api_key):
            self._counters.unauthorized += 1
            return error_response(401, "missing or wrong API key")
        settings = self.settings
        try:
            user = validate_user(request.query.get("user"), settings.separator)
            ttl = validate_ttl(request.query.get("ttl"), settings.default_ttl, settings.max_ttl)
        except QueryParameterError as exc:
            return error_response(400, str(exc))
        rest_secrets = self._secrets().rest_secrets
        if not rest_secrets:
            return error_response(503, "no REST secret configured")
        credential = issue(rest_secrets[0], user, ttl, self._clock(), settings.separator)
        self._counters.credentials_issued += 1
        body = {
            "urls": list(settings.urls),
            "username": credential.username,
            "credential": credential.password,
            "ttl": credential.ttl,
        }
        return web.json_response(body, headers={"Cache-Control": "no-store"})
