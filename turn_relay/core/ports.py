"""Relay port bookkeeping: which ports of the range are free, EVEN-PORT pairs, reservations.

Sans-I/O: the core picks a port here and asks the shell to bind it (``OpenRelay``). A port the
shell fails to bind (another program holds it) is quarantined for a while instead of freed.
Ports are drawn at random (RFC 8656 section 7.2 suggests the dynamic range; random choice makes
relayed addresses hard to guess). Every operation is O(1) except the rare fallback scan for an
even port when random draws keep missing.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

_RANDOM_TRIES = 64


class PortPool:
    """The free ports of one relay address: a list plus an index for O(1) random removal."""

    def __init__(self, low: int, high: int, rng: random.Random) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"bad port range {low}-{high}")
        self.low, self.high = low, high
        self._rng = rng
        self._free: list[int] = list(range(low, high + 1))
        self._index: dict[int, int] = {port: i for i, port in enumerate(self._free)}

    def __len__(self) -> int:
        return len(self._free)

    def is_free(self, port: int) -> bool:
        return port in self._index

    def take(self, *, even: bool = False, pair: bool = False) -> int | None:
        """Remove and return a free port (even if asked; with ``pair`` also take port + 1)."""
        if not self._free:
            return None
        if not (even or pair):
            return self._remove(self._free[self._rng.randrange(len(self._free))])
        port = self._find_even(pair)
        if port is None:
            return None
        self._remove(port)
        if pair:
            self._remove(port + 1)
        return port

    def take_specific(self, port: int) -> bool:
        if port not in self._index:
            return False
        self._remove(port)
        return True

    def release(self, port: int) -> None:
        if self.low <= port <= self.high and port not in self._index:
            self._index[port] = len(self._free)
            self._free.append(port)

    def _fits(self, port: int, pair: bool) -> bool:
        return port % 2 == 0 and (not pair or port + 1 in self._index)

    def _find_even(self, pair: bool) -> int | None:
        for _ in range(min(_RANDOM_TRIES, len(self._free))):
            port = self._free[self._rng.randrange(len(self._free))]
            if self._fits(port, pair):
                return port
        return next((port for port in self._free if self._fits(port, pair)), None)

    def _remove(self, port: int) -> int:
        index = self._index.pop(port)
        last = self._free.pop()
        if last != port:
            self._free[index] = last
            self._index[last] = index
        return port


@dataclass(slots=True)
class Reservation:
    """Port N+1 held for a later Allocate that presents the token (EVEN-PORT with R=1).

    The shell binds the reserved address right away (RFC 8656 7.2: the token is only valid while
    "the corresponding relayed transport address is still available"), so redeeming a token can
    never fail on a port another program grabbed meanwhile.
    """

    token: bytes
    family: int
    relay: tuple[str, int]
    expires_at: float

    @property
    def port(self) -> int:
        return self.relay[1]


class RelayPorts:
    """One pool per address family plus the reservation tokens handed out with EVEN-PORT R=1."""

    def __init__(self, families: dict[int, tuple[int, int]], rng: random.Random | None = None):
        rng = rng if rng is not None else random.Random(secrets.randbits(64))
        self.pools = {family: PortPool(low, high, rng) for family, (low, high) in families.items()}
        self.reservations: dict[bytes, Reservation] = {}

    def supports(self, family: int) -> bool:
        return family in self.pools

    def take(self, family: int, *, even: bool = False, pair: bool = False) -> int | None:
        pool = self.pools.get(family)
        return None if pool is None else pool.take(even=even, pair=pair)

    def release(self, family: int, port: int) -> None:
        pool = self.pools.get(family)
        if pool is not None:
            pool.release(port)

    def reserve(self, family: int, relay: tuple[str, int], expires_at: float) -> Reservation:
        """Hold ``relay`` (its port already taken from the pool) for a RESERVATION-TOKEN."""
        token = secrets.token_bytes(8)
        while token in self.reservations:
            token = secrets.token_bytes(8)
        reservation = Reservation(token, family, relay, expires_at)
        self.reservations[token] = reservation
        return reservation

    def redeem(self, token: bytes, now: float) -> Reservation | None:
        """Hand over a reserved port (it stays taken); None if unknown or expired."""
        reservation = self.reservations.pop(token, None)
        if reservation is None:
            return None
        if reservation.expires_at <= now:
            self.release(reservation.family, reservation.port)
            return None
        return reservation

    def expire_reservation(self, token: bytes, now: float) -> Reservation | None:
        """Free the port of an expired reservation; None if it was redeemed meanwhile."""
        reservation = self.reservations.get(token)
        if reservation is None or reservation.expires_at > now:
            return None
        del self.reservations[token]
        self.release(reservation.family, reservation.port)
        return reservation

    def find(self, relay: tuple[str, int]) -> Reservation | None:
        return next((r for r in self.reservations.values() if r.relay == relay), None)

    def cancel(self, reservation: Reservation) -> None:
        """Forget a reservation whose port could not be bound; the port stays out of the pool."""
        self.reservations.pop(reservation.token, None)
