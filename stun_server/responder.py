"""Sans-I/O STUN Binding responder (RFC 8489) with RFC 5780 NAT behaviour discovery.

The shell hands every datagram to `BindingResponder.receive_datagram(data, local_addr,
remote_addr, now)` and sends what comes back: a list of `Datagram(data, local_addr, remote_addr)`
where ``local_addr`` names the local socket to send from (it differs from the receiving one only
for an RFC 5780 CHANGE-REQUEST). Stream transports hand over one framed message at a time to
`receive_stream_message`. Nothing here opens a socket or reads a clock.

What is answered, and why:

- Silence for anything that is not a STUN Binding request: bytes without a STUN header (wrong
  first bits, magic cookie or length), responses and indications, and requests of other methods.
  RFC 8489 section 6.3 lists "the method value is a supported method" among the header checks
  whose failure means "the message is silently discarded"; answering 400 to foreign methods
  would also make the server a reflector for any request type. A FINGERPRINT that does not match
  is silence too (section 6.3: the message is most likely not STUN).
- 400 Bad Request for a Binding request with a valid header whose attributes do not decode, and
  (RFC 5780 section 6.1) for RESPONSE-PORT together with PADDING, or RESPONSE-PORT 0.
- 420 Unknown Attribute with UNKNOWN-ATTRIBUTES for unknown comprehension-required attributes.
  A socket without RFC 5780 support (no second address configured, or a TCP/TLS connection,
  whose response cannot come from elsewhere) treats CHANGE-REQUEST, RESPONSE-PORT and PADDING
  as unknown: RFC 5780 section 6 says such a server "MUST respond with a 420 (Unknown
  Attribute) to any Request with a CHANGE-REQUEST attribute".
- Success: XOR-MAPPED-ADDRESS, SOFTWARE, FINGERPRINT when the request had one. On an RFC 5780
  socket also MAPPED-ADDRESS (RFC 5780 section 6.1 requires both), RESPONSE-ORIGIN,
  OTHER-ADDRESS and, for a request with PADDING, PADDING of the request's length (rounded up to
  4, at most ``max_padding``), so padding never amplifies.

Every datagram answer spends a token of the source's bucket (`SourceRateLimiter`); with none
left the request is dropped, so spoofed requests cannot turn the server into an amplifier.

The plain Binding request (header only, or SOFTWARE and/or FINGERPRINT) takes a fast path that
packs the response with `struct`; it produces exactly the bytes of the codec path.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

from stun_server.ratelimit import SourceRateLimiter
from stun_server.wire import Message, MessageClass, Method, StunDecodeError, encode, parse
from stun_server.wire import attributes as attrs
from stun_server.wire.attributes import MAGIC_COOKIE, MAX_TEXT_BYTES
from stun_server.wire.integrity import fingerprint as fingerprint_crc

Address: TypeAlias = tuple[str, int]

DEFAULT_SOFTWARE = "turnkit"
DEFAULT_MAX_PADDING = 1500

_COOKIE = MAGIC_COOKIE.to_bytes(4, "big")
_BINDING_REQUEST = b"\x00\x01"
_PLAIN_HEADER = _BINDING_REQUEST + b"\x00\x00" + _COOKIE  # a request without attributes
_SHORT_HEAD = struct.Struct("!HH")  # type and length; cookie and ID are copied from the request
_ATTR_HEADER = struct.Struct("!HH")
_ADDRESS_V4 = struct.Struct("!HHHH4s")  # type, length, (reserved, family), port, address
_ADDRESS_V6 = struct.Struct("!HHHH16s")
_FINGERPRINT_ATTR = struct.Struct("!HHI")
_FINGERPRINT_HEAD = b"\x80\x28\x00\x04"
_SOFTWARE_TYPE = attrs.Software.TYPE
_FINGERPRINT_TYPE = attrs.Fingerprint.TYPE
_XOR_PORT = MAGIC_COOKIE >> 16
_MAX_PEER_CACHE = 4096
_FAST_PATH_MAX = 20 + 4 + MAX_TEXT_BYTES + 1 + 8  # header, SOFTWARE (padded), FINGERPRINT

# Request attributes that only an RFC 5780 socket understands (all comprehension-required).
_RFC5780_REQUEST_ATTRIBUTES = (attrs.ChangeRequest, attrs.ResponsePort, attrs.Padding)


class Datagram(NamedTuple):
    """One datagram to send: its bytes, the local socket to send from, the destination."""

    data: bytes
    local_addr: Address
    remote_addr: Address


_new_datagram = tuple.__new__  # skips NamedTuple's Python-level __new__ on the fast path


class StreamAnswer(NamedTuple):
    """What to do after one message on a TCP/TLS connection."""

    reply: bytes | None  # bytes to write back, if any
    keep_open: bool  # False: the peer does not speak STUN; close the connection


@dataclass(frozen=True, slots=True)
class Rfc5780Addresses:
    """Two IPs x two ports: the four sockets of an RFC 5780 server (one address family)."""

    primary_ip: str
    alternate_ip: str
    primary_port: int
    alternate_port: int

    def __post_init__(self) -> None:
        primary = ipaddress.ip_address(self.primary_ip)
        alternate = ipaddress.ip_address(self.alternate_ip)
        if primary.version != alternate.version:
            raise ValueError(f"{self.primary_ip} and {self.alternate_ip} differ in family")
        if primary == alternate or primary.is_unspecified or alternate.is_unspecified:
            raise ValueError("RFC 5780 needs two different, specific IP addresses")
        if self.primary_port == self.alternate_port:
            raise ValueError("RFC 5780 needs two different ports")
        for port in (self.primary_port, self.alternate_port):
            if not 0 < port < 65536:
                raise ValueError(f"port {port} outside 1-65535")
        object.__setattr__(self, "primary_ip", str(primary))
        object.__setattr__(self, "alternate_ip", str(alternate))

    def sockets(self) -> tuple[Address, Address, Address, Address]:
        """(primary, primary), (primary, alternate port), (alternate IP, primary), (alt, alt)."""
        return (
            (self.primary_ip, self.primary_port),
            (self.primary_ip, self.alternate_port),
            (self.alternate_ip, self.primary_port),
            (self.alternate_ip, self.alternate_port),
        )

    def changed(self, local: Address, *, change_ip: bool, change_port: bool) -> Address:
        """The socket that answers a request received on ``local`` (RFC 5780 table 1)."""
        ip, port = local[0], local[1]
        if change_ip:
            ip = self.alternate_ip if ip == self.primary_ip else self.primary_ip
        if change_port:
            port = self.alternate_port if port == self.primary_port else self.primary_port
        return (ip, port)

    def other(self, local: Address) -> Address:
        """OTHER-ADDRESS for a request received on ``local``: the other IP and the other port."""
        return self.changed(local, change_ip=True, change_port=True)


@dataclass(frozen=True, slots=True)
class ResponderConfig:
    software: str | None = DEFAULT_SOFTWARE  # SOFTWARE value; None or "" leaves it out
    rate_limit: float = 500.0  # answers per second per source (IPv6: per /64); 0 = unlimited
    rate_burst: float = 1000.0  # bucket size, in answers
    max_sources: int = 65_536  # sources the rate limiter remembers at most
    max_padding: int = DEFAULT_MAX_PADDING  # cap on PADDING mirrored back (bytes)
    rfc5780: tuple[Rfc5780Addresses, ...] = ()  # at most one per address family

    def __post_init__(self) -> None:
        if self.rate_limit < 0:
            raise ValueError("rate_limit must be >= 0 (0 = unlimited)")
        if not 0 <= self.max_padding <= 65000:
            raise ValueError("max_padding must be within 0-65000")
        families = [ipaddress.ip_address(a.primary_ip).version for a in self.rfc5780]
        if len(families) != len(set(families)):
            raise ValueError("at most one RFC 5780 address set per address family")


class _PeerAddress(NamedTuple):
    """A source IP as the wire needs it (v4-mapped IPv6 counts as IPv4)."""

    text: str
    packed: bytes
    xored_v4: bytes  # IPv4: the address XOR the cookie (transaction-independent); else b""


@dataclass(frozen=True, slots=True)
class _Rfc5780Socket:
    """What the responder knows about one of the four RFC 5780 sockets."""

    local: Address
    addresses: Rfc5780Addresses
    plain_suffix: bytes  # RESPONSE-ORIGIN, OTHER-ADDRESS, SOFTWARE of an unchanged answer


def _peer_address(ip: str) -> _PeerAddress:
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    packed = address.packed
    if address.version == 4:
        xored = (int.from_bytes(packed, "big") ^ MAGIC_COOKIE).to_bytes(4, "big")
        return _PeerAddress(str(address), packed, xored)
    return _PeerAddress(str(address), packed, b"")


def _encode_attribute(attribute: attrs.AnyAttribute) -> bytes:
    value = attribute.encode_value(b"\x00" * 12)  # only XOR addresses use the ID
    return _ATTR_HEADER.pack(attribute.type, len(value)) + value + b"\x00" * (-len(value) % 4)


def _trailing_fingerprint(data: bytes) -> bool | None:
    """True/False: the message ends with a FINGERPRINT that does/does not match; None: none."""
    if len(data) < 28 or data[-8:-4] != _FINGERPRINT_HEAD:
        return None
    return fingerprint_crc(data[:-8]) == int.from_bytes(data[-4:], "big")


def _binding_request_id(data: bytes) -> bytes | None:
    """The transaction ID if ``data`` has a sound header of a Binding request, else None."""
    if len(data) < 20 or data[0:2] != _BINDING_REQUEST or data[4:8] != _COOKIE:
        return None
    length = (data[2] << 8) | data[3]
    if length % 4 or length + 20 != len(data):
        return None
    return data[8:20]


class BindingResponder:
    """Answers STUN Binding requests; see the module docstring for the rules."""

    def __init__(self, config: ResponderConfig | None = None, *, fast_path: bool = True) -> None:
        self.config = config or ResponderConfig()
        self.fast_path = fast_path
        software = self.config.software
        self._software: tuple[attrs.Software, ...] = (attrs.Software(software),) if software else ()
        self._software_attr = b"".join(_encode_attribute(a) for a in self._software)
        self._limiter = self._make_limiter(self.config)
        self._peers: dict[str, _PeerAddress] = {}
        self._rfc5780_sockets = {
            local: self._rfc5780_socket(local, addresses)
            for addresses in self.config.rfc5780
            for local in addresses.sockets()
        }

    @staticmethod
    def _make_limiter(config: ResponderConfig) -> SourceRateLimiter | None:
        if config.rate_limit == 0:
            return None
        burst = max(config.rate_burst, 1.0)
        return SourceRateLimiter(config.rate_limit, burst, config.max_sources)

    def _rfc5780_socket(self, local: Address, addresses: Rfc5780Addresses) -> _Rfc5780Socket:
        origin, other = attrs.ResponseOrigin(*local), attrs.OtherAddress(*addresses.other(local))
        suffix = _encode_attribute(origin) + _encode_attribute(other) + self._software_attr
        return _Rfc5780Socket(local, addresses, suffix)

    @property
    def rfc5780_sockets(self) -> tuple[Address, ...]:
        """Every local socket the shell must open for RFC 5780 (empty without it)."""
        return tuple(self._rfc5780_sockets)

    # ------------------------------------------------------------------ entry points

    def receive_datagram(
        self, data: bytes, local_addr: Address, remote_addr: Address, now: float
    ) -> list[Datagram]:
        """Datagrams to send in answer to ``data`` (received on ``local_addr``) at ``now``."""
        rfc5780 = self._rfc5780_sockets.get(local_addr) if self._rfc5780_sockets else None
        reply = self._fast_reply(data, remote_addr, rfc5780) if self.fast_path else None
        if reply is not None:
            answer = _new_datagram(Datagram, (reply, local_addr, remote_addr))
        else:
            full = self._full_reply(data, local_addr, remote_addr, rfc5780)
            if full is None:
                return []
            answer = full
        if self._limiter is not None and not self._limiter.allow(remote_addr[0], now):
            return []
        return [answer]

    def receive_stream_message(
        self, message: bytes, local_addr: Address, remote_addr: Address
    ) -> StreamAnswer:
        """The answer to one framed message from a TCP/TLS connection (no RFC 5780 there)."""
        reply = self._fast_reply(message, remote_addr, None) if self.fast_path else None
        if reply is not None:
            return StreamAnswer(reply, True)
        if len(message) < 20 or message[0] >= 0x40 or message[4:8] != _COOKIE:
            return StreamAnswer(None, False)
        answer = self._full_reply(message, local_addr, remote_addr, None)
        return StreamAnswer(answer.data if answer else None, True)

    # ------------------------------------------------------------------ fast path

    def _fast_reply(
        self, data: bytes, remote_addr: Address, rfc5780: _Rfc5780Socket | None
    ) -> bytes | None:
        """The success response to a plain Binding request; None if ``data`` is anything else."""
        if len(data) == 20:
            if data[:8] != _PLAIN_HEADER:
                return None
            with_fingerprint = False
        else:
            checked = _plain_request_fingerprint(data)
            if checked is None:
                return None
            with_fingerprint = checked
        ip = remote_addr[0]
        peer = self._peers.get(ip) or self._peer(ip)
        port = remote_addr[1]
        if peer.xored_v4:
            mapped = _ADDRESS_V4.pack(0x0020, 8, attrs.FAMILY_IPV4, port ^ _XOR_PORT, peer.xored_v4)
        else:
            mapped = _xor_mapped_v6(peer.packed, port, data[4:20])
        if rfc5780 is None:
            body = mapped + self._software_attr
        else:
            body = mapped + _mapped_address(peer, port) + rfc5780.plain_suffix
        if with_fingerprint:
            return _with_fingerprint(_SHORT_HEAD.pack(0x0101, len(body) + 8) + data[4:20] + body)
        return _SHORT_HEAD.pack(0x0101, len(body)) + data[4:20] + body

    def _peer(self, ip: str) -> _PeerAddress:
        peer = self._peers.get(ip)
        if peer is None:
            if len(self._peers) >= _MAX_PEER_CACHE:
                self._peers.clear()
            peer = self._peers[ip] = _peer_address(ip)
        return peer

    # ------------------------------------------------------------------ full codec path

    def _full_reply(
        self,
        data: bytes,
        local_addr: Address,
        remote_addr: Address,
        rfc5780: _Rfc5780Socket | None,
    ) -> Datagram | None:
        transaction_id = _binding_request_id(data)
        if transaction_id is None:
            return None
        try:
            request = parse(data)
        except StunDecodeError:
            trailing = _trailing_fingerprint(data)
            if trailing is False:
                return None
            reply = self._error(transaction_id, 400, (), with_fingerprint=bool(trailing))
            return Datagram(reply, local_addr, remote_addr)
        unknown = _unknown_attributes(request, supports_rfc5780=rfc5780 is not None)
        if unknown:
            reply = self._error(
                transaction_id, 420, unknown, with_fingerprint=request.has(attrs.Fingerprint)
            )
            return Datagram(reply, local_addr, remote_addr)
        if rfc5780 is None:
            return Datagram(self._success(request, remote_addr), local_addr, remote_addr)
        return self._rfc5780_reply(request, remote_addr, rfc5780)

    def _rfc5780_reply(
        self, request: Message, remote_addr: Address, rfc5780: _Rfc5780Socket
    ) -> Datagram:
        response_port = request.get(attrs.ResponsePort)
        padding = request.get(attrs.Padding)
        if response_port is not None and (padding is not None or response_port.port == 0):
            with_fingerprint = request.has(attrs.Fingerprint)
            reply = self._error(request.transaction_id, 400, (), with_fingerprint=with_fingerprint)
            return Datagram(reply, rfc5780.local, remote_addr)
        change = request.get(attrs.ChangeRequest) or attrs.ChangeRequest()
        source = rfc5780.addresses.changed(
            rfc5780.local, change_ip=change.change_ip, change_port=change.change_port
        )
        destination = remote_addr if response_port is None else (remote_addr[0], response_port.port)
        discovery: list[attrs.AnyAttribute] = [
            attrs.MappedAddress(self._peer(remote_addr[0]).text, remote_addr[1]),
            attrs.ResponseOrigin(*source),
            attrs.OtherAddress(*rfc5780.addresses.other(rfc5780.local)),
        ]
        tail = [attrs.Padding(bytes(self._padding_length(padding)))] if padding else []
        reply = self._success(request, remote_addr, discovery, tail)
        return Datagram(reply, source, destination)

    def _padding_length(self, padding: attrs.Padding) -> int:
        """The request's PADDING length rounded up to 4, capped by ``max_padding``."""
        length = len(padding.value) + (-len(padding.value) % 4)
        return min(length, self.config.max_padding - self.config.max_padding % 4)

    def _success(
        self,
        request: Message,
        remote_addr: Address,
        discovery: Sequence[attrs.AnyAttribute] = (),
        tail: Sequence[attrs.AnyAttribute] = (),
    ) -> bytes:
        """XOR-MAPPED-ADDRESS, the RFC 5780 attributes, SOFTWARE, ``tail`` (PADDING)."""
        mapped = attrs.XorMappedAddress(self._peer(remote_addr[0]).text, remote_addr[1])
        attributes = [mapped, *discovery, *self._software, *tail]
        response = Message(Method.BINDING, MessageClass.SUCCESS, request.transaction_id, attributes)
        return encode(response, fingerprint=request.has(attrs.Fingerprint))

    def _error(
        self, transaction_id: bytes, code: int, unknown: tuple[int, ...], *, with_fingerprint: bool
    ) -> bytes:
        attributes: list[attrs.AnyAttribute] = [attrs.ErrorCode(code)]
        if unknown:
            attributes.append(attrs.UnknownAttributes(unknown))
        attributes.extend(self._software)
        response = Message(Method.BINDING, MessageClass.ERROR, transaction_id, attributes)
        return encode(response, fingerprint=with_fingerprint)


def _unknown_attributes(request: Message, *, supports_rfc5780: bool) -> tuple[int, ...]:
    """Comprehension-required attribute types this socket cannot honour, each once."""
    unknown = request.unknown_comprehension_required()
    if not supports_rfc5780:
        unknown += [a.type for a in request if isinstance(a, _RFC5780_REQUEST_ATTRIBUTES)]
    return tuple(dict.fromkeys(unknown))


def _plain_request_fingerprint(data: bytes) -> bool | None:
    """For a Binding request with only SOFTWARE and/or FINGERPRINT: does it end in FINGERPRINT?

    None when ``data`` is anything else, or when the full path must judge it (a SOFTWARE that
    would not decode, a FINGERPRINT that does not match or is not last).
    """
    size = len(data)
    if size > _FAST_PATH_MAX or data[:2] != _BINDING_REQUEST or data[4:8] != _COOKIE:
        return None
    if ((data[2] << 8) | data[3]) + 20 != size or size % 4:
        return None
    offset = 20
    while offset < size:
        attr_type, length = _ATTR_HEADER.unpack_from(data, offset)
        value_end = offset + 4 + length
        if attr_type == _FINGERPRINT_TYPE:
            if length != 4 or value_end != size:
                return None
            return _trailing_fingerprint(data) or None
        if attr_type != _SOFTWARE_TYPE or length > MAX_TEXT_BYTES or value_end > size:
            return None
        try:
            data[offset + 4 : value_end].decode("utf-8")
        except UnicodeDecodeError:
            return None
        offset = value_end + (-length % 4)
    return False


def _xor_mapped_v6(packed: bytes, port: int, cookie_and_id: bytes) -> bytes:
    mask = int.from_bytes(cookie_and_id, "big")
    xored = (int.from_bytes(packed, "big") ^ mask).to_bytes(16, "big")
    return _ADDRESS_V6.pack(0x0020, 20, attrs.FAMILY_IPV6, port ^ _XOR_PORT, xored)


def _mapped_address(peer: _PeerAddress, port: int) -> bytes:
    if peer.xored_v4:
        return _ADDRESS_V4.pack(0x0001, 8, attrs.FAMILY_IPV4, port, peer.packed)
    return _ADDRESS_V6.pack(0x0001, 20, attrs.FAMILY_IPV6, port, peer.packed)


def _with_fingerprint(message: bytes) -> bytes:
    """``message`` (its length already counting FINGERPRINT) followed by FINGERPRINT."""
    return message + _FINGERPRINT_ATTR.pack(_FINGERPRINT_TYPE, 4, fingerprint_crc(message))
