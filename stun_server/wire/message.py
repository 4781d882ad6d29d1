"""STUN message header, attribute framing, and the `parse` / `encode` pair.

A STUN message (RFC 8489 section 5) is a 20-byte header (type, length, magic cookie,
96-bit transaction ID) followed by TLV attributes padded to 4 bytes. `parse` accepts
any padding bytes, keeps repeated attributes in order, keeps unknown attributes raw,
checks FINGERPRINT when present, and raises nothing but `StunDecodeError`.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar, cast

from . import integrity as _integrity
from .attributes import (
    MAGIC_COOKIE,
    AnyAttribute,
    Fingerprint,
    MessageIntegrity,
    MessageIntegritySha256,
    UnknownAttribute,
    decode_attribute,
)
from .errors import StunDecodeError

HEADER_LENGTH = 20
MAX_MESSAGE_LENGTH = 65535 + HEADER_LENGTH
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
_HEADER = struct.Struct("!HHI12s")
_ATTR_HEADER = struct.Struct("!HH")
_TRAILER_TYPES = frozenset(
    (MessageIntegrity.TYPE, MessageIntegritySha256.TYPE, Fingerprint.TYPE)
)  # what `encode` computes itself and `parse` checks
_MI_HEADER = _ATTR_HEADER.pack(MessageIntegrity.TYPE, 20)
_MI256_HEADER = _ATTR_HEADER.pack(MessageIntegritySha256.TYPE, 32)
_FINGERPRINT_HEADER = _ATTR_HEADER.pack(Fingerprint.TYPE, 4)


class Method(enum.IntEnum):
    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009
    CONNECT = 0x00A
    CONNECTION_BIND = 0x00B
    CONNECTION_ATTEMPT = 0x00C


class MessageClass(enum.IntEnum):
    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


def message_type(method: int, cls: int) -> int:
    """Interleave the 12 method bits with the 2 class bits (RFC 8489 section 5)."""
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((cls & 0b01) << 4)
        | ((cls & 0b10) << 7)
    )


def split_message_type(msg_type: int) -> tuple[int, int]:
    """The inverse of `message_type`: (method, class)."""
    method = (msg_type & 0x000F) | ((msg_type & 0x00E0) >> 1) | ((msg_type & 0x3E00) >> 2)
    cls = ((msg_type >> 4) & 0b01) | ((msg_type >> 7) & 0b10)
    return method, cls


_CLASSES = tuple(MessageClass)  # by the 2-bit class value: cheaper than MessageClass(n)


def new_transaction_id() -> bytes:
    return os.urandom(12)


A = TypeVar("A")


@dataclass(slots=True)
class Message:
    """A STUN message. ``raw`` and the integrity offsets are set by `parse`."""

    method: int
    cls: MessageClass
    transaction_id: bytes = field(default_factory=new_transaction_id)
    attributes: list[AnyAttribute] = field(default_factory=list)
    raw: bytes | None = field(default=None, repr=False, compare=False)
    integrity_offset: int | None = field(default=None, repr=False, compare=False)
    integrity_sha256_offset: int | None = field(default=None, repr=False, compare=False)

    def get(self, attr_class: type[A]) -> A | None:
        """The first attribute of this class, or None."""
        for attr in self.attributes:
            if type(attr) is attr_class:
                return cast(A, attr)
        return None

    def get_all(self, attr_class: type[A]) -> list[A]:
        return [cast(A, a) for a in self.attributes if type(a) is attr_class]

    def has(self, attr_class: type[object]) -> bool:
        return self.get(attr_class) is not None  # a loop: cheaper than any() over a generator

    def unknown_comprehension_required(self) -> list[int]:
        """Codes of attributes a receiver must understand but this codec does not know."""
        return [
            a.attr_type
            for a in self.attributes
            if isinstance(a, UnknownAttribute) and a.comprehension_required
        ]

    def add(self, *attrs: AnyAttribute) -> Message:
        self.attributes.extend(attrs)
        return self

    def __iter__(self) -> Iterator[AnyAttribute]:
        return iter(self.attributes)


# ---------------------------------------------------------------- parse


def is_stun(data: bytes | bytearray | memoryview) -> bool:
    """Cheap test: plausible STUN header (first two bits zero, magic cookie, length)."""
    return (
        len(data) >= HEADER_LENGTH
        and data[0] < 0x40
        and data[4:8] == _COOKIE_BYTES
        and int.from_bytes(data[2:4], "big") + HEADER_LENGTH == len(data)
        and data[3] & 0x03 == 0
    )


def _check_header(data: bytes) -> tuple[int, int, bytes]:
    if len(data) < HEADER_LENGTH:
        raise StunDecodeError(f"{len(data)} bytes is shorter than a STUN header")
    msg_type, length, cookie, transaction_id = _HEADER.unpack_from(data)
    if msg_type & 0xC000:
        raise StunDecodeError("first two bits of a STUN message must be zero")
    if cookie != MAGIC_COOKIE:
        raise StunDecodeError(f"magic cookie 0x{cookie:08x} is not 0x{MAGIC_COOKIE:08x}")
    if length % 4:
        raise StunDecodeError(f"message length {length} is not a multiple of 4")
    if length + HEADER_LENGTH != len(data):
        raise StunDecodeError(
            f"header says {length} bytes of attributes, datagram has {len(data) - HEADER_LENGTH}"
        )
    return msg_type, length, transaction_id


def _iter_raw_attributes(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Yield (offset, type, value) for each attribute; offset is of its header."""
    offset = HEADER_LENGTH
    end = len(data)
    while offset < end:
        if end - offset < 4:
            raise StunDecodeError("truncated attribute header")
        attr_type, attr_len = _ATTR_HEADER.unpack_from(data, offset)
        value_end = offset + 4 + attr_len
        if value_end > end:
            raise StunDecodeError(f"attribute 0x{attr_type:04x} overruns the message")
        yield offset, attr_type, data[offset + 4 : value_end]
        offset = value_end + (-attr_len) % 4
        if offset > end:
            raise StunDecodeError(f"attribute 0x{attr_type:04x} padding overruns the message")


def parse(data: bytes | bytearray | memoryview) -> Message:
    """Decode a whole STUN message; raises only `StunDecodeError`."""
    try:
        return _parse(bytes(data))
    except StunDecodeError:
        raise
    except Exception as exc:  # a bug must still surface as a decode error to callers
        raise StunDecodeError(f"malformed message: {exc!r}") from exc


def _parse(data: bytes) -> Message:
    msg_type, _, transaction_id = _check_header(data)
    method, cls = split_message_type(msg_type)
    message = Message(method, _CLASSES[cls], transaction_id, [], data)
    seen_fingerprint = False  # a flag, not message.has(): that made parsing quadratic
    for offset, attr_type, value in _iter_raw_attributes(data):
        if seen_fingerprint:
            raise StunDecodeError("attribute after FINGERPRINT")
        # RFC 8489 14.5/14.6: what follows MESSAGE-INTEGRITY is ignored (not even decoded)
        # except MESSAGE-INTEGRITY-SHA256 and FINGERPRINT; after -SHA256 only FINGERPRINT.
        if attr_type != Fingerprint.TYPE and (
            message.integrity_sha256_offset is not None
            or (message.integrity_offset is not None and attr_type != MessageIntegritySha256.TYPE)
        ):
            continue
        attr = decode_attribute(attr_type, value, transaction_id)
        if attr_type in _TRAILER_TYPES:
            if attr_type == MessageIntegrity.TYPE:
                message.integrity_offset = offset
            elif attr_type == MessageIntegritySha256.TYPE:
                message.integrity_sha256_offset = offset
            else:
                _check_fingerprint(data, offset, cast(Fingerprint, attr).value)
                seen_fingerprint = True
        message.attributes.append(attr)
    return message


def _check_fingerprint(data: bytes, offset: int, value: int) -> None:
    if offset + 8 != len(data):
        raise StunDecodeError("FINGERPRINT is not the last attribute")
    if _integrity.fingerprint(data[:offset]) != value:
        raise StunDecodeError("FINGERPRINT does not match")


# ---------------------------------------------------------------- encode


def encode_attribute(attr_type: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError(f"attribute 0x{attr_type:04x} value of {len(value)} bytes is too long")
    return _ATTR_HEADER.pack(attr_type, len(value)) + value + b"\x00" * ((-len(value)) % 4)


_PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")  # by length % 4


def _encode_attributes(attributes: Iterable[AnyAttribute], transaction_id: bytes) -> bytes:
    parts: list[bytes] = []
    pack = _ATTR_HEADER.pack
    for a in attributes:
        attr_type = a.TYPE  # a class constant: cheaper than the `type` property
        if attr_type < 0:
            attr_type = a.type  # UnknownAttribute: its own code
        elif attr_type in _TRAILER_TYPES:
            continue  # MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT are recomputed, never copied
        value = a.encode_value(transaction_id)
        size = len(value)
        if size > 0xFFFF:
            raise ValueError(f"attribute 0x{attr_type:04x} value of {size} bytes is too long")
        parts += (pack(attr_type, size), value, _PADDING[size & 3])
    return b"".join(parts)


def encode(
    message: Message,
    *,
    key: bytes | None = None,
    integrity: str = "sha1",
    fingerprint: bool = False,
) -> bytes:
    """Serialise ``message``; append MESSAGE-INTEGRITY(-SHA256) with ``key``, then FINGERPRINT.

    ``integrity`` is ``"sha1"``, ``"sha256"`` or ``"both"`` (SHA1 first, RFC 8489 14.6).
    MESSAGE-INTEGRITY, -SHA256 and FINGERPRINT present in ``message.attributes`` are not
    copied: they are recomputed from ``key`` and ``fingerprint``.

    Raises ValueError for what cannot be put on the wire: a method outside 12 bits, a
    transaction ID that is not 12 bytes, an attribute value out of range, or a message
    (or attribute) longer than the 16-bit length field allows.
    """
    if len(message.transaction_id) != 12:
        raise ValueError("transaction ID must be 12 bytes")
    if not 0 <= message.method <= 0xFFF:
        raise ValueError(f"method 0x{message.method:x} does not fit in 12 bits")
    try:
        body = _encode_attributes(message.attributes, message.transaction_id)
    except (struct.error, OverflowError) as exc:  # e.g. a port or u32 out of range
        raise ValueError(f"attribute value out of range: {exc}") from exc
    if key is not None and integrity not in ("sha1", "sha256", "both"):
        raise ValueError(f"integrity must be sha1, sha256 or both, not {integrity!r}")
    # What is appended below: MESSAGE-INTEGRITY (24), -SHA256 (36), FINGERPRINT (8).
    trailer = 8 if fingerprint else 0
    if key is not None:
        trailer += (24 if integrity != "sha256" else 0) + (36 if integrity != "sha1" else 0)
    if len(body) + trailer > 0xFFFF:
        raise ValueError(f"{len(body) + trailer} bytes of attributes: too long for STUN")
    msg_type = message_type(message.method, message.cls)
    tid = message.transaction_id
    if key is not None:
        if integrity != "sha256":  # MESSAGE-INTEGRITY: the header counts its 24 bytes
            head = _HEADER.pack(msg_type, len(body) + 24, MAGIC_COOKIE, tid)
            body += _MI_HEADER + _integrity.hmac_sha1(key, head + body)
        if integrity != "sha1":
            head = _HEADER.pack(msg_type, len(body) + 36, MAGIC_COOKIE, tid)
            body += _MI256_HEADER + _integrity.hmac_sha256(key, head + body)
    if fingerprint:
        head = _HEADER.pack(msg_type, len(body) + 8, MAGIC_COOKIE, tid)
        crc = _integrity.fingerprint(head + body)
        body += _FINGERPRINT_HEADER + crc.to_bytes(4, "big")
    return _HEADER.pack(msg_type, len(body), MAGIC_COOKIE, tid) + body


def for_transaction(template: bytes, transaction_id: bytes, *, fingerprint: bool = False) -> bytes:
    """``template`` re-addressed to another transaction, with FINGERPRINT if asked.

    ``template`` is what `encode` made without a key and without FINGERPRINT, for a message
    none of whose attributes depends on the transaction ID (no XOR-*-ADDRESS): a server's
    401 challenge, say, which is then encoded once and sent many times.
    """
    if len(transaction_id) != 12:
        raise ValueError("transaction ID must be 12 bytes")
    body = template[HEADER_LENGTH:]
    length = len(body) + (8 if fingerprint else 0)
    head = template[:2] + length.to_bytes(2, "big") + template[4:8] + transaction_id
    if not fingerprint:
        return head + body
    crc = _integrity.fingerprint(head + body)
    return head + body + encode_attribute(Fingerprint.TYPE, crc.to_bytes(4, "big"))


# ---------------------------------------------------------------- verify


def verify_integrity(message: Message, key: bytes, *, require: str | None = None) -> bool:
    """Check MESSAGE-INTEGRITY-SHA256 if present, else MESSAGE-INTEGRITY; False if neither.

    ``require="sha256"`` refuses a SHA1-only message (no downgrade once SHA-256 was agreed);
    ``require="sha1"`` checks MESSAGE-INTEGRITY even when -SHA256 is present too.
    Only meaningful for messages returned by `parse` (it needs the raw bytes).
    """
    if message.raw is None:
        raise ValueError("verify_integrity needs a parsed message")
    if require not in (None, "sha1", "sha256"):
        raise ValueError(f"require must be None, 'sha1' or 'sha256', not {require!r}")
    if require == "sha1":
        if message.integrity_offset is None:
            return False
        return _verify_at(message.raw, message.integrity_offset, key, sha256=False)
    if message.integrity_sha256_offset is not None:
        return _verify_at(message.raw, message.integrity_sha256_offset, key, sha256=True)
    if message.integrity_offset is not None and require is None:
        return _verify_at(message.raw, message.integrity_offset, key, sha256=False)
    return False


def _verify_at(raw: bytes, offset: int, key: bytes, *, sha256: bool) -> bool:
    mac_length = int.from_bytes(raw[offset + 2 : offset + 4], "big")
    patched_length = offset + 4 + mac_length - HEADER_LENGTH
    covered = raw[:2] + patched_length.to_bytes(2, "big") + raw[4:offset]
    expected = raw[offset + 4 : offset + 4 + mac_length]
    if sha256:
        return _integrity.compare(_integrity.hmac_sha256(key, covered)[:mac_length], expected)
    return _integrity.compare(_integrity.hmac_sha1(key, covered), expected)


# ---------------------------------------------------------------- streams


def stream_frame_length(buffer: bytes | bytearray | memoryview) -> int | None:
    """Bytes the next frame on a TCP/TLS stream occupies, or None if more are needed.

    A STUN message (first two bits 00) is 20 + length; ChannelData (01) is 4 + length
    rounded up to 4 (RFC 8656 section 12.5). Raises `StunDecodeError` for anything else,
    including a STUN header without the magic cookie, so garbage never stalls a reader.
    """
    if len(buffer) < 4:
        return None
    first = buffer[0] >> 6
    length = (buffer[2] << 8) | buffer[3]
    if first == 0:
        if len(buffer) >= 8 and bytes(buffer[4:8]) != _COOKIE_BYTES:
            raise StunDecodeError("stream frame has no STUN magic cookie")
        if length % 4:
            raise StunDecodeError(f"STUN length {length} is not a multiple of 4")
        return HEADER_LENGTH + length
    if first == 1:
        return 4 + length + (-length) % 4
    raise StunDecodeError(f"byte 0x{buffer[0]:02x} starts neither STUN nor ChannelData")
