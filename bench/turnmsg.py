"""Just enough TURN (RFC 8656) framing for the benchmark's own clients, built with struct.

Deliberately independent of stun_server.wire: a benchmark of our server should not share its
codec's mistakes. Requests carry long-term credentials (MESSAGE-INTEGRITY, HMAC-SHA1 keyed with
MD5(user:realm:password)); responses are split into (type, transaction ID, first value of each
attribute).
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import struct

from bench.stunmsg import COOKIE_BYTES, MAGIC_COOKIE

ALLOCATE = 0x0003
REFRESH = 0x0004
CREATE_PERMISSION = 0x0008
CHANNEL_BIND = 0x0009
SUCCESS = 0x0100
ERROR = 0x0110

USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
CHANNEL_NUMBER = 0x000C
LIFETIME = 0x000D
XOR_PEER_ADDRESS = 0x0012
REALM = 0x0014
NONCE = 0x0015
XOR_RELAYED_ADDRESS = 0x0016
REQUESTED_TRANSPORT = 0x0019

UDP_TRANSPORT = struct.pack("!B3x", 17)
_HEADER = struct.Struct("!HHI12s")
_TLV = struct.Struct("!HH")


def attr(kind: int, value: bytes) -> bytes:
    return _TLV.pack(kind, len(value)) + value + b"\x00" * (-len(value) % 4)


def long_term_key(user: str, realm: str, password: str) -> bytes:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).digest()  # RFC 8489 long-term key


def request(method: int, tid: bytes, attrs: list[bytes], key: bytes | None = None) -> bytes:
    """A request with the given attributes, then MESSAGE-INTEGRITY when a key is given."""
    body = b"".join(attrs)
    if key is not None:
        head = _HEADER.pack(method, len(body) + 24, MAGIC_COOKIE, tid)
        body += attr(MESSAGE_INTEGRITY, hmac.new(key, head + body, hashlib.sha1).digest())
    return _HEADER.pack(method, len(body), MAGIC_COOKIE, tid) + body


def auth_attrs(user: str, realm: bytes, nonce: bytes) -> list[bytes]:
    return [attr(USERNAME, user.encode()), attr(REALM, realm), attr(NONCE, nonce)]


def parse(data: bytes) -> tuple[int, bytes, dict[int, bytes]] | None:
    """(message type, transaction ID, {attribute type: first value}) or None if not STUN."""
    if len(data) < 20 or data[4:8] != COOKIE_BYTES or data[0] & 0xC0:
        return None
    kind, length, _, tid = _HEADER.unpack_from(data)
    end = min(20 + length, len(data))
    attrs: dict[int, bytes] = {}
    pos = 20
    while pos + 4 <= end:
        t, n = _TLV.unpack_from(data, pos)
        attrs.setdefault(t, data[pos + 4 : pos + 4 + n])
        pos += 4 + n + (-n % 4)
    return kind, tid, attrs


def error_code(value: bytes) -> int:
    return (value[2] & 0x7) * 100 + value[3] if len(value) >= 4 else 0


def xor_address(host: str, port: int) -> bytes:
    packed = socket.inet_aton(host)
    xored = bytes(a ^ b for a, b in zip(packed, COOKIE_BYTES, strict=True))
    return struct.pack("!xBH", 1, port ^ (MAGIC_COOKIE >> 16)) + xored


def channel_data(channel: int, payload: bytes) -> bytes:
    return struct.pack("!HH", channel, len(payload)) + payload
