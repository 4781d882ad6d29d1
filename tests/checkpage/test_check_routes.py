"""The check page's routes and the report routes, against the real app and a real SQLite store.

Tokens are minted with `turn_relay.auth.links`; the clock is stepped by hand. Every refusal is
checked for its status and for storing nothing (the store's totals stay (0, 0)).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from turnkit_testing.report_documents import report

from turn_relay.api.app import create_app
from turn_relay.api.check import describe_url
from turn_relay.api.check_settings import CheckSettings, CheckViews
from turn_relay.api.settings import ApiSettings
from turn_relay.auth.credentials import rest_password
from turn_relay.auth.links import mint
from turn_relay.config import Secrets
from turn_relay.reports.store import ReportStore

NOW = 1_700_000_000.0
LINK_SECRET = "link-secret-0123456789"
API_KEY = "test-api-key-0123456789"
TEST_ID = "7KQ2M9XD"
TURN_URLS = (
    "turn:203.0.113.1:3478?transport=udp",
    "turn:203.0.113.1:3478?transport=tcp",
    "turns:203.0.113.1:443?transport=tcp",
    "turn:[2001:db8::1]:3478?transport=udp",
)
STUN_URLS = ("stun:203.0.113.1:3478", "stun:203.0.113.2:3478")
OBSERVED = [
    {
        "transport": "udp",
        "client_address": "198.51.100.7",
        "client_port": 40000,
        "server_address": "203.0.113.1",
        "server_port": 3478,
        "relayed_address": "203.0.113.1",
        "relayed_port": 50000,
        "bytes_to_peers": 1200,
        "bytes_from_peers": 1100,
        "errors_answered": [{"code": 401, "count": 1}],
    }
]
SETTINGS = CheckSettings(
    turn_urls=TURN_URLS,
    stun_urls=STUN_URLS,
    base_url="https://turn.example.com:8443",
    credential_ttl=900,
    page_loads_per_minute=5,
    uploads_per_minute=3,
    max_report_bytes=8192,
)


@dataclass
class Harness:
    client: TestClient[web.Request, web.Application]
    store: ReportStore
    clock: list[float]
    observed_for: list[str] = field(default_factory=list)


def token(
    test_id: str = TEST_ID,
    expires_at: float = NOW + 3600,
    secret: str = LINK_SECRET,
    signaling: str | None = None,
) -> str:
    return mint(secret, test_id, int(expires_at), "ticket 4711", NOW - 10, signaling=signaling)


def browser_report(**changes: Any) -> bytes:
    document = report(source="browser")
    document["relay_observed"] = {"test_id": "forged-by-the-browser", "allocations": []}
    document.update(changes)
    return json.dumps(document).encode()


@asynccontextmanager
async def harness(tmp_path: Path, settings: CheckSettings = SETTINGS) -> AsyncIterator[Harness]:
    clock = [NOW]
    store = ReportStore(tmp_path / "state")
    secrets = Secrets(rest_secrets=("rest",), api_key=API_KEY, check_link_secrets=(LINK_SECRET,))
    asked: list[str] = []

    async def observed(test_id: str) -> list[dict[str, Any]]:
        asked.append(test_id)
        return OBSERVED

    app = create_app(
        ApiSettings(urls=TURN_URLS),
        lambda: secrets,
        clock=lambda: clock[0],
        check=CheckViews(settings, store, observed),
    )
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield Harness(client, store, clock, asked)
    finally:
        store.close()


# ---------------------------------------------------------------- the page


@pytest.mark.asyncio
async def test_the_page_is_served_with_a_strict_policy(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        answer = await h.client.get(f"/check/{token(signaling='wss://app.example.com/ws')}")
        port = h.client.server.port
        text = await answer.text()
        script = await h.client.get("/check/static/check.js")
        style = await h.client.get("/check/static/check.css")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert answer.headers["Content-Security-Policy"] == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src 'self' ws://127.0.0.1:{port} wss://app.example.com; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Cache-Control"] == "no-store"
    assert '<script src="/check/static/check.js" defer></script>' in text
    assert "http" not in text.replace("http-equiv", "")  # no URL of any host in the page
    assert script.status == 200 and script.headers["Content-Type"] == "text/javascript"
    assert style.status == 200 and style.headers["Content-Type"] == "text/css"


@pytest.mark.asyncio
async def test_static_files_are_only_the_shipped_ones(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        statuses = [
            (await h.client.get(f"/check/static/{name}")).status
            for name in ("index.html", "nothing.js", "..%2Fcheck.py", "check.js")
        ]
    assert statuses == [404, 404, 404, 200]


@pytest.mark.asyncio
async def test_config_hands_out_credentials_for_the_test_only(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        answer = await h.client.get(f"/check/{token()}/config")
        body = await answer.json()
    assert answer.status == 200
    expiry = int(NOW) + 900
    assert body["username"] == f"{expiry}:check-{TEST_ID}"
    assert body["credential"] == rest_password("rest", body["username"])
    assert body["ttl"] == 900
    assert body["test_id"] == TEST_ID
    assert body["note"] == "ticket 4711"
    assert [t["url"] for t in body["turn"]] == list(TURN_URLS)
    assert [t["url"] for t in body["stun"]] == list(STUN_URLS)
    assert body["seen_address"] == "127.0.0.1"
    assert body["signaling"] is None


def test_urls_are_described_per_transport_port_and_family() -> None:
    described = [describe_url(url) for url in (*TURN_URLS, *STUN_URLS)]
    assert [(d["transport"], d["host"], d["port"], d["family"]) for d in described] == [
        ("udp", "203.0.113.1", 3478, 4),
        ("tcp", "203.0.113.1", 3478, 4),
        ("tls", "203.0.113.1", 443, 4),
        ("udp", "2001:db8::1", 3478, 6),
        ("udp", "203.0.113.1", 3478, 4),
        ("udp", "203.0.113.2", 3478, 4),
    ]


@pytest.mark.asyncio
async def test_the_websocket_echoes(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        socket = await h.client.ws_connect(f"/check/{token()}/ws")
        answers = []
        for text in ("one", "two"):
            await socket.send_str(text)
            answers.append((await socket.receive(timeout=5)).data)
        await socket.close()
    assert answers == ["one", "two"]


# ---------------------------------------------------------------- refused tokens

REFUSED: dict[str, Callable[[], str]] = {
    "forged": lambda: token(secret="another-secret-0123456789"),
    "expired": lambda: token(expires_at=NOW - 1),
    "malformed": lambda: "not-a-token",
    "not-a-result-id": lambda: token(test_id="not_a_result_id"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", sorted(REFUSED))
async def test_refused_tokens_get_403_everywhere_and_store_nothing(
    tmp_path: Path, kind: str
) -> None:
    bad = REFUSED[kind]()
    async with harness(tmp_path) as h:
        statuses = [
            (await h.client.get(f"/check/{bad}")).status,
            (await h.client.get(f"/check/{bad}/config")).status,
            (await h.client.get(f"/check/{bad}/ws")).status,
            (await h.client.post(f"/check/{bad}/report", data=browser_report())).status,
        ]
        totals = h.store.totals()
    assert statuses == [403, 403, 403, 403]
    assert totals == (0, 0)


@pytest.mark.asyncio
async def test_a_report_is_stored_once_with_what_the_relay_saw(tmp_path: Path) -> None:
    link = token()
    async with harness(tmp_path) as h:
        first = await h.client.post(f"/check/{link}/report", data=browser_report())
        body = await first.json()
        again = await h.client.post(f"/check/{link}/report", data=browser_report())
        page_after = await h.client.get(f"/check/{link}")
        stored = h.store.get(TEST_ID, NOW)
        totals = h.store.totals()
    assert first.status == 200
    assert body == {"id": TEST_ID, "verdict": "PASS (1 pass)"}
    assert (again.status, page_after.status) == (403, 403)
    assert totals[0] == 1
    assert stored is not None
    assert stored.document["relay_observed"] == {"test_id": TEST_ID, "allocations": OBSERVED}
    assert h.observed_for == [TEST_ID]


@pytest.mark.asyncio
async def test_reuse_is_refused_even_after_the_report_is_gone(tmp_path: Path) -> None:
    link = token()
    async with harness(tmp_path) as h:
        assert (await h.client.post(f"/check/{link}/report", data=browser_report())).status == 200
        h.store._db.execute("DELETE FROM reports")  # evicted (count bound), say
        again = await h.client.post(f"/check/{link}/report", data=browser_report())
        totals = h.store.totals()
    assert again.status == 403
    assert totals == (0, 0)


# ---------------------------------------------------------------- refused uploads


@pytest.mark.asyncio
async def test_uploads_are_size_limited_and_checked(tmp_path: Path) -> None:
    settings = dataclasses.replace(SETTINGS, uploads_per_minute=10)
    async with harness(tmp_path, settings) as h:
        big = browser_report(verdict="x" * SETTINGS.max_report_bytes)
        statuses = [
            (await h.client.post(f"/check/{token()}/report", data=big)).status,
            (await h.client.post(f"/check/{token()}/report", data=b"{not json")).status,
            (await h.client.post(f"/check/{token()}/report", data=b'{"tool": "x"}')).status,
            (
                await h.client.post(f"/check/{token()}/report", data=browser_report(source="cli"))
            ).status,
        ]
        errors = await (await h.client.post(f"/check/{token()}/report", data=b"[]")).json()
        totals = h.store.totals()
        later = await h.client.post(f"/check/{token()}/report", data=browser_report())
    assert statuses == [413, 400, 400, 400]
    assert errors["error"].startswith("$: [] is not of type 'object'")
    assert totals == (0, 0)
    assert later.status == 200  # refusals spend nothing: the same token still uploads


# ---------------------------------------------------------------- per-source limits


@pytest.mark.asyncio
async def test_page_loads_and_uploads_are_limited_per_source(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        loads = [(await h.client.get(f"/check/{token()}")).status for _ in range(6)]
        limited = await h.client.get(f"/check/{token()}")
        uploads = [
            (await h.client.post(f"/check/{token()}/report", data=b"{}")).status for _ in range(4)
        ]
        h.clock[0] += 60  # a minute later the buckets are full again
        again = (await h.client.get(f"/check/{token()}")).status
    assert loads == [200] * 5 + [429]
    assert limited.headers["Retry-After"] == "12"  # 5 per minute: one every 12 s
    assert uploads == [400, 400, 400, 429]
    assert again == 200


# ---------------------------------------------------------------- reading reports


@pytest.mark.asyncio
async def test_reports_are_read_with_the_api_key(tmp_path: Path) -> None:
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    async with harness(tmp_path) as h:
        await h.client.post(f"/check/{token()}/report", data=browser_report())
        without = await h.client.get(f"/reports/{TEST_ID}")
        wrong = await h.client.get("/reports", headers={"X-API-Key": "wrong-key-0123456789"})
        one = await h.client.get("/reports/7kq2-m9xd", headers=bearer)
        listing = await h.client.get("/reports?limit=5", headers=bearer)
        unknown = await h.client.get("/reports/00000000", headers=bearer)
        bad_id = await h.client.get("/reports/nope", headers=bearer)
        bad_limit = await h.client.get("/reports?limit=0", headers=bearer)
        document = await one.json()
        summaries = await listing.json()
    assert (without.status, wrong.status) == (401, 401)
    assert (unknown.status, bad_id.status, bad_limit.status) == (404, 400, 400)
    assert document["id"] == TEST_ID and document["source"] == "browser"
    assert document["report"]["relay_observed"]["test_id"] == TEST_ID
    assert [s["id"] for s in summaries["reports"]] == [TEST_ID]


@pytest.mark.asyncio
async def test_the_report_survives_a_new_store(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        await h.client.post(f"/check/{token()}/report", data=browser_report())
    with ReportStore(tmp_path / "state") as reopened:
        stored = reopened.get(TEST_ID, NOW)
        used = reopened.was_used(TEST_ID, NOW)
    assert stored is not None and stored.summary.source == "browser"
    assert used


@pytest.mark.asyncio
async def test_a_websocket_message_that_is_not_text_ends_the_echo(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        socket = await h.client.ws_connect(f"/check/{token()}/ws")
        await socket.send_bytes(b"\x00\x01")
        message = await socket.receive(timeout=5)
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
