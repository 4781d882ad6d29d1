"""Helpers for the sans-I/O core tests: a core on fake time and a TURN client that speaks to it.

Time is a plain float advanced by hand. ``now`` starts at T0 (a monotonic-looking value) and the
core's wall clock is ``now + WALL_OFFSET``, so REST expiries are real Unix times.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from stun_server.wire import (
    Message,
    MessageClass,
    Method,
    encode,
    long_term_key,
    parse,
    verify_integrity,
)
from stun_server.wire import attributes as attrs
from turn_relay.auth.authenticate import Authenticator
from turn_relay.auth.challenge import ChallengeBudget
from turn_relay.auth.credentials import issue
from turn_relay.auth.longterm import LongTermAuth
from turn_relay.auth.nonce import NonceIssuer
from turn_relay.core.actions import (
    Action,
    CloseRelay,
    OpenRelay,
    RouteDown,
    RouteUp,
    ToClient,
    ToPeer,
)
from turn_relay.core.allocation import Address, FiveTuple, Transport
from turn_relay.core.peer_policy import PeerPolicy
from turn_relay.core.relay import RelayCore
from turn_relay.core.settings import CoreSettings, RelayAddress

REALM = "turnkit.test"
SECRET = "s3cret"
T0 = 1000.0
WALL_OFFSET = 1_700_000_000.0
NONCE_KEY = b"n" * 32
SERVER: Address = ("127.0.0.1", 3478)
PEER: Address = ("127.0.0.1", 40001)
PEER2: Address = ("127.0.0.1", 40002)
PORT_MIN, PORT_MAX = 50000, 50099
STATIC_USERS = {"bob": "bobpass"}
RELAY_V4 = RelayAddress("127.0.0.1", "127.0.0.1")
RELAY_V6 = RelayAddress("::1", "::1")


def wall(now: float) -> float:
    return now + WALL_OFFSET


def make_core(
    *,
    relays: tuple[RelayAddress, ...] = (RELAY_V4,),
    allowed_peers: Sequence[str] = ("127.0.0.0/8", "::1/128"),
    limiter: ChallengeBudget | None = None,
    secrets: tuple[str, ...] = (SECRET,),
    nonce_lifetime: float = 600.0,
    **overrides: Any,
) -> RelayCore:
    base = CoreSettings(relays=relays, port_min=PORT_MIN, port_max=PORT_MAX)
    settings = replace(base, **overrides)
    auth = LongTermAuth(REALM, static_users=STATIC_USERS, rest_secrets=secrets)
    authenticator = Authenticator(auth, NonceIssuer(NONCE_KEY, lifetime=nonce_lifetime), limiter)
    policy = PeerPolicy(allowed_peers=list(allowed_peers))
    return RelayCore(settings, authenticator, policy, wall_offset=WALL_OFFSET, rng=random.Random(7))


def five_tuple(port: int = 40000, transport: Transport = Transport.UDP) -> FiveTuple:
    return FiveTuple(("127.0.0.1", port), SERVER, transport)


def responses(actions: Sequence[Action]) -> list[Message]:
    return [parse(a.data) for a in actions if isinstance(a, ToClient)]


def of_type(actions: Sequence[Action], kind: type[object]) -> list[Action]:
    return [a for a in actions if isinstance(a, kind)]


def error_code(message: Message) -> int | None:
    code = message.get(attrs.ErrorCode)
    return None if code is None else code.code


@dataclass
class Client:
    """One TURN client on one 5-tuple, with long-term credentials."""

    core: RelayCore
    five_tuple: FiveTuple
    username: str
    password: str
    sha256: bool = False  # use PASSWORD-ALGORITHM SHA-256 and MESSAGE-INTEGRITY-SHA256
    nonce: str | None = None
    actions: list[Action] = field(default_factory=list)
    last_sent: bytes = b""

    @classmethod
    def rest(
        cls, core: RelayCore, now: float, *, user: str = "alice", ttl: int = 3600, port: int = 40000
    ) -> Client:
        credential = issue(SECRET, user, ttl, wall(now))
        return cls(core, five_tuple(port), credential.username, credential.password)

    @property
    def key(self) -> bytes:
        algorithm = "sha256" if self.sha256 else "md5"
        return long_term_key(self.username, REALM, self.password, algorithm=algorithm)

    # ------------------------------------------------------------ raw exchange

    def send(self, data: bytes, now: float) -> list[Action]:
        self.last_sent = data
        self.actions = self.core.receive(data, self.five_tuple, now)
        return self.actions

    def exchange(self, request: Message, now: float, *, sign: bool = True) -> Message:
        """Send ``request`` (signed with our credentials if ``sign``); the one response."""
        data = self._encode(request) if sign else encode(request)
        found = responses(self.send(data, now))
        assert len(found) == 1, f"expected one response, got {self.actions}"
        return found[0]

    def _encode(self, request: Message) -> bytes:
        assert self.nonce is not None
        request.add(attrs.Username(self.username), attrs.Realm(REALM), attrs.Nonce(self.nonce))
        if self.sha256:
            request.add(attrs.PasswordAlgorithms(((2, b""), (1, b""))), attrs.PasswordAlgorithm(2))
            return encode(request, key=self.key, integrity="sha256")
        return encode(request, key=self.key)

    # ------------------------------------------------------------ authenticated requests

    def request(self, method: int, *attributes: attrs.AnyAttribute, now: float) -> Message:
        """An authenticated request: learns the nonce first, retries once after a 438."""
        if self.nonce is None:
            self.learn_nonce(now)
        response = self.exchange(
            Message(method, MessageClass.REQUEST, attributes=list(attributes)), now
        )
        if error_code(response) == 438:
            nonce = response.get(attrs.Nonce)
            assert nonce is not None
            self.nonce = nonce.value
            request = Message(method, MessageClass.REQUEST, attributes=list(attributes))
            response = self.exchange(request, now)
        if error_code(response) not in (400, 401, 438):
            assert verify_integrity(response, self.key), "response not signed with our key"
        return response

    def learn_nonce(self, now: float) -> Message:
        request = Message(
            Method.ALLOCATE, MessageClass.REQUEST, attributes=[attrs.RequestedTransport(17)]
        )
        challenge = self.exchange(request, now, sign=False)
        assert error_code(challenge) == 401
        nonce = challenge.get(attrs.Nonce)
        assert nonce is not None
        self.nonce = nonce.value
        return challenge

    def allocate(self, *extra: attrs.AnyAttribute, now: float, transport: int = 17) -> Message:
        return self.request(Method.ALLOCATE, attrs.RequestedTransport(transport), *extra, now=now)

    def refresh(
        self, lifetime: int | None = None, *extra: attrs.AnyAttribute, now: float
    ) -> Message:
        found = list(extra) if lifetime is None else [attrs.Lifetime(lifetime), *extra]
        return self.request(Method.REFRESH, *found, now=now)

    def permit(self, *peers: Address, now: float) -> Message:
        found = [attrs.XorPeerAddress(ip, port) for ip, port in peers]
        return self.request(Method.CREATE_PERMISSION, *found, now=now)

    def bind(self, channel: int, peer: Address, now: float) -> Message:
        return self.request(
            Method.CHANNEL_BIND, attrs.ChannelNumber(channel), attrs.XorPeerAddress(*peer), now=now
        )

    # ------------------------------------------------------------ data

    def send_indication(
        self, peer: Address, data: bytes, now: float, *extra: attrs.AnyAttribute
    ) -> list[Action]:
        message = Message(Method.SEND, MessageClass.INDICATION)
        message.add(attrs.XorPeerAddress(*peer), attrs.Data(data), *extra)
        return self.send(encode(message), now)

    def channel_data(self, channel: int, payload: bytes, now: float) -> list[Action]:
        return self.send(
            channel.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload, now
        )

    def relay(self) -> Address:
        allocation = self.core.table.by_five_tuple[self.five_tuple]
        return next(iter(allocation.relays.values()))


def allocated(
    core: RelayCore,
    now: float = T0,
    *extra: attrs.AnyAttribute,
    user: str = "alice",
    port: int = 40000,
) -> Client:
    client = Client.rest(core, now, user=user, port=port)
    response = client.allocate(*extra, now=now)
    assert response.cls is MessageClass.SUCCESS, response
    return client


__all__ = [
    "PEER",
    "PEER2",
    "REALM",
    "SECRET",
    "T0",
    "Action",
    "Client",
    "CloseRelay",
    "OpenRelay",
    "RouteDown",
    "RouteUp",
    "ToClient",
    "ToPeer",
    "allocated",
    "error_code",
    "five_tuple",
    "make_core",
    "of_type",
    "responses",
]
