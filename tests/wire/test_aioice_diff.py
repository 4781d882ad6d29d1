"""Differential tests against aioice.stun, both ways, including MESSAGE-INTEGRITY.

aioice knows a subset of the attributes and keeps only the last of repeated ones; it
encodes REQUESTED-TRANSPORT and CHANGE-REQUEST as raw 32-bit integers, CHANNEL-NUMBER as an
unsigned short, NONCE as bytes and ERROR-CODE as a (code, reason) tuple.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aioice import stun as aioice_stun
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_strategies import ATTRIBUTE_STRATEGIES, ips, keys, transaction_ids, u16, u32, u64
from wire_vectors import (
    RFC5769_IPV4_RESPONSE,
    RFC5769_IPV6_RESPONSE,
    RFC5769_PASSWORD,
    RFC5769_REQUEST,
)

from stun_server.wire import (
    Message,
    MessageClass,
    Method,
    encode,
    parse,
    short_term_key,
    verify_integrity,
)
from stun_server.wire import attributes as attrs


def _addr(a: Any) -> tuple[str, int]:
    return (a.ip, a.port)


# our class -> (aioice name, our value as aioice represents it)
TO_AIOICE: dict[type[Any], tuple[str, Callable[[Any], object]]] = {
    attrs.MappedAddress: ("MAPPED-ADDRESS", _addr),
    attrs.ChangeRequest: (
        "CHANGE-REQUEST",
        lambda a: (4 if a.change_ip else 0) | (2 if a.change_port else 0),
    ),
    attrs.Username: ("USERNAME", lambda a: a.value),
    attrs.ErrorCode: ("ERROR-CODE", lambda a: (a.code, a.reason)),
    attrs.ChannelNumber: ("CHANNEL-NUMBER", lambda a: a.number),
    attrs.Lifetime: ("LIFETIME", lambda a: a.value),
    attrs.XorPeerAddress: ("XOR-PEER-ADDRESS", _addr),
    attrs.Data: ("DATA", lambda a: a.value),
    attrs.Realm: ("REALM", lambda a: a.value),
    attrs.Nonce: ("NONCE", lambda a: a.value.encode()),
    attrs.XorRelayedAddress: ("XOR-RELAYED-ADDRESS", _addr),
    attrs.RequestedTransport: ("REQUESTED-TRANSPORT", lambda a: a.value << 24),
    attrs.XorMappedAddress: ("XOR-MAPPED-ADDRESS", _addr),
    attrs.Priority: ("PRIORITY", lambda a: a.value),
    attrs.UseCandidate: ("USE-CANDIDATE", lambda a: None),
    attrs.Software: ("SOFTWARE", lambda a: a.value),
    attrs.IceControlled: ("ICE-CONTROLLED", lambda a: a.value),
    attrs.IceControlling: ("ICE-CONTROLLING", lambda a: a.value),
    attrs.ResponseOrigin: ("RESPONSE-ORIGIN", _addr),
    attrs.OtherAddress: ("OTHER-ADDRESS", _addr),
}
FROM_AIOICE_NAME = {name: cls for cls, (name, _) in TO_AIOICE.items()}

AIOICE_METHODS = [
    Method.BINDING,
    Method.ALLOCATE,
    Method.REFRESH,
    Method.SEND,
    Method.DATA,
    Method.CREATE_PERMISSION,
    Method.CHANNEL_BIND,
]
CLASS_TO_AIOICE = {
    MessageClass.REQUEST: aioice_stun.Class.REQUEST,
    MessageClass.INDICATION: aioice_stun.Class.INDICATION,
    MessageClass.SUCCESS: aioice_stun.Class.RESPONSE,
    MessageClass.ERROR: aioice_stun.Class.ERROR,
}
CLASS_FROM_AIOICE = {v: k for k, v in CLASS_TO_AIOICE.items()}


def test_aioice_knows_what_we_think_it_knows() -> None:
    for cls, (name, _) in TO_AIOICE.items():
        assert aioice_stun.ATTRIBUTES_BY_NAME[name][0] == cls.TYPE
    for method in AIOICE_METHODS:
        assert aioice_stun.Method(method.value) == method.value


# ---------------------------------------------------------------- ours -> aioice

shared_attributes = st.one_of(*(ATTRIBUTE_STRATEGIES[cls] for cls in TO_AIOICE))


@st.composite
def shared_messages(draw: st.DrawFn) -> Message:
    return Message(
        draw(st.sampled_from(AIOICE_METHODS)),
        draw(st.sampled_from(MessageClass)),
        draw(transaction_ids),
        draw(st.lists(shared_attributes, max_size=10)),
    )


def _assert_aioice_matches(ours: Message, theirs: Any) -> None:
    assert theirs.message_method == ours.method
    assert theirs.message_class == CLASS_TO_AIOICE[ours.cls]
    assert theirs.transaction_id == ours.transaction_id
    expected: dict[str, object] = {}
    for attr in ours.attributes:  # aioice keeps the last of repeated attributes
        if type(attr) in TO_AIOICE:
            name, convert = TO_AIOICE[type(attr)]
            expected[name] = convert(attr)
    got = {
        k: v for k, v in theirs.attributes.items() if k not in ("MESSAGE-INTEGRITY", "FINGERPRINT")
    }
    assert got == expected


@settings(max_examples=80, deadline=None)
@given(message=shared_messages())
def test_ours_parse_in_aioice(message: Message) -> None:
    theirs = aioice_stun.parse_message(encode(message))
    _assert_aioice_matches(message, theirs)
    assert bytes(theirs) == encode(message) or _has_repeats(message)


def _has_repeats(message: Message) -> bool:
    types = [a.type for a in message.attributes]
    return len(types) != len(set(types))


@settings(max_examples=60, deadline=None)
@given(
    message=shared_messages(),
    key=keys,
    mode=st.sampled_from(["sha1", "both"]),
    with_fingerprint=st.booleans(),
)
def test_our_integrity_verified_by_aioice(
    message: Message, key: bytes, mode: str, with_fingerprint: bool
) -> None:
    data = encode(message, key=key, integrity=mode, fingerprint=with_fingerprint)
    theirs = aioice_stun.parse_message(data)  # checks FINGERPRINT itself
    _assert_aioice_matches(message, theirs)
    assert theirs.check_message_integrity(key)
    assert not theirs.check_message_integrity(bytes([key[0] ^ 1]) + key[1:])
    fp = parse(data).get(attrs.Fingerprint)
    assert (fp is not None) is with_fingerprint
    if fp is not None:
        assert theirs.attributes["FINGERPRINT"] == fp.value


# ---------------------------------------------------------------- aioice -> ours

AIOICE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "MAPPED-ADDRESS": st.tuples(ips, u16),
    "CHANGE-REQUEST": st.sampled_from([0, 2, 4, 6]),
    "USERNAME": st.text(max_size=60),
    "ERROR-CODE": st.tuples(st.integers(300, 699), st.text(max_size=40)),
    "CHANNEL-NUMBER": st.integers(0x4000, 0x4FFF),
    "LIFETIME": u32,
    "XOR-PEER-ADDRESS": st.tuples(ips, u16),
    "DATA": st.binary(max_size=64),
    "REALM": st.text(max_size=60),
    "NONCE": st.text(max_size=60).map(str.encode),
    "XOR-RELAYED-ADDRESS": st.tuples(ips, u16),
    "REQUESTED-TRANSPORT": st.sampled_from([17 << 24, 6 << 24]),
    "XOR-MAPPED-ADDRESS": st.tuples(ips, u16),
    "PRIORITY": u32,
    "USE-CANDIDATE": st.none(),
    "SOFTWARE": st.text(max_size=60),
    "ICE-CONTROLLED": u64,
    "ICE-CONTROLLING": u64,
    "RESPONSE-ORIGIN": st.tuples(ips, u16),
    "OTHER-ADDRESS": st.tuples(ips, u16),
}


@st.composite
def aioice_messages(draw: st.DrawFn) -> Any:
    names = draw(st.lists(st.sampled_from(sorted(AIOICE_VALUES)), unique=True, max_size=10))
    return aioice_stun.Message(
        message_method=aioice_stun.Method(draw(st.sampled_from(AIOICE_METHODS)).value),
        message_class=draw(st.sampled_from(list(CLASS_TO_AIOICE.values()))),
        transaction_id=draw(transaction_ids),
        attributes={name: draw(AIOICE_VALUES[name]) for name in names},
    )


def _assert_ours_matches(theirs: Any, ours: Message) -> None:
    assert ours.method == int(theirs.message_method)
    assert ours.cls is CLASS_FROM_AIOICE[theirs.message_class]
    assert ours.transaction_id == theirs.transaction_id
    known = [a for a in ours.attributes if type(a) in TO_AIOICE]
    assert [TO_AIOICE[type(a)][0] for a in known] == [
        n for n in theirs.attributes if n not in ("MESSAGE-INTEGRITY", "FINGERPRINT")
    ]
    for attr in known:
        name, convert = TO_AIOICE[type(attr)]
        assert convert(attr) == theirs.attributes[name], name
    assert ours.unknown_comprehension_required() == []


@settings(max_examples=80, deadline=None)
@given(theirs=aioice_messages())
def test_aioice_messages_parse_with_us(theirs: Any) -> None:
    data = bytes(theirs)
    ours = parse(data)
    _assert_ours_matches(theirs, ours)
    assert encode(ours) == data  # and we re-encode aioice's bytes exactly


@settings(max_examples=80, deadline=None)
@given(theirs=aioice_messages(), key=keys, fingerprint_only=st.booleans())
def test_aioice_integrity_verified_by_us(theirs: Any, key: bytes, fingerprint_only: bool) -> None:
    if fingerprint_only:
        theirs.add_fingerprint()
    else:
        theirs.add_message_integrity(key)  # adds FINGERPRINT too
    data = bytes(theirs)
    ours = parse(data)  # checks the FINGERPRINT
    _assert_ours_matches(theirs, ours)
    fp = ours.get(attrs.Fingerprint)
    assert fp is not None
    assert fp.value == theirs.attributes["FINGERPRINT"]
    assert verify_integrity(ours, key) is not fingerprint_only
    assert not verify_integrity(ours, bytes([key[0] ^ 1]) + key[1:])


def test_aioice_requested_transport_is_raw_u32() -> None:
    request = aioice_stun.Message(
        message_method=aioice_stun.Method.ALLOCATE,
        message_class=aioice_stun.Class.REQUEST,
        attributes={"REQUESTED-TRANSPORT": 0x11000000, "LIFETIME": 600},
    )
    data = bytes(request)
    assert data[20:28] == bytes.fromhex("0019000411000000")
    ours = parse(data)
    assert ours.method == Method.ALLOCATE
    assert ours.attributes == [
        attrs.RequestedTransport(attrs.PROTOCOL_UDP),
        attrs.Lifetime(600),
    ]
    assert encode(ours) == data


def test_ice_connectivity_check_both_ways() -> None:
    """The shape aioice's ICE agent sends: USERNAME, PRIORITY, ICE-CONTROLLING,
    USE-CANDIDATE, MESSAGE-INTEGRITY (short-term), FINGERPRINT."""
    key = short_term_key("remote-password")
    theirs = aioice_stun.Message(
        message_method=aioice_stun.Method.BINDING,
        message_class=aioice_stun.Class.REQUEST,
        attributes={
            "USERNAME": "remote:local",
            "PRIORITY": 1853824767,
            "ICE-CONTROLLING": 0x0102030405060708,
            "USE-CANDIDATE": None,
        },
    )
    theirs.add_message_integrity(key)
    ours = parse(bytes(theirs))
    assert verify_integrity(ours, key)
    response = Message(
        Method.BINDING,
        MessageClass.SUCCESS,
        ours.transaction_id,
        [attrs.XorMappedAddress("2001:db8::1", 50000)],
    )
    reply = aioice_stun.parse_message(encode(response, key=key, fingerprint=True))
    assert reply.message_class == aioice_stun.Class.RESPONSE
    assert reply.attributes["XOR-MAPPED-ADDRESS"] == ("2001:db8::1", 50000)
    assert reply.check_message_integrity(key)


@pytest.mark.parametrize("data", [RFC5769_REQUEST, RFC5769_IPV4_RESPONSE, RFC5769_IPV6_RESPONSE])
def test_rfc5769_vectors_agree_with_aioice(data: bytes) -> None:
    theirs = aioice_stun.parse_message(data)
    ours = parse(data)
    _assert_ours_matches(theirs, ours)
    key = short_term_key(RFC5769_PASSWORD)
    assert theirs.check_message_integrity(key)
    assert verify_integrity(ours, key)
