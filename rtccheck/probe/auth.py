"""The long-term credential dance of RFC 8489 section 9.2, client side, without sockets.

A TURN request goes out first without credentials; the server answers 401 with REALM and NONCE;
the client repeats it with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY (key = MD5, or SHA-256
when the server offers PASSWORD-ALGORITHMS with it). A 438 Stale Nonce carries a new nonce: the
request is repeated once more with it. A 401 to a request that had MESSAGE-INTEGRITY means the
credentials were refused; it is not retried (unless that request used a realm and nonce cached
from earlier: then the 401 is taken as the fresh challenge, once).

`LongTermAuth` keeps what was learned (realm, nonce, key) across requests of one allocation;
`AuthCache` hands it on to later sessions with the same server and username (RFC 8489 section
9.2.3: clients cache realm and nonce), which spares the server a 401 per allocation; `Attempt`
tracks one request's retries; `decide` says whether to retry after an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from stun_server.wire import Message, MessageClass, encode, long_term_key, verify_integrity
from stun_server.wire import attributes as attrs

#: PASSWORD-ALGORITHM numbers (RFC 8489 section 18.5)
ALGORITHM_MD5 = 0x0001
ALGORITHM_SHA256 = 0x0002
_ALGORITHM_NAMES = {ALGORITHM_MD5: "md5", ALGORITHM_SHA256: "sha256"}
#: at most this many 438 answers are followed by one request
MAX_STALE_RETRIES = 1


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class Decision(StrEnum):
    RETRY = "retry"
    GIVE_UP = "give-up"


@dataclass
class Attempt:
    """One request's progress through the dance."""

    signed: bool = False
    challenges: int = 0
    stale_nonces: int = 0


@dataclass
class LongTermAuth:
    """Realm, nonce and key learned from the server; None credentials = probe without them."""

    credentials: Credentials | None
    realm: str | None = None
    nonce: str | None = None
    algorithms: attrs.PasswordAlgorithms | None = None
    algorithm: int | None = None
    key: bytes | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        """A key is known: requests go out signed."""
        return self.key is not None

    def encode(self, message: Message, attempt: Attempt) -> bytes:
        """The request on the wire: signed once a challenge was answered, plain before."""
        if self.key is None or self.credentials is None:
            attempt.signed = False
            return encode(message, fingerprint=True)
        assert self.realm is not None and self.nonce is not None
        message.add(
            attrs.Username(self.credentials.username),
            attrs.Realm(self.realm),
            attrs.Nonce(self.nonce),
        )
        if self.algorithms is not None and self.algorithm is not None:
            message.add(self.algorithms, attrs.PasswordAlgorithm(self.algorithm))
        attempt.signed = True
        return encode(message, key=self.key, fingerprint=True)

    def decide(self, response: Message, attempt: Attempt) -> Decision:
        """After an error response: retry (with what was learned) or give up."""
        error = response.get(attrs.ErrorCode)
        if response.cls is not MessageClass.ERROR or error is None:
            return Decision.GIVE_UP
        if error.code == 401 and attempt.challenges == 0:
            attempt.challenges += 1  # unsigned, or signed with a cached nonce: a challenge
            return self._learn_challenge(response)
        if error.code == 438 and attempt.stale_nonces < MAX_STALE_RETRIES:
            attempt.stale_nonces += 1
            return self._learn_new_nonce(response)
        return Decision.GIVE_UP

    def _learn_challenge(self, response: Message) -> Decision:
        realm, nonce = response.get(attrs.Realm), response.get(attrs.Nonce)
        if self.credentials is None or realm is None or nonce is None:
            if realm is not None:
                self.realm = realm.value
            return Decision.GIVE_UP
        self.realm, self.nonce = realm.value, nonce.value
        self._choose_algorithm(response.get(attrs.PasswordAlgorithms))
        return Decision.RETRY if self._derive_key() else Decision.GIVE_UP

    def _learn_new_nonce(self, response: Message) -> Decision:
        nonce, realm = response.get(attrs.Nonce), response.get(attrs.Realm)
        if nonce is None or self.credentials is None:
            return Decision.GIVE_UP
        self.nonce = nonce.value
        if realm is not None and realm.value != self.realm:
            self.realm = realm.value
            return Decision.RETRY if self._derive_key() else Decision.GIVE_UP
        return Decision.RETRY if self.key is not None or self._derive_key() else Decision.GIVE_UP

    def _choose_algorithm(self, offered: attrs.PasswordAlgorithms | None) -> None:
        """SHA-256 when offered, else MD5; without PASSWORD-ALGORITHMS the RFC 5389 way."""
        self.algorithms = offered
        self.algorithm = None
        if offered is None:
            return
        numbers = [number for number, _params in offered.algorithms]
        for preferred in (ALGORITHM_SHA256, ALGORITHM_MD5):
            if preferred in numbers:
                self.algorithm = preferred
                return
        self.algorithms = None  # nothing we know: fall back to plain MD5

    def _derive_key(self) -> bool:
        assert self.credentials is not None and self.realm is not None
        name = _ALGORITHM_NAMES.get(self.algorithm or ALGORITHM_MD5, "md5")
        try:
            self.key = long_term_key(
                self.credentials.username, self.realm, self.credentials.password, algorithm=name
            )
        except ValueError:  # OpaqueString refuses the realm or the password
            self.key = None
            return False
        return True

    def verifies(self, response: Message) -> bool | None:
        """Whether the response's MESSAGE-INTEGRITY checks out (None: nothing to check)."""
        if self.key is None or (
            response.integrity_offset is None and response.integrity_sha256_offset is None
        ):
            return None
        return verify_integrity(response, self.key)


@dataclass(frozen=True)
class Learned:
    realm: str
    nonce: str
    algorithms: attrs.PasswordAlgorithms | None
    algorithm: int | None
    key: bytes = field(repr=False)


@dataclass
class AuthCache:
    """What one server taught, per (server, username), for the next sessions of a check."""

    entries: dict[tuple[str, str], Learned] = field(default_factory=dict)

    def seed(self, server: str, auth: LongTermAuth) -> None:
        """Start ``auth`` with the realm, nonce and key cached for this server and user."""
        if auth.credentials is None:
            return
        learned = self.entries.get((server, auth.credentials.username))
        if learned is not None:
            auth.realm, auth.nonce, auth.key = learned.realm, learned.nonce, learned.key
            auth.algorithms, auth.algorithm = learned.algorithms, learned.algorithm

    def remember(self, server: str, auth: LongTermAuth) -> None:
        if auth.credentials is None or auth.key is None:
            return
        assert auth.realm is not None and auth.nonce is not None
        self.entries[(server, auth.credentials.username)] = Learned(
            auth.realm, auth.nonce, auth.algorithms, auth.algorithm, auth.key
        )
