"""Whatever bytes arrive, the decoders raise nothing but StunDecodeError; classify never raises.

`parse` wraps unexpected exceptions in StunDecodeError as a last line of defence, so these
tests also walk the exception chain: an internal IndexError/struct.error/... surfacing
through that net is a codec bug even though callers would only see StunDecodeError.
"""

from __future__ import annotations

import struct
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from wire_strategies import encoded_messages, transaction_ids
from wire_vectors import ALL_VECTORS

from stun_server.wire import (
    DatagramKind,
    Message,
    StunDecodeError,
    classify,
    encode,
    is_stun,
    parse,
    parse_channel_data,
    stream_frame_length,
)
from stun_server.wire import attributes as attrs

COOKIE = b"\x21\x12\xa4\x42"
# What a decode error may legitimately be chained to (text that is not UTF-8).
EXPECTED_CAUSES = (StunDecodeError, UnicodeDecodeError)


def _check_parse(data: bytes) -> Message | None:
    """Parse; on failure, make sure no unexpected internal exception is behind the error."""
    try:
        message = parse(data)
    except StunDecodeError as exc:
        cause: BaseException | None = exc
        while cause is not None:
            assert isinstance(cause, EXPECTED_CAUSES), f"internal {cause!r} under {exc!r}"
            cause = cause.__cause__ or cause.__context__
        return None
    # Whatever parses can be re-encoded, and re-parses to the same attributes.
    body: list[attrs.AnyAttribute] = [
        a
        for a in message.attributes
        if not isinstance(
            a, attrs.MessageIntegrity | attrs.MessageIntegritySha256 | attrs.Fingerprint
        )
    ]
    again = parse(encode(Message(message.method, message.cls, message.transaction_id, body)))
    assert again.attributes == body
    assert again.method == message.method
    assert again.cls == message.cls
    return message


def _check_stream(data: bytes) -> None:
    try:
        length = stream_frame_length(data)
    except StunDecodeError:
        assert len(data) >= 4
        stun_without_cookie = data[0] < 0x40 and len(data) >= 8 and data[4:8] != COOKIE
        stun_bad_length = data[0] < 0x40 and int.from_bytes(data[2:4], "big") % 4 != 0
        assert data[0] >= 0x80 or stun_without_cookie or stun_bad_length
        return
    if len(data) < 4:
        assert length is None
    else:
        assert length is not None
        assert length >= 4


def _check_channel_data(data: bytes) -> None:
    try:
        channel, payload = parse_channel_data(data)
    except StunDecodeError:
        return
    assert 0x4000 <= channel <= 0x4FFF
    assert payload == data[4 : 4 + len(payload)]
    assert len(payload) == int.from_bytes(data[2:4], "big")


def _check_all(data: bytes) -> None:
    _check_parse(data)
    _check_stream(data)
    _check_channel_data(data)
    assert isinstance(classify(data), DatagramKind)
    assert isinstance(is_stun(data), bool)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=128))
def test_random_bytes(data: bytes) -> None:
    _check_all(data)


@st.composite
def stun_shaped(draw: st.DrawFn) -> bytes:
    """A valid header and a body of TLVs with known and unknown types and random values."""
    tlvs = draw(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from(sorted(attrs.REGISTRY)), st.integers(0, 0xFFFF)),
                st.binary(max_size=40),
                st.integers(-2, 2),  # how much the length field lies
            ),
            max_size=6,
        )
    )
    body = b""
    for attr_type, value, lie in tlvs:
        length = max(0, len(value) + lie) if draw(st.booleans()) else len(value)
        body += struct.pack("!HH", attr_type, length) + value + b"\x20" * (-len(value) % 4)
    msg_type = draw(st.integers(0, 0x3FFF))
    header = struct.pack("!HH", msg_type, len(body)) + COOKIE + draw(transaction_ids)
    return header + body


@settings(max_examples=250, deadline=None)
@given(data=stun_shaped())
def test_stun_shaped_garbage(data: bytes) -> None:
    _check_all(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(
        draw(st.one_of(encoded_messages(), st.sampled_from(list(ALL_VECTORS.values()))))
    )
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "extend", "length", "byte", "splice"]))
        if kind == "flip" and data:
            bit = draw(st.integers(0, len(data) * 8 - 1))
            data[bit // 8] ^= 1 << (bit % 8)
        elif kind == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=12))
        elif kind == "length" and len(data) >= 4:
            # a lie in the header length, or in an attribute length
            offset = draw(st.sampled_from([2, *range(22, len(data) - 1, 4)]))
            data[offset : offset + 2] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
        elif kind == "byte" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "splice" and data:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=4, max_size=8))
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(data=mutated())
def test_mutated_messages(data: bytes) -> None:
    _check_all(data)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=64), channel=st.integers(0x4000, 0x4FFF), lie=st.integers(-8, 8))
def test_channel_data_length_lies(data: bytes, channel: int, lie: int) -> None:
    length = max(0, min(0xFFFF, len(data) + lie))
    frame = struct.pack("!HH", channel, length) + data
    _check_all(frame)
    if lie <= 0:
        assert parse_channel_data(frame) == (channel, data[:length])
    else:
        try:
            parse_channel_data(frame)
        except StunDecodeError:
            pass
        else:
            raise AssertionError("ChannelData shorter than its length field was accepted")


def test_buffer_types_are_accepted() -> None:
    for data in ALL_VECTORS.values():
        for view in (bytearray(data), memoryview(data)):
            assert stream_frame_length(view) == len(data)
            assert classify(bytes(view)) is DatagramKind.STUN
            assert parse(view).raw == data


def test_empty_and_tiny_inputs() -> None:
    for n in range(24):
        _check_all(b"\x00" * n)
        _check_all(b"\xff" * n)
        _check_all(COOKIE * (n // 4))
    assert classify(b"") is DatagramKind.OTHER
    assert stream_frame_length(b"") is None


def test_many_attributes_parse_in_linear_time() -> None:
    """A 64 KiB message of 16k empty attributes (possible over TCP) must not be quadratic:
    the first version took seconds here because it rescanned the list per attribute."""
    count = (0xFFFF // 4) - 1
    for attr_type in (0x8077, attrs.UseCandidate.TYPE, 0x0077):
        body = struct.pack("!HH", attr_type, 0) * count
        data = struct.pack("!HH", 0x0001, len(body)) + COOKIE + b"t" * 12 + body
        start = time.perf_counter()
        message = parse(data)
        elapsed = time.perf_counter() - start
        assert len(message.attributes) == count
        assert elapsed < 1.0, f"{elapsed:.2f}s for {count} attributes"  # was 5-8 s
