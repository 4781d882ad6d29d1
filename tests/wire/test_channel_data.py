"""ChannelData framing (RFC 8656 section 12.4/12.5) and the RFC 7983 classifier."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_vectors import ALL_VECTORS

from stun_server.wire import (
    DatagramKind,
    StunDecodeError,
    classify,
    encode_channel_data,
    is_valid_channel,
    parse_channel_data,
)

COOKIE = b"\x21\x12\xa4\x42"


def test_channel_range() -> None:
    assert not is_valid_channel(0x3FFF)
    assert is_valid_channel(0x4000)
    assert is_valid_channel(0x4FFF)
    assert not is_valid_channel(0x5000)
    assert not is_valid_channel(0x7FFF)
    assert not is_valid_channel(0)


def test_encode_layout() -> None:
    assert encode_channel_data(0x4001, b"abc") == b"\x40\x01\x00\x03abc"
    assert encode_channel_data(0x4001, b"abc", pad=True) == b"\x40\x01\x00\x03abc\x00"
    assert encode_channel_data(0x4FFF, b"") == b"\x4f\xff\x00\x00"
    assert encode_channel_data(0x4FFF, b"", pad=True) == b"\x4f\xff\x00\x00"
    assert encode_channel_data(0x4000, b"abcd", pad=True) == b"\x40\x00\x00\x04abcd"


@pytest.mark.parametrize("channel", [0, 0x3FFF, 0x5000, 0xFFFF])
def test_encode_rejects_out_of_range_channels(channel: int) -> None:
    with pytest.raises(ValueError, match="channel"):
        encode_channel_data(channel, b"x")


def test_encode_rejects_oversized_payload() -> None:
    encode_channel_data(0x4000, b"\x00" * 0xFFFF)
    with pytest.raises(ValueError, match="65535"):
        encode_channel_data(0x4000, b"\x00" * 0x10000)


@settings(max_examples=100, deadline=None)
@given(
    channel=st.integers(0x4000, 0x4FFF),
    payload=st.binary(max_size=100),
    pad=st.booleans(),
    junk=st.binary(max_size=3),
)
def test_roundtrip(channel: int, payload: bytes, pad: bool, junk: bytes) -> None:
    frame = encode_channel_data(channel, payload, pad=pad)
    assert parse_channel_data(frame) == (channel, payload)
    # Trailing padding (of any value) is ignored.
    assert parse_channel_data(frame + junk) == (channel, payload)
    assert parse_channel_data(bytearray(frame)) == (channel, payload)
    assert classify(frame) is DatagramKind.CHANNEL_DATA


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "shorter"),
        (b"\x40\x00\x00", "shorter"),
        (b"\x3f\xff\x00\x00", "outside"),
        (b"\x50\x00\x00\x00", "outside"),
        (b"\x00\x01\x00\x00", "outside"),
        (b"\x40\x00\x00\x01", "says 1 bytes"),
        (b"\x40\x00\x00\x08abcd", "says 8 bytes"),
    ],
)
def test_parse_errors(data: bytes, why: str) -> None:
    with pytest.raises(StunDecodeError, match=why):
        parse_channel_data(data)


def test_stun_is_not_channel_data() -> None:
    for data in ALL_VECTORS.values():
        with pytest.raises(StunDecodeError):
            parse_channel_data(data)


RFC7983_RANGES = [
    (range(4), DatagramKind.STUN),
    (range(4, 20), DatagramKind.OTHER),  # 16-19 is ZRTP: not ours
    (range(20, 64), DatagramKind.DTLS),
    (range(64, 80), DatagramKind.CHANNEL_DATA),
    (range(80, 128), DatagramKind.OTHER),
    (range(128, 192), DatagramKind.RTP),
    (range(192, 256), DatagramKind.OTHER),
]


def test_classify_rfc7983_ranges() -> None:
    covered = 0
    for first_bytes, kind in RFC7983_RANGES:
        for first_byte in first_bytes:
            datagram = bytes((first_byte, 1, 0, 0)) + COOKIE + bytes(12)
            assert classify(datagram) is kind, first_byte
            assert classify(datagram[:1]) is (
                DatagramKind.OTHER if kind is DatagramKind.STUN else kind
            )
            covered += 1
    assert covered == 256


def test_classify_stun_needs_the_cookie() -> None:
    for data in ALL_VECTORS.values():
        assert classify(data) is DatagramKind.STUN
    classic = b"\x00\x01\x00\x00" + bytes(16)  # RFC 3489: no magic cookie
    assert classify(classic) is DatagramKind.OTHER
    assert classify(b"\x00\x01\x00\x00" + COOKIE[:3]) is DatagramKind.OTHER
    assert classify(b"\x00") is DatagramKind.OTHER
    assert classify(b"") is DatagramKind.OTHER


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=24))
def test_classify_never_raises(data: bytes) -> None:
    kind = classify(data)
    assert isinstance(kind, DatagramKind)
    assert classify(bytearray(data)) is kind
    assert classify(memoryview(data)) is kind
