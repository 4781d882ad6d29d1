"""rtccheck signaling against local WebSocket and Socket.IO servers, working and broken."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner
from rtccheck_schema_validator import report_errors
from signaling_servers import (
    connect_proxy,
    mute_server,
    serving,
    socketio_app,
    websocket_app,
)
from turnkit_testing.net import free_port
from turnkit_testing.tls import CertFiles, make_certificate

from rtccheck.cli import main
from rtccheck.results import CheckResult, Status
from rtccheck.signaling.check import run_signaling
from rtccheck.signaling.exchange import ExchangeOptions
from rtccheck.signaling.round_trip import Expectation, ExpectMode
from rtccheck.signaling.target import parse_target

PROBE = "rtccheck-probe test"
#: the CLI tests run without any proxy variable of the calling environment
NO_PROXY_VARS: dict[str, str | None] = {
    name: None
    for base in ("http_proxy", "https_proxy", "no_proxy")
    for name in (base, base.upper())
}
NO_PROXY_ENV: dict[str, str] = {}


async def check(
    url: str,
    *,
    expect: Expectation | None = None,
    ca_file: Path | None = None,
    environ: Mapping[str, str] = NO_PROXY_ENV,
    timeout: float = 2.0,
) -> dict[str, CheckResult]:
    options = ExchangeOptions(
        timeout=timeout,
        probe=PROBE,
        expectation=expect or Expectation(ExpectMode.ECHO),
        ca_file=ca_file,
    )
    results = await run_signaling(parse_target(url), options, environ)
    return {result.check.removeprefix("signaling."): result for result in results}


def statuses(results: dict[str, CheckResult]) -> dict[str, str]:
    return {step: result.status.value for step, result in results.items()}


def failure(results: dict[str, CheckResult]) -> tuple[str, str | None]:
    failed = [(step, r.cause_id) for step, r in results.items() if r.status is Status.FAIL]
    assert len(failed) == 1, statuses(results)
    return failed[0]


@pytest.fixture
def good_certs(tmp_path: Path) -> CertFiles:
    return make_certificate(tmp_path / "good", ("127.0.0.1",))


@pytest.fixture
def wrong_name_certs(tmp_path: Path) -> CertFiles:
    return make_certificate(tmp_path / "wrong", ("signal.example.test",))


# --- plain WebSocket ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_websocket_echo_passes_every_step() -> None:
    async with serving(websocket_app()) as server:
        results = await check(server.url("/echo"))
    assert statuses(results) == {
        "proxy": "pass",
        "dns": "pass",
        "tcp": "pass",
        "upgrade": "pass",
        "round-trip": "pass",
    }
    assert results["round-trip"].details["reply"] == PROBE
    assert results["upgrade"].metrics["http_status"] == 101
    assert results["tcp"].details["address"] == f"127.0.0.1:{server.port}"


@pytest.mark.asyncio
async def test_websocket_refused_port() -> None:
    results = await check(f"ws://127.0.0.1:{free_port()}/echo", timeout=1.0)
    assert failure(results) == ("tcp", "connection-refused")
    assert statuses(results)["upgrade"] == "skip"
    assert statuses(results)["round-trip"] == "skip"


@pytest.mark.asyncio
async def test_wss_with_trusted_certificate_passes(good_certs: CertFiles) -> None:
    async with serving(websocket_app(), good_certs) as server:
        results = await check(server.url("/echo"), ca_file=good_certs.ca)
    assert list(results) == ["proxy", "dns", "tcp", "tls", "upgrade", "round-trip"]
    assert all(r.status is Status.PASS for r in results.values()), statuses(results)
    assert results["tls"].metrics["protocol"] == "TLSv1.3"


@pytest.mark.asyncio
async def test_wss_name_mismatch(wrong_name_certs: CertFiles) -> None:
    async with serving(websocket_app(), wrong_name_certs) as server:
        results = await check(server.url("/echo"), ca_file=wrong_name_certs.ca)
    assert failure(results) == ("tls", "tls-name-mismatch")
    assert statuses(results)["upgrade"] == "skip"


@pytest.mark.asyncio
async def test_websocket_upgrade_refused_with_403() -> None:
    async with serving(websocket_app()) as server:
        results = await check(server.url("/forbidden"))
    assert failure(results) == ("upgrade", "upgrade-refused")
    assert results["upgrade"].metrics["http_status"] == 403


@pytest.mark.asyncio
async def test_websocket_upgrade_on_a_plain_path_is_refused_with_404() -> None:
    async with serving(websocket_app()) as server:
        results = await check(server.url("/nothing-here"))
    assert failure(results) == ("upgrade", "upgrade-refused")
    assert results["upgrade"].metrics["http_status"] == 404


@pytest.mark.asyncio
async def test_websocket_without_reply_times_out_as_no_answer() -> None:
    async with serving(websocket_app()) as server:
        results = await check(server.url("/silent"), timeout=0.5)
    assert failure(results) == ("round-trip", "round-trip-no-answer")
    assert results["upgrade"].status is Status.PASS


@pytest.mark.asyncio
async def test_websocket_reply_that_is_not_the_echo_is_unexpected() -> None:
    async with serving(websocket_app()) as server:
        echo = await check(server.url("/greet"), timeout=0.5)
        anything = await check(server.url("/greet"), expect=Expectation(ExpectMode.ANY))
        text = await check(
            server.url("/greet"), expect=Expectation(ExpectMode.TEXT, "from the server")
        )
    assert failure(echo) == ("round-trip", "round-trip-unexpected")
    assert echo["round-trip"].summary.startswith("1 message(s) came back")
    assert anything["round-trip"].details["reply"] == "hello from the server"
    assert text["round-trip"].status is Status.PASS


@pytest.mark.asyncio
async def test_a_port_that_never_answers_http_is_no_answer_to_the_upgrade() -> None:
    async with mute_server() as port:
        results = await check(f"ws://127.0.0.1:{port}/", timeout=0.5)
    assert failure(results) == ("upgrade", "http-no-answer")


# --- through an HTTP proxy from the environment ----------------------------------------------


@pytest.mark.asyncio
async def test_wss_through_the_https_proxy(good_certs: CertFiles) -> None:
    async with serving(websocket_app(), good_certs) as server, connect_proxy() as (port, seen):
        environ = {"HTTPS_PROXY": f"http://127.0.0.1:{port}"}
        results = await check(server.url("/echo"), ca_file=good_certs.ca, environ=environ)
    assert all(r.status is Status.PASS for r in results.values()), statuses(results)
    assert list(results) == ["proxy", "dns", "tcp", "tunnel", "tls", "upgrade", "round-trip"]
    assert results["proxy"].summary == (
        f"through the proxy http://127.0.0.1:{port} (from HTTPS_PROXY)"
    )
    assert results["tcp"].details["address"] == f"127.0.0.1:{port}"
    # one tunnel for the layer checks, one for aiohttp's upgrade
    assert seen == [f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"] * 2


@pytest.mark.asyncio
async def test_a_proxy_that_refuses_the_tunnel(good_certs: CertFiles) -> None:
    async with serving(websocket_app(), good_certs) as server, connect_proxy(403) as (port, _):
        environ = {"https_proxy": f"http://127.0.0.1:{port}"}
        results = await check(server.url("/echo"), ca_file=good_certs.ca, environ=environ)
    assert failure(results) == ("tunnel", "proxy-refused")
    assert results["tunnel"].metrics["http_status"] == 403


@pytest.mark.asyncio
async def test_no_proxy_exempts_the_host() -> None:
    async with serving(websocket_app()) as server, connect_proxy() as (port, seen):
        environ = {"HTTP_PROXY": f"http://127.0.0.1:{port}", "NO_PROXY": "localhost,127.0.0.1"}
        results = await check(server.url("/echo"), environ=environ)
    assert results["proxy"].summary == "direct: NO_PROXY exempts this host from the proxy"
    assert all(r.status is Status.PASS for r in results.values()), statuses(results)
    assert seen == []


# --- Socket.IO --------------------------------------------------------------------------------


def socketio_url(port: int, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{port}/"


@pytest.mark.asyncio
async def test_socketio_round_trip_passes() -> None:
    async with serving(socketio_app()) as server:
        results = await check(socketio_url(server.port))
    assert statuses(results) == {
        "proxy": "pass",
        "dns": "pass",
        "tcp": "pass",
        "handshake": "pass",
        "round-trip": "pass",
    }
    assert results["round-trip"].details["reply"] == PROBE
    assert results["handshake"].metrics["transport"] in ("polling", "websocket")


@pytest.mark.asyncio
async def test_socketio_refused_port() -> None:
    results = await check(socketio_url(free_port()), timeout=1.0)
    assert failure(results) == ("tcp", "connection-refused")


@pytest.mark.asyncio
async def test_socketio_tls_name_mismatch(wrong_name_certs: CertFiles) -> None:
    async with serving(socketio_app(), wrong_name_certs) as server:
        results = await check(socketio_url(server.port, "https"), ca_file=wrong_name_certs.ca)
    assert failure(results) == ("tls", "tls-name-mismatch")


@pytest.mark.asyncio
async def test_socketio_over_https_passes(good_certs: CertFiles) -> None:
    async with serving(socketio_app(), good_certs) as server:
        results = await check(socketio_url(server.port, "https"), ca_file=good_certs.ca)
    assert all(r.status is Status.PASS for r in results.values()), statuses(results)


@pytest.mark.asyncio
async def test_socketio_handshake_refused_with_403() -> None:
    async with serving(socketio_app(refuse_engineio=True)) as server:
        results = await check(socketio_url(server.port))
    assert failure(results) == ("handshake", "upgrade-refused")
    assert results["handshake"].metrics["http_status"] == 403


@pytest.mark.asyncio
async def test_socketio_without_reply_times_out_as_no_answer() -> None:
    async with serving(socketio_app(answer=False)) as server:
        results = await check(socketio_url(server.port), timeout=0.5)
    assert failure(results) == ("round-trip", "round-trip-no-answer")
    assert results["handshake"].status is Status.PASS


# --- the command: table, --json, --junit, exit codes ---------------------------------------


def test_cli_json_and_junit_for_a_failure(tmp_path: Path) -> None:
    junit = tmp_path / "signaling.xml"
    url = f"ws://127.0.0.1:{free_port()}/"
    outcome = CliRunner().invoke(
        main,
        ["signaling", url, "--timeout", "1", "--json", "--junit", str(junit)],
        env=NO_PROXY_VARS,
    )
    assert outcome.exit_code == 1, outcome.output
    document = json.loads(outcome.stdout)
    assert report_errors(document) == []
    assert document["checks_run"] == ["signaling"]
    assert [r["cause_id"] for r in document["results"] if r["status"] == "fail"] == [
        "connection-refused"
    ]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "signaling"
    assert suite.get("failures") == "1" and suite.get("skipped") == "2"


@pytest.mark.asyncio
async def test_cli_table_and_exit_zero_for_a_working_server() -> None:
    async with serving(websocket_app()) as server:
        outcome = await asyncio.to_thread(
            CliRunner().invoke,
            main,
            ["signaling", server.url("/echo"), "--expect", "echo"],
            env=NO_PROXY_VARS,
        )
    assert outcome.exit_code == 0, outcome.output
    assert "round-trip" in outcome.output
    assert "PASS (5 pass)" in outcome.output


def test_cli_bad_url_is_a_usage_error() -> None:
    outcome = CliRunner().invoke(main, ["signaling", "ftp://example.test/"])
    assert outcome.exit_code == 2
    assert "give a ws://, wss://, http:// or https:// URL" in outcome.output


def test_cli_https_proxy_must_be_http() -> None:
    outcome = CliRunner().invoke(
        main,
        ["signaling", "wss://example.test/"],
        env={**NO_PROXY_VARS, "HTTPS_PROXY": "socks5://127.0.0.1:1"},
    )
    assert outcome.exit_code == 2
    assert "only http:// proxies are supported" in outcome.output
