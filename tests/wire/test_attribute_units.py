"""Attribute wire layouts and value checks, one attribute family at a time."""

from __future__ import annotations

import struct

import pytest

from stun_server.wire import (
    REASON_PHRASES,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    StunError,
    encode,
    parse,
)
from stun_server.wire import attributes as attrs

TID = bytes(range(12))
COOKIE = b"\x21\x12\xa4\x42"


def _message(*tlvs: tuple[int, bytes]) -> bytes:
    body = b"".join(struct.pack("!HH", t, len(v)) + v + b"\x00" * (-len(v) % 4) for t, v in tlvs)
    return struct.pack("!HH", 0x0001, len(body)) + COOKIE + TID + body


def _decode(attr_type: int, value: bytes) -> attrs.AnyAttribute:
    return attrs.decode_attribute(attr_type, value, TID)


def _wire(attr: attrs.AnyAttribute) -> bytes:
    return encode(Message(Method.BINDING, MessageClass.REQUEST, TID, [attr]))[20:]


# ---------------------------------------------------------------- ERROR-CODE


STANDARD_PHRASES = {
    300: "Try Alternate",
    400: "Bad Request",
    403: "Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    446: "Connection Already Exists",
    447: "Connection Timeout or Failure",
    486: "Allocation Quota Reached",
    487: "Role Conflict",
    500: "Server Error",
    508: "Insufficient Capacity",
}


@pytest.mark.parametrize(("code", "phrase"), sorted(STANDARD_PHRASES.items()))
def test_error_code_reason_phrases(code: int, phrase: str) -> None:
    assert REASON_PHRASES[code] == phrase
    attr = attrs.ErrorCode(code)
    assert attr.reason == phrase
    assert StunError(code).reason == phrase
    assert str(StunError(code)) == f"{code} {phrase}"
    value = attr.encode_value(TID)
    assert value[:4] == bytes((0, 0, code // 100, code % 100))
    assert value[4:] == phrase.encode()


def test_error_401_phrase() -> None:
    # RFC 5389 said "Unauthorized", RFC 8489 "Unauthenticated"; either is standard.
    assert REASON_PHRASES[401] in ("Unauthorized", "Unauthenticated")


def test_error_code_layout_and_custom_reason() -> None:
    assert _wire(attrs.ErrorCode(420, "Unknown Attribute")) == (
        b"\x00\x09\x00\x15\x00\x00\x04\x14Unknown Attribute\x00\x00\x00"
    )
    assert attrs.ErrorCode(599).reason == "Error"
    assert attrs.ErrorCode(400, "nope").reason == "nope"
    assert _decode(0x0009, b"\x00\x00\x04\x00Bad") == attrs.ErrorCode(400, "Bad")
    # Reserved bits above the 3-bit class are ignored.
    assert _decode(0x0009, b"\xff\xff\xfc\x26x") == attrs.ErrorCode(438, "x")


def test_error_code_empty_reason_is_kept_when_decoding() -> None:
    decoded = _decode(0x0009, b"\x00\x00\x04\x01")
    assert isinstance(decoded, attrs.ErrorCode)
    assert (decoded.code, decoded.reason) == (401, "")
    assert decoded.encode_value(TID) == b"\x00\x00\x04\x01"


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\x00\x04", b"\x00\x00\x02\x00", b"\x00\x00\x07\x00", b"\x00\x00\x04\x64"],
)
def test_error_code_rejects(value: bytes) -> None:
    with pytest.raises(StunDecodeError):
        _decode(0x0009, value)


def test_error_code_rejects_invalid_utf8_and_long_reason() -> None:
    with pytest.raises(StunDecodeError):
        _decode(0x0009, b"\x00\x00\x04\x00\xff")
    with pytest.raises(StunDecodeError):
        _decode(0x0009, b"\x00\x00\x04\x00" + b"x" * 764)


@pytest.mark.parametrize("code", [299, 700, 0])
def test_error_code_out_of_range(code: int) -> None:
    with pytest.raises(ValueError, match="outside 300-699"):
        attrs.ErrorCode(code).encode_value(TID)
    with pytest.raises(ValueError, match="outside 300-699"):
        StunError(code)


def test_address_error_code() -> None:
    attr = attrs.AddressErrorCode(attrs.FAMILY_IPV6, 440, "Address Family not Supported")
    value = attr.encode_value(TID)
    assert value[:4] == b"\x02\x00\x04\x28"
    assert _decode(0x8001, value) == attr


# ---------------------------------------------------------------- ICMP


def test_icmp_layout_rfc8656_figure_11() -> None:
    """16 reserved bits, ICMP Type (7 bits), ICMP Code (9 bits), 32-bit Error Data."""
    # ICMPv4 type 3 (unreachable) code 4 (fragmentation needed), next-hop MTU 1400.
    attr = attrs.Icmp(3, 4, 1400)
    value = attr.encode_value(TID)
    assert value == b"\x00\x00" + ((3 << 9) | 4).to_bytes(2, "big") + (1400).to_bytes(4, "big")
    assert value == bytes.fromhex("0000060400000578")
    assert _decode(0x8004, value) == attr
    assert attrs.Icmp(127, 511, 0xFFFFFFFF).encode_value(TID) == b"\x00\x00" + b"\xff" * 6
    assert attrs.Icmp(1, 0).encode_value(TID) == bytes.fromhex("0000020000000000")
    assert attrs.Icmp(0, 1).encode_value(TID) == bytes.fromhex("0000000100000000")
    # ICMPv6 type 2 (packet too big), code 0.
    assert _decode(0x8004, bytes.fromhex("0000040000000500")) == attrs.Icmp(2, 0, 1280)
    # The reserved bits are ignored when received.
    assert _decode(0x8004, bytes.fromhex("ffff060400000578")) == attr
    assert _wire(attr)[:4] == b"\x80\x04\x00\x08"


@pytest.mark.parametrize(("icmp_type", "icmp_code"), [(128, 0), (-1, 0), (0, 512), (0, -1)])
def test_icmp_rejects_fields_that_do_not_fit(icmp_type: int, icmp_code: int) -> None:
    with pytest.raises(ValueError, match="bits"):
        attrs.Icmp(icmp_type, icmp_code).encode_value(TID)


def test_icmp_length() -> None:
    for n in (0, 4, 7, 9, 12):
        with pytest.raises(StunDecodeError):
            _decode(0x8004, b"\x00" * n)


# ---------------------------------------------------------------- EVEN-PORT etc.


def test_even_port() -> None:
    assert _wire(attrs.EvenPort(True)) == b"\x00\x18\x00\x01\x80\x00\x00\x00"
    assert _wire(attrs.EvenPort(False)) == b"\x00\x18\x00\x01\x00\x00\x00\x00"
    assert attrs.EvenPort().reserve is False
    assert _decode(0x0018, b"\x80") == attrs.EvenPort(True)
    assert _decode(0x0018, b"\x7f") == attrs.EvenPort(False)  # RFFU bits ignored
    assert _decode(0x0018, b"\xff") == attrs.EvenPort(True)
    assert _decode(0x0018, b"\x80\x00\x00\x00") == attrs.EvenPort(True)  # padded, leniently
    for bad in (b"", b"\x80\x00", b"\x80\x00\x00", b"\x80" * 5):
        with pytest.raises(StunDecodeError):
            _decode(0x0018, bad)
    assert parse(_message((0x0018, b"\x80"))).attributes == [attrs.EvenPort(True)]


@pytest.mark.parametrize(
    ("change_ip", "change_port", "flags"),
    [(False, False, 0), (True, False, 4), (False, True, 2), (True, True, 6)],
)
def test_change_request_flags(change_ip: bool, change_port: bool, flags: int) -> None:
    attr = attrs.ChangeRequest(change_ip, change_port)
    assert attr.encode_value(TID) == flags.to_bytes(4, "big")
    assert _decode(0x0003, flags.to_bytes(4, "big")) == attr
    # Other bits are ignored.
    assert _decode(0x0003, (flags | 0xFFFFFF09).to_bytes(4, "big")) == attr


def test_change_request_length() -> None:
    for n in (0, 1, 3, 5, 8):
        with pytest.raises(StunDecodeError):
            _decode(0x0003, b"\x00" * n)


def test_one_byte_attributes() -> None:
    assert attrs.RequestedTransport(attrs.PROTOCOL_UDP).encode_value(TID) == b"\x11\x00\x00\x00"
    assert attrs.RequestedTransport(attrs.PROTOCOL_TCP).encode_value(TID) == b"\x06\x00\x00\x00"
    assert _decode(0x0019, b"\x11\xff\xff\xff") == attrs.RequestedTransport(17)
    assert _decode(0x0017, b"\x02\x00\x00\x00") == attrs.RequestedAddressFamily(attrs.FAMILY_IPV6)
    assert _decode(0x8000, b"\x02\x00\x00\x00") == attrs.AdditionalAddressFamily(2)
    with pytest.raises(StunDecodeError):
        _decode(0x0019, b"\x11")


def test_channel_number_and_response_port() -> None:
    assert attrs.ChannelNumber(0x4001).encode_value(TID) == b"\x40\x01\x00\x00"
    assert _decode(0x000C, b"\x40\x01\xff\xff") == attrs.ChannelNumber(0x4001)
    assert attrs.ResponsePort(3478).encode_value(TID) == b"\x0d\x96\x00\x00"
    assert _decode(0x0027, b"\x0d\x96\x12\x34") == attrs.ResponsePort(3478)
    for code in (0x000C, 0x0027):
        with pytest.raises(StunDecodeError):
            _decode(code, b"\x40\x01")


def test_flag_attributes_must_be_empty() -> None:
    assert _wire(attrs.DontFragment()) == b"\x00\x1a\x00\x00"
    assert _wire(attrs.UseCandidate()) == b"\x00\x25\x00\x00"
    with pytest.raises(StunDecodeError):
        _decode(0x0025, b"\x00")


def test_integers() -> None:
    assert attrs.Lifetime(600).encode_value(TID) == b"\x00\x00\x02\x58"
    assert attrs.IceControlling(1).encode_value(TID) == b"\x00" * 7 + b"\x01"
    assert _decode(0x002A, b"\xde\xad\xbe\xef") == attrs.ConnectionId(0xDEADBEEF)
    with pytest.raises(StunDecodeError):
        _decode(0x000D, b"\x00\x00\x02")
    with pytest.raises(StunDecodeError):
        _decode(0x8029, b"\x00" * 4)


# ---------------------------------------------------------------- PASSWORD-ALGORITHM(S)


def test_password_algorithms_list() -> None:
    attr = attrs.PasswordAlgorithms(
        ((attrs.PASSWORD_ALGORITHM_MD5, b""), (attrs.PASSWORD_ALGORITHM_SHA256, b""))
    )
    value = attr.encode_value(TID)
    assert value == bytes.fromhex("0001000000020000")
    assert _decode(0x8002, value) == attr
    assert _wire(attr) == bytes.fromhex("800200080001000000020000")


def test_password_algorithms_with_parameters_are_padded() -> None:
    attr = attrs.PasswordAlgorithms(((0x0003, b"abc"), (0x0002, b""), (0x0004, b"12345")))
    value = attr.encode_value(TID)
    assert value == (
        b"\x00\x03\x00\x03abc\x00" + b"\x00\x02\x00\x00" + b"\x00\x04\x00\x0512345\x00\x00\x00"
    )
    assert _decode(0x8002, value) == attr
    assert _decode(0x8002, b"") == attrs.PasswordAlgorithms(())


@pytest.mark.parametrize(
    "value",
    [b"\x00\x01", b"\x00\x01\x00", b"\x00\x01\x00\x04abc", b"\x00\x01\x00\x00\x00\x02\x00"],
)
def test_password_algorithms_rejects_truncation(value: bytes) -> None:
    with pytest.raises(StunDecodeError):
        _decode(0x8002, value)


def test_password_algorithm_single_entry() -> None:
    attr = attrs.PasswordAlgorithm(attrs.PASSWORD_ALGORITHM_SHA256)
    assert attr.encode_value(TID) == b"\x00\x02\x00\x00"
    assert _decode(0x001D, b"\x00\x02\x00\x00") == attr
    for bad in (b"", b"\x00\x01\x00\x00\x00\x02\x00\x00", b"\x00\x02\x00\x01"):
        with pytest.raises(StunDecodeError):
            _decode(0x001D, bad)


# ---------------------------------------------------------------- addresses


def test_address_layouts() -> None:
    assert attrs.MappedAddress("192.0.2.1", 32853).encode_value(TID) == bytes.fromhex(
        "00018055c0000201"
    )
    xor = attrs.XorMappedAddress("192.0.2.1", 32853).encode_value(TID)
    assert xor == bytes.fromhex("0001a147e112a643")  # as in RFC 5769 2.2
    v6 = attrs.XorPeerAddress("2001:db8::1", 1).encode_value(TID)
    assert len(v6) == 20
    assert v6[:2] == b"\x00\x02"
    assert _decode(0x0012, v6) == attrs.XorPeerAddress("2001:db8::1", 1)
    assert attrs.XorRelayedAddress("::1", 0).family == attrs.FAMILY_IPV6
    assert attrs.OtherAddress("10.0.0.1", 0).family == attrs.FAMILY_IPV4
    assert attrs.ResponseOrigin("10.0.0.1", 5).address == ("10.0.0.1", 5)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x00\x01\x00",
        b"\x00\x01\x00\x01\x7f\x00\x00",  # IPv4, 3 bytes
        b"\x00\x01\x00\x01" + b"\x00" * 16,  # IPv4 family, IPv6 length
        b"\x00\x02\x00\x01\x7f\x00\x00\x01",  # IPv6 family, IPv4 length
        b"\x00\x03\x00\x01\x7f\x00\x00\x01",  # unknown family
    ],
)
def test_address_rejects(value: bytes) -> None:
    for code in (0x0001, 0x0020, 0x8023):
        with pytest.raises(StunDecodeError):
            _decode(code, value)


# ---------------------------------------------------------------- bytes and text


def test_fixed_length_byte_attributes() -> None:
    for code, good, bad in [
        (0x0008, (20,), (0, 19, 21, 32)),
        (0x001C, (16, 20, 24, 28, 32), (0, 12, 18, 36)),
        (0x001E, (32,), (0, 31, 33)),
        (0x0022, (8,), (0, 4, 16)),
    ]:
        for n in good:
            decoded = _decode(code, b"\xab" * n)
            assert decoded.type == code
        for n in bad:
            with pytest.raises(StunDecodeError):
                _decode(code, b"\xab" * n)


def test_text_limits() -> None:
    assert _decode(0x0006, "ü".encode() * 256) == attrs.Username("ü" * 256)  # 512 bytes
    with pytest.raises(StunDecodeError):
        _decode(0x0006, b"x" * 514)
    assert _decode(0x8022, b"x" * 763) == attrs.Software("x" * 763)
    with pytest.raises(StunDecodeError):
        _decode(0x8022, b"x" * 764)
    for code in (0x0006, 0x0014, 0x0015, 0x8022, 0x8003):
        with pytest.raises(StunDecodeError):
            _decode(code, b"\xc3\x28")


def test_unknown_attributes_attribute() -> None:
    attr = attrs.UnknownAttributes((0x0031, 0x7FFF, 0x0002))
    assert _wire(attr) == bytes.fromhex("000a000600317fff00020000")
    assert _decode(0x000A, bytes.fromhex("00317fff0002")) == attr
    with pytest.raises(StunDecodeError):
        _decode(0x000A, b"\x00\x31\x00")


def test_unknown_comprehension_required_listed_in_order() -> None:
    data = _message(
        (0x7F01, b"a"),
        (0x8022, b"ok"),
        (0xC001, b"optional"),
        (0x0031, b""),
        (0x7F01, b"again"),
    )
    message = parse(data)
    assert message.unknown_comprehension_required() == [0x7F01, 0x0031, 0x7F01]
    optional = message.attributes[2]
    assert optional == attrs.UnknownAttribute(0xC001, b"optional")
    assert isinstance(optional, attrs.UnknownAttribute)
    assert not optional.comprehension_required
    assert encode(message) == data


def test_repeated_attributes_kept_in_order() -> None:
    data = _message(
        (0x8022, b"one"), (0x0024, b"\x00\x00\x00\x01"), (0x8022, b"two"), (0x8022, b"three")
    )
    message = parse(data)
    assert message.get_all(attrs.Software) == [
        attrs.Software("one"),
        attrs.Software("two"),
        attrs.Software("three"),
    ]
    assert message.get(attrs.Software) == attrs.Software("one")
    assert encode(message) == data


def test_comprehension_range() -> None:
    assert attrs.is_comprehension_required(0x0000)
    assert attrs.is_comprehension_required(0x7FFF)
    assert not attrs.is_comprehension_required(0x8000)
    assert not attrs.is_comprehension_required(0xFFFF)
