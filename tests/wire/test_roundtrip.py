"""Hypothesis round-trips: every attribute class, whole messages, integrity and FINGERPRINT."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_strategies import (
    ATTRIBUTE_STRATEGIES,
    INTEGRITY_CLASSES,
    integrity_modes,
    keys,
    messages,
    transaction_ids,
    unknown_attributes,
)

from stun_server.wire import Message, MessageClass, Method, encode, parse, verify_integrity
from stun_server.wire import attributes as attrs

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_registered_attribute_has_a_strategy() -> None:
    assert set(ATTRIBUTE_STRATEGIES) == set(attrs.REGISTRY.values())
    assert set(attrs.ATTRIBUTE_CLASSES) == set(attrs.REGISTRY.values())
    assert len(attrs.REGISTRY) == len(attrs.ATTRIBUTE_CLASSES)  # no two share a code
    for code, cls in attrs.REGISTRY.items():
        assert code == cls.TYPE
        assert 0 <= code <= 0xFFFF


def _name(cls: Any) -> str:
    return str(cls.NAME)


def _code(cls: Any) -> int:
    return int(cls.TYPE)


@pytest.mark.parametrize("cls", sorted(ATTRIBUTE_STRATEGIES, key=_code), ids=_name)
def test_attribute_value_roundtrip(cls: type[Any]) -> None:
    @FAST
    @given(attr=ATTRIBUTE_STRATEGIES[cls], transaction_id=transaction_ids)
    def check(attr: Any, transaction_id: bytes) -> None:
        value = attr.encode_value(transaction_id)
        assert attrs.decode_attribute(cls.TYPE, value, transaction_id) == attr
        assert attr.type == cls.TYPE
        if cls not in INTEGRITY_CLASSES:  # and inside a whole message
            message = Message(Method.BINDING, MessageClass.REQUEST, transaction_id, [attr])
            data = encode(message)
            assert len(data) % 4 == 0
            assert parse(data).attributes == [attr]

    check()


@FAST
@given(attr=unknown_attributes, transaction_id=transaction_ids)
def test_unknown_attribute_kept_raw(attr: attrs.UnknownAttribute, transaction_id: bytes) -> None:
    message = Message(Method.BINDING, MessageClass.INDICATION, transaction_id, [attr])
    parsed = parse(encode(message))
    assert parsed.attributes == [attr]
    required = attr.attr_type < 0x8000
    assert attr.comprehension_required is required
    assert parsed.unknown_comprehension_required() == ([attr.attr_type] if required else [])


@settings(max_examples=100, deadline=None)
@given(message=messages())
def test_message_roundtrip(message: Message) -> None:
    data = encode(message)
    parsed = parse(data)
    assert parsed == message  # method, class, transaction ID, attributes in order
    assert parsed.raw == data
    assert encode(parsed) == data
    assert parsed.unknown_comprehension_required() == [
        a.attr_type
        for a in message.attributes
        if isinstance(a, attrs.UnknownAttribute) and a.attr_type < 0x8000
    ]
    assert not verify_integrity(parsed, b"key")  # no MESSAGE-INTEGRITY at all


@settings(max_examples=100, deadline=None)
@given(
    message=messages(max_attributes=8),
    key=keys,
    mode=integrity_modes,
    with_fingerprint=st.booleans(),
)
def test_message_roundtrip_with_integrity(
    message: Message, key: bytes, mode: str, with_fingerprint: bool
) -> None:
    data = encode(message, key=key, integrity=mode, fingerprint=with_fingerprint)
    parsed = parse(data)
    n = len(message.attributes)
    assert parsed.attributes[:n] == message.attributes
    tails: dict[str, list[type[Any]]] = {
        "sha1": [attrs.MessageIntegrity],
        "sha256": [attrs.MessageIntegritySha256],
        "both": [attrs.MessageIntegrity, attrs.MessageIntegritySha256],
    }
    expected_tail = tails[mode]
    if with_fingerprint:
        expected_tail.append(attrs.Fingerprint)
    assert [type(a) for a in parsed.attributes[n:]] == expected_tail
    assert verify_integrity(parsed, key)
    wrong = bytes([key[0] ^ 1]) + key[1:]  # (key + b"\0" would be the same HMAC key)
    assert not verify_integrity(parsed, wrong)
    assert (parsed.integrity_offset is not None) == (mode != "sha256")
    assert (parsed.integrity_sha256_offset is not None) == (mode != "sha1")
    # Re-encoding a parsed message recomputes (rather than copies) integrity and CRC.
    assert encode(parsed, key=key, integrity=mode, fingerprint=with_fingerprint) == data


@settings(max_examples=40, deadline=None)
@given(message=messages(max_attributes=6), key=keys)
def test_both_integrities_checked_independently(message: Message, key: bytes) -> None:
    """With "both", the SHA1 MAC is still verifiable alone (for RFC 5389 peers)."""
    data = encode(message, key=key, integrity="both")
    parsed = parse(data)
    assert parsed.integrity_offset is not None
    sha1_only = data[: parsed.integrity_offset + 24]
    sha1_only = sha1_only[:2] + (len(sha1_only) - 20).to_bytes(2, "big") + sha1_only[4:]
    assert verify_integrity(parse(sha1_only), key)
    assert sha1_only == encode(message, key=key, integrity="sha1")


@FAST
@given(message=messages(max_attributes=4), key=keys)
def test_attributes_after_integrity_are_ignored(message: Message, key: bytes) -> None:
    """RFC 8489 14.5: after MESSAGE-INTEGRITY only -SHA256 and FINGERPRINT count; even a
    malformed or unknown comprehension-required attribute there is skipped, not decoded."""
    signed = encode(message, key=key)
    trailer = bytes.fromhex("00200001ff") + b"\x00" * 3  # XOR-MAPPED-ADDRESS, 1 byte: bad
    trailer += bytes.fromhex("7fff0000")  # unknown comprehension-required
    body = signed[20:] + trailer
    data = signed[:2] + len(body).to_bytes(2, "big") + signed[4:20] + body
    parsed = parse(data)
    assert parsed.attributes[:-1] == message.attributes
    assert isinstance(parsed.attributes[-1], attrs.MessageIntegrity)
    assert parsed.unknown_comprehension_required() == [
        a.attr_type
        for a in message.attributes
        if isinstance(a, attrs.UnknownAttribute) and a.attr_type < 0x8000
    ]
    assert verify_integrity(parsed, key)
