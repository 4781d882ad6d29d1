"""The long-term credential mechanism on the server side (RFC 8489 section 9.2.4).

Glue between a parsed request and the pure pieces: `turn_relay.auth` (who may log in, candidate
passwords, REST expiry), `turn_relay.nonce` (stateless nonces, 438) and the challenge budget
(`turn_relay.auth.challenge`), which learns here which sources have authenticated.
Order of checks, as RFC 8489 9.2.4 lists them:

1. no MESSAGE-INTEGRITY(-SHA256): 401 with REALM, NONCE (and PASSWORD-ALGORITHMS);
2. USERNAME, REALM or NONCE missing: 400;
3. the nonce cookie offers PASSWORD-ALGORITHMS: PASSWORD-ALGORITHM(S) must match what we sent
   (400 otherwise; neither present means MD5, for RFC 5389 clients);
4. unknown user, wrong realm, expired REST credential: 401;
5. no candidate key verifies the integrity: 401;
5b. the user is revoked (`Authenticator.revoked`): 401 (after the integrity check, so the
   reason logged for a wrong password stays ``bad-integrity``);
6. the nonce is not ours or too old: 438 with a fresh one (after the integrity check, so only a
   client that knows the password learns the nonce went stale).

Responses are signed like the request: MESSAGE-INTEGRITY-SHA256 if it had one, else SHA1.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

from stun_server.wire import Message, long_term_key, verify_integrity
from stun_server.wire import attributes as attrs
from stun_server.wire.attributes import PASSWORD_ALGORITHM_MD5, PASSWORD_ALGORITHM_SHA256

from .challenge import ChallengeBudget
from .longterm import AuthRejected, Credential, LongTermAuth, RejectReason
from .nonce import InvalidNonce, NonceIssuer, SecurityFeature, StaleNonce, security_features

# Rejected.why values: the ``reason`` label of the relay's auth metrics.
NO_CREDENTIALS = "no-integrity"  # the 401 challenge: step one of every login, not a failure
MISSING_ATTRIBUTES = "missing-username-realm-or-nonce"  # 400
ALGORITHM_MISMATCH = "password-algorithm-mismatch"  # 400
BAD_INTEGRITY = "bad-integrity"  # 401: wrong password (or secret), or a tampered request
WRONG_CREDENTIALS = "wrong-credentials"  # 441: another user's allocation (counted by the core)
REVOKED = "revoked"  # 401: a valid credential of a user an operator revoked
STALE_NONCE = "stale-nonce"  # 438: our nonce, too old
INVALID_NONCE = "invalid-nonce"  # 438: not our nonce (another relay, or before a restart)
FAILURE_REASONS: tuple[str, ...] = (
    MISSING_ATTRIBUTES,
    ALGORITHM_MISMATCH,
    *(reason.value for reason in RejectReason),  # wrong-realm, unknown-user, ... expired
    BAD_INTEGRITY,
    WRONG_CREDENTIALS,
    REVOKED,
)
NONCE_REASONS: tuple[str, ...] = (STALE_NONCE, INVALID_NONCE)

_CHALLENGE_CACHE = 1024  # challenge attribute tuples kept, by nonce
OFFERED_ALGORITHMS: tuple[tuple[int, bytes], ...] = (
    (PASSWORD_ALGORITHM_SHA256, b""),
    (PASSWORD_ALGORITHM_MD5, b""),
)
_ALGORITHM_NAMES = {PASSWORD_ALGORITHM_MD5: "md5", PASSWORD_ALGORITHM_SHA256: "sha256"}


class HeldCredentials(Protocol):
    """The credentials an allocation was made with (the core's allocation has them)."""

    @property
    def username(self) -> str: ...
    @property
    def key(self) -> bytes: ...


class AllocationView(Protocol):
    """What the authenticator reads of the allocation a request refers to."""

    @property
    def credentials(self) -> HeldCredentials: ...


@dataclass(frozen=True, slots=True)
class Authenticated:
    credential: Credential
    key: bytes
    integrity: str  # "sha1" or "sha256": how to sign the response


@dataclass(frozen=True, slots=True)
class Rejected:
    code: int  # 400, 401 or 438
    attributes: tuple[attrs.AnyAttribute, ...]  # REALM, NONCE, PASSWORD-ALGORITHMS (401/438)
    why: str  # for logs and metrics: NO_CREDENTIALS, one of FAILURE_REASONS or NONCE_REASONS
    send: bool = True  # False: the challenge budget is spent; drop silently
    expired_allocation: bool = False  # the allocation's own credential has expired

    @property
    def is_challenge(self) -> bool:
        """The 401 to a request without credentials: how every client learns realm and nonce."""
        return self.why == NO_CREDENTIALS


class Authenticator:
    def __init__(
        self,
        auth: LongTermAuth,
        nonces: NonceIssuer,
        limiter: ChallengeBudget | None = None,
    ) -> None:
        self.auth = auth  # replaced as a whole on SIGHUP
        self.nonces = nonces
        self.limiter = limiter
        self._challenges: dict[str, tuple[str, tuple[attrs.AnyAttribute, ...]]] = {}  # by nonce
        # user (the REST user part, or the static user) -> Unix time the revocation ends
        # (math.inf: until lifted); kept by the shell, which persists it
        self.revoked: dict[str, float] = {}

    def check(
        self,
        message: Message,
        client_ip: str,
        now: float,
        wall_now: float,
        allocation: AllocationView | None = None,
        *,
        rate_limited: bool = True,
    ) -> Authenticated | Rejected:
        """Authenticate ``message`` from ``client_ip``; ``allocation`` is the one it refers to.

        ``rate_limited`` is False for TCP/TLS clients: the challenge budget is there against
        reflection from spoofed UDP sources, and a stream's handshake proved its source.
        Every authenticated request proves its source to the budget (any transport).
        """
        if message.integrity_offset is None and message.integrity_sha256_offset is None:
            return self._challenge(401, NO_CREDENTIALS, client_ip, now, rate_limited)
        username, realm, nonce = (
            message.get(attrs.Username),
            message.get(attrs.Realm),
            message.get(attrs.Nonce),
        )
        if username is None or realm is None or nonce is None:
            return Rejected(400, (), MISSING_ATTRIBUTES)
        algorithm = self._password_algorithm(message, nonce.value)
        if algorithm is None:
            return Rejected(400, (), ALGORITHM_MISMATCH)
        try:
            credential = self.auth.lookup(
                username.value, realm.value, wall_now, live_allocation=allocation is not None
            )
        except AuthRejected as exc:
            return self._refused(
                exc, message, allocation, client_ip, now, rate_limited=rate_limited
            )
        key = _verified_key(message, credential, realm.value, algorithm)
        if key is None:
            return self._challenge(401, BAD_INTEGRITY, client_ip, now, rate_limited)
        if self.is_revoked(credential.user, wall_now):
            return self._challenge(401, REVOKED, client_ip, now, rate_limited)
        try:
            self.nonces.check(nonce.value, now, client_ip)
        except (StaleNonce, InvalidNonce) as exc:
            why = STALE_NONCE if isinstance(exc, StaleNonce) else INVALID_NONCE
            return self._challenge(438, why, client_ip, now, rate_limited)
        integrity = "sha256" if message.integrity_sha256_offset is not None else "sha1"
        if self.limiter is not None:
            self.limiter.prove(client_ip, now)
        return Authenticated(credential, key, integrity)

    def is_revoked(self, user: str, wall_now: float) -> bool:
        """An operator revoked ``user`` and the revocation has not run out at ``wall_now``."""
        until = self.revoked.get(user)
        return until is not None and wall_now < until

    def challenge_attributes(self, client_ip: str, now: float) -> tuple[attrs.AnyAttribute, ...]:
        """REALM, a fresh NONCE and, if the nonce cookie offers them, PASSWORD-ALGORITHMS.

        The same tuple object is returned while the nonce stays the same (one second, one
        client IP), so the core can reuse the response it encoded for it.
        """
        nonce = self.nonces.make(now, client_ip)
        realm = self.auth.realm
        cached = self._challenges.get(nonce)
        if cached is not None and cached[0] == realm:
            return cached[1]
        found: tuple[attrs.AnyAttribute, ...] = (attrs.Realm(realm), attrs.Nonce(nonce))
        features = self.nonces.features
        if features is not None and features & SecurityFeature.PASSWORD_ALGORITHMS:
            found += (attrs.PasswordAlgorithms(OFFERED_ALGORITHMS),)
        if len(self._challenges) >= _CHALLENGE_CACHE:
            self._challenges.clear()
        self._challenges[nonce] = (realm, found)
        return found

    def _challenge(
        self, code: int, why: str, client_ip: str, now: float, rate_limited: bool
    ) -> Rejected:
        limiter = self.limiter if rate_limited else None
        if limiter is not None and not limiter.allow(client_ip, now):
            return Rejected(code, (), why, send=False)
        return Rejected(code, self.challenge_attributes(client_ip, now), why)

    def _refused(
        self,
        exc: AuthRejected,
        message: Message,
        allocation: AllocationView | None,
        client_ip: str,
        now: float,
        *,
        rate_limited: bool,
    ) -> Rejected:
        """401 for a refused username; flags the allocation when its own credential expired.

        The flag is only set when the request proves knowledge of the allocation's key, so a
        spoofed Refresh cannot tear down someone else's allocation.
        """
        rejected = self._challenge(401, exc.why.value, client_ip, now, rate_limited)
        if (
            exc.why is RejectReason.EXPIRED
            and allocation is not None
            and message.get(attrs.Username) == attrs.Username(allocation.credentials.username)
            and verify_integrity(message, allocation.credentials.key)
        ):
            return Rejected(
                401, rejected.attributes, rejected.why, rejected.send, expired_allocation=True
            )
        return rejected

    def _password_algorithm(self, message: Message, nonce: str) -> str | None:
        """The key derivation to use, or None when PASSWORD-ALGORITHM(S) are inconsistent."""
        features = security_features(nonce)
        chosen = message.get(attrs.PasswordAlgorithm)
        offered = message.get(attrs.PasswordAlgorithms)
        if features is None or not features & SecurityFeature.PASSWORD_ALGORITHMS:
            return "md5"
        if chosen is None and offered is None:
            return "md5"
        if chosen is None or offered is None or offered.algorithms != OFFERED_ALGORITHMS:
            return None
        if (chosen.algorithm, chosen.params) not in OFFERED_ALGORITHMS:
            return None
        return _ALGORITHM_NAMES[chosen.algorithm]


def _verified_key(
    message: Message, credential: Credential, realm: str, algorithm: str
) -> bytes | None:
    for password in credential.passwords:
        key = _long_term_key(credential.username, realm, password, algorithm)
        if key is None:  # OpaqueString refuses the realm or password
            return None
        if verify_integrity(message, key):
            return key
    return None


@functools.lru_cache(maxsize=8192)
def _long_term_key(username: str, realm: str, password: str, algorithm: str) -> bytes | None:
    """`long_term_key`, remembered: a client signs every request with the same key, and the
    derivation (OpaqueString, then a hash) was a tenth of the Allocate path (py-spy)."""
    try:
        return long_term_key(username, realm, password, algorithm=algorithm)
    except ValueError:
        return None
