"""Inputs: RTCConfiguration files, --secret minting, CLI credentials and --credentials-url."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path

import pytest
from aiohttp import web

from rtccheck.inputs import (
    InputError,
    InputSpec,
    gather_inputs,
    load_ice_config,
    servers_from_ice_servers,
    target_info,
)
from rtccheck.results import Status
from turn_relay.auth.credentials import rest_password

NOW = 1_700_000_000.0


def clock() -> float:
    return NOW


def write_config(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "ice.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_ice_config_expands_every_url(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "iceServers": [
                {"urls": "stun:stun.example.com"},
                {
                    "urls": ["turn:turn.example.com", "turns:turn.example.com:443"],
                    "username": "1700003600:alice",
                    "credential": "secret-password",
                },
            ],
            "iceTransportPolicy": "relay",
        },
    )
    servers = load_ice_config(path)
    assert [s.uri for s in servers] == [
        "stun:stun.example.com",
        "turn:turn.example.com",
        "turns:turn.example.com:443",
    ]
    assert servers[0].username is None
    assert all(s.username == "1700003600:alice" for s in servers[1:])
    assert all(s.credential == "secret-password" for s in servers[1:])
    assert servers[1].source == f"{path} iceServers[1]"


def test_ice_config_accepts_a_bare_ice_servers_list(tmp_path: Path) -> None:
    path = write_config(tmp_path, [{"urls": ["stun:192.0.2.1"]}])
    assert [s.host for s in load_ice_config(path)] == ["192.0.2.1"]


def test_stun_urls_ignore_credentials_like_browsers() -> None:
    servers = servers_from_ice_servers(
        [{"urls": "stun:192.0.2.1", "username": "u", "credential": "p"}], "x"
    )
    assert servers[0].username is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"servers": []}, 'expected an RTCConfiguration object {"iceServers": [...]}'),
        ("stun:x", "expected an RTCConfiguration object"),
        ({"iceServers": "stun:x"}, "iceServers must be a list"),
        ({"iceServers": ["stun:x"]}, "iceServers[0]: expected an object with 'urls', got str"),
        ({"iceServers": [{}]}, "iceServers[0]: missing 'urls'"),
        ({"iceServers": [{"url": "stun:x"}]}, "'url' is the old name: rename it to 'urls'"),
        ({"iceServers": [{"urls": []}]}, "'urls' must be a string or a non-empty list"),
        ({"iceServers": [{"urls": [1]}]}, "'urls' must be a string or a non-empty list"),
        ({"iceServers": [{"urls": "turn:x", "username": 5, "credential": "p"}]}, "'username' must"),
        ({"iceServers": [{"urls": "turn:x"}]}, "needs both 'username' and 'credential'"),
        ({"iceServers": [{"urls": "turn:x", "username": "u"}]}, "InvalidAccessError"),
        (
            {
                "iceServers": [
                    {
                        "urls": "turn:x",
                        "username": "u",
                        "credential": "p",
                        "credentialType": "oauth",
                    }
                ]
            },
            "credentialType 'oauth' is not supported",
        ),
        (
            {"iceServers": [{"urls": "turn://x"}]},
            "iceServers[0]: 'turn://x': STUN/TURN URIs have no",
        ),
    ],
)
def test_ice_config_errors_say_where_and_what(
    tmp_path: Path, document: object, message: str
) -> None:
    path = write_config(tmp_path, document)
    with pytest.raises(InputError) as raised:
        load_ice_config(path)
    assert message in str(raised.value)


def test_ice_config_unreadable_or_not_json(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read it"):
        load_ice_config(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"iceServers": [', encoding="utf-8")
    with pytest.raises(InputError, match=r"not JSON \(line 1, column"):
        load_ice_config(broken)


@pytest.mark.asyncio
async def test_cli_credentials_apply_to_turn_uris_only() -> None:
    spec = InputSpec(uris=("stun:192.0.2.1", "turn:192.0.2.1"), username="u", credential="p")
    inputs = await gather_inputs(spec, clock, 1.0)
    stun, turn = inputs.servers
    assert stun.username is None
    assert (turn.username, turn.credential) == ("u", "p")
    assert inputs.findings == () and inputs.server_clock is None


@pytest.mark.asyncio
async def test_secret_mints_rest_credentials_for_turn_servers_without_any() -> None:
    spec = InputSpec(
        uris=("stun:192.0.2.1", "turn:192.0.2.1", "turns:192.0.2.1"),
        secret="s3cret",
        rest_user="probe",
        rest_ttl=600,
    )
    inputs = await gather_inputs(spec, clock, 1.0)
    stun, turn, turns = inputs.servers
    assert stun.username is None
    assert turn.username == "1700000600:probe" == turns.username
    assert turn.credential == rest_password("s3cret", "1700000600:probe")


@pytest.mark.asyncio
async def test_secret_keeps_given_credentials_so_they_can_be_verified() -> None:
    spec = InputSpec(uris=("turn:192.0.2.1",), username="1:x", credential="given", secret="s")
    inputs = await gather_inputs(spec, clock, 1.0)
    assert (inputs.servers[0].username, inputs.servers[0].credential) == ("1:x", "given")


@pytest.mark.asyncio
async def test_secret_uses_the_configured_separator() -> None:
    spec = InputSpec(uris=("turn:192.0.2.1",), secret="s", separator="-", rest_ttl=10)
    inputs = await gather_inputs(spec, clock, 1.0)
    assert inputs.servers[0].username == "1700000010-rtccheck"


@pytest.mark.asyncio
async def test_bad_uri_is_an_input_error() -> None:
    with pytest.raises(InputError, match="has no scheme"):
        await gather_inputs(InputSpec(uris=("192.0.2.1",)), clock, 1.0)


@pytest.mark.asyncio
async def test_credentials_url_must_be_http() -> None:
    with pytest.raises(InputError, match="must be an http:// or https:// URL"):
        await gather_inputs(InputSpec(credentials_url="ftp://x/creds"), clock, 1.0)


def test_target_info_never_carries_the_credential() -> None:
    server = servers_from_ice_servers(
        [{"urls": "turn:192.0.2.1", "username": "u", "credential": "p"}], "x"
    )[0]
    info = target_info(server)
    assert info.has_credential and info.username == "u"
    assert "p" not in asdict(info).values()
    assert "credential" not in asdict(info)


# --- a turn-relay style credential service on 127.0.0.1 ---------------------------------


@asynccontextmanager
async def credential_service(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/api/credentials", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/api/credentials"
    finally:
        await runner.cleanup()


def ice_server_json(ttl: int = 3600) -> dict[str, object]:
    username = f"{int(NOW) + ttl}:alice"
    return {
        "urls": ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"],
        "username": username,
        "credential": rest_password("s", username),
        "ttl": ttl,
    }


@pytest.mark.asyncio
async def test_credentials_url_returns_servers_and_the_server_clock() -> None:
    seen_headers: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen_headers.append(request.headers.get("Authorization"))
        # the server's clock is 120 s ahead of ours
        date = "Tue, 14 Nov 2023 22:15:20 GMT"
        return web.json_response(ice_server_json(), headers={"Date": date})

    async with credential_service(handler) as url:
        inputs = await gather_inputs(InputSpec(credentials_url=url, api_key="k3y"), clock, 2.0)
    assert seen_headers == ["Bearer k3y"]
    assert [s.transport for s in inputs.servers] == ["udp", "tcp"]
    assert all(s.username == "1700003600:alice" for s in inputs.servers)
    assert inputs.servers[0].source == f"{url} iceServers[0]"
    assert inputs.server_clock is not None
    assert inputs.server_clock.offset_s == pytest.approx(120.0)
    assert inputs.server_clock.source == f"Date header from {url}"
    (finding,) = inputs.findings
    assert finding.check == "inputs.credentials-url" and finding.status is Status.PASS


@pytest.mark.asyncio
async def test_credentials_url_accepts_a_list_and_an_ice_servers_object() -> None:
    async def as_list(request: web.Request) -> web.Response:
        return web.json_response([ice_server_json(), {"urls": "stun:127.0.0.1"}])

    async def as_object(request: web.Request) -> web.Response:
        return web.json_response({"iceServers": [{"urls": "stun:127.0.0.1"}]})

    async with credential_service(as_list) as url:
        listed = await gather_inputs(InputSpec(credentials_url=url), clock, 2.0)
    async with credential_service(as_object) as url:
        wrapped = await gather_inputs(InputSpec(credentials_url=url), clock, 2.0)
    assert len(listed.servers) == 3
    assert [s.scheme for s in wrapped.servers] == ["stun"]


@pytest.mark.parametrize(
    ("status", "body", "summary", "cause"),
    [
        (401, "unauthorized", "HTTP 401: unauthorized", "API key is missing or wrong"),
        (403, "", "HTTP 403", "API key is missing or wrong"),
        (404, "nope", "HTTP 404", "no credential endpoint at this path"),
        (503, "overloaded", "HTTP 503: overloaded", "answered with an error (HTTP 503)"),
        (200, "<html>", "the answer is not JSON", "not with RTCIceServer JSON"),
        (200, '{"x": 1}', "the JSON has no 'urls'", "not an RTCIceServer object"),
    ],
)
@pytest.mark.asyncio
async def test_credentials_url_failures_are_findings(
    status: int, body: str, summary: str, cause: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body)

    async with credential_service(handler) as url:
        inputs = await gather_inputs(InputSpec(credentials_url=url), clock, 2.0)
    assert inputs.servers == ()
    (finding,) = inputs.findings
    assert finding.status is Status.FAIL
    assert finding.summary == f"could not get credentials: {summary}"
    assert finding.cause is not None and cause in finding.cause
    assert finding.fix


@pytest.mark.asyncio
async def test_credentials_url_nothing_listening() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    async with credential_service(handler) as url:
        pass  # the service is gone now: its port refuses connections
    inputs = await gather_inputs(InputSpec(credentials_url=url), clock, 2.0)
    (finding,) = inputs.findings
    assert finding.status is Status.FAIL
    assert "cannot connect" in finding.summary
    assert finding.cause is not None and "Nothing accepted the connection" in finding.cause


@pytest.mark.asyncio
async def test_credentials_url_timeout() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    async with credential_service(slow) as url:
        inputs = await gather_inputs(InputSpec(credentials_url=url), clock, 0.2)
        release.set()
    (finding,) = inputs.findings
    assert finding.summary == "could not get credentials: no answer within 0.2 s"


@pytest.mark.asyncio
async def test_credentials_url_answer_with_bad_entries_is_an_input_error() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"urls": "turn:127.0.0.1"})  # no username/credential

    async with credential_service(handler) as url:
        with pytest.raises(InputError, match="needs both 'username' and 'credential'"):
            await gather_inputs(InputSpec(credentials_url=url), clock, 2.0)
