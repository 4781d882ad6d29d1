"""Rendezvous rooms without I/O: pairing tokens, seats, expiry, bounds and signaling messages.

A room is named by a short code (8 Crockford base32 characters, the result-id alphabet, so it
can be read out over the phone: ``7KQ2-M9XD``) and has two seats, ``a`` and ``b``. A pairing
token is a signed check link (`turn_relay.auth.links`) whose test id is the room code and whose
note is the seat, signed with a key derived from the pairing secret, so a check link can never
open a room (nor a room token a check page) even when an operator uses one secret for both.

Every method takes ``now`` (Unix seconds for expiry, which tokens carry; the same clock for rate
buckets). The aiohttp route group (`turn_relay.api.rendezvous`) owns sockets and the clock.

Bounds: at most ``max_rooms`` rooms, live and ended together (an ended room is remembered until
its expiry so its links say "ended", not "unknown"; the oldest ended rooms go first when the
table is full); joins and code look-ups per source address; per-party message size and rate.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from turn_relay.auth.challenge import ChallengeBudget, Rate
from turn_relay.auth.links import LinkClaims, LinkError, Refusal, RefusalReason, mint, verify
from turn_relay.reports.result_id import ResultIdError, new_result_id, parse_result_id

PAIRING_DOMAIN = b"turnkit rendezvous room v1"
SEATS = ("a", "b")
_SEAT_NOTE = "seat:"
#: what parties may send; everything else is refused (the relay adds joined, peer-joined,
#: peer-left, verdict and error)
CLIENT_MESSAGE_TYPES = frozenset({"offer", "answer", "candidate", "ready", "result", "bye"})


class Seat(StrEnum):
    A = "a"
    B = "b"

    @property
    def other(self) -> Seat:
        return Seat.B if self is Seat.A else Seat.A


class Role(StrEnum):
    LEADER = "leader"  # the first to join: it runs the test matrix
    FOLLOWER = "follower"


class RefusalCode(StrEnum):
    """Why a join, a look-up or a message is refused; each has a WebSocket close code."""

    MALFORMED = "malformed"  # 4400
    FORGED = "forged"  # 4403
    UNKNOWN = "unknown"  # 4404
    SEAT_TAKEN = "room-full"  # 4409
    EXPIRED = "expired"  # 4410
    ENDED = "ended"  # 4410
    TOO_LARGE = "too-large"  # 4413 (1009 would do, but browsers hide the reason)
    RATE_LIMITED = "rate-limited"  # 4429
    TOO_MANY_ROOMS = "too-many-rooms"  # 4503

    @property
    def close_code(self) -> int:
        return _CLOSE_CODES[self]


_CLOSE_CODES = {
    RefusalCode.MALFORMED: 4400,
    RefusalCode.FORGED: 4403,
    RefusalCode.UNKNOWN: 4404,
    RefusalCode.SEAT_TAKEN: 4409,
    RefusalCode.EXPIRED: 4410,
    RefusalCode.ENDED: 4410,
    RefusalCode.TOO_LARGE: 4413,
    RefusalCode.RATE_LIMITED: 4429,
    RefusalCode.TOO_MANY_ROOMS: 4503,
}


@dataclass(frozen=True)
class RoomRefusal:
    code: RefusalCode
    message: str

    def as_message(self) -> dict[str, object]:
        return {"type": "error", "code": str(self.code), "message": self.message}


# ------------------------------------------------------------------ pairing tokens


def pairing_key(secret: str | bytes) -> bytes:
    """The key room tokens are signed with: HMAC(secret, domain), never the secret itself."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(raw, PAIRING_DOMAIN, hashlib.sha256).digest()


def new_room_code() -> str:
    return new_result_id()


def format_code(room: str) -> str:
    """``7KQ2M9XD`` as people read it: ``7KQ2-M9XD``."""
    return f"{room[:4]}-{room[4:]}"


def parse_code(text: str) -> str | None:
    """The canonical room code of what a person typed, or None."""
    try:
        return parse_result_id(text)
    except ResultIdError:
        return None


def mint_room_token(secret: str | bytes, room: str, seat: Seat, expires_at: int, now: float) -> str:
    """A token for ``seat`` of ``room`` valid until ``expires_at`` (Unix seconds)."""
    if parse_code(room) != room:
        raise LinkError(f"{room!r} is not a canonical room code")
    return mint(pairing_key(secret), room, expires_at, f"{_SEAT_NOTE}{seat}", now)


@dataclass(frozen=True)
class RoomClaims:
    room: str
    seat: Seat
    expires_at: int


def verify_room_token(
    secrets: Sequence[str | bytes], token: object, now: float
) -> RoomClaims | RoomRefusal:
    if not secrets:
        return RoomRefusal(RefusalCode.UNKNOWN, "the rendezvous is not configured")
    claims = verify([pairing_key(s) for s in secrets], token, now)
    if isinstance(claims, Refusal):
        return _token_refusal(claims)
    return _room_claims(claims)


def _token_refusal(refusal: Refusal) -> RoomRefusal:
    codes = {
        RefusalReason.MALFORMED: RefusalCode.MALFORMED,
        RefusalReason.FORGED: RefusalCode.FORGED,
        RefusalReason.EXPIRED: RefusalCode.EXPIRED,
    }
    return RoomRefusal(codes[refusal.reason], f"room token {refusal.reason}: {refusal.detail}")


def _room_claims(claims: LinkClaims) -> RoomClaims | RoomRefusal:
    note = claims.note or ""
    seat = note.removeprefix(_SEAT_NOTE)
    if not note.startswith(_SEAT_NOTE) or seat not in SEATS or parse_code(claims.test_id) is None:
        return RoomRefusal(RefusalCode.MALFORMED, "room token malformed: no room or seat")
    return RoomClaims(claims.test_id, Seat(seat), claims.expires_at)


# ------------------------------------------------------------------ rooms


@dataclass(frozen=True)
class RoomLimits:
    max_rooms: int = 256
    max_room_ttl: float = 1800.0
    max_message_bytes: int = 16384
    messages_per_second: float = 20.0
    message_burst: int = 200
    joins_per_minute: int = 30
    max_sources: int = 4096


@dataclass
class Room:
    code: str
    expires_at: float
    #: the room tokens, kept so that a code look-up can hand one out
    tokens: dict[Seat, str] = field(default_factory=dict)
    occupied: dict[Seat, Role] = field(default_factory=dict)
    ended: bool = False

    def free_seat(self) -> Seat | None:
        return next((seat for seat in Seat if seat not in self.occupied), None)


@dataclass(frozen=True)
class Joined:
    room: Room
    seat: Seat
    role: Role
    #: whether the other seat was already taken (the follower joins a waiting leader)
    peer_present: bool


class RoomTable:
    """Every room the relay knows, with the bounds above."""

    def __init__(self, limits: RoomLimits) -> None:
        self.limits = limits
        self._rooms: dict[str, Room] = {}
        # a token bucket per source (nobody is "proven" here: every join spends one)
        self._joins = ChallengeBudget(
            unproven=Rate(limits.joins_per_minute / 60.0, limits.joins_per_minute),
            total=None,
            max_sources=limits.max_sources,
        )

    def __len__(self) -> int:
        return len(self._rooms)

    @property
    def live(self) -> int:
        return sum(1 for room in self._rooms.values() if not room.ended)

    @property
    def occupied(self) -> int:
        return sum(1 for room in self._rooms.values() if room.occupied)

    @property
    def parties(self) -> int:
        return sum(len(room.occupied) for room in self._rooms.values())

    def allow_source(self, source: str, now: float) -> RoomRefusal | None:
        """Spend one join (or look-up) of ``source``; a refusal when it has none left."""
        if self._joins.allow(source, now):
            return None
        per_minute = self.limits.joins_per_minute
        return RoomRefusal(RefusalCode.RATE_LIMITED, f"more than {per_minute} joins a minute")

    def open(self, claims: RoomClaims, token: str, now: float) -> Room | RoomRefusal:
        """The room of ``claims``, created on first use (registration or first join)."""
        self.expire(now)
        room = self._rooms.get(claims.room)
        if room is None:
            if len(self._rooms) >= self.limits.max_rooms and not self._evict_ended():
                return RoomRefusal(RefusalCode.TOO_MANY_ROOMS, "the relay holds too many rooms")
            expires_at = min(float(claims.expires_at), now + self.limits.max_room_ttl)
            room = self._rooms[claims.room] = Room(claims.room, expires_at)
        if room.ended:
            return RoomRefusal(RefusalCode.ENDED, f"room {format_code(room.code)} has ended")
        room.tokens.setdefault(claims.seat, token)
        return room

    def lookup(self, text: str, now: float) -> tuple[Room, Seat] | RoomRefusal:
        """The room a typed code names and the seat a newcomer gets."""
        self.expire(now)
        code = parse_code(text)
        room = self._rooms.get(code) if code is not None else None
        if room is None:
            return RoomRefusal(RefusalCode.UNKNOWN, f"no room {text!r} on this relay")
        if room.ended:
            return RoomRefusal(RefusalCode.ENDED, f"room {format_code(room.code)} has ended")
        seat = next((s for s in Seat if s not in room.occupied and s in room.tokens), None)
        if seat is None:
            return RoomRefusal(RefusalCode.SEAT_TAKEN, "the room is full (two parties)")
        return room, seat

    def join(self, claims: RoomClaims, token: str, now: float) -> Joined | RoomRefusal:
        room = self.open(claims, token, now)
        if isinstance(room, RoomRefusal):
            return room
        if claims.seat in room.occupied:
            return RoomRefusal(RefusalCode.SEAT_TAKEN, "the room is full: this seat is taken")
        peer_present = bool(room.occupied)
        role = Role.FOLLOWER if peer_present else Role.LEADER
        room.occupied[claims.seat] = role
        return Joined(room, claims.seat, role, peer_present)

    def leave(self, code: str, seat: Seat) -> bool:
        """A party left; the room ends (the other party is told and closed). True when the
        other seat was still taken."""
        room = self._rooms.get(code)
        if room is None:
            return False
        room.occupied.pop(seat, None)
        room.ended = True
        return bool(room.occupied)

    def expire(self, now: float) -> list[Room]:
        """Forget rooms past their expiry; the live ones among them, whose parties to close."""
        gone = [room for room in self._rooms.values() if room.expires_at <= now]
        for room in gone:
            del self._rooms[room.code]
        return [room for room in gone if room.occupied]

    def _evict_ended(self) -> bool:
        ended = next((code for code, room in self._rooms.items() if room.ended), None)
        if ended is None:
            return False
        del self._rooms[ended]
        return True


# ------------------------------------------------------------------ messages


class MessageBucket:
    """One party's message budget."""

    def __init__(self, limits: RoomLimits) -> None:
        rate = Rate(limits.messages_per_second, limits.message_burst)
        self._bucket = ChallengeBudget(unproven=rate, total=None, max_sources=1)

    def allow(self, now: float) -> bool:
        return bool(self._bucket.allow("party", now))


def parse_message(text: str | bytes, limits: RoomLimits) -> dict[str, object] | RoomRefusal:
    """A party's signaling message: a JSON object with a known ``type``, within the size."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > limits.max_message_bytes:
        return RoomRefusal(
            RefusalCode.TOO_LARGE,
            f"a message of {size} bytes is larger than {limits.max_message_bytes}",
        )
    if isinstance(text, bytes):
        return RoomRefusal(RefusalCode.MALFORMED, "binary messages are not signaling")
    try:
        message = json.loads(text)
    except ValueError:
        return RoomRefusal(RefusalCode.MALFORMED, "not JSON")
    if not isinstance(message, dict) or message.get("type") not in CLIENT_MESSAGE_TYPES:
        allowed = "|".join(sorted(CLIENT_MESSAGE_TYPES))
        return RoomRefusal(RefusalCode.MALFORMED, f"not a JSON object with type {allowed}")
    return message
