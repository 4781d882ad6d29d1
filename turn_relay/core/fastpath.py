"""Byte-level framing for the data path: Send and Data indications, ChannelData.

The control path parses full `stun_server.wire.Message` objects; the data path must not build an
object per packet. These functions read and write just the few attributes a Send or Data
indication carries (XOR-PEER-ADDRESS, DATA, DONT-FRAGMENT, FINGERPRINT), following the same
rules as the codec: attributes padded to 4, anything unknown in the comprehension-required range
makes the message unusable (RFC 8489 section 7.3.2: an indication with one is discarded).
"""

from __future__ import annotations

import binascii
import ipaddress
import itertools
import os

from stun_server.wire.attributes import REGISTRY

from .allocation import Address

_COOKIE = b"\x21\x12\xa4\x42"
_COOKIE_INT = 0x2112A442
_SEND_INDICATION = b"\x00\x16"
_DATA_INDICATION = b"\x00\x17"
_XOR_PEER_ADDRESS = 0x0012
_DATA = 0x0013
_DONT_FRAGMENT = 0x001A
_FINGERPRINT = 0x8028
_FINGERPRINT_XOR = 0x5354554E
_KNOWN = frozenset(REGISTRY)
MAX_DATA_INDICATION_PAYLOAD = 0xFFFF - 24 - 4 - 3  # fits a 16-bit length with an IPv6 peer


class SendIndication:
    """What a Send indication asks for: ``payload`` to ``peer``, optionally with DF set."""

    __slots__ = ("dont_fragment", "payload", "peer")

    def __init__(self, peer: Address, payload: bytes, dont_fragment: bool) -> None:
        self.peer = peer
        self.payload = payload
        self.dont_fragment = dont_fragment


def is_send_indication(data: bytes) -> bool:
    return data[:2] == _SEND_INDICATION


_MESSAGE_INTEGRITY = 0x0008
_MESSAGE_INTEGRITY_SHA256 = 0x001C


def has_integrity(data: bytes) -> bool:
    """Does this STUN message carry MESSAGE-INTEGRITY(-SHA256), or might it (any doubt: True)?

    A walk over the attribute headers, for the control path's cheap first look: a message
    whose header or attribute lengths do not add up answers True, so the full parser sees it.
    """
    end = len(data)
    if end < 20 or data[4:8] != _COOKIE or ((data[2] << 8) | data[3]) != end - 20:
        return True
    offset = 20
    while offset + 4 <= end:
        kind = (data[offset] << 8) | data[offset + 1]
        if kind in (_MESSAGE_INTEGRITY, _MESSAGE_INTEGRITY_SHA256):
            return True
        length = (data[offset + 2] << 8) | data[offset + 3]
        offset += 4 + length + (-length) % 4
    return offset != end


def _xor_address(value: bytes, transaction_id: bytes) -> Address | None:
    if len(value) < 8:
        return None
    family, port = value[1], int.from_bytes(value[2:4], "big") ^ 0x2112
    if family == 0x01 and len(value) == 8:
        raw = int.from_bytes(value[4:8], "big") ^ _COOKIE_INT
        return (f"{raw >> 24}.{(raw >> 16) & 255}.{(raw >> 8) & 255}.{raw & 255}", port)
    if family == 0x02 and len(value) == 20:
        mask = _COOKIE + transaction_id
        packed = bytes(a ^ b for a, b in zip(value[4:20], mask, strict=True))
        return (str(ipaddress.IPv6Address(packed)), port)
    return None


def parse_send_indication(data: bytes) -> SendIndication | None:
    """Decode a Send indication; None when it is malformed or must be discarded."""
    if len(data) < 20 or data[:2] != _SEND_INDICATION or data[4:8] != _COOKIE:
        return None
    if int.from_bytes(data[2:4], "big") + 20 != len(data) or len(data) % 4:
        return None
    transaction_id = data[8:20]
    peer: Address | None = None
    payload: bytes | None = None
    dont_fragment = False
    offset, end = 20, len(data)
    while offset < end:
        if end - offset < 4:
            return None
        attr_type = (data[offset] << 8) | data[offset + 1]
        length = (data[offset + 2] << 8) | data[offset + 3]
        start = offset + 4
        if start + length > end:
            return None
        if attr_type == _XOR_PEER_ADDRESS and peer is None:
            peer = _xor_address(data[start : start + length], transaction_id)
            if peer is None:
                return None
        elif attr_type == _DATA and payload is None:
            payload = data[start : start + length]
        elif attr_type == _DONT_FRAGMENT:
            dont_fragment = True
        elif attr_type == _FINGERPRINT:
            if not _fingerprint_ok(data, offset, start, length):
                return None
        elif attr_type < 0x8000 and attr_type not in _KNOWN:
            return None
        offset = start + length + (-length) % 4
    if peer is None or payload is None:
        return None
    return SendIndication(peer, payload, dont_fragment)


class SendIndicationReader:
    """The common shape of a Send indication, read without building anything per packet.

    `target` accepts XOR-PEER-ADDRESS and DATA (in either order: coturn's uclient sends DATA
    first) and optionally FINGERPRINT, last, which it checks: what clients send. Anything else
    (DONT-FRAGMENT, other attributes, repeats) returns None and is left to
    `parse_send_indication` via the core, which applies every rule. The XOR-PEER-ADDRESS bytes
    of recent IPv4 peers are cached.
    """

    def __init__(self, cache_size: int = 4096) -> None:
        self._peers: dict[bytes, Address] = {}
        self._cache_size = cache_size

    def target(self, data: bytes) -> tuple[Address, int, int] | None:
        """(peer, payload start, payload end), or None when not in the common shape."""
        size = len(data)
        if size < 36 or data[4:8] != _COOKIE or ((data[2] << 8) | data[3]) + 20 != size:
            return None
        peer: Address | None = None
        start = end = -1
        offset = 20
        while offset + 4 <= size:
            kind = (data[offset] << 8) | data[offset + 1]
            length = (data[offset + 2] << 8) | data[offset + 3]
            value = offset + 4
            after = value + length + (-length) % 4
            if after > size:
                return None
            if kind == _DATA and start < 0:
                start, end = value, value + length
            elif kind == _XOR_PEER_ADDRESS and peer is None:
                peer = self._peer(data, value, length)
                if peer is None:
                    return None
            elif kind == _FINGERPRINT and after == size:
                if not _fingerprint_ok(data, offset, value, length):
                    return None
            else:
                return None
            offset = after
        if peer is None or start < 0 or offset != size:
            return None
        return peer, start, end

    def _peer(self, data: bytes, value: int, length: int) -> Address | None:
        if length == 8 and data[value + 1] == 0x01:  # IPv4: cache by port and address
            key = data[value + 2 : value + 8]
            peer = self._peers.get(key)
            if peer is None:
                peer = _xor_address(data[value : value + 8], b"")
                if peer is not None:
                    if len(self._peers) >= self._cache_size:
                        self._peers.clear()
                    self._peers[key] = peer
            return peer
        return _xor_address(data[value : value + length], data[8:20])


def _fingerprint_ok(data: bytes, offset: int, start: int, length: int) -> bool:
    if length != 4 or start + 4 != len(data):
        return False
    crc = (binascii.crc32(data[:offset]) & 0xFFFFFFFF) ^ _FINGERPRINT_XOR
    return crc == int.from_bytes(data[start : start + 4], "big")


class DataIndicationEncoder:
    """Builds Data indications; caches the XOR-PEER-ADDRESS bytes of recent IPv4 peers.

    Transaction IDs are a random 4-byte prefix and a counter: unique per message without
    asking the OS for randomness per packet (indications carry no transaction state).
    """

    def __init__(self, cache_size: int = 4096) -> None:
        self._prefix = os.urandom(4)
        self._counter = itertools.count(int.from_bytes(os.urandom(4), "big"))
        self._cache: dict[Address, bytes] = {}
        self._cache_size = cache_size

    def encode(self, peer: Address, payload: bytes) -> bytes | None:
        """A Data indication carrying ``payload`` from ``peer``; None if it cannot fit."""
        if len(payload) > MAX_DATA_INDICATION_PAYLOAD:
            return None
        transaction_id = self._prefix + (next(self._counter) & 0xFFFFFFFFFFFFFFFF).to_bytes(
            8, "big"
        )
        peer_attr = self._peer_attribute(peer, transaction_id)
        pad = (-len(payload)) % 4
        length = len(peer_attr) + 4 + len(payload) + pad
        return b"".join(
            (
                _DATA_INDICATION,
                length.to_bytes(2, "big"),
                _COOKIE,
                transaction_id,
                peer_attr,
                b"\x00\x13",
                len(payload).to_bytes(2, "big"),
                payload,
                b"\x00" * pad,
            )
        )

    def _peer_attribute(self, peer: Address, transaction_id: bytes) -> bytes:
        if ":" in peer[0]:
            return _ipv6_peer_attribute(peer, transaction_id)
        cached = self._cache.get(peer)
        if cached is None:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            cached = _ipv4_peer_attribute(peer)
            self._cache[peer] = cached
        return cached


def _ipv4_peer_attribute(peer: Address) -> bytes:
    raw = int(ipaddress.IPv4Address(peer[0])) ^ _COOKIE_INT
    value = b"\x00\x01" + (peer[1] ^ 0x2112).to_bytes(2, "big") + raw.to_bytes(4, "big")
    return b"\x00\x12\x00\x08" + value


def _ipv6_peer_attribute(peer: Address, transaction_id: bytes) -> bytes:
    mask = _COOKIE + transaction_id
    packed = ipaddress.IPv6Address(peer[0]).packed
    xored = bytes(a ^ b for a, b in zip(packed, mask, strict=True))
    value = b"\x00\x02" + (peer[1] ^ 0x2112).to_bytes(2, "big") + xored
    return b"\x00\x12\x00\x14" + value


def channel_data(header: bytes, payload: bytes, *, pad: bool) -> bytes | None:
    """ChannelData for the channel whose 2-byte number is ``header``; padded for streams."""
    if len(payload) > 0xFFFF:
        return None
    frame = header + len(payload).to_bytes(2, "big") + payload
    if pad and len(payload) % 4:
        frame += b"\x00" * ((-len(payload)) % 4)
    return frame


def parse_channel_data(data: bytes, max_channel: int = 0x4FFF) -> tuple[int, bytes] | None:
    """(channel number, payload) of a ChannelData frame, or None if it is short or out of range."""
    if len(data) < 4:
        return None
    number = (data[0] << 8) | data[1]
    length = (data[2] << 8) | data[3]
    if not 0x4000 <= number <= max_channel or 4 + length > len(data):
        return None
    return number, data[4 : 4 + length]
