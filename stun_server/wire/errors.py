"""The codec's error family.

`StunDecodeError` is the only exception `parse` raises, whatever bytes it is given.
`StunError` is a protocol error that maps to a wire ERROR-CODE (RFC 8489 section 14.8).
"""

from __future__ import annotations

REASON_PHRASES: dict[int, str] = {
    300: "Try Alternate",
    400: "Bad Request",
    401: "Unauthenticated",
    403: "Forbidden",
    405: "Mobility Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    446: "Connection Already Exists",
    447: "Connection Timeout or Failure",
    486: "Allocation Quota Reached",
    487: "Role Conflict",
    500: "Server Error",
    508: "Insufficient Capacity",
}


class StunDecodeError(ValueError):
    """Bytes that are not a well-formed STUN message (or ChannelData frame)."""


class StunError(Exception):
    """A protocol error with its wire code, e.g. ``StunError(438, "Stale Nonce")``."""

    def __init__(self, code: int, reason: str | None = None) -> None:
        if not 300 <= code <= 699:
            raise ValueError(f"error code {code} outside 300-699")
        self.code = code
        self.reason = reason if reason is not None else REASON_PHRASES.get(code, "Error")
        super().__init__(f"{code} {self.reason}")
