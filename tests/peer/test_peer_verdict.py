"""The verdict of a peer test's legs, and the report it is stored as."""

from __future__ import annotations

from typing import Any

import pytest

from turn_relay.api.peer_verdict import build_report, decide, legs_from
from turn_relay.reports.validation import schema_problems

URLS = ("turn:r:3478?transport=udp", "turn:r:3478?transport=tcp", "turns:r:443?transport=tcp")
NO_TLS = URLS[:2]
RELAY = {"local": {"type": "relay"}, "remote": {"type": "relay"}}
DIRECT = {"local": {"type": "srflx"}, "remote": {"type": "prflx"}}
GOT_RELAY = {"leader": ["relay"], "follower": ["relay"]}
BLOCKED_LEADER = {"leader": [], "follower": ["relay"]}


def leg(name: str, status: str, pair: Any = None, gathered: Any = None) -> dict[str, Any]:
    return {"leg": name, "status": status, "pair": pair, "gathered": gathered or GOT_RELAY}


@pytest.mark.parametrize(
    ("legs", "urls", "expected"),
    [
        ([leg("all", "connected", DIRECT), leg("relay-udp", "connected", RELAY)], URLS,
         "direct works"),
        ([leg("all", "connected", RELAY), leg("relay-udp", "connected", RELAY)], URLS,
         "needs TURN (UDP is fine)"),
        ([leg("all", "failed"), leg("relay-udp", "failed", gathered=BLOCKED_LEADER),
          leg("relay-tcp", "connected", RELAY), leg("relay-tls", "connected", RELAY)], URLS,
         "needs TURN over TLS on 443"),
        ([leg("all", "failed"), leg("relay-udp", "failed", gathered=BLOCKED_LEADER),
          leg("relay-tcp", "connected", RELAY)], NO_TLS, "needs TURN over TCP"),
        ([leg("all", "failed"), leg("relay-udp", "failed", gathered=BLOCKED_LEADER),
          leg("relay-tcp", "failed", gathered=BLOCKED_LEADER)], NO_TLS,
         "nothing works: the leader cannot reach the relay over UDP and the relay has no TLS"
         " listener"),
        ([leg("all", "failed"), leg("relay-udp", "failed"), leg("relay-tcp", "failed"),
          leg("relay-tls", "failed")], URLS,
         "nothing works: both sides reached the relay, but no connectivity check passed between"
         " their allocations (the relay's peer policy, or a firewall on the relay port range)"),
    ],
    ids=["direct", "turn-udp", "tls-443", "tcp", "no-tls-listener", "relay-drops"],
)  # fmt: skip
def test_verdicts(legs: list[dict[str, Any]], urls: tuple[str, ...], expected: str) -> None:
    assert decide(legs_from(legs), urls).text == expected


def test_a_connected_leg_all_through_the_relay_is_not_direct() -> None:
    verdict = decide(
        legs_from([leg("all", "connected", {**DIRECT, "remote": {"type": "relay"}})]), URLS
    )
    assert verdict.met["direct"] is False


def test_untrusted_legs_are_coerced() -> None:
    legs = legs_from(
        [
            {"leg": "all", "status": "bogus", "rtt_p50_ms": float("nan"), "loss_pct": -3},
            {"leg": "nope"},
            "text",
            {"leg": "relay-udp", "status": "connected", "connect_ms": True, "error": "x" * 900},
        ]
    )
    assert [(one.name, one.status) for one in legs] == [
        ("all", "failed"),
        ("relay-udp", "connected"),
    ]
    assert legs[0].metrics["rtt_p50_ms"] is None and legs[0].metrics["loss_pct"] is None
    assert legs[1].metrics["connect_ms"] is None
    assert legs[1].error is not None and len(legs[1].error) == 500


def test_the_report_fits_the_shared_schema() -> None:
    message = {
        "legs": [leg("all", "failed"), leg("relay-udp", "connected", RELAY)],
        "parties": {"leader": {"kind": "browser", "agent": "x"}, "follower": {"kind": "evil"}},
    }
    report, verdict = build_report(
        message, URLS, room="7KQ2-M9XD", started_at="2026-12-04T10:00:00+00:00",
        duration_s=12.5, tool_version="1.0",
    )  # fmt: skip
    assert schema_problems(report) == []
    assert report["source"] == "peer"
    assert report["verdict"] == verdict.text == "needs TURN (UDP is fine)"
    (final,) = [r for r in report["results"] if r["check"] == "peer.verdict"]
    assert final["details"]["parties"] == {"leader": {"kind": "browser", "agent": "x"}}
