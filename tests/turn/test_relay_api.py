"""HTTP API: credentials (RTCIceServer JSON), API key checks, health, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from turn_relay.api.access import key_matches
from turn_relay.api.app import create_app
from turn_relay.api.settings import ApiSettings
from turn_relay.auth.credentials import rest_password, verify
from turn_relay.config import Secrets, parse

API_KEY = "test-api-key-0123456789"
NOW = 1_700_000_000.0
URLS = ("turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp")
SETTINGS = ApiSettings(urls=URLS, default_ttl=3600, max_ttl=86400)
BEARER = {"Authorization": f"Bearer {API_KEY}"}


class SecretsBox:
    """What the server does on SIGHUP: swap the Secrets the app reads through a callable."""

    def __init__(self, secrets: Secrets) -> None:
        self.current = secrets

    def __call__(self) -> Secrets:
        return self.current


def default_secrets() -> Secrets:
    return Secrets(rest_secrets=("current", "previous"), api_key=API_KEY)


@asynccontextmanager
async def client_for(
    settings: ApiSettings = SETTINGS,
    secrets: SecretsBox | None = None,
    metrics_text: str | None = None,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    provider = secrets or SecretsBox(default_secrets())
    metrics = None if metrics_text is None else (lambda: metrics_text)
    app = create_app(settings, provider, metrics, clock=lambda: NOW)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.mark.asyncio
async def test_credentials_with_bearer_key() -> None:
    async with client_for() as client:
        response = await client.get("/credentials?user=alice&ttl=600", headers=BEARER)
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.json()
    assert body == {
        "urls": list(URLS),
        "username": "1700000600:alice",
        "credential": rest_password("current", "1700000600:alice"),
        "ttl": 600,
    }
    assert verify(["previous", "current"], body["username"], body["credential"], NOW + 1)


@pytest.mark.asyncio
async def test_credentials_with_x_api_key_and_default_ttl() -> None:
    async with client_for() as client:
        response = await client.get("/credentials?user=bob", headers={"X-API-Key": API_KEY})
        body = await response.json()
    assert response.status == 200
    assert body["ttl"] == 3600
    assert body["username"] == "1700003600:bob"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-0123456789"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer "},
        {"X-API-Key": API_KEY[:-1]},
    ],
)
@pytest.mark.asyncio
async def test_credentials_without_valid_key_is_401(headers: dict[str, str]) -> None:
    async with client_for() as client:
        response = await client.get("/credentials?user=alice", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert await response.json() == {"error": "missing or wrong API key"}


@pytest.mark.asyncio
async def test_no_configured_key_lets_nobody_in() -> None:
    box = SecretsBox(Secrets(rest_secrets=("current",), api_key=None))
    async with client_for(secrets=box) as client:
        response = await client.get("/credentials?user=alice", headers=BEARER)
        assert response.status == 401


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("", "user: required"),
        ("user=", "user: required"),
        ("user=al:ice", "user: user must be 1-64 characters of letters, digits and ._@+- only"),
        (
            "user=" + "a" * 65,
            "user: user must be 1-64 characters of letters, digits and ._@+- only",
        ),
        ("user=alice&ttl=0", "ttl: a whole number of seconds from 1 to 86400"),
        ("user=alice&ttl=86401", "ttl: a whole number of seconds from 1 to 86400"),
        ("user=alice&ttl=-5", "ttl: a whole number of seconds from 1 to 86400"),
        ("user=alice&ttl=1e3", "ttl: a whole number of seconds from 1 to 86400"),
        ("user=alice&ttl=" + "9" * 5000, "ttl: a whole number of seconds from 1 to 86400"),
    ],
)
@pytest.mark.asyncio
async def test_bad_parameters_are_400(query: str, error: str) -> None:
    async with client_for() as client:
        response = await client.get(f"/credentials?{query}", headers=BEARER)
        assert response.status == 400
        assert await response.json() == {"error": error}


@pytest.mark.asyncio
async def test_max_ttl_is_accepted() -> None:
    async with client_for() as client:
        response = await client.get("/credentials?user=alice&ttl=86400", headers=BEARER)
        assert (await response.json())["ttl"] == 86400


@pytest.mark.asyncio
async def test_no_rest_secret_is_503() -> None:
    box = SecretsBox(Secrets(rest_secrets=(), api_key=API_KEY))
    async with client_for(secrets=box) as client:
        response = await client.get("/credentials?user=alice", headers=BEARER)
        assert response.status == 503


@pytest.mark.asyncio
async def test_reloaded_secrets_are_used_by_the_next_request() -> None:
    box = SecretsBox(default_secrets())
    async with client_for(secrets=box) as client:
        first = await (await client.get("/credentials?user=a", headers=BEARER)).json()
        box.current = Secrets(rest_secrets=("rotated", "current"), api_key="new-key-0123456789")
        refused = await client.get("/credentials?user=a", headers=BEARER)
        assert refused.status == 401
        second = await (
            await client.get("/credentials?user=a", headers={"X-API-Key": "new-key-0123456789"})
        ).json()
    assert first["credential"] == rest_password("current", first["username"])
    assert second["credential"] == rest_password("rotated", second["username"])


@pytest.mark.asyncio
async def test_healthz_needs_no_key() -> None:
    async with client_for() as client:
        response = await client.get("/healthz")
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


@pytest.mark.asyncio
async def test_metrics_in_prometheus_text() -> None:
    provided = "# TYPE turnkit_allocations gauge\nturnkit_allocations 3"
    async with client_for(metrics_text=provided) as client:
        await client.get("/credentials?user=alice", headers=BEARER)
        await client.get("/credentials?user=alice")
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await response.text()
    assert text.startswith(provided + "\n")
    assert "turnkit_api_credentials_issued_total 1.0\n" in text
    assert "turnkit_api_unauthorized_total 1.0\n" in text
    assert "# TYPE turnkit_api_credentials_issued_total counter\n" in text


@pytest.mark.asyncio
async def test_metrics_can_require_the_key() -> None:
    settings = ApiSettings(urls=URLS, metrics_require_key=True)
    async with client_for(settings=settings, metrics_text="") as client:
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/metrics", headers=BEARER)).status == 200


@pytest.mark.asyncio
async def test_metrics_can_be_disabled() -> None:
    settings = ApiSettings(urls=URLS, metrics_enabled=False)
    async with client_for(settings=settings) as client:
        assert (await client.get("/metrics")).status == 404


def test_settings_from_config() -> None:
    config = parse(
        {
            "server": {"realm": "r", "public_host": "turn.example.com"},
            "relay": {"addresses": ["192.0.2.5"]},
            "auth": {"separator": "-"},
            "api": {"enabled": True, "api_key_env": "K", "default_ttl": 60, "max_ttl": 120},
            "metrics": {"require_api_key": True},
        }
    )
    settings = ApiSettings.from_config(config)
    assert settings == ApiSettings(
        urls=(
            "turn:turn.example.com:3478?transport=udp",
            "turn:turn.example.com:3478?transport=tcp",
        ),
        default_ttl=60,
        max_ttl=120,
        separator="-",
        metrics_enabled=True,
        metrics_require_key=True,
    )


def test_key_matches() -> None:
    assert key_matches("abc", "abc")
    assert not key_matches("abd", "abc")
    assert not key_matches(None, "abc")
    assert not key_matches("", "")
    assert not key_matches("abc", None)
    assert not key_matches("é", "e")
