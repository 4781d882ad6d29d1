"""Send and Data indications on the byte-level fast path, checked against the full codec."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from turn_testkit import PEER, RELAY_V4, RELAY_V6, T0, ToClient, ToPeer, allocated, make_core

from stun_server.wire import Message, MessageClass, Method, UnknownAttribute, encode, parse
from stun_server.wire import attributes as attrs
from turn_relay.core.allocation import FAMILY_IPV6
from turn_relay.core.fastpath import (
    MAX_DATA_INDICATION_PAYLOAD,
    DataIndicationEncoder,
    SendIndicationReader,
    parse_send_indication,
)

peers = st.one_of(
    st.tuples(st.ip_addresses(v=4).map(str), st.integers(0, 65535)),
    st.tuples(st.ip_addresses(v=6).map(str), st.integers(0, 65535)),
)


@settings(max_examples=60, deadline=None)
@given(peer=peers, payload=st.binary(max_size=300), df=st.booleans(), fingerprint=st.booleans())
def test_send_indication_parser_agrees_with_the_codec(
    peer: tuple[str, int], payload: bytes, df: bool, fingerprint: bool
) -> None:
    message = Message(Method.SEND, MessageClass.INDICATION)
    message.add(attrs.XorPeerAddress(*peer), attrs.Data(payload))
    if df:
        message.add(attrs.DontFragment())
    parsed = parse_send_indication(encode(message, fingerprint=fingerprint))
    assert parsed is not None
    assert (parsed.peer, parsed.payload, parsed.dont_fragment) == (peer, payload, df)


extras = st.lists(
    st.sampled_from(
        [
            attrs.DontFragment(),
            attrs.Software("x"),
            attrs.Lifetime(5),
            UnknownAttribute(0x7F01, b"req"),  # comprehension-required, unknown
            UnknownAttribute(0xC001, b"opt"),
        ]
    ),
    max_size=2,
)


@settings(max_examples=200, deadline=None)
@given(
    peer=peers,
    payload=st.binary(max_size=300),
    data_first=st.booleans(),
    extra=extras,
    fingerprint=st.booleans(),
)
def test_the_shells_send_indication_reader_never_disagrees_with_the_parser(
    peer: tuple[str, int],
    payload: bytes,
    data_first: bool,
    extra: list[attrs.AnyAttribute],
    fingerprint: bool,
) -> None:
    """`SendIndicationReader.target` (the shell's fast path) answers only for the common shape
    (XOR-PEER-ADDRESS and DATA in either order, optional FINGERPRINT) and then exactly as
    `parse_send_indication`; for anything else it says None and the core decides."""
    pair: list[attrs.AnyAttribute] = [attrs.XorPeerAddress(*peer), attrs.Data(payload)]
    message = Message(Method.SEND, MessageClass.INDICATION)
    message.add(*(pair[::-1] if data_first else pair), *extra)
    data = encode(message, fingerprint=fingerprint)
    target = SendIndicationReader().target(data)
    parsed = parse_send_indication(data)
    if extra:
        assert target is None
        return
    assert parsed is not None and target is not None
    found_peer, start, end = target
    assert (found_peer, data[start:end]) == (parsed.peer, parsed.payload) == (peer, payload)
    broken = bytearray(data)
    broken[-1] ^= 1  # a FINGERPRINT that no longer matches, or a changed last byte
    if fingerprint:
        assert SendIndicationReader().target(bytes(broken)) is None


def test_send_indication_reader_refuses_truncations() -> None:
    message = Message(Method.SEND, MessageClass.INDICATION)
    message.add(attrs.Data(b"payload"), attrs.XorPeerAddress(*PEER))
    data = encode(message, fingerprint=True)
    reader = SendIndicationReader()
    assert reader.target(data) is not None
    for cut in range(len(data)):
        assert reader.target(data[:cut]) is None


@settings(max_examples=60, deadline=None)
@given(peer=peers, payload=st.binary(max_size=300))
def test_data_indication_encoder_agrees_with_the_codec(
    peer: tuple[str, int], payload: bytes
) -> None:
    data = DataIndicationEncoder().encode(peer, payload)
    assert data is not None
    message = parse(data)
    assert (message.method, message.cls) == (Method.DATA, MessageClass.INDICATION)
    assert message.get(attrs.XorPeerAddress) == attrs.XorPeerAddress(*peer)
    assert message.get(attrs.Data) == attrs.Data(payload)


def test_data_indication_transaction_ids_differ() -> None:
    encoder = DataIndicationEncoder()
    first, second = encoder.encode(PEER, b"a"), encoder.encode(PEER, b"a")
    assert first is not None and second is not None and first[8:20] != second[8:20]


def test_too_big_data_indication_is_refused() -> None:
    encoder = DataIndicationEncoder()
    assert encoder.encode(("::1", 1), bytes(MAX_DATA_INDICATION_PAYLOAD)) is not None
    assert encoder.encode(PEER, bytes(MAX_DATA_INDICATION_PAYLOAD + 1)) is None


def test_send_indication_with_permission_reaches_the_peer() -> None:
    client = allocated(make_core())
    client.permit(PEER, now=T0)
    assert client.send_indication(PEER, b"payload", T0) == [
        ToPeer(client.relay(), PEER, b"payload")
    ]


def test_send_indication_without_permission_is_silently_dropped() -> None:
    core = make_core()
    client = allocated(core)
    assert client.send_indication(PEER, b"payload", T0) == []
    assert core.stats.dropped["no-permission"] == 1


def test_send_indication_without_allocation_is_dropped() -> None:
    from turn_testkit import Client

    core = make_core()
    client = Client.rest(core, T0)
    assert client.send_indication(PEER, b"x", T0) == []
    assert core.stats.dropped["no-allocation"] == 1


@pytest.mark.parametrize(
    "build",
    [
        lambda m: m.attributes.pop(1),  # no DATA
        lambda m: m.attributes.pop(0),  # no XOR-PEER-ADDRESS
        lambda m: m.add(UnknownAttribute(0x7F00, b"")),  # unknown comprehension-required
    ],
)
def test_malformed_send_indications_are_dropped(build: object) -> None:
    core = make_core()
    client = allocated(core)
    client.permit(PEER, now=T0)
    message = Message(Method.SEND, MessageClass.INDICATION)
    message.add(attrs.XorPeerAddress(*PEER), attrs.Data(b"x"))
    build(message)  # type: ignore[operator]
    assert client.send(encode(message), T0) == []


def test_send_indication_with_bad_fingerprint_is_dropped() -> None:
    client = allocated(make_core())
    client.permit(PEER, now=T0)
    message = Message(Method.SEND, MessageClass.INDICATION)
    message.add(attrs.XorPeerAddress(*PEER), attrs.Data(b"x"))
    data = bytearray(encode(message, fingerprint=True))
    data[-1] ^= 1
    assert client.send(bytes(data), T0) == []


def test_dont_fragment_send_indication() -> None:
    supported = allocated(make_core(dont_fragment=True))
    supported.permit(PEER, now=T0)
    sent = supported.send_indication(PEER, b"x", T0, attrs.DontFragment())
    assert sent == [ToPeer(supported.relay(), PEER, b"x", True)]
    unsupported = allocated(make_core(dont_fragment=False))
    unsupported.permit(PEER, now=T0)
    assert unsupported.send_indication(PEER, b"x", T0, attrs.DontFragment()) == []


def test_peer_datagram_becomes_a_data_indication() -> None:
    core = make_core()
    client = allocated(core)
    client.permit(PEER, now=T0)
    (sent,) = core.receive_from_peer(b"from-peer", client.relay(), PEER, T0)
    assert isinstance(sent, ToClient) and sent.five_tuple == client.five_tuple
    message = parse(sent.data)
    assert message.get(attrs.XorPeerAddress) == attrs.XorPeerAddress(*PEER)
    assert message.get(attrs.Data) == attrs.Data(b"from-peer")


def test_peer_datagram_on_unknown_relay_is_dropped() -> None:
    core = make_core()
    assert core.receive_from_peer(b"x", ("127.0.0.1", 1), PEER, T0) == []
    assert core.stats.dropped["no-allocation-for-relay"] == 1


def test_ipv6_peer_through_an_ipv6_relay() -> None:
    core = make_core(relays=(RELAY_V4, RELAY_V6))
    client = allocated(core, T0, attrs.RequestedAddressFamily(FAMILY_IPV6))
    v6_peer = ("::1", 40001)
    client.permit(v6_peer, now=T0)
    relay = client.relay()
    assert relay[0] == "::1"
    assert client.send_indication(v6_peer, b"6", T0) == [ToPeer(relay, v6_peer, b"6")]
    (sent,) = core.receive_from_peer(b"back", relay, v6_peer, T0)
    assert isinstance(sent, ToClient)
    assert parse(sent.data).get(attrs.XorPeerAddress) == attrs.XorPeerAddress(*v6_peer)


def test_dual_allocation_relays_each_family_from_its_own_relay() -> None:
    core = make_core(relays=(RELAY_V4, RELAY_V6))
    client = allocated(core, T0, attrs.AdditionalAddressFamily(FAMILY_IPV6))
    client.permit(PEER, ("::1", 9), now=T0)
    relays = core.table.by_five_tuple[client.five_tuple].relays
    (v4,) = client.send_indication(PEER, b"4", T0)
    (v6,) = client.send_indication(("::1", 9), b"6", T0)
    assert isinstance(v4, ToPeer) and v4.relay == relays[1]
    assert isinstance(v6, ToPeer) and v6.relay == relays[2]


def test_bandwidth_cap_drops_beyond_the_budget_in_both_directions() -> None:
    core = make_core(max_bandwidth=1000)
    client = allocated(core)
    client.bind(0x4000, PEER, now=T0)
    relay = client.relay()
    assert client.channel_data(0x4000, bytes(600), T0) != []
    assert core.receive_from_peer(bytes(300), relay, PEER, T0) != []
    assert client.channel_data(0x4000, bytes(200), T0) == []  # 900 spent, 200 > 100 left
    assert client.send_indication(PEER, bytes(200), T0) == []
    assert core.stats.dropped["bandwidth-cap"] == 2
    assert client.channel_data(0x4000, bytes(200), T0 + 0.5) != []  # refilled 500
    assert core.receive_from_peer(bytes(1001), relay, PEER, T0 + 10) == []  # over the burst


def test_without_a_cap_allocations_have_no_bucket() -> None:
    core = make_core()
    client = allocated(core)
    assert core.table.by_five_tuple[client.five_tuple].bucket is None


def test_packets_from_strangers_do_not_spend_the_bandwidth_budget() -> None:
    core = make_core(max_bandwidth=1000)
    client = allocated(core)
    client.permit(PEER, now=T0)
    for _ in range(10):
        assert core.receive_from_peer(bytes(500), client.relay(), ("127.0.0.9", 1), T0) == []
    assert core.receive_from_peer(bytes(900), client.relay(), PEER, T0) != []
