"""One peer rule on every path for the relay's own addresses (issue 11).

Found: once a client held a permission for the relay's own IP, Send indications reached every
UDP port on it: a plain service on 127.0.0.1:40000 received data although CreatePermission to
that port got 403, a Binding sent to the relay's listener came back as a Data indication and an
unauthenticated Allocate sent there as a 401. On its own addresses the relay now reaches only
relayed transport addresses it has allocated, never its listeners, on every path.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from relay_harness import WireClient, echo_peer, eventually, relay_config, running
from turn_testkit import (
    PORT_MAX,
    PORT_MIN,
    SERVER,
    T0,
    Client,
    RouteDown,
    ToPeer,
    allocated,
    error_code,
    make_core,
    of_type,
)

from stun_server.wire import Message, MessageClass, Method, encode
from turn_relay.config import PeerPolicyConfig
from turn_relay.core.allocation import Transport
from turn_relay.core.own_peers import TO_LISTENER, TO_UNALLOCATED
from turn_relay.core.peer_policy import PeerPolicy
from turn_relay.core.relay import RelayCore

OWN = "127.0.0.1"


def own_core(*, reopened: bool = False) -> RelayCore:
    """Relay on 127.0.0.1, listener 127.0.0.1:3478; ``reopened``: allowed_peers has 127/8."""
    core = make_core(allowed_peers=(), listeners=(SERVER,))
    core.policy = PeerPolicy(
        allowed_peers=["127.0.0.0/8"] if reopened else ["127.0.0.2/32"],
        own_addresses=[] if reopened else [OWN],
        own_ports=(PORT_MIN, PORT_MAX),
    )
    return core


def unallocated_port(core: RelayCore) -> int:
    taken = {port for _, port in core.table.by_relay}
    return next(port for port in range(PORT_MIN, PORT_MAX + 1) if port not in taken)


def binding_request() -> bytes:
    return encode(Message(Method.BINDING, MessageClass.REQUEST))


def test_relay_to_relay_between_two_live_allocations_still_works() -> None:
    core = own_core()
    alice, bob = allocated(core, port=40000), allocated(core, user="bob2", port=40001)
    to_bob = bob.relay()
    assert alice.permit(to_bob, now=T0).cls is MessageClass.SUCCESS
    assert of_type(alice.send_indication(to_bob, b"hi", T0), ToPeer) == [
        ToPeer(alice.relay(), to_bob, b"hi")
    ]
    assert alice.bind(0x4000, to_bob, now=T0).cls is MessageClass.SUCCESS
    assert of_type(alice.channel_data(0x4000, b"ch", T0), ToPeer) == [
        ToPeer(alice.relay(), to_bob, b"ch")
    ]


def test_send_to_an_unallocated_port_of_the_relays_address_is_dropped_and_counted() -> None:
    core = own_core()
    alice, bob = allocated(core, port=40000), allocated(core, user="bob2", port=40001)
    assert alice.permit(bob.relay(), now=T0).cls is MessageClass.SUCCESS  # a permission for OWN
    service = (OWN, unallocated_port(core))
    assert alice.send_indication(service, b"x", T0) == []
    assert core.stats.dropped[TO_UNALLOCATED] == 1


def test_send_to_the_listener_is_dropped_even_where_the_allow_list_reopens_it() -> None:
    for reopened in (False, True):
        core = own_core(reopened=reopened)
        alice, bob = allocated(core, port=40000), allocated(core, user="bob2", port=40001)
        assert alice.permit(bob.relay(), now=T0).cls is MessageClass.SUCCESS
        assert alice.send_indication(SERVER, binding_request(), T0) == []
        assert core.stats.dropped[TO_LISTENER] == 1


def test_permission_and_channel_to_an_unallocated_port_or_the_listener_are_403() -> None:
    core = own_core()
    alice = allocated(core, port=40000)
    service = (OWN, unallocated_port(core))
    assert error_code(alice.permit(service, now=T0)) == 403
    assert error_code(alice.bind(0x4000, service, now=T0)) == 403
    assert error_code(alice.bind(0x4001, SERVER, now=T0)) == 403
    reopened = own_core(reopened=True)
    carol = allocated(reopened, port=40002)
    assert error_code(carol.bind(0x4000, SERVER, now=T0)) == 403


def test_a_channel_to_a_relayed_address_goes_when_that_allocation_goes() -> None:
    """The freed port may be bound by anything next; the channel must not reach it."""
    core = own_core()
    alice, bob = allocated(core, port=40000), allocated(core, user="bob2", port=40001)
    to_bob = bob.relay()
    assert alice.bind(0x4000, to_bob, now=T0).cls is MessageClass.SUCCESS
    bob.refresh(0, now=T0 + 1)
    assert [a for a in bob.actions if isinstance(a, RouteDown)] == [
        RouteDown(alice.five_tuple, 0x4000, alice.relay(), to_bob)
    ]
    assert alice.channel_data(0x4000, b"late", T0 + 2) == []
    assert core.stats.dropped["unbound-channel"] == 1
    assert 0x4000 not in core.table.by_five_tuple[alice.five_tuple].channels


def test_streams_follow_the_same_rule() -> None:
    core = own_core()
    alice = Client.rest(core, T0)
    alice.five_tuple = alice.five_tuple._replace(transport=Transport.TCP)
    assert alice.allocate(now=T0).cls is MessageClass.SUCCESS
    bob = allocated(core, user="bob2", port=40001)
    assert alice.permit(bob.relay(), now=T0).cls is MessageClass.SUCCESS
    assert alice.send_indication((OWN, unallocated_port(core)), b"x", T0) == []
    assert alice.send_indication(SERVER, b"x", T0) == []


# --- the real shell: its fast path leaves the relay's own addresses to the core -----------------


@pytest.mark.asyncio
async def test_the_shell_sends_nothing_to_its_listener_or_a_foreign_service_in_its_range() -> None:
    config = relay_config()
    config = type(config)(
        server=config.server,
        relay=config.relay,
        listen=config.listen,
        allocation=config.allocation,
        auth=config.auth,
        peer_policy=PeerPolicyConfig(allowed_peers=("127.0.0.2/32",)),
    )
    service = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    service.bind((OWN, config.relay.port_max))  # a plain service inside the relay port range
    service.setblocking(False)
    try:
        async with running(config) as server, echo_peer("127.0.0.2") as (_, _echo):
            listener = server.listening(Transport.UDP)[0]
            alice = await WireClient.over_udp(listener)
            bob = await WireClient.over_udp(listener)
            await alice.allocate()
            to_bob = await bob.allocate()
            assert (await alice.permit(to_bob)).cls is MessageClass.SUCCESS
            assert (await bob.permit(await_relayed(server, alice))).cls is MessageClass.SUCCESS
            assert server.udp_listeners[listener].permits == {}  # no fast path to OWN
            alice.send_indication(to_bob, b"relay to relay")
            data = await bob.receive()
            assert data[:2] == b"\x00\x17" and b"relay to relay" in data  # a Data indication
            alice.send_indication((OWN, config.relay.port_max), b"to the service")
            alice.send_indication(listener, binding_request())
            stats = server.core.stats.dropped
            await eventually(lambda: stats[TO_UNALLOCATED] == 1 and stats[TO_LISTENER] == 1)
            await asyncio.sleep(0.2)
            with pytest.raises(BlockingIOError):
                service.recv(100)
            with pytest.raises(TimeoutError):
                await alice.receive(0.3)  # no Data indication carrying a Binding response
            await alice.close()
            await bob.close()
    finally:
        service.close()


def await_relayed(server: object, client: WireClient) -> tuple[str, int]:
    core: RelayCore = server.core  # type: ignore[attr-defined]
    for five_tuple, allocation in core.table.by_five_tuple.items():
        if five_tuple.client == client.local:
            return next(iter(allocation.relays.values()))
    raise AssertionError("no allocation")
