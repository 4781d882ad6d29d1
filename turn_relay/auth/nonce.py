"""Stateless nonces: the nonce carries its own issue time and an HMAC, so nothing is stored.

Layout (all characters are valid NONCE qdtext, 45 characters with the cookie, 32 without)::

    [ "obMatJos2" + base64(24-bit security features) ]  +  base64url(issued_at:8 | mac:16)

``mac`` = HMAC-SHA256(key, cookie-part | issued_at | client)[:16], so a client can neither move
the issue time nor strip the security-feature bits (the RFC 8489 bid-down protection), and a nonce
bound to one client address is refused from another.

Clock: ``now`` is the relay's monotonic clock (``time.monotonic()``, seconds), the same ``now``
the protocol core uses for allocation timers. Linux's CLOCK_MONOTONIC is system-wide, so worker
processes sharing one key accept each other's nonces; a reboot changes the key anyway.

Lifetime: 600 s by default, as coturn's ``stale-nonce``. It bounds how long a captured request can
be replayed, and it equals the default allocation lifetime, so a client that refreshes once per
lifetime pays at most one extra 438 round trip per refresh.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass, field
from enum import IntFlag
from typing import TypeVar

from stun_server.wire.errors import StunError

NONCE_COOKIE = "obMatJos2"
DEFAULT_LIFETIME = 600.0
_FEATURES_CHARS = 4  # base64 of the 24-bit security feature set
_MAC_BYTES = 16
_BODY_BYTES = 8 + _MAC_BYTES
_BODY_CHARS = 32  # base64url of 24 bytes, no padding needed
_MIN_KEY_BYTES = 16
_K = TypeVar("_K")
_V = TypeVar("_V")
_CLOCK_SKEW_ALLOWANCE = 1.0  # issued_at is floored to whole seconds


class SecurityFeature(IntFlag):
    """RFC 8489 section 18.1 bits; bit 0 is the least significant (verified Errata 6290)."""

    NONE = 0
    PASSWORD_ALGORITHMS = 1 << 0
    USERNAME_ANONYMITY = 1 << 1


class StaleNonceError(StunError):
    """The nonce was ours but is too old: answer 438 with a fresh nonce."""

    def __init__(self) -> None:
        super().__init__(438, "Stale Nonce")


class InvalidNonceError(StunError):
    """Not a nonce we issued (garbled, forged, another key or another client).

    Also answered with 438 (RFC 8489 section 9.2.4: a nonce that is not valid is stale), so the
    client retries with the fresh nonce; the distinct class lets the server count it apart and
    charge it to the source's 401 rate limit.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(438, "Stale Nonce")


# The names the protocol core (authenticate.py) imports; same classes.
StaleNonce = StaleNonceError
InvalidNonce = InvalidNonceError


@dataclass(frozen=True, slots=True)
class CheckedNonce:
    issued_at: int
    features: SecurityFeature | None  # None: the nonce had no RFC 8489 cookie


def new_key() -> bytes:
    """A random nonce key; generate one per relay start and share it with its workers."""
    return secrets.token_bytes(32)


def cookie(features: SecurityFeature) -> str:
    """``obMatJos2`` followed by the 24-bit feature set in base64 (RFC 8489 section 9.2)."""
    return NONCE_COOKIE + base64.b64encode(int(features).to_bytes(3, "big")).decode("ascii")


@functools.lru_cache(maxsize=4096)
def security_features(nonce: str) -> SecurityFeature | None:
    """The feature bits a nonce advertises, or None when it carries no (well-formed) cookie."""
    if not nonce.startswith(NONCE_COOKIE):
        return None
    encoded = nonce[len(NONCE_COOKIE) : len(NONCE_COOKIE) + _FEATURES_CHARS]
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 3:
        return None
    return SecurityFeature(int.from_bytes(raw, "big") & 0b11)


@dataclass(frozen=True, slots=True)
class NonceIssuer:
    """Makes and checks nonces with one key.

    ``features``: None issues plain nonces; a SecurityFeature value (even NONE) prefixes the
    RFC 8489 cookie so clients learn which features (PASSWORD-ALGORITHMS, USERHASH) we offer.
    """

    key: bytes = field(repr=False)
    lifetime: float = DEFAULT_LIFETIME
    features: SecurityFeature | None = SecurityFeature.PASSWORD_ALGORITHMS
    # Both functions are deterministic, so their recent results are kept (bounded): within a
    # second every challenge to one client IP carries the same nonce, and a client signs all
    # its requests with one nonce. An HMAC and base64 each way, per request, otherwise.
    _made: dict[tuple[int, str], str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _verified: dict[tuple[str, str], tuple[str, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if len(self.key) < _MIN_KEY_BYTES:
            raise ValueError(f"nonce key must be at least {_MIN_KEY_BYTES} bytes")
        if self.lifetime <= 0:
            raise ValueError("nonce lifetime must be positive")

    def make(self, now: float, client: str = "") -> str:
        """A fresh nonce issued at ``now`` for ``client`` (its IP, or "" to bind to no one)."""
        if now < 0:
            raise ValueError("now must be a non-negative monotonic time")
        issued_at = int(now)
        made = self._made.get((issued_at, client))
        if made is not None:
            return made
        prefix = "" if self.features is None else cookie(self.features)
        body = struct.pack(">Q", issued_at) + self._mac(prefix, issued_at, client)
        made = prefix + base64.urlsafe_b64encode(body).decode("ascii")
        _remember(self._made, (issued_at, client), made)
        return made

    def check(self, nonce: str, now: float, client: str = "") -> CheckedNonce:
        """Accept a nonce we made for ``client`` less than ``lifetime`` seconds before ``now``.

        Raises InvalidNonceError (not ours) or StaleNonceError (ours, too old); both are 438
        on the wire.
        """
        verified = self._verified.get((nonce, client))
        if verified is not None:
            prefix, issued_at = verified
        else:
            prefix, issued_at, mac = self._split(nonce)
            if not hmac.compare_digest(mac, self._mac(prefix, issued_at, client)):
                raise InvalidNonceError("MAC mismatch (another key, another client or tampered)")
            _remember(self._verified, (nonce, client), (prefix, issued_at))
        if issued_at > now + _CLOCK_SKEW_ALLOWANCE:
            raise InvalidNonceError(f"issued in the future ({issued_at} > {now})")
        if now - issued_at >= self.lifetime:
            raise StaleNonceError()
        return CheckedNonce(issued_at, security_features(prefix) if prefix else None)

    def _split(self, nonce: str) -> tuple[str, int, bytes]:
        prefix_len = 0 if self.features is None else len(NONCE_COOKIE) + _FEATURES_CHARS
        prefix, encoded = nonce[:prefix_len], nonce[prefix_len:]
        if len(encoded) != _BODY_CHARS:
            raise InvalidNonceError(f"length {len(nonce)} is not a nonce of ours")
        try:
            body = base64.urlsafe_b64decode(encoded.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
            raise InvalidNonceError("body is not base64url") from exc
        if len(body) != _BODY_BYTES or base64.urlsafe_b64encode(body).decode() != encoded:
            raise InvalidNonceError("body is not canonical base64url")
        (issued_at,) = struct.unpack(">Q", body[:8])
        return prefix, issued_at, body[8:]

    def _mac(self, prefix: str, issued_at: int, client: str) -> bytes:
        message = b"\x00".join(
            (prefix.encode("utf-8"), str(issued_at).encode("ascii"), client.encode("utf-8"))
        )
        return hmac.new(self.key, message, hashlib.sha256).digest()[:_MAC_BYTES]


_CACHE_SIZE = 4096


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value
