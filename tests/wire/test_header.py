"""Header bits, message framing, is_stun, stream framing, encode/verify argument checks."""

from __future__ import annotations

import struct

import pytest
from wire_vectors import RFC5769_REQUEST

from stun_server.wire import (
    HEADER_LENGTH,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    encode,
    encode_channel_data,
    is_stun,
    message_type,
    new_transaction_id,
    parse,
    split_message_type,
    stream_frame_length,
    verify_integrity,
)
from stun_server.wire import attributes as attrs

COOKIE = b"\x21\x12\xa4\x42"
TID = bytes(range(12))


def _reference_type(method: int, cls: int) -> int:
    """RFC 8489 Figure 3, bit by bit: M11..M7 C1 M6..M4 C0 M3..M0 (bit 13 down to 0)."""
    m = [(method >> i) & 1 for i in range(12)]
    c0, c1 = cls & 1, (cls >> 1) & 1
    bits = [*m[0:4], c0, *m[4:7], c1, *m[7:12]]  # bit positions 0..13
    return sum(bit << position for position, bit in enumerate(bits))


# (method, class) -> the message type the RFCs list
KNOWN_TYPES = {
    (Method.BINDING, MessageClass.REQUEST): 0x0001,
    (Method.BINDING, MessageClass.INDICATION): 0x0011,
    (Method.BINDING, MessageClass.SUCCESS): 0x0101,
    (Method.BINDING, MessageClass.ERROR): 0x0111,
    (Method.ALLOCATE, MessageClass.REQUEST): 0x0003,
    (Method.ALLOCATE, MessageClass.SUCCESS): 0x0103,
    (Method.ALLOCATE, MessageClass.ERROR): 0x0113,
    (Method.REFRESH, MessageClass.REQUEST): 0x0004,
    (Method.REFRESH, MessageClass.SUCCESS): 0x0104,
    (Method.SEND, MessageClass.INDICATION): 0x0016,
    (Method.DATA, MessageClass.INDICATION): 0x0017,
    (Method.CREATE_PERMISSION, MessageClass.REQUEST): 0x0008,
    (Method.CREATE_PERMISSION, MessageClass.SUCCESS): 0x0108,
    (Method.CHANNEL_BIND, MessageClass.REQUEST): 0x0009,
    (Method.CHANNEL_BIND, MessageClass.ERROR): 0x0119,
    (Method.CONNECT, MessageClass.REQUEST): 0x000A,
    (Method.CONNECTION_BIND, MessageClass.REQUEST): 0x000B,
    (Method.CONNECTION_ATTEMPT, MessageClass.INDICATION): 0x001C,
}


def test_method_values() -> None:
    assert {m.name: m.value for m in Method} == {
        "BINDING": 0x001,
        "ALLOCATE": 0x003,
        "REFRESH": 0x004,
        "SEND": 0x006,
        "DATA": 0x007,
        "CREATE_PERMISSION": 0x008,
        "CHANNEL_BIND": 0x009,
        "CONNECT": 0x00A,
        "CONNECTION_BIND": 0x00B,
        "CONNECTION_ATTEMPT": 0x00C,
    }
    assert [c.value for c in MessageClass] == [0b00, 0b01, 0b10, 0b11]


@pytest.mark.parametrize("method", list(Method), ids=lambda m: m.name)
@pytest.mark.parametrize("cls", list(MessageClass), ids=lambda c: c.name)
def test_interleaving_every_method_and_class(method: Method, cls: MessageClass) -> None:
    msg_type = message_type(method, cls)
    assert msg_type == _reference_type(method, cls)
    if (method, cls) in KNOWN_TYPES:
        assert msg_type == KNOWN_TYPES[(method, cls)]
    assert split_message_type(msg_type) == (method, cls)
    data = encode(Message(method, cls, TID))
    assert struct.unpack("!H", data[:2])[0] == msg_type
    parsed = parse(data)
    assert (parsed.method, parsed.cls) == (method, cls)


def test_interleaving_exhaustive() -> None:
    for method in range(0x1000):
        for cls in range(4):
            msg_type = message_type(method, cls)
            assert msg_type < 0x4000
            assert msg_type == _reference_type(method, cls)
            assert split_message_type(msg_type) == (method, cls)
    for msg_type in range(0x4000):
        assert message_type(*split_message_type(msg_type)) == msg_type


def test_header_layout() -> None:
    data = encode(Message(Method.ALLOCATE, MessageClass.REQUEST, TID, [attrs.Lifetime(600)]))
    assert data[:2] == b"\x00\x03"
    assert data[2:4] == b"\x00\x08"
    assert data[4:8] == COOKIE
    assert data[8:20] == TID
    assert len(data) == HEADER_LENGTH + 8


def test_new_transaction_id() -> None:
    ids = {new_transaction_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(t) == 12 for t in ids)
    assert len(Message(Method.BINDING, MessageClass.REQUEST).transaction_id) == 12


def _header(msg_type: int = 1, length: int = 0, cookie: bytes = COOKIE) -> bytes:
    return struct.pack("!HH", msg_type, length) + cookie + TID


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "shorter"),
        (_header()[:19], "shorter"),
        (_header(0x4001), "first two bits"),
        (_header(0x8001), "first two bits"),
        (_header(cookie=b"\x21\x12\xa4\x43"), "cookie"),
        (_header(length=2) + b"\x00\x00", "multiple of 4"),
        (_header(length=4), "header says"),
        (_header(length=0) + b"\x00" * 4, "header says"),
        (_header(length=4) + b"\x00\x06\x00", "header says"),
        (_header(length=4) + b"\x80\x22\x00\x01", "overruns"),
        (_header(length=8) + b"\x80\x22\x00\x05" + b"abcd", "overruns"),
    ],
)
def test_header_errors(data: bytes, why: str) -> None:
    with pytest.raises(StunDecodeError, match=why):
        parse(data)


def test_empty_message_and_any_padding_bytes() -> None:
    assert parse(_header()).attributes == []
    for pad in (b"\x00\x00\x00", b"\x20\x20\x20", b"\xff\xfe\xfd"):
        data = _header(length=8) + b"\x80\x22\x00\x01" + b"x" + pad
        assert parse(data).attributes == [attrs.Software("x")]


def test_is_stun() -> None:
    assert is_stun(RFC5769_REQUEST)
    assert is_stun(_header())
    assert not is_stun(_header()[:19])
    assert not is_stun(_header(cookie=b"\x00\x00\x00\x00"))  # RFC 3489 style
    assert not is_stun(_header(0x4001))
    assert not is_stun(_header(length=4))
    assert not is_stun(_header(length=2) + b"\x00\x00")
    assert not is_stun(RFC5769_REQUEST + b"\x00\x00\x00\x00")
    assert not is_stun(encode_channel_data(0x4000, b"x" * 30))


def test_stream_frame_length_stun() -> None:
    assert stream_frame_length(b"") is None
    assert stream_frame_length(b"\x00\x01\x00") is None
    assert stream_frame_length(RFC5769_REQUEST[:4]) == 108
    assert stream_frame_length(RFC5769_REQUEST) == 108
    assert stream_frame_length(_header()) == HEADER_LENGTH
    assert stream_frame_length(b"\x01\x01\xff\xfc") == HEADER_LENGTH + 0xFFFC
    # Two frames back to back: the length describes only the first.
    assert stream_frame_length(RFC5769_REQUEST + _header()) == 108


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 5, 100, 0xFFFD, 0xFFFF])
def test_stream_frame_length_channel_data_is_padded(length: int) -> None:
    frame = encode_channel_data(0x4001, b"\xaa" * length, pad=True)
    assert len(frame) % 4 == 0
    assert stream_frame_length(frame) == len(frame) == 4 + length + (-length) % 4
    assert stream_frame_length(bytearray(frame[:4])) == len(frame)
    assert stream_frame_length(memoryview(frame)[:4]) == len(frame)


@pytest.mark.parametrize("first", [0x80, 0x9F, 0xC0, 0xFF])
def test_stream_frame_length_rejects_other_first_bits(first: int) -> None:
    with pytest.raises(StunDecodeError):
        stream_frame_length(bytes((first, 0, 0, 0)))


def test_encode_argument_errors() -> None:
    message = Message(Method.BINDING, MessageClass.REQUEST, b"short")
    with pytest.raises(ValueError, match="12 bytes"):
        encode(message)
    message = Message(Method.BINDING, MessageClass.REQUEST, TID)
    with pytest.raises(ValueError, match="integrity"):
        encode(message, key=b"k", integrity="md5")


@pytest.mark.parametrize(
    "attr",
    [
        attrs.XorMappedAddress("192.0.2.1", 65536),
        attrs.MappedAddress("192.0.2.1", -1),
        attrs.Lifetime(2**32),
        attrs.IceControlling(2**64),
        attrs.ChannelNumber(0x10000),
        attrs.UnknownAttributes((0x10000,)),
        attrs.RequestedTransport(256),
        attrs.ErrorCode(700),
        attrs.Icmp(128, 0),
        attrs.XorPeerAddress("not an address", 1),
    ],
    ids=repr,
)
def test_encode_rejects_values_out_of_range(attr: attrs.AnyAttribute) -> None:
    with pytest.raises(ValueError):
        encode(Message(Method.BINDING, MessageClass.REQUEST, TID, [attr]))


def test_encode_rejects_methods_outside_12_bits() -> None:
    encode(Message(0xFFF, MessageClass.REQUEST, TID))
    for method in (0x1000, 0x1001, -1):
        with pytest.raises(ValueError, match="12 bits"):
            encode(Message(method, MessageClass.REQUEST, TID))


def test_encode_length_limits() -> None:
    biggest = Message(Method.SEND, MessageClass.INDICATION, TID, [attrs.Data(b"x" * 65528)])
    data = encode(biggest)
    assert len(data) == HEADER_LENGTH + 0xFFFC
    assert parse(data).attributes == biggest.attributes
    assert stream_frame_length(data[:4]) == len(data)
    with pytest.raises(ValueError, match="too long"):
        encode(biggest, fingerprint=True)
    with pytest.raises(ValueError, match="too long"):
        encode(biggest, key=b"k")
    for size in (65529, 65535, 65536):
        too_big = Message(Method.SEND, MessageClass.INDICATION, TID, [attrs.Data(b"x" * size)])
        with pytest.raises(ValueError, match="too long"):
            encode(too_big)
    # Just fits with every trailer: 65535 - 68 rounded down to 4, minus the DATA header.
    fits = Message(Method.SEND, MessageClass.INDICATION, TID, [attrs.Data(b"x" * 65460)])
    assert verify_integrity(parse(encode(fits, key=b"k", integrity="both", fingerprint=True)), b"k")


def test_verify_integrity_needs_parsed_message() -> None:
    with pytest.raises(ValueError, match="parsed"):
        verify_integrity(Message(Method.BINDING, MessageClass.REQUEST, TID), b"k")
    assert not verify_integrity(parse(_header()), b"k")


def test_message_helpers() -> None:
    message = Message(Method.BINDING, MessageClass.REQUEST, TID)
    message.add(attrs.Software("a"), attrs.Priority(1)).add(attrs.Software("b"))
    assert message.get(attrs.Software) == attrs.Software("a")
    assert message.get_all(attrs.Software) == [attrs.Software("a"), attrs.Software("b")]
    assert message.get(attrs.Realm) is None
    assert message.has(attrs.Priority)
    assert not message.has(attrs.Realm)
    assert list(message) == message.attributes
    # get() matches exact classes: an XOR-MAPPED-ADDRESS is not a MAPPED-ADDRESS.
    message.add(attrs.XorMappedAddress("192.0.2.1", 1))
    assert message.get(attrs.MappedAddress) is None


def test_integrity_covers_length_with_fingerprint_excluded() -> None:
    """MESSAGE-INTEGRITY is computed with the length up to itself (RFC 8489 14.5), so
    adding FINGERPRINT afterwards does not change the MAC."""
    message = Message(Method.BINDING, MessageClass.REQUEST, TID, [attrs.Username("u")])
    plain = encode(message, key=b"key")
    with_fp = encode(message, key=b"key", fingerprint=True)
    assert with_fp[:2] == plain[:2]
    assert with_fp[4 : len(plain)] == plain[4:]
    assert verify_integrity(parse(with_fp), b"key")


def test_truncated_sha256_integrity_is_verified() -> None:
    """MESSAGE-INTEGRITY-SHA256 may be truncated to 16..28 bytes (RFC 8489 14.6)."""
    from stun_server.wire.integrity import hmac_sha256

    message = Message(Method.BINDING, MessageClass.REQUEST, TID, [attrs.Username("u")])
    body = encode(message)[20:]
    for size in (16, 20, 24, 28, 32):
        length = len(body) + 4 + size
        head = struct.pack("!HH", 1, length) + COOKIE + TID
        mac = hmac_sha256(b"key", head + body)[:size]
        data = head + body + struct.pack("!HH", 0x001C, size) + mac
        parsed = parse(data)
        assert verify_integrity(parsed, b"key")
        assert not verify_integrity(parsed, b"yek")
    with pytest.raises(StunDecodeError):
        bad = struct.pack("!HH", 1, len(body) + 4 + 12) + COOKIE + TID + body
        parse(bad + struct.pack("!HH", 0x001C, 12) + b"\x00" * 12)


def test_integrity_attributes_order_rules() -> None:
    """After MESSAGE-INTEGRITY-SHA256 only FINGERPRINT counts; a second MI is ignored."""
    message = Message(Method.BINDING, MessageClass.REQUEST, TID, [attrs.Username("u")])
    signed = encode(message, key=b"key", integrity="sha256")
    extra = struct.pack("!HH", 0x0008, 20) + b"\x00" * 20
    body = signed[20:] + extra
    data = signed[:2] + len(body).to_bytes(2, "big") + signed[4:20] + body
    parsed = parse(data)
    assert parsed.integrity_offset is None
    assert [type(a) for a in parsed.attributes] == [
        attrs.Username,
        attrs.MessageIntegritySha256,
    ]
    assert verify_integrity(parsed, b"key")


def test_fingerprint_must_be_last_and_match() -> None:
    message = Message(Method.BINDING, MessageClass.REQUEST, TID, [attrs.Username("u")])
    data = encode(message, fingerprint=True)
    assert parse(data).attributes[-1].type == attrs.Fingerprint.TYPE
    bad_crc = data[:-1] + bytes((data[-1] ^ 1,))
    with pytest.raises(StunDecodeError, match="FINGERPRINT does not match"):
        parse(bad_crc)
    trailing = data + b"\x80\x22\x00\x00"
    trailing = trailing[:2] + (len(trailing) - 20).to_bytes(2, "big") + trailing[4:]
    with pytest.raises(StunDecodeError, match="FINGERPRINT"):
        parse(trailing)
