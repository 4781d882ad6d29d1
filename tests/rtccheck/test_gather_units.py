"""Gathering without a TURN server: which local addresses agents use (aioice skips loopback),
which servers aioice cannot ask, srflx from our stun-server, and failures explained."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from aioice import Candidate
from rtccheck_ice_servers import HOST, stun_server

from rtccheck.checks import gather
from rtccheck.checks.base import CheckContext
from rtccheck.explain.turn_diagnosis import route_problem
from rtccheck.ice.agent import candidate_view, host_addresses, unsupported_reason
from rtccheck.results import CheckResult, Status
from rtccheck.uri import parse_uri


def by_check(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.check: result for result in results}


def test_loopback_is_added_when_a_server_is_on_loopback() -> None:
    plan = host_addresses([parse_uri("stun:127.0.0.1")])
    assert "127.0.0.1" in plan.addresses and "::1" in plan.addresses
    assert plan.loopback_reason == "a server is on loopback"


def test_loopback_is_added_when_the_host_has_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rtccheck.ice.agent.get_host_addresses", lambda **_: [])
    plan = host_addresses([parse_uri("stun:192.0.2.1")])
    assert plan.addresses == ("127.0.0.1", "::1") and plan.only_loopback
    assert plan.loopback_reason == "this host has no address besides loopback"


def test_aioice_choice_is_kept_for_remote_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rtccheck.ice.agent.get_host_addresses", lambda **_: ["192.0.2.2"])
    plan = host_addresses([parse_uri("stun:192.0.2.1")])
    assert plan.addresses == ("192.0.2.2",) and plan.loopback_reason is None


def test_aioice_itself_skips_loopback() -> None:
    """The reason for the above: aioice never lists 127.0.0.1 or ::1."""
    from aioice.ice import get_host_addresses

    addresses = get_host_addresses(use_ipv4=True, use_ipv6=True)
    assert "127.0.0.1" not in addresses and "::1" not in addresses


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("stuns:127.0.0.1", "STUN over TLS"),
        ("turns:127.0.0.1?transport=udp", "DTLS"),
        ("stun:[::1]:3478", "IPv4 only"),
    ],
)
def test_servers_aioice_cannot_use(uri: str, reason: str) -> None:
    text = unsupported_reason(parse_uri(uri))
    assert text is not None and reason in text


@pytest.mark.parametrize("uri", ["stun:127.0.0.1", "turn:127.0.0.1?transport=tcp", "turns:h.test"])
def test_servers_aioice_can_use(uri: str) -> None:
    assert unsupported_reason(parse_uri(uri)) is None


def test_candidate_view_reads_like_trickle_ice() -> None:
    relay = Candidate(
        foundation="f",
        component=1,
        transport="UDP",
        priority=16777215,
        host="127.0.0.1",
        port=50000,
        type="relay",
        related_address="127.0.0.1",
        related_port=40000,
    )
    view = candidate_view(relay, "tls")
    assert view["type"] == "relay" and view["protocol"] == "udp"
    assert (view["address"], view["port"], view["priority"]) == ("127.0.0.1", 50000, 16777215)
    assert (view["related_address"], view["related_port"]) == ("127.0.0.1", 40000)
    assert view["relay_protocol"] == "tls"
    assert view["sdp"] == (
        "candidate:f 1 UDP 16777215 127.0.0.1 50000 typ relay raddr 127.0.0.1 rport 40000"
    )


@pytest.mark.asyncio
async def test_srflx_from_our_stun_server(tmp_path: Path) -> None:
    with stun_server(tmp_path) as server:
        ctx = CheckContext(targets=(parse_uri(f"stun:{HOST}:{server.port}"),), timeout=3)
        results = by_check(await gather.run(ctx))
    host, srflx = results["gather.host"], results["gather.srflx"]
    assert host.status is Status.PASS and "127.0.0.1" in host.summary
    assert srflx.status is Status.PASS, srflx
    candidates = srflx.details["candidates"]
    assert isinstance(candidates, list)
    kinds = [c["type"] for c in candidates if isinstance(c, dict)]
    assert "host" in kinds and "srflx" in kinds
    assert float(srflx.metrics["gathering_ms"] or 0) < 3000


@pytest.mark.asyncio
async def test_silent_stun_server_times_out_within_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))
        port = silent.getsockname()[1]
        ctx = CheckContext(targets=(parse_uri(f"stun:{HOST}:{port}"),), timeout=1)
        started = asyncio.get_running_loop().time()
        results = by_check(await gather.run(ctx))
        elapsed = asyncio.get_running_loop().time() - started
    srflx = results["gather.srflx"]
    assert srflx.status is Status.FAIL
    assert srflx.cause_id == "udp-no-answer"
    assert srflx.summary.startswith("no srflx candidate: no answer from 127.0.0.1:")
    assert elapsed < 3


@pytest.mark.asyncio
async def test_unsupported_and_credential_less_servers_are_skipped() -> None:
    ctx = CheckContext(
        targets=(parse_uri("stuns:127.0.0.1"), parse_uri("turn:127.0.0.1:9")), timeout=1
    )
    results = await gather.run(ctx)
    skipped = [r for r in results if r.status is Status.SKIP]
    assert [r.target for r in skipped] == ["stuns:127.0.0.1", "turn:127.0.0.1:9"]
    assert "no TURN credentials" in skipped[1].summary


@pytest.mark.asyncio
async def test_unroutable_server_fails_at_once() -> None:
    """aioice would wait for its timeout; the routing table answers at once."""
    server = parse_uri("stun:192.0.2.1")
    if await route_problem(server) is None:
        pytest.skip("this host has a route to 192.0.2.1 (CI's loopback-only namespace has none)")
    ctx = CheckContext(targets=(server,), timeout=5)
    started = asyncio.get_running_loop().time()
    srflx = by_check(await gather.run(ctx))["gather.srflx"]
    assert asyncio.get_running_loop().time() - started < 2
    assert srflx.status is Status.FAIL and srflx.cause_id == "unreachable"


@pytest.mark.asyncio
async def test_loopback_is_routable() -> None:
    assert await route_problem(parse_uri("stun:127.0.0.1")) is None


def test_terminal_lists_candidates_like_trickle_ice() -> None:
    import io

    from rtccheck.render import candidates_table, make_console

    host = Candidate("f", 1, "udp", 2130706431, "127.0.0.1", 40000, "host")
    result = CheckResult(
        "gather.srflx",
        "stun:127.0.0.1",
        Status.PASS,
        "srflx",
        details={"candidates": [candidate_view(host)]},
    )
    table = candidates_table(result)
    assert table is not None
    out = io.StringIO()
    make_console(out, width=120).print(table)
    assert "host  udp       127.0.0.1  40000  2130706431" in out.getvalue()
    assert candidates_table(CheckResult("dns.resolve", "h", Status.PASS, "ok")) is None
