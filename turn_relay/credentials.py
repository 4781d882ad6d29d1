"""Time-limited TURN credentials (the "TURN REST" scheme, coturn's ``use-auth-secret``).

username = ``"<expiry-unix-seconds><sep><user>"``; password = base64(HMAC-SHA1(secret, username)).
Pure functions: the caller passes ``now`` (wall-clock Unix seconds).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

DEFAULT_SEPARATOR = ":"


@dataclass(frozen=True, slots=True)
class RestCredential:
    username: str
    password: str
    expires_at: int
    ttl: int


@dataclass(frozen=True, slots=True)
class RestUsername:
    expires_at: int
    user: str


def _to_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def rest_password(secret: str | bytes, username: str) -> str:
    """The password that goes with ``username`` under ``secret``."""
    digest = hmac.new(_to_bytes(secret), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def issue(
    secret: str | bytes, user: str, ttl: int, now: float, separator: str = DEFAULT_SEPARATOR
) -> RestCredential:
    """Mint a credential for ``user`` valid for ``ttl`` seconds from ``now``."""
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    expires_at = int(now) + ttl
    username = f"{expires_at}{separator}{user}" if user else str(expires_at)
    return RestCredential(username, rest_password(secret, username), expires_at, ttl)


def parse_username(username: str, separator: str = DEFAULT_SEPARATOR) -> RestUsername | None:
    """Split a REST username into expiry and user; None when it has no leading expiry."""
    head, sep, tail = username.partition(separator)
    if not (head.isascii() and head.isdigit()):
        return None
    return RestUsername(int(head), tail if sep else "")
