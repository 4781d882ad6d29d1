"""HTTP service for an application's backend: TURN credentials, health, metrics.

``GET /credentials?user=alice&ttl=3600`` (API key as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``) answers one ``RTCIceServer`` object::

    {"urls": ["turn:turn.example.com:3478?transport=udp", ...],
     "username": "1700003600:alice", "credential": "<base64 HMAC>", "ttl": 3600}

``GET /healthz`` answers ``{"status": "ok"}`` without a key. ``GET /metrics`` serves the Prometheus
text of the metrics provider plus this service's own counters (key required only if configured).

This is an edge: it reads the wall clock (injectable as ``clock``) and the current secrets through
a callable, so a SIGHUP reload is seen by the next request.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from turn_relay.config import Secrets, TurnConfig, ice_urls
from turn_relay.credentials import DEFAULT_SEPARATOR, check_user, issue

MetricsProvider = Callable[[], str]
SecretsProvider = Callable[[], Secrets]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    urls: tuple[str, ...]
    default_ttl: int = 3600
    max_ttl: int = 86400
    separator: str = DEFAULT_SEPARATOR
    metrics_enabled: bool = True
    metrics_require_key: bool = False

    @classmethod
    def from_config(cls, config: TurnConfig) -> ApiSettings:
        return cls(
            urls=ice_urls(config),
            default_ttl=config.api.default_ttl,
            max_ttl=config.api.max_ttl,
            separator=config.auth.separator,
            metrics_enabled=config.metrics.enabled,
            metrics_require_key=config.metrics.require_api_key,
        )


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


def _error(status: int, message: str) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="turnkit"'
    return web.json_response({"error": message}, status=status, headers=headers)


def _counter(name: str, help_text: str, value: int) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} counter\n{name} {value}\n"


class CredentialService:
    """The handlers, sharing settings, providers and two counters."""

    def __init__(
        self,
        settings: ApiSettings,
        secrets: SecretsProvider,
        metrics: MetricsProvider | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._secrets = secrets
        self._metrics = metrics
        self._clock = clock
        self.issued = 0
        self.unauthorized = 0

    def _authorized(self, request: web.Request) -> bool:
        allowed = key_matches(presented_key(request), self._secrets().api_key)
        if not allowed:
            self.unauthorized += 1
        return allowed

    async def credentials(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "missing or wrong API key")
        settings = self.settings
        try:
            user = validate_user(request.query.get("user"), settings.separator)
            ttl = validate_ttl(request.query.get("ttl"), settings.default_ttl, settings.max_ttl)
        except QueryParameterError as exc:
            return _error(400, str(exc))
        rest_secrets = self._secrets().rest_secrets
        if not rest_secrets:
            return _error(503, "no REST secret configured")
        credential = issue(rest_secrets[0], user, ttl, self._clock(), settings.separator)
        self.issued += 1
        body = {
            "urls": list(settings.urls),
            "username": credential.username,
            "credential": credential.password,
            "ttl": credential.ttl,
        }
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def healthz(self, request: web.Request) -> web.Response:
        del request
        return web.json_response({"status": "ok"})

    async def metrics(self, request: web.Request) -> web.Response:
        if self.settings.metrics_require_key and not self._authorized(request):
            return _error(401, "missing or wrong API key")
        text = self._metrics() if self._metrics is not None else ""
        if text and not text.endswith("\n"):
            text += "\n"
        text += _counter(
            "turnkit_api_credentials_issued_total", "Credentials issued by the API.", self.issued
        )
        text += _counter(
            "turnkit_api_unauthorized_total",
            "API requests refused for their key.",
            self.unauthorized,
        )
        return web.Response(
            body=text.encode("utf-8"), headers={"Content-Type": PROMETHEUS_CONTENT_TYPE}
        )


def create_app(
    settings: ApiSettings,
    secrets: SecretsProvider,
    metrics: MetricsProvider | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The aiohttp application; the server runs it with ``web.AppRunner`` on ``api.listen``."""
    service = CredentialService(settings, secrets, metrics, clock)
    app = web.Application()
    app.router.add_get("/credentials", service.credentials)
    app.router.add_get("/healthz", service.healthz)
    if settings.metrics_enabled:
        app.router.add_get("/metrics", service.metrics)
    return app
