"""RFC 5769 sections 2.1-2.4 and RFC 8489 Appendix B.1 (Errata 6268), byte for byte."""

from __future__ import annotations

import hashlib

import pytest
from wire_vectors import (
    ALL_VECTORS,
    LONG_TERM_PASSWORD,
    LONG_TERM_PASSWORD_PREPARED,
    LONG_TERM_REALM,
    LONG_TERM_TRANSACTION_ID,
    LONG_TERM_USERNAME,
    RFC5769_IPV4_MAPPED,
    RFC5769_IPV4_RESPONSE,
    RFC5769_IPV6_MAPPED,
    RFC5769_IPV6_RESPONSE,
    RFC5769_LONG_TERM_REQUEST,
    RFC5769_NONCE,
    RFC5769_PASSWORD,
    RFC5769_REQUEST,
    RFC5769_SOFTWARE_REQUEST,
    RFC5769_SOFTWARE_RESPONSE,
    RFC5769_TRANSACTION_ID,
    RFC5769_USERNAME,
    RFC8489_NONCE,
    RFC8489_SHA256_REQUEST,
    RFC8489_USERHASH,
)

from stun_server.wire import (
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    encode,
    is_stun,
    long_term_key,
    parse,
    sasl_prep,
    short_term_key,
    stream_frame_length,
    userhash,
    verify_integrity,
)
from stun_server.wire import attributes as attrs
from stun_server.wire.integrity import fingerprint, opaque_string

SHORT_TERM_KEY = short_term_key(RFC5769_PASSWORD)
LONG_TERM_MD5_KEY = long_term_key(
    LONG_TERM_USERNAME, LONG_TERM_REALM, sasl_prep(LONG_TERM_PASSWORD)
)
LONG_TERM_SHA256_KEY = long_term_key(
    LONG_TERM_USERNAME, LONG_TERM_REALM, LONG_TERM_PASSWORD_PREPARED, algorithm="sha256"
)

KEYS: dict[str, bytes] = {
    "rfc5769-2.1": SHORT_TERM_KEY,
    "rfc5769-2.2": SHORT_TERM_KEY,
    "rfc5769-2.3": SHORT_TERM_KEY,
    "rfc5769-2.4": LONG_TERM_MD5_KEY,
    "rfc8489-b.1": LONG_TERM_SHA256_KEY,
}
HAS_FINGERPRINT = {"rfc5769-2.1", "rfc5769-2.2", "rfc5769-2.3"}


def _without_integrity(message: Message) -> Message:
    kept: list[attrs.AnyAttribute] = [
        a
        for a in message.attributes
        if not isinstance(a, attrs.MessageIntegrity | attrs.MessageIntegritySha256)
        and not isinstance(a, attrs.Fingerprint)
    ]
    return Message(message.method, message.cls, message.transaction_id, kept)


# ---------------------------------------------------------------- 2.1


def test_rfc5769_sample_request() -> None:
    message = parse(RFC5769_REQUEST)
    assert message.method == Method.BINDING
    assert message.cls is MessageClass.REQUEST
    assert message.transaction_id == RFC5769_TRANSACTION_ID
    assert [type(a) for a in message.attributes] == [
        attrs.Software,
        attrs.Priority,
        attrs.IceControlled,
        attrs.Username,
        attrs.MessageIntegrity,
        attrs.Fingerprint,
    ]
    assert message.get(attrs.Software) == attrs.Software(RFC5769_SOFTWARE_REQUEST)
    assert message.get(attrs.Priority) == attrs.Priority(0x6E0001FF)
    assert message.get(attrs.IceControlled) == attrs.IceControlled(0x932FF9B151263B36)
    assert message.get(attrs.Username) == attrs.Username(RFC5769_USERNAME)
    mi = message.get(attrs.MessageIntegrity)
    assert mi is not None
    assert mi.value == bytes.fromhex("9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2")
    assert message.get(attrs.Fingerprint) == attrs.Fingerprint(0xE57A3BCF)
    assert message.integrity_offset == len(RFC5769_REQUEST) - 8 - 24
    assert message.unknown_comprehension_required() == []
    assert verify_integrity(message, SHORT_TERM_KEY)
    assert not verify_integrity(message, short_term_key(RFC5769_PASSWORD + "x"))


def test_rfc5769_sample_request_reencodes_byte_for_byte_apart_from_padding() -> None:
    ours = encode(_without_integrity(parse(RFC5769_REQUEST)), key=SHORT_TERM_KEY, fingerprint=True)
    assert len(ours) == len(RFC5769_REQUEST)
    differing = {i for i, (a, b) in enumerate(zip(ours, RFC5769_REQUEST, strict=True)) if a != b}
    username_padding = {73, 74, 75}  # ours are zero, the vector's are 0x20
    assert {i for i in differing if i < 80} == username_padding
    # The padding is covered by the MAC and the CRC, so those differ too, and nothing else.
    assert differing - username_padding <= set(range(80, 100)) | set(range(104, 108))
    assert RFC5769_REQUEST[73:76] == b"   "


# ---------------------------------------------------------------- 2.2 / 2.3


@pytest.mark.parametrize(
    ("data", "mapped", "mac"),
    [
        (RFC5769_IPV4_RESPONSE, RFC5769_IPV4_MAPPED, "2b91f599fd9e90c38c7489f92af9ba53f06be7d7"),
        (RFC5769_IPV6_RESPONSE, RFC5769_IPV6_MAPPED, "a382954e4be67bf11784c97c8292c275bfe3ed41"),
    ],
    ids=["2.2-ipv4", "2.3-ipv6"],
)
def test_rfc5769_sample_responses(data: bytes, mapped: tuple[str, int], mac: str) -> None:
    message = parse(data)
    assert message.method == Method.BINDING
    assert message.cls is MessageClass.SUCCESS
    assert message.transaction_id == RFC5769_TRANSACTION_ID
    assert [type(a) for a in message.attributes] == [
        attrs.Software,
        attrs.XorMappedAddress,
        attrs.MessageIntegrity,
        attrs.Fingerprint,
    ]
    assert message.get(attrs.Software) == attrs.Software(RFC5769_SOFTWARE_RESPONSE)
    xma = message.get(attrs.XorMappedAddress)
    assert xma is not None
    assert xma.address == mapped
    assert xma.family == (attrs.FAMILY_IPV6 if ":" in mapped[0] else attrs.FAMILY_IPV4)
    mi = message.get(attrs.MessageIntegrity)
    assert mi is not None
    assert mi.value == bytes.fromhex(mac)
    fp = message.get(attrs.Fingerprint)
    assert fp is not None
    assert fp.value == int.from_bytes(data[-4:], "big")
    assert verify_integrity(message, SHORT_TERM_KEY)
    assert not verify_integrity(message, LONG_TERM_MD5_KEY)


@pytest.mark.parametrize("data", [RFC5769_IPV4_RESPONSE, RFC5769_IPV6_RESPONSE], ids=["v4", "v6"])
def test_rfc5769_responses_reencode_byte_for_byte_apart_from_padding(data: bytes) -> None:
    ours = encode(_without_integrity(parse(data)), key=SHORT_TERM_KEY, fingerprint=True)
    assert len(ours) == len(data)
    differing = {i for i, (a, b) in enumerate(zip(ours, data, strict=True)) if a != b}
    software_padding = 35  # after "test vector": 0x20 in the vector, zero in ours
    assert data[software_padding] == 0x20
    mac = set(range(len(data) - 28, len(data) - 8))
    crc = set(range(len(data) - 4, len(data)))
    assert software_padding in differing
    assert differing <= {software_padding} | mac | crc  # XOR-MAPPED-ADDRESS identical


# ---------------------------------------------------------------- 2.4


def test_rfc5769_long_term_request() -> None:
    message = parse(RFC5769_LONG_TERM_REQUEST)
    assert message.method == Method.BINDING
    assert message.cls is MessageClass.REQUEST
    assert message.transaction_id == LONG_TERM_TRANSACTION_ID
    assert message.attributes[:3] == [
        attrs.Username(LONG_TERM_USERNAME),
        attrs.Nonce(RFC5769_NONCE),
        attrs.Realm(LONG_TERM_REALM),
    ]
    mi = message.attributes[3]
    assert isinstance(mi, attrs.MessageIntegrity)
    assert mi.value == bytes.fromhex("f67024656dd64a3e02b8e0712e85c9a28ca89666")
    assert len(message.attributes) == 4
    assert not message.has(attrs.Fingerprint)


def test_rfc5769_long_term_key_uses_saslprep() -> None:
    assert sasl_prep(LONG_TERM_PASSWORD) == LONG_TERM_PASSWORD_PREPARED
    assert sasl_prep(LONG_TERM_USERNAME) == LONG_TERM_USERNAME
    material = f"{LONG_TERM_USERNAME}:{LONG_TERM_REALM}:{LONG_TERM_PASSWORD_PREPARED}"
    expected = hashlib.md5(material.encode(), usedforsecurity=False).digest()
    assert expected == LONG_TERM_MD5_KEY
    message = parse(RFC5769_LONG_TERM_REQUEST)
    assert verify_integrity(message, LONG_TERM_MD5_KEY)
    # The unprepared password, or the right password under the wrong algorithm, fail.
    raw_key = hashlib.md5(
        f"{LONG_TERM_USERNAME}:{LONG_TERM_REALM}:{LONG_TERM_PASSWORD}".encode(),
        usedforsecurity=False,
    ).digest()
    assert not verify_integrity(message, raw_key)
    assert not verify_integrity(message, LONG_TERM_SHA256_KEY)
    # OpaqueString refuses the soft hyphen rather than silently keying on it.
    with pytest.raises(ValueError, match="U\\+00AD"):
        long_term_key(LONG_TERM_USERNAME, LONG_TERM_REALM, LONG_TERM_PASSWORD)


def test_rfc5769_long_term_request_reencodes_byte_for_byte() -> None:
    message = _without_integrity(parse(RFC5769_LONG_TERM_REQUEST))
    assert encode(message, key=LONG_TERM_MD5_KEY) == RFC5769_LONG_TERM_REQUEST


# ---------------------------------------------------------------- RFC 8489 B.1


def test_rfc8489_b1_sha256_request() -> None:
    message = parse(RFC8489_SHA256_REQUEST)
    assert message.method == Method.BINDING
    assert message.cls is MessageClass.REQUEST
    assert message.transaction_id == LONG_TERM_TRANSACTION_ID
    assert message.attributes[:4] == [
        attrs.Userhash(RFC8489_USERHASH),
        attrs.Nonce(RFC8489_NONCE),
        attrs.Realm(LONG_TERM_REALM),
        attrs.PasswordAlgorithm(attrs.PASSWORD_ALGORITHM_SHA256, b""),
    ]
    assert RFC8489_NONCE.startswith("obMatJos2")
    mi = message.attributes[4]
    assert isinstance(mi, attrs.MessageIntegritySha256)
    assert mi.value == bytes.fromhex(
        "b5c7bf005b6c52a21c51c5e892f81924136296cb927c43149309278cc6518e65"
    )
    assert len(message.attributes) == 5
    assert message.integrity_offset is None
    assert message.integrity_sha256_offset == len(RFC8489_SHA256_REQUEST) - 36


def test_rfc8489_b1_userhash_and_key() -> None:
    assert userhash(LONG_TERM_USERNAME, LONG_TERM_REALM) == RFC8489_USERHASH
    expected_key = hashlib.sha256(
        f"{LONG_TERM_USERNAME}:{LONG_TERM_REALM}:{LONG_TERM_PASSWORD_PREPARED}".encode()
    ).digest()
    assert expected_key == LONG_TERM_SHA256_KEY
    assert opaque_string(LONG_TERM_PASSWORD_PREPARED) == LONG_TERM_PASSWORD_PREPARED
    message = parse(RFC8489_SHA256_REQUEST)
    assert verify_integrity(message, LONG_TERM_SHA256_KEY)
    assert not verify_integrity(message, LONG_TERM_MD5_KEY)


def test_rfc8489_b1_reencodes_byte_for_byte() -> None:
    message = _without_integrity(parse(RFC8489_SHA256_REQUEST))
    assert encode(message, key=LONG_TERM_SHA256_KEY, integrity="sha256") == RFC8489_SHA256_REQUEST


def test_rfc8489_b1_uncorrected_vector_is_rejected() -> None:
    """The published (pre-errata) bytes claim 0x9c bytes of attributes: not a message."""
    original = b"\x00\x01\x00\x9c" + RFC8489_SHA256_REQUEST[4:120] + RFC8489_SHA256_REQUEST[128:]
    with pytest.raises(StunDecodeError):
        parse(original)


# ---------------------------------------------------------------- all vectors


@pytest.mark.parametrize("name", sorted(ALL_VECTORS))
def test_vector_framing(name: str) -> None:
    data = ALL_VECTORS[name]
    assert is_stun(data)
    assert stream_frame_length(data) == len(data)
    assert stream_frame_length(data[:4]) == len(data)
    message = parse(data)
    assert message.raw == data
    if name in HAS_FINGERPRINT:
        assert fingerprint(data[:-8]) == int.from_bytes(data[-4:], "big")
    assert parse(bytearray(data)) == message
    assert parse(memoryview(data)) == message


@pytest.mark.parametrize("name", sorted(ALL_VECTORS))
def test_every_single_bit_flip_is_caught(name: str) -> None:
    """Flip each bit of each vector (header, attribute headers, values, padding, MAC, CRC):
    the copy either fails to parse or fails verification with the right key."""
    data = ALL_VECTORS[name]
    key = KEYS[name]
    original = parse(data)
    assert verify_integrity(original, key)
    for bit in range(len(data) * 8):
        tampered = bytearray(data)
        tampered[bit // 8] ^= 0x80 >> (bit % 8)
        try:
            message = parse(bytes(tampered))
        except StunDecodeError:
            continue
        if not verify_integrity(message, key):
            continue
        # Only one escape, and it is RFC 8489 14.5 at work: a flip in the FINGERPRINT
        # header turns it into an attribute after MESSAGE-INTEGRITY, which is ignored.
        # Everything authenticated is unchanged, and the message has lost its FINGERPRINT.
        assert name in HAS_FINGERPRINT, f"bit {bit} of {name} went unnoticed"
        assert len(data) - 8 <= bit // 8 < len(data) - 4, f"bit {bit} of {name} went unnoticed"
        assert not message.has(attrs.Fingerprint)
        assert message.attributes == original.attributes[:-1]


@pytest.mark.parametrize("name", sorted(ALL_VECTORS))
def test_truncated_and_extended_vectors_fail(name: str) -> None:
    data = ALL_VECTORS[name]
    for cut in range(len(data)):
        with pytest.raises(StunDecodeError):
            parse(data[:cut])
    for extra in (b"\x00", b"\x00" * 4, b"\x80\x22\x00\x00"):
        with pytest.raises(StunDecodeError):
            parse(data + extra)


def test_tampered_regions_named() -> None:
    """One flipped bit per region of 2.1: FINGERPRINT catches them all; with FINGERPRINT
    stripped, MESSAGE-INTEGRITY (or the header checks) still catch what precedes it."""
    regions = {
        "type": 1,
        "length": 3,
        "cookie": 5,
        "transaction": 10,
        "software-header": 23,
        "software-value": 26,
        "priority-value": 45,
        "ice-controlled-value": 55,
        "username-value": 66,
        "username-padding": 74,
        "mi-header": 78,
        "mi-value": 85,
        "fingerprint-header": 103,  # its length; 101 (the type) is covered above
        "fingerprint-value": 106,
    }
    for region, index in regions.items():
        tampered = bytearray(RFC5769_REQUEST)
        tampered[index] ^= 0x01
        with pytest.raises(StunDecodeError):
            parse(bytes(tampered))
        if index >= 100:
            continue
        body = bytes(tampered[20:-8])
        length = (len(body)).to_bytes(2, "big") if region != "length" else tampered[2:4]
        stripped = bytes(tampered[:2]) + bytes(length) + bytes(tampered[4:20]) + body
        try:
            message = parse(stripped)
        except StunDecodeError:
            assert region in ("length", "cookie", "software-header", "mi-header"), region
            continue
        assert not verify_integrity(message, SHORT_TERM_KEY), region
