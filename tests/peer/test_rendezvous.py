"""The rendezvous route group: joining, passing messages, the verdict, and every refusal.

Each refusal is an ``{"type": "error", "code", "message"}`` message and a 44xx close code; the
other party of a room that ends gets ``peer-left``; afterwards the relay still serves a new
room, and no party, socket or task is left behind (checked after every test).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from rendezvous_harness import (
    API_KEY,
    Rendezvous,
    closed_with,
    receive_json,
    rendezvous,
)

from turn_relay.api.rooms import RoomLimits, Seat, format_code
from turn_relay.auth.links import mint

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Rendezvous]:
    tasks_before = len(asyncio.all_tasks())
    async with rendezvous(RoomLimits(message_burst=20, joins_per_minute=30), tmp_path) as serving:
        yield serving
        await assert_nothing_left(serving, tasks_before)


async def assert_nothing_left(relay: Rendezvous, tasks_before: int) -> None:
    for ws in relay.sockets:
        await ws.close()
    for _ in range(100):
        if not relay.routes.parties and len(asyncio.all_tasks()) <= tasks_before + 1:
            break
        await asyncio.sleep(0.02)
    assert relay.routes.parties == {}
    assert relay.routes.rooms.parties == 0
    # the test's own task, plus the server's (its listener does not hold one per socket)
    assert len(asyncio.all_tasks()) <= tasks_before + 1, asyncio.all_tasks()


async def pair(relay: Rendezvous) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    _, token_a, token_b = relay.room()
    a = await relay.join(token_a)
    joined_a = await receive_json(a)
    b = await relay.join(token_b)
    joined_b = await receive_json(b)
    assert (await receive_json(a))["type"] == "peer-joined"
    return a, b, joined_a, joined_b


async def still_serving(relay: Rendezvous) -> None:
    """A fresh room still works: both join and a message passes."""
    a, b, _, _ = await pair(relay)
    await a.send_str(json.dumps({"type": "ready", "party": {"kind": "cli"}}))
    assert (await receive_json(b)) == {"type": "ready", "party": {"kind": "cli"}}
    await a.close()
    assert (await receive_json(b))["type"] == "peer-left"
    assert await closed_with(b) == 1000


async def test_two_parties_join_and_messages_pass_verbatim(relay: Rendezvous) -> None:
    a, b, joined_a, joined_b = await pair(relay)
    assert (joined_a["role"], joined_b["role"]) == ("leader", "follower")
    assert (joined_a["peer_present"], joined_b["peer_present"]) == (False, True)
    assert joined_a["room"] == joined_b["room"]
    assert joined_a["legs"] == {
        "relay-udp": "turn:127.0.0.1:9?transport=udp",
        "relay-tcp": "turn:127.0.0.1:9?transport=tcp",
        "relay-tls": "turns:127.0.0.1:443?transport=tcp",
    }
    assert joined_a["stun_urls"] == ["stun:127.0.0.1:9"]
    (server,) = joined_a["ice_servers"]
    assert server["username"].endswith(":peer-" + joined_a["room"].replace("-", ""))
    text = '{"type": "offer", "leg": "all", "sdp": "v=0\\r\\n"}'
    await a.send_str(text)
    passed = await b.receive(timeout=5)
    assert passed.data == text  # verbatim, as the other app sent it
    await b.send_str(json.dumps({"type": "candidate", "leg": "all", "candidate": None}))
    assert (await receive_json(a))["candidate"] is None


async def test_leader_final_result_gives_both_the_same_stored_verdict(relay: Rendezvous) -> None:
    a, b, _, _ = await pair(relay)
    legs = [
        {"leg": "all", "status": "failed", "error": "ICE failed"},
        {
            "leg": "relay-udp",
            "status": "connected",
            "url": "turn:127.0.0.1:9?transport=udp",
            "connect_ms": 120.5,
            "rtt_p50_ms": 3.2,
            "rtt_p95_ms": 7.9,
            "loss_pct": 0,
            "throughput_mbps": 12.5,
            "pair": {"local": {"type": "relay"}, "remote": {"type": "relay"}},
        },
    ]
    final = {"type": "result", "final": True, "legs": legs, "parties": {}}
    await a.send_str(json.dumps(final))
    verdict_a, verdict_b = await receive_json(a), await receive_json(b)
    assert verdict_a == verdict_b
    assert verdict_a["type"] == "verdict"
    assert verdict_a["verdict"] == "needs TURN (UDP is fine)"
    assert verdict_a["met"] == {
        "direct": False,
        "relay-udp": True,
        "relay-tcp": False,
        "relay-tls": False,
    }
    assert relay.store is not None
    stored = relay.store.get(verdict_a["result_id"], relay.clock.now)
    assert stored is not None
    assert stored.summary.source == "peer"
    assert stored.document == verdict_a["report"]


async def test_follower_cannot_forge_the_verdict(relay: Rendezvous) -> None:
    a, b, _, _ = await pair(relay)
    await b.send_str(json.dumps({"type": "result", "final": True, "legs": []}))
    await b.send_str(json.dumps({"type": "ready"}))
    assert (await receive_json(a)) == {"type": "ready"}  # the final result was not passed on
    assert relay.routes.snapshot()["verdicts_total"] == 0


@pytest.mark.parametrize(
    ("token", "code", "close"),
    [
        ("not-a-token", "malformed", 4400),
        ("a" * 2000, "malformed", 4400),
        ("eyJpZCI6IngifQ.AAAA", "malformed", 4400),
    ],
)
async def test_malformed_tokens_are_refused(
    relay: Rendezvous, token: str, code: str, close: int
) -> None:
    ws = await relay.join(token)
    error = await receive_json(ws)
    assert (error["type"], error["code"]) == ("error", code)
    assert await closed_with(ws) == close
    await still_serving(relay)


async def test_forged_token_is_refused(relay: Rendezvous) -> None:
    room, _, _ = relay.room()
    ws = await relay.join(relay.token(room, Seat.A, secret="some-other-secret"))
    error = await receive_json(ws)
    assert error["code"] == "forged"
    assert "no secret signed this token" in error["message"]
    assert await closed_with(ws) == 4403
    await still_serving(relay)


async def test_check_link_signed_with_the_pairing_secret_opens_no_room(
    relay: Rendezvous,
) -> None:
    room, _, _ = relay.room()
    now = relay.clock.now
    link = mint("pairing-secret-for-tests", room, int(now + 60), "seat:a", now)
    ws = await relay.join(link)
    assert (await receive_json(ws))["code"] == "forged"
    assert await closed_with(ws) == 4403


async def test_expired_token_is_refused(relay: Rendezvous) -> None:
    room, _, _ = relay.room()
    token = relay.token(room, Seat.A, ttl=60)
    relay.clock.now += 61
    ws = await relay.join(token)
    error = await receive_json(ws)
    assert error["code"] == "expired"
    assert await closed_with(ws) == 4410
    await still_serving(relay)


async def test_unknown_code_is_refused(relay: Rendezvous) -> None:
    async with relay.session.get(relay.url("/rendezvous/code/7KQ2-M9XD")) as response:
        assert response.status == 404
        assert "no room" in (await response.json())["error"]
    async with relay.session.get(relay.url("/rendezvous/code/not-a-code")) as response:
        assert response.status == 404


async def test_registered_code_hands_out_free_seats_then_says_full(relay: Rendezvous) -> None:
    room, token_a, token_b = relay.room()
    async with relay.session.post(
        relay.url("/rendezvous"), json={"tokens": [token_a, token_b]}
    ) as response:
        assert response.status == 200
        assert (await response.json())["code"] == format_code(room)
    code_url = relay.url(f"/rendezvous/code/{format_code(room).lower()}")
    async with relay.session.get(code_url) as response:
        first = await response.json()
    assert first["seat"] == "a"
    a = await relay.join(first["token"])
    await receive_json(a)
    async with relay.session.get(code_url) as response:
        second = await response.json()
    assert second["seat"] == "b"
    b = await relay.join(second["token"])
    await receive_json(b)
    async with relay.session.get(code_url) as response:
        assert response.status == 409
        assert "full" in (await response.json())["error"]


async def test_register_refuses_a_forged_token(relay: Rendezvous) -> None:
    room, _, _ = relay.room()
    forged = relay.token(room, Seat.A, secret="another-secret-here")
    async with relay.session.post(relay.url("/rendezvous"), json={"tokens": [forged]}) as response:
        assert response.status == 403
    async with relay.session.post(relay.url("/rendezvous"), data=b"{") as response:
        assert response.status == 400


async def test_third_party_in_a_full_room_is_refused(relay: Rendezvous) -> None:
    room, token_a, token_b = relay.room()
    a = await relay.join(token_a)
    await receive_json(a)
    b = await relay.join(token_b)
    await receive_json(b)
    third = await relay.join(token_a)  # a copy of the first link
    error = await receive_json(third)
    assert error["code"] == "room-full"
    assert await closed_with(third) == 4409
    # the two in the room are not disturbed
    assert (await receive_json(a))["type"] == "peer-joined"
    await a.send_str(json.dumps({"type": "bye"}))
    assert (await receive_json(b))["type"] == "bye"
    assert await closed_with(a) == 1000  # a bye ends the sender's part
    assert (await receive_json(b))["type"] == "peer-left"
    del room


@pytest.mark.parametrize(
    ("frame", "code", "close"),
    [
        ("{not json", "malformed", 4400),
        ('["offer"]', "malformed", 4400),
        ('{"type": "joined"}', "malformed", 4400),
        ('{"type": "offer", "sdp": "' + "x" * 17000 + '"}', "too-large", 4413),
        (b"\x00binary", "malformed", 4400),
    ],
    ids=["not-json", "not-object", "relay-type", "oversized", "binary"],
)
async def test_bad_messages_end_the_room_cleanly(
    relay: Rendezvous, frame: str | bytes, code: str, close: int
) -> None:
    a, b, _, _ = await pair(relay)
    if isinstance(frame, bytes):
        await b.send_bytes(frame)
    else:
        await b.send_str(frame)
    error = await receive_json(b)
    assert (error["type"], error["code"]) == ("error", code)
    assert await closed_with(b) == close
    assert (await receive_json(a))["type"] == "peer-left"
    assert await closed_with(a) == 1000
    await still_serving(relay)


async def test_a_flood_of_messages_is_cut_off(relay: Rendezvous) -> None:
    a, b, _, _ = await pair(relay)  # burst 20, and the hand-set clock does not refill it
    for index in range(25):
        await b.send_str(json.dumps({"type": "candidate", "leg": "all", "n": index}))
    passed = [await receive_json(a) for _ in range(20)]
    assert [m["n"] for m in passed] == list(range(20))
    assert (await receive_json(a))["type"] == "peer-left"
    error = await receive_json(b)
    assert error["code"] == "rate-limited"
    assert await closed_with(b) == 4429
    await still_serving(relay)


async def test_joins_per_source_are_limited() -> None:
    async with rendezvous(RoomLimits(joins_per_minute=3)) as relay:
        for _ in range(3):
            _, token, _ = relay.room()
            ws = await relay.join(token)
            assert (await receive_json(ws))["type"] == "joined"
            await ws.close()
        _, token, _ = relay.room()
        ws = await relay.join(token)
        assert (await receive_json(ws))["code"] == "rate-limited"
        assert await closed_with(ws) == 4429
        relay.clock.now += 60  # the bucket refills
        _, token, _ = relay.room()
        ws = await relay.join(token)
        assert (await receive_json(ws))["type"] == "joined"


async def test_rooms_are_bounded() -> None:
    async with rendezvous(RoomLimits(max_rooms=2)) as relay:
        for _ in range(2):
            _, token, _ = relay.room()
            ws = await relay.join(token)
            assert (await receive_json(ws))["type"] == "joined"
        _, token, _ = relay.room()
        ws = await relay.join(token)
        assert (await receive_json(ws))["code"] == "too-many-rooms"
        assert await closed_with(ws) == 4503
        assert len(relay.routes.rooms) == 2


async def test_a_party_that_vanishes_mid_test(relay: Rendezvous) -> None:
    room_tokens = relay.room()
    a = await relay.join(room_tokens[1])
    await receive_json(a)
    b = await relay.join(room_tokens[2])
    await receive_json(b)
    await receive_json(a)  # peer-joined
    await a.send_str(json.dumps({"type": "offer", "leg": "all", "sdp": "v=0"}))
    await receive_json(b)
    # b's process dies: its TCP connection goes away without a WebSocket close frame
    transport = b._response.connection.transport  # type: ignore[union-attr]
    assert transport is not None
    transport.abort()
    left = await receive_json(a)
    assert left == {"type": "peer-left", "seat": "b"}
    assert await closed_with(a) == 1000
    # the room has ended: its links say so
    again = await relay.join(room_tokens[1])
    assert (await receive_json(again))["code"] == "ended"
    assert await closed_with(again) == 4410
    await still_serving(relay)


async def test_a_room_expires_under_its_parties() -> None:
    async with rendezvous(RoomLimits(max_room_ttl=30)) as relay:
        _, token, _ = relay.room()
        async with relay.session.post(relay.url("/rendezvous"), json={"tokens": [token]}) as r:
            assert r.status == 200  # the room exists from now on, for 30 s at most
        relay.clock.now += 29.8  # 0.2 s of real time left for the room
        ws = await relay.join(token)
        assert (await receive_json(ws))["type"] == "joined"
        error = await receive_json(ws, timeout=5)
        assert error["code"] == "expired"
        assert await closed_with(ws) == 4410


async def test_plain_http_and_stats(relay: Rendezvous) -> None:
    _, token, _ = relay.room()
    async with relay.session.get(relay.url(f"/rendezvous/{token}")) as response:
        assert response.status == 400
    async with relay.session.get(relay.url("/rendezvous/stats")) as response:
        assert response.status == 401
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with relay.session.get(relay.url("/rendezvous/stats"), headers=headers) as response:
        stats = await response.json()
    assert (stats["parties"], stats["sockets"], stats["occupied_rooms"]) == (0, 0, 0)


async def test_the_page_has_a_strict_csp(relay: Rendezvous) -> None:
    for path, kind in (("/peer/", "text/html"), ("/peer/peer.js", "text/javascript")):
        async with relay.session.get(relay.url(path)) as response:
            assert response.status == 200
            assert response.content_type == kind
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
    async with relay.session.get(relay.url("/peer/../rooms.py")) as response:
        assert response.status == 404


async def test_shutdown_closes_every_party() -> None:
    async with rendezvous() as relay:
        _, token_a, _ = relay.room()
        a = await relay.join(token_a)
        await receive_json(a)
        await relay.server.app.shutdown()
        assert await closed_with(a) == 1001


async def test_far_oversized_frames_are_closed_by_aiohttp(relay: Rendezvous) -> None:
    """Beyond 4x the limit aiohttp itself closes (1009); the room still ends cleanly."""
    a, b, _, _ = await pair(relay)
    await b.send_str("x" * (4 * 16384 + 1))
    assert await closed_with(b) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert (await receive_json(a))["type"] == "peer-left"
    await still_serving(relay)
