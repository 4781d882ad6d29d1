"""Refresh (RFC 8656 section 8) and allocation lifetimes, with time stepped by hand."""

from __future__ import annotations

from turn_testkit import (
    RELAY_V4,
    RELAY_V6,
    T0,
    Client,
    CloseRelay,
    allocated,
    error_code,
    make_core,
    of_type,
)

from stun_server.wire import MessageClass
from stun_server.wire import attributes as attrs
from turn_relay.core.allocation import FAMILY_IPV4, FAMILY_IPV6


def test_refresh_extends_the_lifetime() -> None:
    core = make_core()
    client = allocated(core)
    response = client.refresh(1200, now=T0 + 500)
    assert response.get(attrs.Lifetime) == attrs.Lifetime(1200)
    assert response.get(attrs.Software) == attrs.Software("turnkit")
    core.handle_timer(T0 + 1000)  # the original 600 s have passed
    assert len(core.table) == 1
    core.handle_timer(T0 + 500 + 1200)
    assert len(core.table) == 0


def test_refresh_without_lifetime_uses_the_default() -> None:
    client = allocated(make_core())
    assert client.refresh(now=T0 + 1).get(attrs.Lifetime) == attrs.Lifetime(600)


def test_refresh_lifetime_is_clamped_to_3600() -> None:
    client = allocated(make_core())
    assert client.refresh(86400, now=T0 + 1).get(attrs.Lifetime) == attrs.Lifetime(3600)


def test_refresh_zero_deletes_and_closes_the_relay() -> None:
    core = make_core()
    client = allocated(core)
    relay = client.relay()
    response = client.refresh(0, now=T0 + 1)
    assert response.cls is MessageClass.SUCCESS
    assert response.get(attrs.Lifetime) == attrs.Lifetime(0)
    assert of_type(client.actions, CloseRelay) == [CloseRelay(relay)]
    assert len(core.table) == 0
    assert core.table.ports.pools[FAMILY_IPV4].is_free(relay[1])
    assert error_code(client.refresh(0, now=T0 + 2)) == 437


def test_refresh_without_allocation_is_437() -> None:
    client = Client.rest(make_core(), T0)
    assert error_code(client.refresh(600, now=T0)) == 437


def test_refresh_with_other_family_is_443() -> None:
    client = allocated(make_core(relays=(RELAY_V4, RELAY_V6)))
    response = client.refresh(600, attrs.RequestedAddressFamily(FAMILY_IPV6), now=T0 + 1)
    assert error_code(response) == 443


def test_dual_allocation_refresh_zero_with_family_drops_that_relay_only() -> None:
    core = make_core(relays=(RELAY_V4, RELAY_V6))
    client = allocated(core, T0, attrs.AdditionalAddressFamily(FAMILY_IPV6))
    allocation = core.table.by_five_tuple[client.five_tuple]
    v6 = allocation.relays[FAMILY_IPV6]
    response = client.refresh(0, attrs.RequestedAddressFamily(FAMILY_IPV6), now=T0 + 1)
    assert response.get(attrs.Lifetime) == attrs.Lifetime(0)
    assert of_type(client.actions, CloseRelay) == [CloseRelay(v6)]
    assert set(allocation.relays) == {FAMILY_IPV4}
    assert v6 not in core.table.by_relay
    assert client.refresh(600, now=T0 + 2).cls is MessageClass.SUCCESS


def test_allocation_expires_when_not_refreshed() -> None:
    core = make_core()
    client = allocated(core)
    relay = client.relay()
    assert core.get_timer() == T0 + 600
    assert core.handle_timer(T0 + 599.9) == []
    assert of_type(core.handle_timer(T0 + 600), CloseRelay) == [CloseRelay(relay)]
    assert len(core.table) == 0
    assert core.stats.allocations_removed["expired"] == 1
    assert error_code(client.refresh(600, now=T0 + 601)) == 437


def test_requests_after_expiry_get_437_and_new_allocate_works() -> None:
    core = make_core()
    client = allocated(core)
    core.handle_timer(T0 + 601)
    assert error_code(client.permit(("127.0.0.1", 9), now=T0 + 601)) == 437
    assert client.allocate(now=T0 + 602).cls is MessageClass.SUCCESS
