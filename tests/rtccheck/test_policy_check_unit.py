"""The policy check without sockets: the address list and how answers are judged."""

from __future__ import annotations

import ipaddress

from rtccheck.address_scope import Scope, scope_of
from rtccheck.checks import policy
from rtccheck.checks.turn import Target, plan
from rtccheck.forbidden_peers import FORBIDDEN_PEERS
from rtccheck.probe.errors import FailureKind, ProbeError
from rtccheck.results import Status
from rtccheck.uri import parse_uri


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in ipaddress.ip_network("64:ff9b::/96") or address in ipaddress.ip_network("::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def test_every_listed_peer_is_or_embeds_a_non_public_address() -> None:
    addresses = [peer.address for peer in FORBIDDEN_PEERS]
    assert len(set(addresses)) == len(addresses)
    for peer in FORBIDDEN_PEERS:
        address = ipaddress.ip_address(peer.address)
        if scope_of(peer.address) is not Scope.PUBLIC or address.is_reserved:
            continue
        assert isinstance(address, ipaddress.IPv6Address), peer
        embedded = _embedded_ipv4(address)
        assert embedded is not None and scope_of(str(embedded)) is not Scope.PUBLIC, peer


def test_the_list_covers_the_brief() -> None:
    addresses = {peer.address for peer in FORBIDDEN_PEERS}
    for needed in (
        "127.0.0.1",
        "169.254.169.254",
        "10.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "64:ff9b::7f00:1",
    ):
        assert needed in addresses


def test_answers_are_judged() -> None:
    peer = FORBIDDEN_PEERS[0]
    assert policy.outcome_of(peer, None).verdict is policy.Verdict.ACCEPTED
    forbidden = ProbeError(FailureKind.ERROR_RESPONSE, "403 Forbidden", code=403)
    assert policy.outcome_of(peer, forbidden).verdict is policy.Verdict.REFUSED
    family = ProbeError(FailureKind.ERROR_RESPONSE, "443 Peer Address Family Mismatch", code=443)
    assert policy.outcome_of(peer, family).verdict is policy.Verdict.UNTESTED
    timeout = ProbeError(FailureKind.TIMEOUT)
    assert policy.outcome_of(peer, timeout).verdict is policy.Verdict.ERROR


def _target() -> Target:
    return plan((parse_uri("turn:192.0.2.1"),))[0][0]


def test_accepting_any_forbidden_peer_fails_and_names_it() -> None:
    outcomes = [
        policy.outcome_of(peer, None if peer.address == "169.254.169.254" else _refusal())
        for peer in FORBIDDEN_PEERS
    ]
    result = policy.policy_result(_target(), outcomes)
    assert result.status is Status.FAIL
    assert result.details["accepted"] == ["169.254.169.254"]
    assert result.cause_id == "forbidden-peers-accepted"
    assert "169.254.169.254 (cloud metadata service" in result.summary
    assert result.capabilities == ("policy",)


def _accepting(*addresses: str) -> list[policy.PeerOutcome]:
    return [
        policy.outcome_of(peer, None if peer.address in addresses else _refusal())
        for peer in FORBIDDEN_PEERS
    ]


def test_loopback_peers_on_a_loopback_relay_warn_as_a_lab() -> None:
    result = policy.policy_result(_target(), _accepting("127.0.0.1", "::1"), "127.0.0.1")
    assert result.status is Status.WARN and result.cause_id == "loopback-peers-lab"
    assert result.details["lab"] == {"relay_address": "127.0.0.1", "accepted": ["127.0.0.1", "::1"]}
    assert result.capabilities == ("policy",)


def test_a_lab_still_fails_on_mapped_metadata_and_private_peers() -> None:
    for address in ("::ffff:127.0.0.1", "169.254.169.254", "10.0.0.1"):
        result = policy.policy_result(_target(), _accepting("127.0.0.1", address), "127.0.0.1")
        assert result.status is Status.FAIL, address
        assert result.cause_id == "forbidden-peers-accepted"
        assert address in result.summary and "127.0.0.1 (loopback)" not in result.summary


def test_loopback_peers_on_a_relay_elsewhere_fail() -> None:
    result = policy.policy_result(_target(), _accepting("127.0.0.1"))
    assert result.status is Status.FAIL
    assert "127.0.0.1 (loopback)" in result.summary


def test_refusing_them_all_passes() -> None:
    outcomes = [policy.outcome_of(peer, _refusal()) for peer in FORBIDDEN_PEERS]
    result = policy.policy_result(_target(), outcomes)
    assert result.status is Status.PASS
    assert result.metrics["refused"] == len(FORBIDDEN_PEERS)


def test_one_audit_per_server() -> None:
    targets = plan(
        tuple(
            parse_uri(u)
            for u in ("turn:192.0.2.1", "turn:192.0.2.1?transport=tcp", "turns:192.0.2.1:443")
        )
    )[0]
    chosen = policy.one_per_server(targets)
    assert [(t.endpoint.transport, t.endpoint.port) for t in chosen] == [
        ("udp", 3478),
        ("tls", 443),
    ]


def _refusal() -> ProbeError:
    return ProbeError(FailureKind.ERROR_RESPONSE, "403 Forbidden", code=403)
