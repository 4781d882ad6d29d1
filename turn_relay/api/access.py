"""Who may call the HTTP API: the API key, compared in constant time, and the shared refusal."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web


@dataclass(slots=True)
class ApiCounters:
    """What the API itself counts; every route group bumps the same object."""

    credentials_issued: int = 0
    unauthorized: int = 0


def presented_key(request: web.Request) -> str | None:
    """The API key from ``Authorization: Bearer <key>`` or, failing that, ``X-API-Key``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("X-API-Key")


def key_matches(presented: str | None, expected: str | None) -> bool:
    """Constant-time comparison; no configured key means nobody is let in."""
    if not expected or presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def error_response(status: int, message: str) -> web.Response:
    """The API's one error shape: ``{"error": message}``, never cached."""
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="turnkit"'
    return web.json_response({"error": message}, status=status, headers=headers)
