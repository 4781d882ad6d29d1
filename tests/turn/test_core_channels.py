"""ChannelBind (RFC 8656 section 12.2), ChannelData both ways, routes and their expiry."""

from __future__ import annotations

import pytest
from turn_testkit import (
    PEER,
    PEER2,
    REALM,
    T0,
    Client,
    RouteDown,
    RouteUp,
    ToClient,
    ToPeer,
    allocated,
    error_code,
    five_tuple,
    make_core,
    of_type,
    responses,
)

from stun_server.wire import Message, MessageClass, Method, encode
from stun_server.wire import attributes as attrs
from turn_relay.core.allocation import Transport


def test_channel_bind_routes_both_ways() -> None:
    core = make_core()
    client = allocated(core)
    relay = client.relay()
    assert client.bind(0x4000, PEER, now=T0 + 1).cls is MessageClass.SUCCESS
    assert of_type(client.actions, RouteUp) == [RouteUp(client.five_tuple, 0x4000, relay, PEER)]
    assert client.channel_data(0x4000, b"hello", T0 + 2) == [ToPeer(relay, PEER, b"hello")]
    assert core.receive_from_peer(b"back", relay, PEER, T0 + 2) == [
        ToClient(client.five_tuple, b"\x40\x00\x00\x04back")
    ]
    allocation = core.table.by_five_tuple[client.five_tuple]
    assert "127.0.0.1" in allocation.permissions  # ChannelBind installs the permission


def test_zero_length_channel_data_is_relayed() -> None:
    client = allocated(make_core())
    client.bind(0x4001, PEER, now=T0)
    assert client.channel_data(0x4001, b"", T0) == [ToPeer(client.relay(), PEER, b"")]


def test_channel_data_over_tcp_is_padded_to_four() -> None:
    core = make_core()
    client = Client.rest(core, T0)
    client.five_tuple = five_tuple(transport=Transport.TCP)
    client.allocate(now=T0)
    client.bind(0x4000, PEER, now=T0)
    (sent,) = core.receive_from_peer(b"abcde", client.relay(), PEER, T0)
    assert isinstance(sent, ToClient)
    assert sent.data == b"\x40\x00\x00\x05abcde\x00\x00\x00"
    padded = b"\x40\x00\x00\x03xyz\x00"
    assert client.send(padded, T0) == [ToPeer(client.relay(), PEER, b"xyz")]


@pytest.mark.parametrize("channel", [0x3FFF, 0x5000, 0x7FFF, 0x8000, 0xFFFF])
def test_channel_number_out_of_range_is_400(channel: int) -> None:
    client = allocated(make_core())
    assert error_code(client.bind(channel, PEER, now=T0)) == 400


def test_rfc5766_channel_range_when_enabled() -> None:
    core = make_core(legacy_channels=True)
    client = allocated(core)
    assert client.bind(0x7FFF, PEER, now=T0).cls is MessageClass.SUCCESS
    assert client.channel_data(0x7FFF, b"z", T0) == [ToPeer(client.relay(), PEER, b"z")]
    assert error_code(client.bind(0x8000, PEER2, now=T0)) == 400


def test_channel_bind_without_attributes_is_400() -> None:
    client = allocated(make_core())
    assert (
        error_code(client.request(Method.CHANNEL_BIND, attrs.ChannelNumber(0x4000), now=T0)) == 400
    )
    assert (
        error_code(client.request(Method.CHANNEL_BIND, attrs.XorPeerAddress(*PEER), now=T0)) == 400
    )


def test_rebinding_the_same_channel_to_the_same_peer_refreshes() -> None:
    core = make_core()
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    assert client.bind(0x4000, PEER, now=T0 + 500).cls is MessageClass.SUCCESS
    assert of_type(client.actions, RouteUp) == []  # already routed
    binding = core.table.by_five_tuple[client.five_tuple].channels[0x4000]
    assert binding.expires_at == T0 + 500 + 600


def test_channel_bound_to_another_peer_is_400() -> None:
    client = allocated(make_core())
    client.bind(0x4000, PEER, now=T0)
    assert error_code(client.bind(0x4000, PEER2, now=T0)) == 400


def test_peer_bound_to_another_channel_is_400() -> None:
    client = allocated(make_core())
    client.bind(0x4000, PEER, now=T0)
    assert error_code(client.bind(0x4001, PEER, now=T0)) == 400


def test_channel_bind_without_allocation_is_437() -> None:
    client = Client.rest(make_core(), T0)
    assert error_code(client.bind(0x4000, PEER, now=T0)) == 437


def test_unbound_channel_data_is_dropped() -> None:
    core = make_core()
    client = allocated(core)
    assert client.channel_data(0x4000, b"x", T0) == []
    assert core.stats.dropped["unbound-channel"] == 1


def test_channel_data_of_another_client_is_dropped() -> None:
    core = make_core()
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    other = Client.rest(core, T0, port=40009)
    assert other.channel_data(0x4000, b"x", T0) == []


def test_truncated_channel_data_is_dropped() -> None:
    core = make_core()
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    assert client.send(b"\x40\x00\x00\x09short", T0) == []
    assert client.send(b"\x40\x00\x00", T0) == []


def test_channel_expires_after_600_seconds() -> None:
    core = make_core()
    client = allocated(core)
    client.refresh(3600, now=T0)
    client.bind(0x4000, PEER, now=T0)
    client.permit(PEER, now=T0 + 299)
    client.permit(PEER, now=T0 + 598)  # keep the permission alive
    changes = core.handle_timer(T0 + 600)
    assert of_type(changes, RouteDown) == [
        RouteDown(client.five_tuple, 0x4000, client.relay(), PEER)
    ]
    assert client.channel_data(0x4000, b"x", T0 + 600) == []
    # the peer's data now arrives as a Data indication (permission still there)
    (sent,) = core.receive_from_peer(b"d", client.relay(), PEER, T0 + 601)
    assert isinstance(sent, ToClient) and sent.data[:2] == b"\x00\x17"
    # once unbound, the channel may be bound to another peer
    assert client.bind(0x4000, PEER2, now=T0 + 601).cls is MessageClass.SUCCESS


def test_permission_expiry_takes_the_route_down_and_create_permission_restores_it() -> None:
    core = make_core()
    client = allocated(core)
    relay = client.relay()
    client.bind(0x4000, PEER, now=T0)
    down = core.handle_timer(T0 + 300)
    assert of_type(down, RouteDown) == [RouteDown(client.five_tuple, 0x4000, relay, PEER)]
    assert client.channel_data(0x4000, b"x", T0 + 301) == []
    assert core.receive_from_peer(b"y", relay, PEER, T0 + 301) == []
    client.permit(PEER, now=T0 + 302)
    assert of_type(client.actions, RouteUp) == [RouteUp(client.five_tuple, 0x4000, relay, PEER)]
    assert client.channel_data(0x4000, b"x", T0 + 303) == [ToPeer(relay, PEER, b"x")]


def test_deleting_the_allocation_takes_routes_down() -> None:
    core = make_core()
    client = allocated(core)
    relay = client.relay()
    client.bind(0x4000, PEER, now=T0)
    client.refresh(0, now=T0 + 1)
    assert of_type(client.actions, RouteDown) == [RouteDown(client.five_tuple, 0x4000, relay, PEER)]
    assert core.table.routes_in == {} and core.table.routes_out == {}


def test_send_indication_is_allowed_alongside_a_channel() -> None:
    client = allocated(make_core())
    client.bind(0x4000, PEER, now=T0)
    assert of_type(client.send_indication(PEER, b"s", T0), ToPeer)


def test_channel_bind_response_has_no_required_attributes() -> None:
    client = allocated(make_core())
    response = client.bind(0x4000, PEER, now=T0)
    kinds = {type(a) for a in response.attributes}
    assert kinds <= {attrs.MessageIntegrity, attrs.Fingerprint}


def test_fingerprint_in_request_is_mirrored_in_response() -> None:
    client = allocated(make_core())
    request = Message(
        Method.CHANNEL_BIND,
        MessageClass.REQUEST,
        attributes=[attrs.ChannelNumber(0x4002), attrs.XorPeerAddress(*PEER)],
    )
    request.add(
        attrs.Username(client.username), attrs.Realm(REALM), attrs.Nonce(client.nonce or "")
    )
    (response,) = responses(client.send(encode(request, key=client.key, fingerprint=True), T0))
    assert response.cls is MessageClass.SUCCESS
    assert response.has(attrs.Fingerprint)
