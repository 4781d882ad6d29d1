"""Timers, connection close, relay bind failures and the heap that drives expiry."""

from __future__ import annotations

from turn_testkit import (
    PEER,
    T0,
    Client,
    CloseRelay,
    OpenRelay,
    ToClient,
    allocated,
    five_tuple,
    make_core,
    of_type,
    responses,
)

from stun_server.wire import MessageClass
from stun_server.wire import attributes as attrs
from turn_relay.core.allocation import FAMILY_IPV4, Transport


def test_get_timer_is_none_without_state() -> None:
    assert make_core().get_timer() is None


def test_timer_follows_the_earliest_deadline() -> None:
    core = make_core()
    client = allocated(core)
    assert core.get_timer() == T0 + 600
    client.permit(PEER, now=T0 + 10)
    assert core.get_timer() == T0 + 310


def test_refreshes_do_not_grow_the_heap() -> None:
    core = make_core()
    client = allocated(core)
    client.permit(PEER, now=T0)
    size = len(core.table._heap)
    for step in range(1, 50):
        client.permit(PEER, now=T0 + step)
        client.refresh(600, now=T0 + step)
    assert len(core.table._heap) == size


def test_expiry_pops_only_due_entries() -> None:
    core = make_core()
    clients = [allocated(core, T0 + i, port=41000 + i) for i in range(50)]
    assert len(core.table) == 50
    core.handle_timer(T0 + 600 + 24.5)
    assert len(core.table) == 25
    assert len(core.table._heap) == 25
    assert clients[-1].five_tuple in core.table.by_five_tuple


def test_many_timers_at_once() -> None:
    core = make_core(port_min=50000, port_max=50999)
    for i in range(500):
        client = allocated(core, T0, port=30000 + i)
        client.permit(PEER, now=T0)
    actions = core.handle_timer(T0 + 10_000)
    assert len(of_type(actions, CloseRelay)) == 500
    assert len(core.table) == 0 and core.get_timer() is None


def test_tcp_connection_close_deletes_the_allocation() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    client.five_tuple = five_tuple(transport=Transport.TCP)
    client.allocate(now=T0)
    relay = client.relay()
    assert core.connection_closed(client.five_tuple, T0 + 1) == [CloseRelay(relay)]
    assert len(core.table) == 0
    assert core.connection_closed(client.five_tuple, T0 + 2) == []


def test_relay_bind_failure_quarantines_the_port_and_retries() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    client.learn_nonce(T0)
    first = client.allocate(now=T0)
    failed = of_type(client.actions, OpenRelay)[0]
    assert isinstance(failed, OpenRelay)
    replacement = core.relay_failed(failed.relay, T0)
    assert replacement[0] == CloseRelay(failed.relay)
    reopened = of_type(replacement, OpenRelay)
    assert len(reopened) == 1 and reopened != [failed]
    (response,) = responses(replacement)
    relayed = response.get(attrs.XorRelayedAddress)
    assert relayed is not None and relayed.port != failed.relay[1]
    assert response.transaction_id == first.transaction_id
    assert len(core.table) == 1
    pool = core.table.ports.pools[FAMILY_IPV4]
    assert not pool.is_free(failed.relay[1])  # quarantined
    core.handle_timer(T0 + 61)
    assert pool.is_free(failed.relay[1])


def test_relay_bind_failure_retries_are_bounded() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    client.learn_nonce(T0)
    client.allocate(now=T0)
    actions = client.actions
    for _ in range(20):
        opened = of_type(actions, OpenRelay)
        if not opened:
            break
        relay = opened[0]
        assert isinstance(relay, OpenRelay)
        actions = core.relay_failed(relay.relay, T0)
    assert of_type(actions, OpenRelay) == []
    assert len(core.table) == 0


def test_retransmitted_request_is_answered_from_cache() -> None:
    core = make_core()
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    first, request = client.actions, client.last_sent
    before = core.stats.requests["channel_bind"]
    again = client.send(request, T0 + 1)
    assert of_type(again, ToClient) == of_type(first, ToClient)
    assert core.stats.requests["channel_bind"] == before  # not processed twice


def test_stats_count_methods_and_relayed_bytes() -> None:
    core = make_core()
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    client.channel_data(0x4000, b"12345", T0)
    core.receive_from_peer(b"123", client.relay(), PEER, T0)
    assert core.stats.requests["allocate"] == 2
    assert core.stats.requests["channel_bind"] == 1
    assert (core.stats.packets_to_peer, core.stats.bytes_to_peer) == (1, 5)
    assert (core.stats.packets_to_client, core.stats.bytes_to_client) == (1, 3)
    assert client.refresh(0, now=T0).cls is MessageClass.SUCCESS
    assert core.stats.allocations_removed["deleted"] == 1
