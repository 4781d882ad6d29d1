"""The CLI party's side of the bad cases: refused joins and a party that vanishes mid-test."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner
from rendezvous_harness import receive_json, rendezvous

from rtccheck.cli import main
from rtccheck.peer.party import PeerOptions, run_peer
from rtccheck.peer.signaling import PeerTestError
from turn_relay.api.rooms import Seat


@pytest.mark.asyncio
async def test_the_leader_says_the_other_party_left() -> None:
    async with rendezvous() as relay:
        _, token_a, token_b = relay.room()
        options = PeerOptions(relay.url("/"), leg_timeout=2.0, wait_for_peer=10.0)
        leader = asyncio.create_task(run_peer(token_a, options))
        for _ in range(100):
            if relay.routes.rooms.parties == 1:
                break
            await asyncio.sleep(0.05)
        follower = await relay.join(token_b)
        assert (await receive_json(follower))["role"] == "follower"
        assert (await receive_json(follower))["type"] == "ready"  # the leader's
        await follower.send_str(json.dumps({"type": "ready", "party": {"kind": "cli"}}))
        await asyncio.sleep(0.2)  # the leader has started its legs
        transport = follower._response.connection.transport  # type: ignore[union-attr]
        assert transport is not None
        transport.abort()  # the follower's process dies
        outcome = await asyncio.wait_for(leader, 30)
        assert outcome.role == "leader"
        assert outcome.verdict is None
        assert outcome.error is not None and "left" in outcome.error, outcome.error
        for _ in range(100):
            if not relay.routes.parties:
                break
            await asyncio.sleep(0.05)
        assert relay.routes.parties == {}


@pytest.mark.asyncio
async def test_a_refused_join_is_a_clear_error() -> None:
    async with rendezvous() as relay:
        room, _, _ = relay.room()
        forged = relay.token(room, Seat.A, secret="not-the-pairing-secret")
        with pytest.raises(PeerTestError, match="refused to join: forged"):
            await run_peer(forged, PeerOptions(relay.url("/")))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["peer", "7KQ2-M9XD"], "--relay"),
        (["peer", "hello", "--relay", "http://127.0.0.1:9"], "neither a room code"),
        (["peer", "http://127.0.0.1:9/peer/"], "#<token>"),
        (["pair", "--relay", "ftp://x"], "http(s)://"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RTCCHECK_PAIRING_SECRET", "a-pairing-secret-for-tests")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_pair_needs_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RTCCHECK_PAIRING_SECRET", raising=False)
    result = CliRunner().invoke(main, ["pair", "--relay", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "RTCCHECK_PAIRING_SECRET" in result.output
