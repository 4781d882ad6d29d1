"""The fleet as one relay sees it: pure merging of the siblings' published snapshots.

Each relay publishes a `RelaySnapshot` (under a key with a TTL, so a relay that dies drops out
by itself). `FleetView.merge` turns the siblings' snapshots into what the core needs, with no
I/O and no clock of its own (``now`` is passed in, as everywhere below the shell).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SNAPSHOT_VERSION = 1


class FleetDataError(ValueError):
    """A published snapshot or command that does not decode; it is skipped, never trusted."""


@dataclass(frozen=True, slots=True)
class RelaySnapshot:
    """What one relay tells its siblings about itself."""

    relay_id: str
    allocations: int  # live allocations (its load)
    capacity: int  # max_allocations, 0 = unlimited
    draining: bool
    alternates: tuple[str, ...]  # "ip:port" clients may be sent to (ALTERNATE-SERVER)
    users: Mapping[str, int] = field(default_factory=dict)  # user -> live allocations
    published_at: float = 0.0  # the publisher's wall clock, for humans only

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": SNAPSHOT_VERSION,
                "relay_id": self.relay_id,
                "allocations": self.allocations,
                "capacity": self.capacity,
                "draining": self.draining,
                "alternates": list(self.alternates),
                "users": dict(self.users),
                "published_at": self.published_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RelaySnapshot:
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("v") != SNAPSHOT_VERSION:
                raise FleetDataError("not a version-1 relay snapshot")
            users = data["users"]
            alternates = data["alternates"]
            if not isinstance(users, dict) or not isinstance(alternates, list):
                raise FleetDataError("users or alternates of the wrong type")
            snapshot = cls(
                relay_id=_text(data["relay_id"]),
                allocations=_count(data["allocations"]),
                capacity=_count(data["capacity"]),
                draining=bool(data["draining"]),
                alternates=tuple(_text(a) for a in alternates),
                users={_text(u): _count(n) for u, n in users.items()},
                published_at=_number(data.get("published_at", 0.0)),
            )
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, FleetDataError):
                raise
            raise FleetDataError(f"bad relay snapshot: {exc}") from None
        return snapshot

    @property
    def full(self) -> bool:
        return bool(self.capacity) and self.allocations >= self.capacity

    @property
    def accepting(self) -> bool:
        return not self.draining and not self.full and bool(self.alternates)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise FleetDataError(f"expected a non-empty string, got {value!r}")
    return value


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FleetDataError(f"expected a count, got {value!r}")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FleetDataError(f"expected a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class FleetFacts:
    """What the core is fed after a merge."""

    remote_users: Mapping[str, int]  # user -> allocations on the other relays
    siblings: tuple[RelaySnapshot, ...]  # every other live relay, sorted by id

    def least_loaded_alternate(self) -> str | None:
        """The ALTERNATE-SERVER for a 300: a sibling that accepts, lowest load share first."""
        accepting = [s for s in self.siblings if s.accepting]
        if not accepting:
            return None
        best = min(accepting, key=_load_order)
        return best.alternates[0]


def _load_order(snapshot: RelaySnapshot) -> tuple[float, int, str]:
    share = snapshot.allocations / snapshot.capacity if snapshot.capacity else 0.0
    return (share, snapshot.allocations, snapshot.relay_id)


def merge(own_id: str, snapshots: Iterable[RelaySnapshot]) -> FleetFacts:
    """Sum the siblings' per-user counts (never our own: the core counts those itself)."""
    remote: Counter[str] = Counter()
    siblings: dict[str, RelaySnapshot] = {}
    for snapshot in snapshots:
        if snapshot.relay_id == own_id:
            continue
        siblings[snapshot.relay_id] = snapshot
        remote.update(snapshot.users)
    ordered = tuple(siblings[key] for key in sorted(siblings))
    return FleetFacts(remote_users=dict(+remote), siblings=ordered)


@dataclass(frozen=True, slots=True)
class Command:
    """A fleet-wide admin command: kick, revoke, unrevoke, drain, reload."""

    verb: str
    target: str = "*"  # a relay id, or "*" for every relay
    argument: str = ""  # the user or session for kick/revoke
    until: float | None = None  # revoke: Unix seconds; None = until unrevoked
    origin: str = ""  # the relay that published it

    VERBS = frozenset({"kick", "revoke", "unrevoke", "drain", "reload"})

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": SNAPSHOT_VERSION,
                "verb": self.verb,
                "target": self.target,
                "argument": self.argument,
                "until": self.until,
                "origin": self.origin,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Command:
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("v") != SNAPSHOT_VERSION:
                raise FleetDataError("not a version-1 command")
            verb = _text(data["verb"])
            if verb not in cls.VERBS:
                raise FleetDataError(f"unknown verb {verb!r}")
            until = data.get("until")
            return cls(
                verb=verb,
                target=_text(data.get("target", "*")),
                argument=str(data.get("argument", "")),
                until=None if until is None else _number(until),
                origin=str(data.get("origin", "")),
            )
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, FleetDataError):
                raise
            raise FleetDataError(f"bad command: {exc}") from None

    def applies_to(self, relay_id: str) -> bool:
        return self.target in ("*", relay_id)


def live_revocations(
    revoked: Mapping[str, float | None], wall_now: float
) -> dict[str, float | None]:
    """The revocations still in force at ``wall_now`` (None = until unrevoked)."""
    return {user: until for user, until in revoked.items() if until is None or until > wall_now}
