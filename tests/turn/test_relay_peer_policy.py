"""Peer policy: default deny list, IPv4-in-IPv6 canonicalisation, allow/deny lists, own address."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turn_relay.core.peer_policy import Decision, PeerPolicy, embedded_ipv4, show

DEFAULT = PeerPolicy()
TEREDO_EMBEDDING_LOOPBACK = "2001:0:4136:e378:8000:63bf:80ff:fffe"  # client bits = ~127.0.0.1


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        (
            "::ffff:127.0.0.1",
            "::ffff:127.0.0.1 embeds 127.0.0.1 (v4-mapped ::ffff:0:0/96), which is loopback",
        ),
        ("0.0.0.0", "0.0.0.0 is unspecified"),
        ("::", ":: is unspecified"),
        ("::1", "::1 is loopback"),
        ("169.254.169.254", "169.254.169.254 is link-local (cloud metadata)"),
        (
            "64:ff9b::7f00:1",
            "64:ff9b::7f00:1 embeds 127.0.0.1 (NAT64 64:ff9b::/96), which is loopback",
        ),
        ("2002:7f00:1::", "2002:7f00:1:: embeds 127.0.0.1 (6to4 2002::/16), which is loopback"),
        (
            TEREDO_EMBEDDING_LOOPBACK,
            f"{TEREDO_EMBEDDING_LOOPBACK} embeds 127.0.0.1 (Teredo 2001::/32 client),"
            " which is loopback",
        ),
        ("::127.0.0.1", "::127.0.0.1 embeds 127.0.0.1 (v4-compatible ::/96), which is loopback"),
        (
            "::ffff:0:10.1.2.3",
            "::ffff:0:10.1.2.3 embeds 10.1.2.3 (v4-translated ::ffff:0:0:0/96),"
            " which is private (RFC 1918)",
        ),
        ("127.0.0.1", "127.0.0.1 is loopback"),
        ("10.0.0.1", "10.0.0.1 is private (RFC 1918)"),
        ("172.31.255.255", "172.31.255.255 is private (RFC 1918)"),
        ("192.168.1.1", "192.168.1.1 is private (RFC 1918)"),
        ("100.64.0.1", "100.64.0.1 is shared address space (RFC 6598 carrier-grade NAT)"),
        ("100.100.100.200", "100.100.100.200 is shared address space (cloud metadata)"),
        ("169.254.1.1", "169.254.1.1 is link-local"),
        ("224.0.0.1", "224.0.0.1 is multicast"),
        ("239.255.255.250", "239.255.255.250 is multicast"),
        ("255.255.255.255", "255.255.255.255 is limited broadcast"),
        ("240.0.0.1", "240.0.0.1 is reserved (240.0.0.0/4)"),
        ("0.1.2.3", "0.1.2.3 is 'this network' (RFC 791)"),
        ("192.0.0.8", "192.0.0.8 is reserved for IETF protocol assignments (RFC 6890)"),
        ("192.0.2.10", "192.0.2.10 is documentation (RFC 5737)"),
        ("198.51.100.7", "198.51.100.7 is documentation (RFC 5737)"),
        ("203.0.113.9", "203.0.113.9 is documentation (RFC 5737)"),
        ("198.18.0.1", "198.18.0.1 is benchmarking (RFC 2544)"),
        ("198.19.255.255", "198.19.255.255 is benchmarking (RFC 2544)"),
        ("2001:db8::1", "2001:db8::1 is documentation (RFC 3849)"),
        ("2001:2::1", "2001:2::1 is benchmarking (RFC 5180)"),
        ("fc00::1", "fc00::1 is unique local (RFC 4193)"),
        ("fd12:3456::1", "fd12:3456::1 is unique local (RFC 4193)"),
        ("fd00:ec2::254", "fd00:ec2::254 is unique local (cloud metadata)"),
        ("fe80::1", "fe80::1 is link-local"),
        ("fe80::1%eth0", "fe80::1 is link-local"),
        ("ff02::1", "ff02::1 is multicast"),
        ("100::1", "100::1 is discard-only (RFC 6666)"),
        ("3fff::1", "3fff::1 is documentation (RFC 9637)"),
        ("4000::1", "4000::1 is reserved (outside global unicast 2000::/3)"),
        ("not-an-ip", "'not-an-ip' is not an IP address"),
    ],
)
def test_denied_by_default(address: str, reason: str) -> None:
    assert DEFAULT.decide(address) == Decision(False, reason)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", "8.8.8.8 is not in any denied range"),
        ("2606:4700:4700::1111", "2606:4700:4700::1111 is not in any denied range"),
        (
            "::ffff:8.8.8.8",
            "::ffff:8.8.8.8 embeds 8.8.8.8 (v4-mapped ::ffff:0:0/96), not in any denied range",
        ),
        (
            "64:ff9b::808:808",
            "64:ff9b::808:808 embeds 8.8.8.8 (NAT64 64:ff9b::/96), not in any denied range",
        ),
        (
            "2002:808:808::1",
            "2002:808:808::1 embeds 8.8.8.8 (6to4 2002::/16), not in any denied range",
        ),
        (
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7 embeds 8.8.8.8 (Teredo 2001::/32 client),"
            " not in any denied range",
        ),
    ],
)
def test_allowed_by_default(address: str, reason: str) -> None:
    assert DEFAULT.decide(address) == Decision(True, reason)


def test_decide_accepts_address_objects() -> None:
    assert not DEFAULT.decide(IPv4Address("127.0.0.1")).allowed
    assert not DEFAULT.decide(IPv6Address("::ffff:127.0.0.1")).allowed
    assert DEFAULT.decide(IPv4Address("1.1.1.1")).allowed


def test_local_use_nat64_is_checked_in_every_layout() -> None:
    # Read as a /96 prefix this is 8.8.8.8, read as a /48 it is 127.0.1.0: denied.
    decision = DEFAULT.decide("64:ff9b:1:7f00:1:0:808:808")
    assert not decision.allowed
    assert "127.0.1.0" in decision.reason
    assert "/48 prefix" in decision.reason
    # A NAT64 gateway on a /96 inside the local-use prefix: the other readings are 0.x.x.x.
    assert not DEFAULT.decide("64:ff9b:1::808:808").allowed
    # The operator who runs that gateway can open it explicitly.
    policy = PeerPolicy(allowed_peers=["64:ff9b:1::/96"])
    assert policy.decide("64:ff9b:1::808:808") == Decision(
        True, "64:ff9b:1::808:808 is in allowed_peers 64:ff9b:1::/96"
    )


def test_allow_list_reopens_loopback_in_every_form() -> None:
    policy = PeerPolicy(allowed_peers=["127.0.0.0/8"])
    assert policy.decide("127.0.0.1") == Decision(True, "127.0.0.1 is in allowed_peers 127.0.0.0/8")
    assert policy.decide("::ffff:127.0.0.1") == Decision(
        True,
        "::ffff:127.0.0.1 embeds 127.0.0.1 (v4-mapped ::ffff:0:0/96), which is in allowed_peers"
        " 127.0.0.0/8",
    )
    assert policy.decide("64:ff9b::7f00:1").allowed
    assert policy.decide(TEREDO_EMBEDDING_LOOPBACK).allowed
    assert not policy.decide("10.0.0.1").allowed
    assert not policy.decide("::1").allowed  # IPv6 loopback is another range


def test_deny_list_adds_ranges_and_beats_allow_list() -> None:
    policy = PeerPolicy(allowed_peers=["10.0.0.0/8"], denied_peers=["10.0.0.1/32", "8.8.4.0/24"])
    assert policy.decide("10.9.9.9").allowed
    assert policy.decide("10.0.0.1") == Decision(False, "10.0.0.1 is in denied_peers 10.0.0.1/32")
    assert policy.decide("8.8.4.4") == Decision(False, "8.8.4.4 is in denied_peers 8.8.4.0/24")
    assert not policy.decide("::ffff:8.8.4.4").allowed
    assert not policy.decide("2002:808:404::").allowed
    assert policy.decide("8.8.8.8").allowed


def test_deny_list_matches_the_ipv6_form_too() -> None:
    policy = PeerPolicy(denied_peers=["2002::/16"])
    assert policy.decide("2002:808:808::1") == Decision(
        False, "2002:808:808::1 is in denied_peers 2002::/16"
    )


def test_own_address_is_always_allowed() -> None:
    policy = PeerPolicy(own_addresses=["10.0.0.5", "203.0.113.10"], denied_peers=["203.0.113.0/24"])
    assert policy.decide("10.0.0.5") == Decision(True, "10.0.0.5 is the relay's own address")
    assert policy.decide("203.0.113.10").allowed
    assert policy.decide("::ffff:10.0.0.5").allowed
    assert not policy.decide("10.0.0.6").allowed


def test_own_address_only_on_relay_ports_when_a_port_is_given() -> None:
    policy = PeerPolicy(own_addresses=["203.0.113.10"], own_ports=(49152, 65535))
    assert policy.decide("203.0.113.10", 50000).allowed
    assert policy.decide("203.0.113.10", 8080) == Decision(
        False, "203.0.113.10 is the relay's own address but port 8080 is outside 49152-65535"
    )
    assert policy.decide("203.0.113.10").allowed  # permissions carry no port


def test_operator_lists_accept_network_objects_and_reject_bad_text() -> None:
    policy = PeerPolicy(allowed_peers=[ip_network("192.168.0.0/16")])
    assert policy.decide("192.168.7.7").allowed
    with pytest.raises(ValueError):
        PeerPolicy(allowed_peers=["10.0.0.1/8"])


def test_embedded_ipv4_forms() -> None:
    assert embedded_ipv4(IPv6Address("2606:4700::1")) == ()
    assert embedded_ipv4(IPv6Address("::")) == ()
    assert embedded_ipv4(IPv6Address("::1")) == ()
    (teredo,) = embedded_ipv4(IPv6Address(TEREDO_EMBEDDING_LOOPBACK))
    assert teredo.address == IPv4Address("127.0.0.1")
    readings = embedded_ipv4(IPv6Address("64:ff9b:1:7f00:1:0:808:808"))
    assert [str(r.address) for r in readings] == ["127.0.1.0", "0.1.0.0", "1.0.0.8", "8.8.8.8"]


def test_show_keeps_embedded_ipv4_readable() -> None:
    assert show(IPv6Address("::ffff:127.0.0.1")) == "::ffff:127.0.0.1"
    assert show(IPv6Address("::ffff:0:1.2.3.4")) == "::ffff:0:1.2.3.4"
    assert show(IPv6Address("::1.2.3.4")) == "::1.2.3.4"
    assert show(IPv6Address("::1")) == "::1"
    assert show(IPv4Address("1.2.3.4")) == "1.2.3.4"


ipv4_addresses = st.integers(min_value=0, max_value=2**32 - 1).map(IPv4Address)


@given(ipv4_addresses)
def test_ipv4_and_its_mapped_form_get_the_same_decision(address: IPv4Address) -> None:
    mapped = IPv6Address(f"::ffff:{address}")
    assert DEFAULT.decide(address).allowed == DEFAULT.decide(mapped).allowed


@given(ipv4_addresses)
def test_same_decision_with_operator_lists(address: IPv4Address) -> None:
    policy = PeerPolicy(allowed_peers=["127.0.0.0/8", "10.0.0.0/8"], denied_peers=["8.0.0.0/8"])
    mapped = IPv6Address(f"::ffff:{address}")
    assert policy.decide(address).allowed == policy.decide(mapped).allowed


@given(ipv4_addresses)
def test_every_embedding_of_a_denied_ipv4_is_denied(address: IPv4Address) -> None:
    if DEFAULT.decide(address).allowed:
        return
    value = int(address)
    forms = [
        IPv6Address((0x0064FF9B << 96) | value),  # NAT64
        IPv6Address((0x2002 << 112) | (value << 80)),  # 6to4
        IPv6Address((0x20010000 << 96) | (~value & 0xFFFFFFFF)),  # Teredo
    ]
    for form in forms:
        assert not DEFAULT.decide(form).allowed, form
