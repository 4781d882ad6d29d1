"""Allocate (RFC 8656 section 7.2) against the sans-I/O core, every check with its exact code."""

from __future__ import annotations

import pytest
from turn_testkit import (
    PORT_MAX,
    PORT_MIN,
    RELAY_V4,
    RELAY_V6,
    T0,
    Client,
    CloseRelay,
    OpenRelay,
    ToClient,
    allocated,
    error_code,
    make_core,
    of_type,
    responses,
)

from stun_server.wire import Message, MessageClass, Method, UnknownAttribute, verify_integrity
from stun_server.wire import attributes as attrs
from turn_relay.core.allocation import FAMILY_IPV4, FAMILY_IPV6


def test_allocate_success_carries_the_rfc_attributes() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    challenge = client.learn_nonce(T0)
    assert challenge.get(attrs.Realm) == attrs.Realm("turnkit.test")
    response = client.allocate(now=T0)
    assert response.cls is MessageClass.SUCCESS
    relayed = response.get(attrs.XorRelayedAddress)
    assert relayed is not None and relayed.ip == "127.0.0.1"
    assert PORT_MIN <= relayed.port <= PORT_MAX
    assert response.get(attrs.Lifetime) == attrs.Lifetime(600)
    assert response.get(attrs.XorMappedAddress) == attrs.XorMappedAddress("127.0.0.1", 40000)
    assert response.get(attrs.Software) == attrs.Software("turnkit")
    assert verify_integrity(response, client.key)
    opened = of_type(client.actions, OpenRelay)
    assert opened == [OpenRelay(("127.0.0.1", relayed.port))]
    assert client.actions.index(opened[0]) < len(client.actions) - 1, "OpenRelay before response"
    assert core.stats.allocations_created == 1


@pytest.mark.parametrize(
    ("requested", "granted"), [(None, 600), (30, 600), (1200, 1200), (99999, 3600)]
)
def test_lifetime_is_clamped_between_default_and_max(requested: int | None, granted: int) -> None:
    client = Client.rest(make_core(), T0)
    extra = [] if requested is None else [attrs.Lifetime(requested)]
    response = client.allocate(*extra, now=T0)
    assert response.get(attrs.Lifetime) == attrs.Lifetime(granted)


def test_missing_requested_transport_is_400() -> None:
    client = Client.rest(make_core(), T0)
    response = client.request(Method.ALLOCATE, now=T0)
    assert error_code(response) == 400
    assert verify_integrity(response, client.key)  # errors after authentication are signed


def test_tcp_requested_transport_is_442() -> None:
    client = Client.rest(make_core(), T0)
    assert error_code(client.allocate(now=T0, transport=6)) == 442


def test_unknown_comprehension_required_attribute_is_420_with_its_code() -> None:
    client = Client.rest(make_core(), T0)
    response = client.allocate(UnknownAttribute(0x7F01, b"\x00\x00\x00\x00"), now=T0)
    assert error_code(response) == 420
    assert response.get(attrs.UnknownAttributes) == attrs.UnknownAttributes((0x7F01,))


def test_unknown_comprehension_optional_attribute_is_ignored() -> None:
    client = Client.rest(make_core(), T0)
    response = client.allocate(UnknownAttribute(0xFF05, b"log!"), now=T0)
    assert response.cls is MessageClass.SUCCESS


def test_dont_fragment_is_420_when_the_shell_cannot_set_df() -> None:
    client = Client.rest(make_core(dont_fragment=False), T0)
    response = client.allocate(attrs.DontFragment(), now=T0)
    assert error_code(response) == 420
    assert response.get(attrs.UnknownAttributes) == attrs.UnknownAttributes((0x001A,))


def test_dont_fragment_is_accepted_when_the_shell_can_set_df() -> None:
    client = Client.rest(make_core(dont_fragment=True), T0)
    assert client.allocate(attrs.DontFragment(), now=T0).cls is MessageClass.SUCCESS


def test_second_allocate_on_the_same_five_tuple_is_437() -> None:
    client = allocated(make_core())
    assert error_code(client.allocate(now=T0 + 1)) == 437


def test_retransmitted_allocate_gets_the_identical_response() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    client.learn_nonce(T0)
    request = Message(
        Method.ALLOCATE, MessageClass.REQUEST, attributes=[attrs.RequestedTransport(17)]
    )
    data = client._encode(request)
    first = client.send(data, T0)
    again = client.send(data, T0 + 2)
    assert of_type(again, ToClient) == of_type(first, ToClient)
    assert of_type(again, OpenRelay) == []
    assert len(core.table) == 1


def test_requested_address_family_ipv6_without_ipv6_relay_is_440() -> None:
    client = Client.rest(make_core(), T0)
    response = client.allocate(attrs.RequestedAddressFamily(FAMILY_IPV6), now=T0)
    assert error_code(response) == 440


def test_unknown_address_family_is_440() -> None:
    client = Client.rest(make_core(), T0)
    assert error_code(client.allocate(attrs.RequestedAddressFamily(3), now=T0)) == 440


def test_no_ipv4_relay_and_no_requested_family_is_440() -> None:
    client = Client.rest(make_core(relays=(RELAY_V6,)), T0)
    assert error_code(client.allocate(now=T0)) == 440


def test_ipv6_allocation() -> None:
    client = Client.rest(make_core(relays=(RELAY_V4, RELAY_V6)), T0)
    response = client.allocate(attrs.RequestedAddressFamily(FAMILY_IPV6), now=T0)
    relayed = response.get(attrs.XorRelayedAddress)
    assert relayed is not None and relayed.ip == "::1"


def test_dual_allocation_returns_two_relayed_addresses() -> None:
    core = make_core(relays=(RELAY_V4, RELAY_V6))
    client = Client.rest(core, T0)
    response = client.allocate(attrs.AdditionalAddressFamily(FAMILY_IPV6), now=T0)
    relayed = response.get_all(attrs.XorRelayedAddress)
    assert [r.ip for r in relayed] == ["127.0.0.1", "::1"]
    assert len(of_type(client.actions, OpenRelay)) == 2
    assert not response.has(attrs.AddressErrorCode)


def test_dual_allocation_without_ipv6_reports_address_error_440() -> None:
    client = Client.rest(make_core(), T0)
    response = client.allocate(attrs.AdditionalAddressFamily(FAMILY_IPV6), now=T0)
    assert response.cls is MessageClass.SUCCESS
    assert len(response.get_all(attrs.XorRelayedAddress)) == 1
    error = response.get(attrs.AddressErrorCode)
    assert error is not None and (error.family, error.code) == (FAMILY_IPV6, 440)


def test_additional_address_family_ipv4_is_400() -> None:
    client = Client.rest(make_core(relays=(RELAY_V4, RELAY_V6)), T0)
    response = client.allocate(attrs.AdditionalAddressFamily(FAMILY_IPV4), now=T0)
    assert error_code(response) == 400


def test_requested_and_additional_family_together_is_400() -> None:
    client = Client.rest(make_core(relays=(RELAY_V4, RELAY_V6)), T0)
    response = client.allocate(
        attrs.RequestedAddressFamily(FAMILY_IPV4),
        attrs.AdditionalAddressFamily(FAMILY_IPV6),
        now=T0,
    )
    assert error_code(response) == 400


def test_even_port_gives_an_even_port() -> None:
    for port in range(40000, 40010):
        response = Client.rest(make_core(), T0, port=port).allocate(attrs.EvenPort(), now=T0)
        relayed = response.get(attrs.XorRelayedAddress)
        assert relayed is not None and relayed.port % 2 == 0
        assert not response.has(attrs.ReservationToken)


def test_even_port_with_r_reserves_the_next_port_for_the_token() -> None:
    core = make_core()
    reserving = Client.rest(core, T0, port=40000)
    first = reserving.allocate(attrs.EvenPort(reserve=True), now=T0)
    relayed, token = first.get(attrs.XorRelayedAddress), first.get(attrs.ReservationToken)
    assert relayed is not None and token is not None and relayed.port % 2 == 0
    n = relayed.port
    # the reserved port is bound at once, so the token can always be honoured
    assert of_type(reserving.actions, OpenRelay) == [
        OpenRelay(("127.0.0.1", n)),
        OpenRelay(("127.0.0.1", n + 1)),
    ]
    redeeming = Client.rest(core, T0 + 5, port=40001)
    second = redeeming.allocate(token, now=T0 + 5)
    assert second.get(attrs.XorRelayedAddress) == attrs.XorRelayedAddress("127.0.0.1", n + 1)
    assert not second.has(attrs.ReservationToken)
    third = Client.rest(core, T0 + 6, port=40002).allocate(token, now=T0 + 6)
    assert error_code(third) == 508  # a token is good once
    assert core.handle_timer(T0 + 31) == []  # redeemed: nothing to close at expiry


def test_reservation_expires_after_30_seconds() -> None:
    core = make_core()
    first = Client.rest(core, T0, port=40000).allocate(attrs.EvenPort(reserve=True), now=T0)
    token, relayed = first.get(attrs.ReservationToken), first.get(attrs.XorRelayedAddress)
    assert token is not None and relayed is not None
    assert core.handle_timer(T0 + 31) == [CloseRelay(("127.0.0.1", relayed.port + 1))]
    late = Client.rest(core, T0 + 31, port=40001).allocate(token, now=T0 + 31)
    assert error_code(late) == 508
    assert len(core.table.ports.pools[FAMILY_IPV4]) == PORT_MAX - PORT_MIN  # N+1 back in pool


def test_busy_reserved_port_moves_the_allocation_to_another_pair() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    first = client.allocate(attrs.EvenPort(reserve=True), now=T0)
    relayed = first.get(attrs.XorRelayedAddress)
    assert relayed is not None
    busy = ("127.0.0.1", relayed.port + 1)
    replacement = core.relay_failed(busy, T0)
    assert replacement[0] == CloseRelay(("127.0.0.1", relayed.port))
    (response,) = responses(replacement)
    moved, token = response.get(attrs.XorRelayedAddress), response.get(attrs.ReservationToken)
    assert moved is not None and token is not None and moved.port not in (relayed.port, busy[1])
    assert of_type(replacement, OpenRelay) == [
        OpenRelay(("127.0.0.1", moved.port)),
        OpenRelay(("127.0.0.1", moved.port + 1)),
    ]
    assert not core.table.ports.pools[FAMILY_IPV4].is_free(busy[1])  # quarantined
    core.handle_timer(T0 + 61)
    assert core.table.ports.pools[FAMILY_IPV4].is_free(busy[1])


def test_unknown_reservation_token_is_508() -> None:
    client = Client.rest(make_core(), T0)
    response = client.allocate(attrs.ReservationToken(b"12345678"), now=T0)
    assert error_code(response) == 508


@pytest.mark.parametrize(
    "other",
    [attrs.EvenPort(), attrs.RequestedAddressFamily(1), attrs.AdditionalAddressFamily(2)],
)
def test_reservation_token_with_even_port_or_family_is_400(other: attrs.AnyAttribute) -> None:
    client = Client.rest(make_core(relays=(RELAY_V4, RELAY_V6)), T0)
    response = client.allocate(attrs.ReservationToken(b"12345678"), other, now=T0)
    assert error_code(response) == 400


def test_even_port_r_with_additional_family_is_400() -> None:
    client = Client.rest(make_core(relays=(RELAY_V4, RELAY_V6)), T0)
    response = client.allocate(
        attrs.EvenPort(reserve=True), attrs.AdditionalAddressFamily(FAMILY_IPV6), now=T0
    )
    assert error_code(response) == 400


def test_exhausted_port_range_is_508() -> None:
    core = make_core(port_min=50000, port_max=50001)
    allocated(core, port=40000)
    allocated(core, port=40001)
    assert error_code(Client.rest(core, T0, port=40002).allocate(now=T0)) == 508


def test_even_port_without_an_even_free_pair_is_508() -> None:
    core = make_core(port_min=50001, port_max=50001)
    response = Client.rest(core, T0).allocate(attrs.EvenPort(), now=T0)
    assert error_code(response) == 508


def test_per_user_quota_is_486_and_frees_on_delete() -> None:
    core = make_core(max_allocations_per_user=2)
    first = allocated(core, port=40000)
    allocated(core, port=40001)
    assert error_code(Client.rest(core, T0, port=40002).allocate(now=T0)) == 486
    allocated(core, port=40003, user="carol")  # another user is not affected
    assert first.refresh(0, now=T0 + 1).cls is MessageClass.SUCCESS
    assert Client.rest(core, T0 + 1, port=40004).allocate(now=T0 + 1).cls is MessageClass.SUCCESS


def test_total_quota_is_486() -> None:
    core = make_core(max_allocations=1)
    allocated(core, port=40000)
    response = Client.rest(core, T0, port=40001, user="carol").allocate(now=T0)
    assert error_code(response) == 486


def test_advertised_address_is_what_the_client_sees() -> None:
    from turn_relay.core.settings import RelayAddress

    core = make_core(relays=(RelayAddress("127.0.0.1", "203.0.113.10"),))
    client = Client.rest(core, T0)
    response = client.allocate(now=T0)
    relayed = response.get(attrs.XorRelayedAddress)
    assert relayed is not None and relayed.ip == "203.0.113.10"
    opened = of_type(client.actions, OpenRelay)
    assert opened == [OpenRelay(("127.0.0.1", relayed.port))]


def test_binding_request_is_answered_without_authentication() -> None:
    client = Client.rest(make_core(), T0)
    response = client.exchange(Message(Method.BINDING, MessageClass.REQUEST), T0, sign=False)
    assert response.cls is MessageClass.SUCCESS
    assert response.get(attrs.XorMappedAddress) == attrs.XorMappedAddress("127.0.0.1", 40000)


def test_unknown_method_is_400() -> None:
    client = Client.rest(make_core(), T0)
    response = client.exchange(Message(0x0FF, MessageClass.REQUEST), T0, sign=False)
    assert error_code(response) == 400


def test_connect_method_of_rfc6062_is_400() -> None:
    client = Client.rest(make_core(), T0)
    response = client.exchange(Message(Method.CONNECT, MessageClass.REQUEST), T0, sign=False)
    assert error_code(response) == 400
