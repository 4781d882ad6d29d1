"""The nat check without sockets: server choice, lifetime bounds, status and JSON shape."""

from __future__ import annotations

import pytest

from rtccheck.checks import nat
from rtccheck.nat import NatObservations, classify, endpoint
from rtccheck.nat_probe import NatTrace, lifetime_bounds
from rtccheck.results import Status
from rtccheck.uri import parse_uri

LOCAL = endpoint("198.18.1.2", 40000)
PUBLIC = endpoint("203.0.113.14", 40000)
OTHER = endpoint("203.0.113.2", 3479)


def _observed(**changes: object) -> NatObservations:
    base: dict[str, object] = {"local": (LOCAL,), "mapped": PUBLIC, "other_address": OTHER}
    base.update(changes)
    return NatObservations(**base)  # type: ignore[arg-type]


def test_servers_prefer_stun_then_turn_over_udp_at_most_two() -> None:
    targets = tuple(
        parse_uri(u)
        for u in (
            "turn:192.0.2.9",
            "stuns:192.0.2.8",
            "stun:192.0.2.1",
            "stun:192.0.2.1:3478",
            "turn:192.0.2.7?transport=tcp",
            "stun:192.0.2.2",
        )
    )
    servers = nat.udp_servers(targets)
    assert [(s.host, s.port) for s in servers] == [("192.0.2.1", 3478), ("192.0.2.2", 3478)]
    assert [e.port for e in nat.tls_endpoints(targets)] == [5349]


def test_lifetime_bounds() -> None:
    assert lifetime_bounds([2, 5, 10, 20], [True, True, False, False]) == (5, 10)
    assert lifetime_bounds([2, 5], [True, True]) == (5, None)
    assert lifetime_bounds([2, 5], [False, True]) == (None, 2)


@pytest.mark.parametrize(
    ("observations", "status", "cause_id", "classic"),
    [
        (
            _observed(mapped=LOCAL, answered_change_ip_and_port=True, hairpin=True),
            Status.PASS,
            None,
            "open internet",
        ),
        (
            _observed(mapped_alternate_address=PUBLIC, answered_change_ip_and_port=True),
            Status.PASS,
            None,
            "full cone",
        ),
        (
            _observed(
                mapped_alternate_address=PUBLIC,
                answered_change_ip_and_port=False,
                answered_change_port=False,
                hairpin=False,
            ),
            Status.PASS,
            None,
            "port-restricted cone",
        ),
        (
            _observed(
                mapped_alternate_address=endpoint("203.0.113.14", 41000),
                mapped_alternate_both=endpoint("203.0.113.14", 42000),
                answered_change_ip_and_port=False,
                answered_change_port=False,
            ),
            Status.WARN,
            "symmetric-nat",
            "symmetric",
        ),
        (
            NatObservations(udp_answered=False, tcp_answered=True, tls_443_answered=False),
            Status.WARN,
            "udp-blocked",
            "UDP blocked",
        ),
        (
            NatObservations(udp_answered=False, tcp_answered=False, tls_443_answered=False),
            Status.FAIL,
            "no-server-reachable",
            "UDP blocked",
        ),
        (
            _observed(other_address=None),
            Status.WARN,
            "nat-unknown",
            "NAT of unknown type",
        ),
    ],
)
def test_status_and_json_shape(
    observations: NatObservations, status: Status, cause_id: str | None, classic: str
) -> None:
    result = nat.nat_result("stun:x", observations, classify(observations), NatTrace())
    assert result.status is status
    assert result.cause_id == cause_id
    assert result.metrics["classic_name"] == classic
    assert result.check == "nat.behaviour"
    verdict = result.details["verdict"]
    assert isinstance(verdict, str) and verdict
    if status is not Status.PASS:
        assert result.cause == verdict and result.fix


def test_udp_blocked_verdict_names_the_transport_that_works() -> None:
    observations = NatObservations(udp_answered=False, tcp_answered=True, tls_443_answered=False)
    result = nat.nat_result("stun:x", observations, classify(observations), NatTrace())
    assert result.metrics["transport"] == "tcp"
    assert "TURN over TCP" in str(result.details["verdict"])
