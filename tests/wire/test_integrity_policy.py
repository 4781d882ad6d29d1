"""verify_integrity's ``require`` (no SHA1 downgrade), canonical IPs, stream cookie checks."""

from __future__ import annotations

import pytest

from stun_server.wire import (
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    encode,
    parse,
    stream_frame_length,
    verify_integrity,
)
from stun_server.wire.attributes import Username, XorPeerAddress

KEY = b"0123456789abcdef"


def _signed(integrity: str) -> Message:
    message = Message(Method.ALLOCATE, MessageClass.REQUEST, attributes=[Username("u")])
    return parse(encode(message, key=KEY, integrity=integrity))


def test_require_sha256_refuses_sha1_only_message() -> None:
    sha1_only = _signed("sha1")
    assert verify_integrity(sha1_only, KEY) is True
    assert verify_integrity(sha1_only, KEY, require="sha256") is False


def test_require_sha1_checks_the_sha1_mac_even_beside_sha256() -> None:
    both = _signed("both")
    assert verify_integrity(both, KEY, require="sha1") is True
    assert verify_integrity(both, KEY, require="sha256") is True
    assert verify_integrity(_signed("sha256"), KEY, require="sha1") is False


def test_require_rejects_unknown_algorithm_names() -> None:
    with pytest.raises(ValueError, match="require"):
        verify_integrity(_signed("sha1"), KEY, require="md5")


def test_address_attributes_canonicalise_ip_text() -> None:
    assert XorPeerAddress("2001:DB8:0::1", 5).ip == "2001:db8::1"
    assert XorPeerAddress("2001:DB8::1", 5) == XorPeerAddress("2001:db8::1", 5)


def test_stream_frame_without_cookie_is_refused_early() -> None:
    garbage = b"\x00\x01\xff\xfc" + b"GET /"
    with pytest.raises(StunDecodeError, match="magic cookie"):
        stream_frame_length(garbage)


def test_stream_frame_with_unaligned_stun_length_is_refused() -> None:
    with pytest.raises(StunDecodeError, match="multiple of 4"):
        stream_frame_length(b"\x00\x01\x00\x05\x21\x12\xa4\x42")
