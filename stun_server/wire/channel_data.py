"""ChannelData framing (RFC 8656 section 12.4) and the RFC 7983 first-byte classifier.

These are the relay's hot path: plain functions over bytes, no objects per packet.
"""

from __future__ import annotations

import enum

from .errors import StunDecodeError

MIN_CHANNEL = 0x4000
MAX_CHANNEL = 0x4FFF
_MAGIC_COOKIE_BYTES = b"\x21\x12\xa4\x42"


class DatagramKind(enum.Enum):
    STUN = "stun"
    CHANNEL_DATA = "channel-data"
    DTLS = "dtls"
    RTP = "rtp"
    OTHER = "other"


def classify(data: bytes | bytearray | memoryview) -> DatagramKind:
    """Demultiplex by first byte (RFC 7983 plus TURN channels, RFC 8656 section 12)."""
    if not data:
        return DatagramKind.OTHER
    first = data[0]
    if first < 4:
        return DatagramKind.STUN if data[4:8] == _MAGIC_COOKIE_BYTES else DatagramKind.OTHER
    if 64 <= first <= 79:
        return DatagramKind.CHANNEL_DATA
    if 20 <= first <= 63:
        return DatagramKind.DTLS
    if 128 <= first <= 191:
        return DatagramKind.RTP
    return DatagramKind.OTHER


def is_valid_channel(number: int) -> bool:
    return MIN_CHANNEL <= number <= MAX_CHANNEL


def encode_channel_data(channel: int, payload: bytes, *, pad: bool = False) -> bytes:
    """Frame ``payload`` for ``channel``; ``pad`` to 4 bytes for TCP/TLS (RFC 8656 12.5)."""
    if not is_valid_channel(channel):
        raise ValueError(f"channel 0x{channel:04x} outside 0x4000-0x4FFF")
    if len(payload) > 0xFFFF:
        raise ValueError("ChannelData payload longer than 65535 bytes")
    head = channel.to_bytes(2, "big") + len(payload).to_bytes(2, "big")
    return head + payload + (b"\x00" * ((-len(payload)) % 4) if pad else b"")


def parse_channel_data(data: bytes | bytearray | memoryview) -> tuple[int, bytes]:
    """(channel, payload); trailing padding is ignored. Raises `StunDecodeError`."""
    if len(data) < 4:
        raise StunDecodeError("ChannelData shorter than its 4-byte header")
    channel = (data[0] << 8) | data[1]
    if not is_valid_channel(channel):
        raise StunDecodeError(f"channel 0x{channel:04x} outside 0x4000-0x4FFF")
    length = (data[2] << 8) | data[3]
    if 4 + length > len(data):
        raise StunDecodeError(f"ChannelData says {length} bytes, has {len(data) - 4}")
    return channel, bytes(data[4 : 4 + length])
