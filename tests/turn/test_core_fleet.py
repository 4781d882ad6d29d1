"""The core fed fleet facts: a per-user quota across relays, and 300 Try Alternate when full."""

from __future__ import annotations

from turn_testkit import T0, Client, allocated, error_code, make_core

from stun_server.wire import MessageClass
from stun_server.wire import attributes as attrs


def test_the_user_quota_counts_the_other_relays_allocations() -> None:
    core = make_core(max_allocations_per_user=3)
    core.fleet_changed({"alice": 2}, None)  # alice holds two on the siblings
    allocated(core, port=40000)  # her third, fleet-wide
    assert error_code(Client.rest(core, T0, port=40001).allocate(now=T0)) == 486
    allocated(core, port=40002, user="carol")  # others are not affected
    core.fleet_changed({"alice": 1}, None)  # one of hers ended elsewhere
    assert Client.rest(core, T0, port=40003).allocate(now=T0).cls is MessageClass.SUCCESS


def test_without_fleet_facts_the_quota_is_per_relay() -> None:
    core = make_core(max_allocations_per_user=1)
    core.fleet_changed({"alice": 5}, None)
    core.fleet_changed({}, None)  # Redis went away: the link hands over empty counts
    allocated(core, port=40000)
    assert error_code(Client.rest(core, T0, port=40001).allocate(now=T0)) == 486


def test_a_full_relay_names_the_alternate_with_300() -> None:
    core = make_core(max_allocations=1)
    allocated(core, port=40000)
    core.fleet_changed({}, ("127.0.0.3", 3478))
    response = Client.rest(core, T0, port=40001, user="carol").allocate(now=T0)
    assert error_code(response) == 300
    assert response.get(attrs.AlternateServer) == attrs.AlternateServer("127.0.0.3", 3478)
    core.fleet_changed({}, None)  # no sibling accepts: 486 as before
    response = Client.rest(core, T0, port=40002, user="carol").allocate(now=T0)
    assert error_code(response) == 486
