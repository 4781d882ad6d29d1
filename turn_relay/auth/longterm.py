"""Long-term credential lookup (RFC 8489 section 9.2) and the per-source 401 rate limit.

No codec here: the core hands over USERNAME and REALM as strings and gets back the candidate
passwords; it derives the keys (``stun_server.wire.integrity.long_term_key``) and accepts the
request if any candidate verifies MESSAGE-INTEGRITY(-SHA256). REST credentials yield one candidate
per configured secret (rotation), static users exactly one.

Clocks: ``LongTermAuth.lookup`` takes wall-clock Unix seconds (REST expiries are Unix time);
``UnauthorizedRateLimiter.allow`` takes the monotonic ``now`` of the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from stun_server.wire.errors import StunError

from .credentials import (
    DEFAULT_SEPARATOR,
    ExpiredCredentialError,
    MalformedUsernameError,
    RestUsername,
    check_unexpired,
    parse_username,
    rest_password,
)


class RejectReason(Enum):
    WRONG_REALM = "wrong-realm"
    UNKNOWN_USER = "unknown-user"
    MALFORMED_USERNAME = "malformed-username"
    EXPIRED = "expired"


class AuthRejectedError(StunError):
    """A 401 with the reason kept for logs and metrics (never sent: the wire says 401 only)."""

    def __init__(self, why: RejectReason, detail: str) -> None:
        self.why = why
        self.detail = detail
        super().__init__(401)


# The name the protocol core (authenticate.py) imports; same class.
AuthRejected = AuthRejectedError


@dataclass(frozen=True, slots=True)
class Credential:
    """What the core needs to verify a request and account for it."""

    username: str
    passwords: tuple[str, ...]  # candidates, one per REST secret; exactly one for static users
    user: str  # the quota key: the REST user part (stable across re-issued credentials)
    expires_at: int | None  # Unix seconds; None for static users


@dataclass(frozen=True, slots=True)
class LongTermAuth:
    """Static users plus REST secrets for one realm. Immutable: build a new one on SIGHUP.

    ``strict_expiry`` (default, and the project's decision): an expired REST credential is refused
    on every request, including Refresh/CreatePermission/ChannelBind on a live allocation. When
    False (coturn's behaviour) only requests that create an allocation check the expiry.
    """

    realm: str
    static_users: Mapping[str, str] = field(default_factory=dict, repr=False)
    rest_secrets: tuple[str | bytes, ...] = field(default=(), repr=False)
    separator: str = DEFAULT_SEPARATOR
    strict_expiry: bool = True

    def lookup(
        self, username: str, realm: str, now: float, *, live_allocation: bool = False
    ) -> Credential:
        """Candidate passwords for ``username`` at Unix time ``now``; raises AuthRejectedError.

        ``live_allocation``: the request refers to an existing allocation (not an Allocate).
        """
        if realm != self.realm:
            raise AuthRejectedError(
                RejectReason.WRONG_REALM, f"realm {realm!r} is not {self.realm!r}"
            )
        static_password = self.static_users.get(username)
        if static_password is not None:
            return Credential(username, (static_password,), username, None)
        if not self.rest_secrets:
            raise AuthRejectedError(RejectReason.UNKNOWN_USER, f"no user {username!r}")
        check_expiry = self.strict_expiry or not live_allocation
        parsed = self._parse_rest(username, now, check_expiry)
        passwords = tuple(rest_password(secret, username) for secret in self.rest_secrets)
        return Credential(username, passwords, parsed.user, parsed.expires_at)

    def _parse_rest(self, username: str, now: float, check_expiry: bool) -> RestUsername:
        if check_expiry:
            try:
                return check_unexpired(username, now, self.separator)
            except ExpiredCredentialError as exc:
                raise AuthRejectedError(RejectReason.EXPIRED, str(exc)) from exc
            except MalformedUsernameError as exc:
                raise AuthRejectedError(RejectReason.MALFORMED_USERNAME, str(exc)) from exc
        parsed = parse_username(username, self.separator)
        if parsed is None:
            raise AuthRejectedError(RejectReason.MALFORMED_USERNAME, f"{username!r} has no expiry")
        return parsed
