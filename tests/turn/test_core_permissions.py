"""CreatePermission (RFC 8656 section 10) and the peer policy (403), with expiry by time."""

from __future__ import annotations

import pytest
from turn_testkit import (
    PEER,
    PEER2,
    RELAY_V4,
    RELAY_V6,
    T0,
    ToClient,
    ToPeer,
    allocated,
    error_code,
    make_core,
    of_type,
)

from stun_server.wire import MessageClass, Method
from stun_server.wire import attributes as attrs
from turn_relay.core.actions import PermitDown, PermitUp
from turn_relay.core.allocation import FAMILY_IPV6

DENIED_BY_DEFAULT = [
    "127.0.0.1",
    "::ffff:127.0.0.1",
    "0.0.0.0",
    "::",
    "169.254.169.254",
    "64:ff9b::7f00:1",
    "10.1.2.3",
    "192.168.1.1",
    "100.64.0.1",
    "224.0.0.1",
    "::1",
    "fe80::1",
    "fd00::1",
]


def test_create_permission_for_several_peers_at_once() -> None:
    core = make_core()
    client = allocated(core)
    response = client.permit(PEER, ("127.0.0.2", 1), ("127.0.0.3", 2), now=T0 + 1)
    assert response.cls is MessageClass.SUCCESS
    allocation = core.table.by_five_tuple[client.five_tuple]
    assert set(allocation.permissions) == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    assert allocation.permissions["127.0.0.2"].expires_at == T0 + 1 + 300


def test_create_permission_without_peer_is_400() -> None:
    client = allocated(make_core())
    assert error_code(client.request(Method.CREATE_PERMISSION, now=T0)) == 400


@pytest.mark.parametrize("peer", DENIED_BY_DEFAULT)
def test_denied_peers_are_403(peer: str) -> None:
    core = make_core(relays=(RELAY_V4, RELAY_V6), allowed_peers=())
    client = allocated(core, T0, attrs.AdditionalAddressFamily(FAMILY_IPV6))
    response = client.permit((peer, 5000), now=T0 + 1)
    assert error_code(response) == 403
    assert core.table.by_five_tuple[client.five_tuple].permissions == {}


@pytest.mark.parametrize(
    "peer", ["::ffff:127.0.0.1", "0.0.0.0", "::", "169.254.169.254", "64:ff9b::7f00:1"]
)
def test_denied_peers_are_403_on_an_ipv4_allocation_too(peer: str) -> None:
    client = allocated(make_core(allowed_peers=()))
    assert error_code(client.permit((peer, 5000), now=T0 + 1)) == 403


@pytest.mark.parametrize("peer", ["::ffff:127.0.0.1", "64:ff9b::7f00:1"])
def test_ipv4_embedding_forms_stay_denied_when_only_ipv6_loopback_is_allowed(peer: str) -> None:
    client = allocated(make_core(allowed_peers=("::1/128",)))
    assert error_code(client.permit((peer, 5000), now=T0 + 1)) == 403


def test_channel_bind_to_denied_peer_is_403() -> None:
    client = allocated(make_core(allowed_peers=()))
    assert error_code(client.bind(0x4000, ("169.254.169.254", 80), now=T0 + 1)) == 403


def test_create_permission_is_all_or_nothing() -> None:
    core = make_core(allowed_peers=("127.0.0.1/32",))
    client = allocated(core)
    assert error_code(client.permit(PEER, ("127.0.0.2", 1), now=T0 + 1)) == 403
    assert core.table.by_five_tuple[client.five_tuple].permissions == {}


def test_ipv6_peer_on_ipv4_allocation_is_443() -> None:
    client = allocated(make_core(allowed_peers=("127.0.0.0/8", "2001:4860::/32")))
    assert error_code(client.permit(("2001:4860::8888", 1), now=T0 + 1)) == 443


def test_public_peer_is_allowed_by_default() -> None:
    client = allocated(make_core(allowed_peers=()))
    assert client.permit(("8.8.8.8", 53), now=T0 + 1).cls is MessageClass.SUCCESS


def test_too_many_permissions_is_508() -> None:
    client = allocated(make_core(max_permissions_per_allocation=2))
    assert client.permit(("127.0.0.2", 1), ("127.0.0.3", 1), now=T0 + 1).cls is MessageClass.SUCCESS
    assert client.permit(("127.0.0.2", 1), now=T0 + 2).cls is MessageClass.SUCCESS  # refresh
    assert error_code(client.permit(("127.0.0.4", 1), now=T0 + 3)) == 508


def test_permission_lets_data_through_until_it_expires() -> None:
    core = make_core()
    client = allocated(core)
    relay = client.relay()
    client.permit(PEER, now=T0)
    assert of_type(client.send_indication(PEER2, b"x", T0 + 1), ToPeer)  # any port of the IP
    assert of_type(core.receive_from_peer(b"y", relay, PEER2, T0 + 1), ToClient)
    core.handle_timer(T0 + 300)
    assert client.send_indication(PEER, b"x", T0 + 300) == []
    assert core.receive_from_peer(b"y", relay, PEER, T0 + 300) == []
    assert core.stats.dropped["no-permission"] == 2


def test_permission_refresh_postpones_expiry() -> None:
    core = make_core()
    client = allocated(core)
    client.permit(PEER, now=T0)
    client.permit(PEER, now=T0 + 200)
    core.handle_timer(T0 + 350)
    assert of_type(client.send_indication(PEER, b"x", T0 + 350), ToPeer)
    core.handle_timer(T0 + 500)
    assert client.send_indication(PEER, b"x", T0 + 500) == []


def test_permissions_are_announced_up_and_down_for_a_shell_fast_path() -> None:
    """PermitUp once per new permission (not on refresh), PermitDown at expiry, at
    deletion of the allocation and for a dropped relay family, each naming the relay the
    shell must send from."""
    core = make_core(relays=(RELAY_V4, RELAY_V6))
    client = allocated(core, T0, attrs.AdditionalAddressFamily(FAMILY_IPV6))
    relays = dict(core.table.by_five_tuple[client.five_tuple].relays)
    ft = client.five_tuple
    client.permit(PEER, ("::1", 9), now=T0)
    assert of_type(client.actions, PermitUp) == [
        PermitUp(ft, relays[1], PEER[0]),
        PermitUp(ft, relays[2], "::1"),
    ]
    client.permit(PEER, now=T0 + 100)  # a refresh: nothing new for the shell
    assert of_type(client.actions, PermitUp) == []
    client.permit(PEER2, now=T0 + 100)  # same IP, other port: one permission per IP
    assert of_type(client.actions, PermitUp) == []
    client.bind(0x4000, ("127.0.0.3", 7), now=T0 + 100)  # ChannelBind installs one too
    assert of_type(client.actions, PermitUp) == [PermitUp(ft, relays[1], "127.0.0.3")]
    expired = core.handle_timer(T0 + 300)  # ::1 expires; the others were refreshed
    assert of_type(expired, PermitDown) == [PermitDown(ft, relays[2], "::1")]
    assert of_type(expired, PermitUp) == []
    client.permit(("::1", 9), now=T0 + 301)
    dropped = client.refresh(0, attrs.RequestedAddressFamily(FAMILY_IPV6), now=T0 + 302)
    assert dropped.cls is MessageClass.SUCCESS
    assert of_type(client.actions, PermitDown) == [PermitDown(ft, relays[2], "::1")]
    client.refresh(0, now=T0 + 303)
    assert sorted(of_type(client.actions, PermitDown)) == [
        PermitDown(ft, relays[1], "127.0.0.1"),
        PermitDown(ft, relays[1], "127.0.0.3"),
    ]
