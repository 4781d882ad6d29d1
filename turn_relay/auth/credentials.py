"""Time-limited TURN credentials (the "TURN REST" scheme, coturn's ``use-auth-secret``).

username = ``"<expiry-unix-seconds><sep><user>"``; password = base64(HMAC-SHA1(secret, username)).
Pure functions: the caller passes ``now`` (wall-clock Unix seconds, because the expiry inside the
username is Unix time).

Rotation: the relay accepts several secrets at once. ``issue`` uses one secret (by convention the
first, the current one); ``candidate_passwords`` and ``verify`` accept any of them, so a fleet can
add a new secret everywhere, switch issuing to it, and drop the old one after the longest ttl.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_SEPARATOR = ":"
_USER_PATTERN = re.compile(r"[A-Za-z0-9._@+\-]{1,64}")

# Unix time of 2001-09-09. A smaller `now` is almost certainly a monotonic clock passed by mistake,
# which would make every REST credential look unexpired.
_EARLIEST_PLAUSIBLE_UNIX_TIME = 1_000_000_000


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


class RestCredentialError(ValueError):
    """Why a REST username or password was refused; ``reason`` is a short machine-readable tag."""

    reason = "rejected"


class MalformedUsernameError(RestCredentialError):
    reason = "malformed-username"


class ExpiredCredentialError(RestCredentialError):
    reason = "expired"

    def __init__(self, username: str, expires_at: int, now: float) -> None:
        self.expires_at = expires_at
        super().__init__(f"credential {username!r} expired at {expires_at} (now {int(now)})")


class WrongPasswordError(RestCredentialError):
    reason = "wrong-password"


def _to_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def rest_password(secret: str | bytes, username: str) -> str:
    """The password that goes with ``username`` under ``secret``."""
    digest = hmac.new(_to_bytes(secret), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def check_user(user: str, separator: str = DEFAULT_SEPARATOR) -> str:
    """Accept 1-64 characters of letters, digits and ``._@+-`` without ``separator``.

    For names arriving from outside (HTTP, command line); ``issue`` itself accepts any text.
    """
    if not _USER_PATTERN.fullmatch(user) or separator in user:
        raise ValueError("user must be 1-64 characters of letters, digits and ._@+- only")
    return user


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


def is_expired(expires_at: int, now: float) -> bool:
    """A credential is valid up to, but not including, the second ``expires_at``."""
    return now >= expires_at


def check_unexpired(username: str, now: float, separator: str = DEFAULT_SEPARATOR) -> RestUsername:
    """Parse ``username`` and insist it is still valid at ``now`` (Unix seconds).

    Raises MalformedUsernameError or ExpiredCredentialError; ValueError if ``now`` is not Unix time.
    """
    if now < _EARLIEST_PLAUSIBLE_UNIX_TIME:
        raise ValueError(f"now={now} is not Unix time (a monotonic clock passed by mistake?)")
    parsed = parse_username(username, separator)
    if parsed is None:
        raise MalformedUsernameError(
            f"username {username!r} does not start with an expiry timestamp"
        )
    if is_expired(parsed.expires_at, now):
        raise ExpiredCredentialError(username, parsed.expires_at, now)
    return parsed


def candidate_passwords(
    secrets: Sequence[str | bytes],
    username: str,
    now: float,
    separator: str = DEFAULT_SEPARATOR,
) -> tuple[str, ...]:
    """The password ``username`` would have under each secret, in the order of ``secrets``.

    The server derives one long-term key per candidate and accepts the request if any of them
    verifies its MESSAGE-INTEGRITY. Raises MalformedUsernameError / ExpiredCredentialError.
    """
    check_unexpired(username, now, separator)
    return tuple(rest_password(secret, username) for secret in secrets)


def verify(
    secrets: Sequence[str | bytes],
    username: str,
    password: str,
    now: float,
    separator: str = DEFAULT_SEPARATOR,
) -> RestUsername:
    """Check a plain-text REST credential against every secret (constant-time per secret).

    Returns the parsed username; raises MalformedUsernameError, ExpiredCredentialError or
    WrongPasswordError.
    """
    parsed = check_unexpired(username, now, separator)
    offered = password.encode("utf-8")
    matches = [
        hmac.compare_digest(candidate.encode("ascii"), offered)
        for candidate in candidate_passwords(secrets, username, now, separator)
    ]
    if not any(matches):
        raise WrongPasswordError(
            f"password for {username!r} matches none of {len(secrets)} secret(s)"
        )
    return parsed
