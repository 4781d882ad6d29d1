"""Typed STUN/TURN attributes and the registry that maps wire codes to them.

Each attribute class knows its wire ``TYPE`` and how to turn its value into bytes and back.
Decoding failures raise `StunDecodeError` only. Attribute types below 0x8000 are
comprehension-required (RFC 8489 section 14).
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from dataclasses import dataclass
from typing import ClassVar, Protocol, Self, TypeAlias

from .errors import REASON_PHRASES, StunDecodeError

MAGIC_COOKIE = 0x2112A442
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")

FAMILY_IPV4 = 0x01
FAMILY_IPV6 = 0x02
PROTOCOL_UDP = 17
PROTOCOL_TCP = 6

# Length limits from RFC 8489 section 14 (in bytes of UTF-8).
MAX_USERNAME_BYTES = 513
MAX_TEXT_BYTES = 763


def is_comprehension_required(attr_type: int) -> bool:
    return attr_type < 0x8000


class Attribute(Protocol):
    """What every attribute offers; ``TYPE`` is its wire code."""

    TYPE: ClassVar[int]

    @property
    def type(self) -> int: ...

    def encode_value(self, transaction_id: bytes) -> bytes: ...


class _Base:
    TYPE: ClassVar[int] = -1
    NAME: ClassVar[str] = "?"

    @property
    def type(self) -> int:
        return self.TYPE


def _fail(name: str, why: str) -> StunDecodeError:
    return StunDecodeError(f"{name}: {why}")


def _expect_length(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise _fail(name, f"length {len(value)}, expected {length}")


# ---------------------------------------------------------------- addresses


def _pack_address(ip: str, port: int) -> tuple[int, bytes]:
    return _packed_ip(ip)


@functools.lru_cache(maxsize=4096)
def _packed_ip(ip: str) -> tuple[int, bytes]:
    """(family, packed address) of ``ip``; cached: servers encode the same few often."""
    addr = ipaddress.ip_address(ip)
    family = FAMILY_IPV4 if addr.version == 4 else FAMILY_IPV6
    return family, addr.packed


def _unpack_address(name: str, value: bytes) -> tuple[int, int, bytes]:
    if len(value) < 4:
        raise _fail(name, "too short for an address")
    family, port = value[1], int.from_bytes(value[2:4], "big")
    raw = value[4:]
    if family == FAMILY_IPV4:
        expected = 4
    elif family == FAMILY_IPV6:
        expected = 16
    else:
        raise _fail(name, f"unknown address family 0x{family:02x}")
    if len(raw) != expected:
        raise _fail(name, f"address of {len(raw)} bytes for family {family}")
    return family, port, raw


@functools.lru_cache(maxsize=4096)
def _canonical_ip(ip: str) -> str:
    """``2001:DB8::1`` and ``2001:db8::1`` compare equal once canonical; bad text stays as is."""
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def _ip_text(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


@dataclass(frozen=True, slots=True)
class _AddressAttribute(_Base):
    ip: str
    port: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "ip", _canonical_ip(self.ip))

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)

    @property
    def family(self) -> int:
        return FAMILY_IPV6 if ":" in self.ip else FAMILY_IPV4

    def encode_value(self, transaction_id: bytes) -> bytes:
        family, packed = _pack_address(self.ip, self.port)
        return struct.pack("!BBH", 0, family, self.port) + packed

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _, port, raw = _unpack_address(cls.NAME, value)
        return cls(_ip_text(raw), port)


_XOR_V4 = struct.Struct("!xBHI")


@functools.lru_cache(maxsize=4096)
def _xor_ipv4(packed: bytes) -> int:
    return int.from_bytes(packed, "big") ^ MAGIC_COOKIE


def _xor_bytes(raw: bytes, mask: bytes) -> bytes:
    size = min(len(raw), len(mask))
    xored = int.from_bytes(raw[:size], "big") ^ int.from_bytes(mask[:size], "big")
    return xored.to_bytes(size, "big")


@dataclass(frozen=True, slots=True)
class _XorAddressAttribute(_Base):
    ip: str
    port: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "ip", _canonical_ip(self.ip))

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)

    @property
    def family(self) -> int:
        return FAMILY_IPV6 if ":" in self.ip else FAMILY_IPV4

    def encode_value(self, transaction_id: bytes) -> bytes:
        family, packed = _pack_address(self.ip, self.port)
        xport = self.port ^ (MAGIC_COOKIE >> 16)
        if family == FAMILY_IPV4:  # the mask is the cookie alone: no transaction ID needed
            return _XOR_V4.pack(family, xport, _xor_ipv4(packed))
        return struct.pack("!BBH", 0, family, xport) + _xor_bytes(
            packed, _COOKIE_BYTES + transaction_id
        )

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _, xport, raw = _unpack_address(cls.NAME, value)
        plain = _xor_bytes(raw, _COOKIE_BYTES + transaction_id)
        return cls(_ip_text(plain), xport ^ (MAGIC_COOKIE >> 16))


class MappedAddress(_AddressAttribute):
    TYPE = 0x0001
    NAME = "MAPPED-ADDRESS"


class AlternateServer(_AddressAttribute):
    TYPE = 0x8023
    NAME = "ALTERNATE-SERVER"


class ResponseOrigin(_AddressAttribute):
    TYPE = 0x802B
    NAME = "RESPONSE-ORIGIN"


class OtherAddress(_AddressAttribute):
    TYPE = 0x802C
    NAME = "OTHER-ADDRESS"


class XorMappedAddress(_XorAddressAttribute):
    TYPE = 0x0020
    NAME = "XOR-MAPPED-ADDRESS"


class XorPeerAddress(_XorAddressAttribute):
    TYPE = 0x0012
    NAME = "XOR-PEER-ADDRESS"


class XorRelayedAddress(_XorAddressAttribute):
    TYPE = 0x0016
    NAME = "XOR-RELAYED-ADDRESS"


# ---------------------------------------------------------------- text


@dataclass(frozen=True, slots=True)
class _TextAttribute(_Base):
    value: str
    MAX_BYTES: ClassVar[int] = MAX_TEXT_BYTES

    def encode_value(self, transaction_id: bytes) -> bytes:
        return self.value.encode("utf-8")

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        if len(value) > cls.MAX_BYTES:
            raise _fail(cls.NAME, f"{len(value)} bytes exceeds {cls.MAX_BYTES}")
        try:
            return cls(value.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise _fail(cls.NAME, "not valid UTF-8") from exc


class Username(_TextAttribute):
    TYPE = 0x0006
    NAME = "USERNAME"
    MAX_BYTES = MAX_USERNAME_BYTES


class Realm(_TextAttribute):
    TYPE = 0x0014
    NAME = "REALM"


class Nonce(_TextAttribute):
    TYPE = 0x0015
    NAME = "NONCE"


class Software(_TextAttribute):
    TYPE = 0x8022
    NAME = "SOFTWARE"


class AlternateDomain(_TextAttribute):
    TYPE = 0x8003
    NAME = "ALTERNATE-DOMAIN"


# ---------------------------------------------------------------- opaque bytes


@dataclass(frozen=True, slots=True)
class _BytesAttribute(_Base):
    value: bytes
    LENGTHS: ClassVar[tuple[int, ...] | None] = None

    def encode_value(self, transaction_id: bytes) -> bytes:
        return self.value

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        if cls.LENGTHS is not None and len(value) not in cls.LENGTHS:
            raise _fail(cls.NAME, f"length {len(value)} not in {cls.LENGTHS}")
        return cls(bytes(value))


class Data(_BytesAttribute):
    TYPE = 0x0013
    NAME = "DATA"


class MessageIntegrity(_BytesAttribute):
    TYPE = 0x0008
    NAME = "MESSAGE-INTEGRITY"
    LENGTHS = (20,)


class MessageIntegritySha256(_BytesAttribute):
    TYPE = 0x001C
    NAME = "MESSAGE-INTEGRITY-SHA256"
    LENGTHS = (16, 20, 24, 28, 32)


class Userhash(_BytesAttribute):
    TYPE = 0x001E
    NAME = "USERHASH"
    LENGTHS = (32,)


class ReservationToken(_BytesAttribute):
    TYPE = 0x0022
    NAME = "RESERVATION-TOKEN"
    LENGTHS = (8,)


class Padding(_BytesAttribute):
    TYPE = 0x0026
    NAME = "PADDING"


# ---------------------------------------------------------------- integers


@dataclass(frozen=True, slots=True)
class _U32Attribute(_Base):
    value: int

    def encode_value(self, transaction_id: bytes) -> bytes:
        return self.value.to_bytes(4, "big")

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_length(cls.NAME, value, 4)
        return cls(int.from_bytes(value, "big"))


class Lifetime(_U32Attribute):
    TYPE = 0x000D
    NAME = "LIFETIME"


class Priority(_U32Attribute):
    TYPE = 0x0024
    NAME = "PRIORITY"


class ConnectionId(_U32Attribute):
    TYPE = 0x002A
    NAME = "CONNECTION-ID"


class Fingerprint(_U32Attribute):
    TYPE = 0x8028
    NAME = "FINGERPRINT"


@dataclass(frozen=True, slots=True)
class _U64Attribute(_Base):
    value: int

    def encode_value(self, transaction_id: bytes) -> bytes:
        return self.value.to_bytes(8, "big")

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_length(cls.NAME, value, 8)
        return cls(int.from_bytes(value, "big"))


class IceControlled(_U64Attribute):
    TYPE = 0x8029
    NAME = "ICE-CONTROLLED"


class IceControlling(_U64Attribute):
    TYPE = 0x802A
    NAME = "ICE-CONTROLLING"


@dataclass(frozen=True, slots=True)
class _FlagAttribute(_Base):
    def encode_value(self, transaction_id: bytes) -> bytes:
        return b""

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_length(cls.NAME, value, 0)
        return cls()


class DontFragment(_FlagAttribute):
    TYPE = 0x001A
    NAME = "DONT-FRAGMENT"


class UseCandidate(_FlagAttribute):
    TYPE = 0x0025
    NAME = "USE-CANDIDATE"


# ---------------------------------------------------------------- structured


def _encode_reason(code: int, reason: str) -> bytes:
    if not 300 <= code <= 699:
        raise ValueError(f"error code {code} outside 300-699")
    return struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode("utf-8")


def _decode_reason(name: str, value: bytes) -> tuple[int, str]:
    if len(value) < 4:
        raise _fail(name, "too short")
    klass, number = value[2] & 0x07, value[3]
    if not 3 <= klass <= 6 or number > 99:
        raise _fail(name, f"invalid code class {klass} number {number}")
    if len(value) - 4 > MAX_TEXT_BYTES:
        raise _fail(name, "reason phrase too long")
    try:
        reason = value[4:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(name, "reason not valid UTF-8") from exc
    return klass * 100 + number, reason


@dataclass(frozen=True, slots=True)
class ErrorCode(_Base):
    """ERROR-CODE (RFC 8489 14.8). ``ErrorCode(438)`` gets the standard reason phrase;
    a decoded attribute keeps the reason that was on the wire, even an empty one."""

    TYPE = 0x0009
    NAME = "ERROR-CODE"
    code: int
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.reason:
            object.__setattr__(self, "reason", REASON_PHRASES.get(self.code, "Error"))

    def encode_value(self, transaction_id: bytes) -> bytes:
        return _encode_reason(self.code, self.reason)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        code, reason = _decode_reason(cls.NAME, value)
        attr = cls(code, reason)
        if not reason:  # keep what was on the wire: no default phrase when decoding
            object.__setattr__(attr, "reason", "")
        return attr


@dataclass(frozen=True, slots=True)
class AddressErrorCode(_Base):
    TYPE = 0x8001
    NAME = "ADDRESS-ERROR-CODE"
    family: int
    code: int
    reason: str = ""

    def encode_value(self, transaction_id: bytes) -> bytes:
        encoded = bytearray(_encode_reason(self.code, self.reason))
        encoded[0] = self.family
        return bytes(encoded)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        code, reason = _decode_reason(cls.NAME, value)
        return cls(value[0], code, reason)


@dataclass(frozen=True, slots=True)
class UnknownAttributes(_Base):
    TYPE = 0x000A
    NAME = "UNKNOWN-ATTRIBUTES"
    types: tuple[int, ...]

    def encode_value(self, transaction_id: bytes) -> bytes:
        return b"".join(t.to_bytes(2, "big") for t in self.types)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        if len(value) % 2:
            raise _fail(cls.NAME, "odd length")
        return cls(tuple(int.from_bytes(value[i : i + 2], "big") for i in range(0, len(value), 2)))


@dataclass(frozen=True, slots=True)
class ChannelNumber(_Base):
    TYPE = 0x000C
    NAME = "CHANNEL-NUMBER"
    number: int

    def encode_value(self, transaction_id: bytes) -> bytes:
        return struct.pack("!HH", self.number, 0)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_length(cls.NAME, value, 4)
        return cls(int.from_bytes(value[:2], "big"))


@dataclass(frozen=True, slots=True)
class _OneByteAttribute(_Base):
    """A one-byte field followed by three reserved bytes."""

    value: int

    def encode_value(self, transaction_id: bytes) -> bytes:
        return bytes((self.value, 0, 0, 0))

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_length(cls.NAME, value, 4)
        return cls(value[0])


class RequestedTransport(_OneByteAttribute):
    TYPE = 0x0019
    NAME = "REQUESTED-TRANSPORT"


class RequestedAddressFamily(_OneByteAttribute):
    TYPE = 0x0017
    NAME = "REQUESTED-ADDRESS-FAMILY"


class AdditionalAddressFamily(_OneByteAttribute):
    TYPE = 0x8000
    NAME = "ADDITIONAL-ADDRESS-FAMILY"


@dataclass(frozen=True, slots=True)
class EvenPort(_Base):
    TYPE = 0x0018
    NAME = "EVEN-PORT"
    reserve: bool = False

    def encode_value(self, transaction_id: bytes) -> bytes:
        return bytes((0x80 if self.reserve else 0,))

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        if len(value) not in (1, 4):
            raise _fail(cls.NAME, f"length {len(value)}, expected 1")
        return cls(bool(value[0] & 0x80))


@dataclass(frozen=True, slots=True)
class ChangeRequest(_Base):
    TYPE = 0x0003
    NAME = "CHANGE-REQUEST"
    change_ip: bool = False
    change_port: bool = False

    def encode_value(self, transaction_id: bytes) -> bytes:
        flags = (0x04 if self.change_ip else 0) | (0x02 if self.change_port else 0)
        return flags.to_bytes(4, "big")

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_length(cls.NAME, value, 4)
        flags = value[3]
        return cls(bool(flags & 0x04), bool(flags & 0x02))


@dataclass(frozen=True, slots=True)
class ResponsePort(_Base):
    TYPE = 0x0027
    NAME = "RESPONSE-PORT"
    port: int

    def encode_value(self, transaction_id: bytes) -> bytes:
        return struct.pack("!HH", self.port, 0)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_length(cls.NAME, value, 4)
        return cls(int.from_bytes(value[:2], "big"))


@dataclass(frozen=True, slots=True)
class Icmp(_Base):
    """RFC 8656 section 18.13 (Figure 11): 16 reserved bits, a 7-bit ICMP type, a 9-bit
    ICMP code, then 32 bits of error data (the next-hop MTU for "packet too big")."""

    TYPE = 0x8004
    NAME = "ICMP"
    icmp_type: int
    icmp_code: int
    error_data: int = 0

    def encode_value(self, transaction_id: bytes) -> bytes:
        if not 0 <= self.icmp_type <= 0x7F:
            raise ValueError(f"ICMP type {self.icmp_type} does not fit in 7 bits")
        if not 0 <= self.icmp_code <= 0x1FF:
            raise ValueError(f"ICMP code {self.icmp_code} does not fit in 9 bits")
        packed = (self.icmp_type << 9) | self.icmp_code
        return struct.pack("!HHI", 0, packed, self.error_data)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        _expect_length(cls.NAME, value, 8)
        _, packed, data = struct.unpack("!HHI", value)
        return cls(packed >> 9, packed & 0x1FF, data)


PASSWORD_ALGORITHM_MD5 = 0x0001
PASSWORD_ALGORITHM_SHA256 = 0x0002

AlgorithmEntry: TypeAlias = tuple[int, bytes]


def _encode_algorithm(algorithm: int, params: bytes) -> bytes:
    pad = (-len(params)) % 4
    return struct.pack("!HH", algorithm, len(params)) + params + b"\x00" * pad


def _decode_algorithms(name: str, value: bytes) -> list[AlgorithmEntry]:
    entries: list[AlgorithmEntry] = []
    offset = 0
    while offset < len(value):
        if len(value) - offset < 4:
            raise _fail(name, "truncated algorithm entry")
        algorithm, length = struct.unpack_from("!HH", value, offset)
        offset += 4
        if offset + length > len(value):
            raise _fail(name, "algorithm parameters overrun")
        entries.append((algorithm, bytes(value[offset : offset + length])))
        offset += length + (-length) % 4
    return entries


@dataclass(frozen=True, slots=True)
class PasswordAlgorithm(_Base):
    TYPE = 0x001D
    NAME = "PASSWORD-ALGORITHM"
    algorithm: int
    params: bytes = b""

    def encode_value(self, transaction_id: bytes) -> bytes:
        return _encode_algorithm(self.algorithm, self.params)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        entries = _decode_algorithms(cls.NAME, value)
        if len(entries) != 1:
            raise _fail(cls.NAME, f"{len(entries)} entries, expected 1")
        return cls(*entries[0])


@dataclass(frozen=True, slots=True)
class PasswordAlgorithms(_Base):
    TYPE = 0x8002
    NAME = "PASSWORD-ALGORITHMS"
    algorithms: tuple[AlgorithmEntry, ...]

    def encode_value(self, transaction_id: bytes) -> bytes:
        return b"".join(_encode_algorithm(a, p) for a, p in self.algorithms)

    @classmethod
    def decode_value(cls, value: bytes, transaction_id: bytes) -> Self:
        return cls(tuple(_decode_algorithms(cls.NAME, value)))


@dataclass(frozen=True, slots=True)
class UnknownAttribute:
    """An attribute this codec does not know, kept raw (and re-encoded as it came)."""

    attr_type: int
    value: bytes

    TYPE: ClassVar[int] = -1
    NAME: ClassVar[str] = "UNKNOWN"

    @property
    def type(self) -> int:
        return self.attr_type

    @property
    def comprehension_required(self) -> bool:
        return is_comprehension_required(self.attr_type)

    def encode_value(self, transaction_id: bytes) -> bytes:
        return self.value


KnownAttribute: TypeAlias = (
    MappedAddress
    | AlternateServer
    | ResponseOrigin
    | OtherAddress
    | XorMappedAddress
    | XorPeerAddress
    | XorRelayedAddress
    | Username
    | Realm
    | Nonce
    | Software
    | AlternateDomain
    | Data
    | MessageIntegrity
    | MessageIntegritySha256
    | Userhash
    | ReservationToken
    | Padding
    | Lifetime
    | Priority
    | ConnectionId
    | Fingerprint
    | IceControlled
    | IceControlling
    | DontFragment
    | UseCandidate
    | ErrorCode
    | AddressErrorCode
    | UnknownAttributes
    | ChannelNumber
    | RequestedTransport
    | RequestedAddressFamily
    | AdditionalAddressFamily
    | EvenPort
    | ChangeRequest
    | ResponsePort
    | Icmp
    | PasswordAlgorithm
    | PasswordAlgorithms
)
AnyAttribute: TypeAlias = KnownAttribute | UnknownAttribute

ATTRIBUTE_CLASSES: tuple[type[KnownAttribute], ...] = (
    MappedAddress,
    AlternateServer,
    ResponseOrigin,
    OtherAddress,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    Username,
    Realm,
    Nonce,
    Software,
    AlternateDomain,
    Data,
    MessageIntegrity,
    MessageIntegritySha256,
    Userhash,
    ReservationToken,
    Padding,
    Lifetime,
    Priority,
    ConnectionId,
    Fingerprint,
    IceControlled,
    IceControlling,
    DontFragment,
    UseCandidate,
    ErrorCode,
    AddressErrorCode,
    UnknownAttributes,
    ChannelNumber,
    RequestedTransport,
    RequestedAddressFamily,
    AdditionalAddressFamily,
    EvenPort,
    ChangeRequest,
    ResponsePort,
    Icmp,
    PasswordAlgorithm,
    PasswordAlgorithms,
)

REGISTRY: dict[int, type[KnownAttribute]] = {cls.TYPE: cls for cls in ATTRIBUTE_CLASSES}


def decode_attribute(attr_type: int, value: bytes, transaction_id: bytes) -> AnyAttribute:
    """Decode one attribute value; unknown types come back as `UnknownAttribute`."""
    cls = REGISTRY.get(attr_type)
    if cls is None:
        return UnknownAttribute(attr_type, bytes(value))
    try:
        return cls.decode_value(value, transaction_id)
    except StunDecodeError:
        raise
    except (ValueError, IndexError, struct.error) as exc:  # defensive: never leak others
        raise _fail(cls.NAME, str(exc)) from exc
